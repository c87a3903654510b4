// Words and numbers shared by the journeys list, the results page and the
// customer page's journeys card.
import { dateTime } from './format.js'

const STATUS = {
  draft: { label: 'Draft', cls: '' },
  live: { label: 'Live', cls: 'ok' },
  paused: { label: 'Paused', cls: 'warn' },
  archived: { label: 'Archived', cls: '' },
}

export const statusBadge = (s) => STATUS[s] || { label: s || '—', cls: '' }

// shortTime formats a time the shop's way: only the clock when it is today
// ("14:05"), the date too otherwise.
export function shortTime(s) {
  const d = new Date(typeof s === 'string' ? s.replace(' ', 'T') : s)
  if (isNaN(d)) return s
  const now = new Date()
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString(undefined, { timeStyle: 'short' })
  return dateTime(d)
}

// The API puts RFC 3339 or PocketBase times in a run's state ("waiting for
// order.placed until 2026-11-30T14:05:00Z"); show them in the shop's way.
const TIME_IN_TEXT = /\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?/g

export const stateInWords = (state) => String(state || '').replace(TIME_IN_TEXT, (t) => shortTime(t))

// rate is part of whole in percent, or "—" when there is no whole.
export function rate(part, whole) {
  if (!whole || part == null) return '—'
  return (Math.round((1000 * part) / whole) / 10).toLocaleString() + '%'
}

// order lists a graph's node ids from its start, following exits breadth
// first, then any node not reached, so tables read like the journey.
export function nodeOrder(graph, extra = []) {
  const nodes = graph?.nodes || {}
  const seen = new Set()
  const out = []
  const queue = graph?.start ? [graph.start] : []
  while (queue.length) {
    const id = queue.shift()
    if (seen.has(id) || !nodes[id]) continue
    seen.add(id)
    out.push(id)
    const next = nodes[id].next
    if (typeof next === 'string') queue.push(next)
    else if (next && typeof next === 'object') queue.push(...Object.values(next))
  }
  for (const id of [...Object.keys(nodes), ...extra]) {
    if (!seen.has(id)) {
      seen.add(id)
      out.push(id)
    }
  }
  return out
}

// nodeLabel names a node for people: its own name or label if the builder
// gave it one, else its type and id.
export function nodeLabel(graph, id) {
  if (id === '_goal') return 'Goal reached'
  const n = graph?.nodes?.[id]
  if (!n) return id
  return n.name || n.label || n.title || `${TYPE_NAMES[n.type] || n.type} (${id})`
}

export const TYPE_NAMES = {
  wait: 'Wait',
  wait_for_event: 'Wait for event',
  branch: 'Branch',
  send: 'Send',
  split: 'A/B split',
  holdout: 'Holdout',
  update: 'Update customer',
  webhook: 'Webhook',
  notify: 'Notify staff',
  exit: 'Exit',
  goal: 'Goal',
}

export const EXIT_REASONS = {
  end: 'Reached the end',
  goal: 'Reached the goal',
  left_segment: 'Left the segment',
  unsubscribed: 'Unsubscribed',
  manual: 'Ended by hand',
  archived: 'Journey archived',
  merged: 'Merged into another run',
  failed: 'Failed',
}
