// Display helpers shared by the pages.

export const CHANNELS = {
  web: { label: 'Web', short: 'WEB', color: '#2563eb' },
  app: { label: 'App', short: 'APP', color: '#7c3aed' },
  server: { label: 'Server', short: 'SRV', color: '#64748b' },
  email: { label: 'Email', short: '@', color: '#d97706' },
  sms: { label: 'SMS', short: 'SMS', color: '#0891b2' },
  whatsapp: { label: 'WhatsApp', short: 'WA', color: '#16a34a' },
  pos: { label: 'Point of sale', short: 'POS', color: '#db2777' },
  chat: { label: 'Chat', short: 'CHAT', color: '#0d9488' },
  other: { label: 'Other', short: '·', color: '#6b7280' },
}

// A channel Omni has no badge for (an attribution's "direct", a source's
// own name) reads as a word: "Direct", not "direct".
export const channelInfo = (c) => CHANNELS[c] || { label: c ? humanize(c) : 'Other', short: (c || '?').slice(0, 3).toUpperCase(), color: '#6b7280' }

// Buying stages (computed.buying_stage), in the order a customer moves
// through them, with what each means (docs/profiles.md#buying-stage).
export const BUYING_STAGES = {
  new: { label: 'New', hint: 'Seen, not yet known by name, email or phone' },
  browsing: { label: 'Browsing', hint: 'Known, or started a checkout, no order yet' },
  first_purchase: { label: 'First purchase', hint: 'One order, in the last 90 days' },
  repeat: { label: 'Repeat', hint: 'Two or more orders, the last in the last 90 days' },
  loyal: { label: 'Loyal', hint: 'Three or more orders within a year' },
  at_risk: { label: 'At risk', hint: 'Has ordered, but not in the last 90 days' },
}

// The older lifecycle stage read in the same words, for profiles whose
// buying stage is not derived yet.
const LIFECYCLE_AS_BUYING = { awareness: 'new', consideration: 'browsing', purchase: 'first_purchase', post_purchase: 'at_risk', loyal: 'loyal' }

export function buyingStage(computed, orders) {
  const s = computed?.buying_stage || (LIFECYCLE_AS_BUYING[computed?.lifecycle_stage] === 'first_purchase' && orders > 1 ? 'repeat' : LIFECYCLE_AS_BUYING[computed?.lifecycle_stage])
  return s ? { id: s, ...(BUYING_STAGES[s] || { label: humanize(s), hint: '' }) } : null
}

// What a connector can do, in words (its declared capabilities).
export function capabilityLabel(cap) {
  if (cap?.startsWith('send:')) return 'Sends ' + channelInfo(cap.slice(5)).label
  return { webhook: 'Receives updates', backfill: 'Imports history', erase: 'Erases at the vendor' }[cap] || humanize(cap)
}

// Identity kinds and the channel each one reaches.
export const IDENTITY = {
  email: { label: 'Email', channel: 'email' },
  phone: { label: 'Phone', channel: 'sms' },
  wa_id: { label: 'WhatsApp', channel: 'whatsapp' },
  shopify_customer_id: { label: 'Shopify customer', channel: 'web' },
  square_customer_id: { label: 'Square customer', channel: 'pos' },
  klaviyo_profile_id: { label: 'Klaviyo profile', channel: 'email' },
  user_id: { label: 'User ID', channel: 'app' },
  anonymous_id: { label: 'Anonymous ID', channel: 'web' },
}

export function money(amount, currency) {
  if (amount == null || isNaN(amount)) return '—'
  if (!currency || currency === 'XXX') return Number(amount).toLocaleString(undefined, { maximumFractionDigits: 2 })
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(amount)
  } catch {
    return `${Number(amount).toFixed(2)} ${currency}`
  }
}

export function moneyMap(m) {
  const e = Object.entries(m || {})
  if (!e.length) return '—'
  return e.map(([c, v]) => money(v, c)).join(' · ')
}

function toDate(s) {
  if (!s) return null
  const d = new Date(typeof s === 'string' ? s.replace(' ', 'T') : s)
  return isNaN(d) ? null : d
}

export function dateTime(s) {
  const d = toDate(s)
  return d ? d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '—'
}

export function ago(s) {
  const d = toDate(s)
  if (!d) return '—'
  const sec = Math.round((Date.now() - d) / 1000)
  if (sec < 60) return 'just now'
  if (sec < 3600) return `${Math.floor(sec / 60)} min ago`
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ago`
  if (sec < 86400 * 30) return `${Math.floor(sec / 86400)} d ago`
  return d.toLocaleDateString()
}

export const humanize = (s) => (s ? String(s).replace(/[_.]/g, ' ').replace(/^\w/, (c) => c.toUpperCase()) : '—')

export function num(n, digits = 0) {
  if (n == null || isNaN(n)) return '—'
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits })
}

// count is n with its noun: "1 event", "2,400 events".
export function count(n, one, many) {
  return `${num(n)} ${n === 1 ? one : many}`
}

export function debounce(fn, ms) {
  let t
  return (...a) => {
    clearTimeout(t)
    t = setTimeout(() => fn(...a), ms)
  }
}
