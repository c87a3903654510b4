// Display helpers shared by the pages.

export const CHANNELS = {
  web: { label: 'Web', short: 'WEB', color: '#2563eb' },
  app: { label: 'App', short: 'APP', color: '#7c3aed' },
  server: { label: 'Server', short: 'SRV', color: '#64748b' },
  email: { label: 'Email', short: '@', color: '#d97706' },
  sms: { label: 'SMS', short: 'SMS', color: '#0891b2' },
  whatsapp: { label: 'WhatsApp', short: 'WA', color: '#16a34a' },
  pos: { label: 'In store (POS)', short: 'POS', color: '#db2777' },
  chat: { label: 'Chat', short: 'CHAT', color: '#0d9488' },
  other: { label: 'Other', short: '·', color: '#6b7280' },
}

export const channelInfo = (c) => CHANNELS[c] || { label: c || 'Other', short: (c || '?').slice(0, 3).toUpperCase(), color: '#6b7280' }

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

export function debounce(fn, ms) {
  let t
  return (...a) => {
    clearTimeout(t)
    t = setTimeout(() => fn(...a), ms)
  }
}
