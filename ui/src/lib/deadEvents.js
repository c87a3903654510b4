import { api } from './api.js'

// Events a consumer could not store are parked on the server (core/deadletter)
// so they hold nothing else up. Owners only: agents get 403.
export const deadEventsAPI = {
  // {count, items: [{id, event_id, type, error, attempts, last_failed, retry_requested, …}]}, newest failure first.
  list: () => api('/api/v1/events/dead'),
  // Marks the rows (all when ids is empty); the server re-drives them within seconds.
  retry: (ids = []) => api('/api/v1/events/dead/retry', { method: 'POST', body: ids.length ? { ids } : {} }),
}

// retryOutcome compares the list after a retry with the ids that were
// marked: a stored row is gone, a row that failed again is back without its
// retry mark, and a row still marked has not been picked up yet.
export function retryOutcome(marked, items) {
  const byId = new Map(items.map((r) => [r.id, r]))
  const out = { stored: 0, failed: 0, pending: 0 }
  for (const id of marked) {
    const r = byId.get(id)
    if (!r) out.stored++
    else if (r.retry_requested) out.pending++
    else out.failed++
  }
  return out
}

export function outcomeText({ stored, failed, pending }) {
  const parts = []
  if (stored) parts.push(`${stored} ${stored === 1 ? 'event' : 'events'} stored`)
  if (failed) parts.push(`${failed} failed again (see the new error)`)
  if (pending) parts.push(`${pending} not picked up yet: the server retries ${pending === 1 ? 'it' : 'them'} shortly`)
  return parts.length ? parts.join(', ') + '.' : 'Nothing to retry.'
}

// plainError keeps the first line of a stored error, shortened for a banner.
export function plainError(s, max = 240) {
  const line = String(s || 'unknown error').split('\n')[0].trim()
  return line.length > max ? line.slice(0, max - 1) + '…' : line
}
