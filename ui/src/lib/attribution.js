// The attribution report's models and the per-channel shares each gives,
// read from the report's `models` table so switching model moves the bars
// at once (the other tables follow when the report reloads).
import { table } from './reportRows.js'

export const MODELS = [
  { id: 'first', label: 'First touch', explain: 'All the credit goes to the first touch in the lookback window.' },
  { id: 'last', label: 'Last touch', explain: 'All the credit goes to the last touch before the order.' },
  { id: 'linear', label: 'Linear', explain: 'Every touch in the lookback window gets an equal share.' },
  { id: 'position', label: 'Position-based', explain: '40% to the first touch, 40% to the last, and the other 20% shared by the touches between.' },
  { id: 'time_decay', label: 'Time decay', explain: 'Touches nearer the order count more: a touch’s weight halves with every half-life before the order.' },
]
export const DEFAULT_MODEL = 'linear'
export const modelInfo = (id) => MODELS.find((m) => m.id === id) || MODELS.find((m) => m.id === DEFAULT_MODEL)

// channelShares answers [{channel, credit, share}] for a model from the
// `models` table, which comes either wide (a row per channel, a column per
// model) or long (a row per model and channel, with credit and share).
export function channelShares(report, model) {
  const t = table(report, 'models')
  if (!t) return []
  const keys = t.columns.map((c) => c.key)
  const channelAt = keys.indexOf('channel') >= 0 ? keys.indexOf('channel') : 0
  let rows
  const modelAt = keys.indexOf('model')
  if (modelAt >= 0) {
    const creditAt = keys.indexOf('credit')
    const shareAt = keys.indexOf('share')
    rows = (t.rows || [])
      .filter((r) => r[modelAt] === model)
      .map((r) => ({ channel: String(r[channelAt]), credit: Number(r[creditAt]) || 0, share: shareAt >= 0 ? Number(r[shareAt]) : null }))
  } else {
    const at = keys.findIndex((k) => k === model || k === model + '_credit' || k === 'credit_' + model)
    if (at < 0) return []
    rows = (t.rows || []).map((r) => ({ channel: String(r[channelAt]), credit: Number(r[at]) || 0, share: null }))
  }
  const total = rows.reduce((a, r) => a + r.credit, 0)
  for (const r of rows) if (r.share == null || isNaN(r.share)) r.share = total ? r.credit / total : 0
  return rows
}
