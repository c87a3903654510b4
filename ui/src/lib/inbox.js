// The agents' inbox: views, live merging and the small words the list and
// the conversation show. Pure functions, so the page stays about layout.

// The list's views; each maps to the query GET /api/v1/conversations takes.
export const VIEWS = [
  { id: 'mine', label: 'Mine', query: { status: 'open', assignee: 'me' } },
  { id: 'unassigned', label: 'Unassigned', query: { status: 'open', assignee: 'none' } },
  { id: 'all', label: 'All open', query: { status: 'open' } },
  { id: 'pending', label: 'Bot', query: { status: 'pending' } },
  { id: 'snoozed', label: 'Snoozed', query: { status: 'snoozed' } },
  { id: 'resolved', label: 'Resolved', query: { status: 'resolved', sort: 'recent' } },
]

export const PRIORITIES = ['none', 'low', 'medium', 'high', 'urgent']

export const viewById = (id) => VIEWS.find((v) => v.id === id) || VIEWS[0]

// listQuery is the list request for a view and its filters.
export function listQuery(viewId, { channel = '', label = '', q = '', sort = '' } = {}) {
  const v = viewById(viewId)
  const out = { ...v.query }
  if (channel) out.channel = channel
  if (label) out.label = label
  if (q) out.q = q
  if (sort) out.sort = sort
  return out
}

// matchesView says whether a conversation (as a live push carries it)
// belongs in the view, so the list can add or drop it without a refetch.
// A search term cannot be checked here (it matches the customer): the
// caller refetches instead.
export function matchesView(c, viewId, me, { channel = '', label = '' } = {}) {
  const q = viewById(viewId).query
  if (q.status && c.status !== q.status) return false
  if (q.assignee === 'me' && c.assignee !== me) return false
  if (q.assignee === 'none' && c.assignee) return false
  if (channel && c.channel !== channel) return false
  if (label && !(c.labels || []).includes(label)) return false
  return true
}

// toDate reads both RFC 3339 and PocketBase's stored form ("2026-01-02 15:04:05.000Z").
export function toDate(s) {
  if (!s) return null
  const d = new Date(typeof s === 'string' ? s.replace(' ', 'T') : s)
  return isNaN(d) ? null : d
}

// duration is a short span in words: "45 s", "12 min", "3 h 5 min", "2 d".
export function duration(sec) {
  sec = Math.max(0, Math.round(sec))
  if (sec < 60) return `${sec} s`
  if (sec < 3600) return `${Math.floor(sec / 60)} min`
  if (sec < 86400) {
    const h = Math.floor(sec / 3600)
    const m = Math.floor((sec % 3600) / 60)
    return m ? `${h} h ${m} min` : `${h} h`
  }
  return `${Math.floor(sec / 86400)} d`
}

// waitingSeconds is how long the customer has waited for an answer (0 when
// not waiting), from waiting_since so the list ticks without refetching.
export function waitingSeconds(c, now = Date.now()) {
  const d = toDate(c?.waiting_since)
  if (!d || c.status === 'resolved') return 0
  return Math.max(0, (now - d) / 1000)
}

// slaOf is the conversation's SLA due time, as the server computes it:
// the first response until an agent answered once, then the next response.
export function slaOf(c, now = Date.now()) {
  if (!c || c.status === 'resolved') return null
  const first = !c.first_response_at && c.first_response_due
  const due = toDate(first ? c.first_response_due : c.next_response_due)
  return due ? { due: due.toISOString(), kind: first ? 'first' : 'next', breached: due <= now } : null
}

// slaText: "First reply due in 12 min" / "Reply overdue by 3 min".
export function slaText(sla, now = Date.now()) {
  if (!sla) return ''
  const d = toDate(sla.due)
  const what = sla.kind === 'first' ? 'First reply' : 'Reply'
  const sec = (d - now) / 1000
  return sec < 0 ? `${what} overdue by ${duration(-sec)}` : `${what} due in ${duration(sec)}`
}

// sortItems orders the list as the server does: longest waiting first
// (then the most recent), most recent first, or SLA due soonest.
export function sortItems(items, sort = 'waiting') {
  const t = (s) => toDate(s)?.getTime() || 0
  const by = {
    waiting: (a, b) => (t(a.waiting_since) || Infinity) - (t(b.waiting_since) || Infinity) || t(b.last_message_at) - t(a.last_message_at),
    recent: (a, b) => t(b.last_message_at) - t(a.last_message_at),
    due: (a, b) => (t(slaOf(a)?.due) || Infinity) - (t(slaOf(b)?.due) || Infinity) || t(b.last_message_at) - t(a.last_message_at),
  }[sort] || ((a, b) => 0)
  return [...items].sort((a, b) => {
    const r = by(a, b)
    return isNaN(r) ? 0 : r
  })
}

// mergeMessages adds or replaces messages by id, oldest first.
export function mergeMessages(list, incoming) {
  const byId = new Map(list.map((m) => [m.id, m]))
  for (const m of incoming || []) byId.set(m.id, { ...(byId.get(m.id) || {}), ...m })
  return [...byId.values()].sort((a, b) => (toDate(a.created) || 0) - (toDate(b.created) || 0) || (a.id < b.id ? -1 : 1))
}

// customerName is what the list calls the customer.
export function customerName(c) {
  const p = c?.customer
  return p?.name || p?.email || p?.phone || c?.address || 'Customer'
}

// authorName names who wrote a message.
export function authorName(m, conversation) {
  switch (m.author) {
    case 'customer':
      return customerName(conversation)
    case 'agent':
      return m.author_name || 'Agent'
    case 'bot':
      return 'Bot'
    case 'journey':
      return 'Journey'
    case 'system':
      return 'System'
    default:
      return m.author || 'Unknown'
  }
}

// STATUS: a reply's delivery state in words, with a tick mark.
export const STATUS = {
  sending: { label: 'Sending…', tick: '◷' },
  queued: { label: 'Queued', tick: '◷' },
  scheduled: { label: 'Scheduled', tick: '◷' },
  sent: { label: 'Sent', tick: '✓' },
  delivered: { label: 'Delivered', tick: '✓✓' },
  read: { label: 'Read', tick: '✓✓' },
  failed: { label: 'Failed', tick: '!' },
  suppressed: { label: 'Not sent', tick: '!' },
}

// snoozeTimes are the snooze menu's choices, from now.
export function snoozeTimes(now = new Date()) {
  const at9 = (d) => {
    d.setHours(9, 0, 0, 0)
    return d
  }
  const tomorrow = at9(new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1))
  const days = (8 - now.getDay()) % 7 || 7 // to next Monday
  const nextWeek = at9(new Date(now.getFullYear(), now.getMonth(), now.getDate() + days))
  return [
    { label: 'For 1 hour', value: new Date(now.getTime() + 3600e3).toISOString() },
    { label: 'Until tomorrow 9:00', value: tomorrow.toISOString() },
    { label: 'Until next week (Monday 9:00)', value: nextWeek.toISOString() },
    { label: 'Until they reply', value: 'reply' },
  ]
}

// mentionQuery finds an @word being typed at the caret in a note.
export function mentionQuery(text, caret) {
  const m = /(^|\s)@([\w.+-]*)$/.exec(text.slice(0, caret))
  return m ? { start: caret - m[2].length - 1, q: m[2].toLowerCase() } : null
}

// mentionName is what to type for an agent: the first name, else the
// email's local part (what the server matches).
export function mentionName(a) {
  const first = (a.name || '').trim().split(/\s+/)[0]
  return (first || (a.email || '').split('@')[0]).toLowerCase()
}

// typingTarget: keyboard shortcuts stay out of text fields.
export const typingTarget = (el) => !!el && (el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName))
