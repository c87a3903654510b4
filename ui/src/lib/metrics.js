// Reports: the date range kept in the URL, loading a report, formatting
// its values and exporting a table as CSV. Every report answers the same
// shape (core/metrics/report.go), so the pages share these helpers and the
// components in components/metrics/.
import { pb, api } from './api.js'
import { route, setQuery } from './router.svelte.js'

// The preset ranges the server knows (core/metrics parseQuery), in order.
export const RANGES = [
  { id: 'today', label: 'Today' },
  { id: 'yesterday', label: 'Yesterday' },
  { id: '7d', label: '7 days' },
  { id: '30d', label: '30 days' },
  { id: '90d', label: '90 days' },
  { id: '12m', label: '12 months' },
]
export const DEFAULT_RANGE = '30d'

// The report pages as tabs; the range query travels with the links.
export const REPORTS = [
  { path: '/reports/sales', label: 'Sales' },
  { path: '/reports/customers', label: 'Customers' },
  { path: '/reports/funnels', label: 'Funnels' },
  { path: '/reports/journeys', label: 'Journeys' },
  { path: '/reports/inbox', label: 'Inbox' },
  { path: '/reports/attribution', label: 'Attribution' },
]

const DAY = /^\d{4}-\d{2}-\d{2}$/

// rangeFromURL reads the range from the page's query: ?range=30d or
// ?from=YYYY-MM-DD&to=YYYY-MM-DD, and compare=previous. Reading route.query
// makes it reactive inside $derived / $effect.
export function rangeFromURL(query = route.query) {
  const from = query.get('from') || ''
  const to = query.get('to') || ''
  const compare = query.get('compare') === 'previous'
  if (DAY.test(from) && (to === '' || DAY.test(to))) return { range: 'custom', from, to, compare }
  const id = query.get('range')
  return { range: RANGES.some((r) => r.id === id) ? id : DEFAULT_RANGE, from: '', to: '', compare }
}

// rangeQuery turns a range into query parameters, for the API and the URL.
export function rangeQuery(range) {
  const q = range.range === 'custom' ? { from: range.from, to: range.to || undefined } : { range: range.range }
  if (range.compare) q.compare = 'previous'
  return q
}

// setRange writes a range into the URL (replacing the history entry), so it
// survives a reload and carries to the other report tabs.
export function setRange(range) {
  const custom = range.range === 'custom'
  setQuery({
    range: custom || range.range === DEFAULT_RANGE ? '' : range.range,
    from: custom ? range.from : '',
    to: custom ? range.to : '',
    compare: range.compare ? 'previous' : '',
  })
}

// rangeSearch is the "?…" part carrying only the range keys, for links
// between pages (a report's own options such as model= stay behind).
export function rangeSearch(query = route.query) {
  const q = new URLSearchParams()
  for (const k of ['range', 'from', 'to', 'compare']) if (query.get(k)) q.set(k, query.get(k))
  const s = q.toString()
  return s ? '?' + s : ''
}

function clean(params) {
  const out = {}
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== '') out[k] = v
  return out
}

// loadReport fetches GET /api/v1/metrics/{name} with the given parameters
// (the range's, see rangeQuery, and the report's own).
export function loadReport(name, params = {}) {
  return api(`/api/v1/metrics/${name}`, { query: clean(params) })
}

// notBuilt tells whether an error is the server's "report not built yet".
export const notBuilt = (err) => err?.status === 501

// downloadCSV fetches one table of a report as CSV with the staff token and
// saves it under the name the server gives.
export async function downloadCSV(name, params = {}, table = '') {
  const q = new URLSearchParams(clean({ ...params, format: 'csv', table }))
  const res = await fetch(`/api/v1/metrics/${name}?${q}`, { headers: { Authorization: pb.authStore.token } })
  if (!res.ok) {
    let msg = `The export failed (${res.status}).`
    try {
      msg = (await res.json()).message || msg
    } catch {}
    throw new Error(msg)
  }
  const blob = await res.blob()
  const disp = res.headers.get('Content-Disposition') || ''
  const file = /filename="([^"]+)"/.exec(disp)?.[1] || `omni-${name}-${table || 'report'}.csv`
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = file
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 1000)
  return file
}

// formatDuration says seconds the way people do: "45 s", "12 min",
// "3 h 12 min", "2 d 5 h".
export function formatDuration(sec) {
  if (sec == null || isNaN(sec)) return '—'
  sec = Math.round(Number(sec))
  if (sec < 60) return `${sec} s`
  const min = Math.round(sec / 60)
  if (min < 60) return `${min} min`
  const h = Math.floor(min / 60)
  if (h < 24) return min % 60 ? `${h} h ${min % 60} min` : `${h} h`
  const d = Math.floor(h / 24)
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`
}

function formatDate(v) {
  const s = String(v)
  let m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s)
  if (m) return new Date(+m[1], +m[2] - 1, +m[3]).toLocaleDateString(undefined, { dateStyle: 'medium' })
  m = /^(\d{4})-(\d{2})$/.exec(s)
  if (m) return new Date(+m[1], +m[2] - 1, 1).toLocaleDateString(undefined, { month: 'short', year: 'numeric' })
  return s
}

// formatValue formats one figure by its column/tile type: text, number,
// money (in currency), percent (a share 0..1), duration (seconds) or date.
export function formatValue(v, type = 'number', currency = '') {
  if (v === null || v === undefined || v === '') return '—'
  switch (type) {
    case 'text':
      return String(v)
    case 'date':
      return formatDate(v)
    case 'duration':
      return formatDuration(v)
  }
  const n = Number(v)
  if (isNaN(n)) return String(v)
  switch (type) {
    case 'money':
      if (!currency) return n.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 })
      try {
        return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(n)
      } catch {
        return `${n.toFixed(2)} ${currency}`
      }
    case 'percent':
      return new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 1 }).format(n)
  }
  return n.toLocaleString(undefined, { maximumFractionDigits: 2 })
}

// change is the relative change from prev to cur (0.25 = +25 %), or null
// when there is nothing to compare with.
export function change(cur, prev) {
  if (cur == null || prev == null || isNaN(cur) || isNaN(prev)) return null
  if (prev === 0) return cur === 0 ? 0 : null
  return (cur - prev) / Math.abs(prev)
}

// Line colours for report charts (the previous period reuses its line's).
export const PALETTE = ['#2563eb', '#16a34a', '#d97706', '#db2777', '#7c3aed', '#0891b2', '#64748b']
