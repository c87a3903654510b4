import { api, pb } from './api.js'

// The plugin host's HTTP API (core/connectors). normalize() accepts the
// field names used by the host so the page survives small shape changes.
export const connectorsAPI = {
  list: () => api('/api/v1/connectors').then((r) => (Array.isArray(r) ? r : r.items || r.connectors || []).map(normalize)),
  configure: (name, config) => api(`/api/v1/connectors/${encodeURIComponent(name)}`, { method: 'PATCH', body: { config } }),
  enable: (name) => api(`/api/v1/connectors/${encodeURIComponent(name)}/enable`, { method: 'POST' }),
  disable: (name) => api(`/api/v1/connectors/${encodeURIComponent(name)}/disable`, { method: 'POST' }),
  // Recent events the connector delivered, newest first (message.failed ones carry the error).
  deliveries: (name) =>
    pb.collection('events').getList(1, 10, { filter: pb.filter('source = {:s}', { s: name }), sort: '-occurred_at', fields: 'id,type,name,occurred_at,received_at,channel,properties', skipTotal: true }).then((r) => r.items),
  backfill: (name, since) => api(`/api/v1/connectors/${encodeURIComponent(name)}/backfill`, { method: 'POST', body: { since } }),
}

// Names as vendors spell them, for connectors that do not send a display name.
const KNOWN = { shopify: 'Shopify', square: 'Square', whatsapp: 'WhatsApp', klaviyo: 'Klaviyo' }

export function normalize(c) {
  const d = c.description && typeof c.description === 'object' ? c.description : {}
  const schema = c.config_schema || c.schema || d.config || (Array.isArray(c.config) ? c.config : null) || c.fields || []
  const config = c.config && !Array.isArray(c.config) ? c.config : c.settings || {}
  const state = (c.state || c.status || (c.enabled ? 'starting' : 'disabled') || '').toString()
  const bf = c.backfill || {}
  let progress = bf.progress ?? c.backfill_progress
  if (progress == null && bf.total) progress = (bf.done || 0) / bf.total
  return {
    name: c.name,
    title: c.display_name || d.display_name || c.title || KNOWN[c.name] || (c.name ? c.name[0].toUpperCase() + c.name.slice(1) : ''),
    description: typeof c.description === 'string' ? c.description : d.description || '',
    version: c.version || d.version || '',
    origin: c.kind || (c.builtin === true ? 'built-in' : c.builtin === false ? 'plugin' : c.origin || ''),
    capabilities: c.capabilities || d.capabilities || [],
    schema,
    config,
    secretsSet: new Set(c.secrets_set || Object.entries(config).filter(([, v]) => v === '********').map(([k]) => k)),
    enabled: c.enabled ?? !/disabled|stopped/.test(state),
    // The host reports failures as "failed: reason".
    state: state.split(':')[0],
    reason: c.last_error || c.reason || c.error || (state.includes(':') ? state.slice(state.indexOf(':') + 1).trim() : ''),
    restarts: c.restarts || 0,
    // Whether the vendor's API answers (the connector's health check);
    // separate from the state: a running connector can face a vendor outage.
    vendor: c.vendor || '',
    vendorError: c.vendor_error || '',
    webhookURL: c.webhook_url || c.webhookURL || '',
    // skipped: backfilled events that failed validation, parked as dead events.
    backfill: { state: bf.state || bf.status || c.backfill_state || '', progress, done: bf.done, total: bf.total, error: bf.error || '', skipped: bf.skipped || 0, lastSkipped: bf.last_skipped || '' },
    deliveries: c.deliveries || c.recent_deliveries || [],
    // Outbound messages held until the connector is enabled and running.
    held: c.held || 0,
  }
}

export function stateClass(s) {
  if (/running|ok|healthy/.test(s)) return 'ok'
  if (/restart|start|pending/.test(s)) return 'warn'
  if (/fail|error|crash/.test(s)) return 'bad'
  return ''
}

// vendorText is the vendor state line of a running connector's card, e.g.
// "Shopify unreachable: dial tcp …"; empty while reachable or unknown.
export function vendorText(c) {
  if (c.state !== 'running' || c.vendor !== 'unreachable') return ''
  return `${c.title} unreachable${c.vendorError ? ': ' + c.vendorError : ''}`
}

// erasureNote says what erasing a person does at one enabled connector's
// vendor, in the words the Erase dialog shows.
export function erasureNote(c) {
  if (c.capabilities.includes('erase')) {
    return `${c.title} is asked to delete them (by their email, phone and ${c.title} id); the request is retried until ${c.title} accepts it.`
  }
  if (c.name === 'shopify') {
    return 'Shopify is not told: Shopify gives apps no way to delete customer data. Delete or redact the customer in your Shopify admin if needed.'
  }
  return `${c.title} is not told and keeps its copy. Delete them there yourself if needed.`
}
