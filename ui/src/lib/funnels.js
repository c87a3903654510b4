// Funnel definitions for the Funnels report: the step types the builder
// offers, checking a draft before it is sent, and the bars the chart draws
// from the report's `steps` table. No server calls here (tested in Node);
// the page and the builder call /api/v1/metrics/funnels.
import { tableObjects } from './reportRows.js'

// The well-known event types a step can wait for; "custom" is a tracked
// event of the shop's own name (stored as type "track" with that name).
export const STEP_TYPES = [
  { event: 'page.viewed', label: 'Viewed a page', path: true },
  { event: 'screen.viewed', label: 'Viewed an app screen' },
  { event: 'identify', label: 'Signed up / identified' },
  { event: 'checkout.started', label: 'Started a checkout' },
  { event: 'checkout.updated', label: 'Updated a checkout' },
  { event: 'order.placed', label: 'Placed an order' },
  { event: 'email.opened', label: 'Opened an email' },
  { event: 'email.clicked', label: 'Clicked an email link' },
  { event: 'message.read', label: 'Read a message' },
  { event: 'message.received', label: 'Wrote to the shop' },
  { event: 'track', label: 'Custom event…', custom: true },
]

export const MIN_STEPS = 2
export const MAX_STEPS = 8
export const MAX_WINDOW_DAYS = 90

export const stepType = (event) => STEP_TYPES.find((t) => t.event === event) || { event, label: event }

// autoLabel names a step from what it waits for ("Viewed a page
// /products/", "Added to cart"): the label a step gets when the owner
// gives none.
export function autoLabel(s) {
  const t = stepType(s.event)
  const name = (s.name || '').trim()
  const path = (s.path || '').trim()
  if (t.custom) return name || 'Custom event'
  if (t.path && path) return `${t.label} ${path}`
  return t.label
}

// stepLabel names a step the way the chart shows it.
export const stepLabel = (s) => s.label || autoLabel(s)

// The label the server gives a step saved without one ("page.viewed /p").
const serverLabel = (s) => [s.event, s.name || s.path].filter(Boolean).join(' ')

export const blankStep = (event = 'page.viewed') => ({ event, name: '', path: '', label: '' })

export function blankFunnel() {
  return { name: '', window_days: 7, steps: [blankStep('page.viewed'), blankStep('checkout.started'), blankStep('order.placed')] }
}

// editable copies a stored funnel into a draft the builder can change.
export function editable(f) {
  return {
    id: f.id,
    name: f.name || '',
    window_days: f.window_days || 7,
    // A generated label is left blank, so it follows the step when edited.
    steps: (f.steps || []).map((s) => ({
      event: s.event || 'page.viewed',
      name: s.name || '',
      path: s.path || '',
      label: s.label && s.label !== autoLabel(s) && s.label !== serverLabel(s) ? s.label : '',
    })),
  }
}

// moveStep returns steps with step i moved by delta (−1 up, +1 down).
export function moveStep(steps, i, delta) {
  const j = i + delta
  if (j < 0 || j >= steps.length) return steps
  const out = steps.slice()
  ;[out[i], out[j]] = [out[j], out[i]]
  return out
}

// validate answers {field: message} for a draft, named as the API names
// the fields (steps.1.name), so server and client errors show alike.
export function validate(d) {
  const errs = {}
  if (!d.name.trim()) errs.name = 'Give the funnel a name.'
  const w = Number(d.window_days)
  if (!Number.isInteger(w) || w < 1 || w > MAX_WINDOW_DAYS) errs.window_days = `A whole number of days from 1 to ${MAX_WINDOW_DAYS}.`
  if (d.steps.length < MIN_STEPS) errs.steps = `A funnel needs at least ${MIN_STEPS} steps.`
  if (d.steps.length > MAX_STEPS) errs.steps = `A funnel has at most ${MAX_STEPS} steps.`
  d.steps.forEach((s, i) => {
    if (stepType(s.event).custom && !s.name.trim()) errs[`steps.${i}.name`] = 'Name the event, as your site tracks it.'
  })
  return errs
}

// payload is the body of POST/PUT /api/v1/metrics/funnels[/id]: only the
// fields a step's type uses, and a label in words when none is given.
export function payload(d) {
  return {
    name: d.name.trim(),
    window_days: Number(d.window_days),
    steps: d.steps.map((s) => {
      const t = stepType(s.event)
      const out = { event: s.event }
      if (t.custom && s.name.trim()) out.name = s.name.trim()
      if (t.path && s.path.trim()) out.path = s.path.trim()
      out.label = s.label.trim() || autoLabel(out)
      return out
    }),
  }
}

// listItems reads a list answer ({items: [...]} or a bare array).
export const listItems = (r) => (Array.isArray(r) ? r : r?.items || [])

// funnelBars turns the report's `steps` table into the chart's bars: each
// step's customers, its share of the first step and of the step before,
// and how many dropped off since the step before.
export function funnelBars(report) {
  const rows = tableObjects(report, 'steps')
  const first = num(rows[0], 'customers', 'reached', 'count', 'entered')
  let prev = first
  return rows.map((r, i) => {
    const n = num(r, 'customers', 'reached', 'count', 'entered')
    const bar = {
      step: i + 1,
      label: r.label ?? r.step_label ?? r.name ?? `Step ${i + 1}`,
      customers: n,
      fromFirst: first ? n / first : 0,
      fromPrevious: i === 0 ? 1 : prev ? n / prev : 0,
      dropOff: i === 0 ? 0 : Math.max(prev - n, 0),
    }
    prev = n
    return bar
  })
}

function num(row, ...keys) {
  for (const k of keys) if (typeof row?.[k] === 'number') return row[k]
  return 0
}
