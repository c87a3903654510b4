import { api } from './api.js'

// The plugin host's HTTP API (core/connectors). normalize() accepts the
// field names used by the host so the page survives small shape changes.
export const connectorsAPI = {
  list: () => api('/api/v1/connectors').then((r) => (Array.isArray(r) ? r : r.items || r.connectors || []).map(normalize)),
  configure: (name, config) => api(`/api/v1/connectors/${encodeURIComponent(name)}/configure`, { method: 'POST', body: { config } }),
  enable: (name) => api(`/api/v1/connectors/${encodeURIComponent(name)}/enable`, { method: 'POST' }),
  disable: (name) => api(`/api/v1/connectors/${encodeURIComponent(name)}/disable`, { method: 'POST' }),
  backfill: (name, since) => api(`/api/v1/connectors/${encodeURIComponent(name)}/backfill`, { method: 'POST', body: { since } }),
}

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
    title: c.display_name || d.display_name || c.title || c.name,
    description: typeof c.description === 'string' ? c.description : d.description || '',
    version: c.version || d.version || '',
    origin: c.builtin === true ? 'built-in' : c.builtin === false ? 'plugin' : c.origin || c.kind || '',
    capabilities: c.capabilities || d.capabilities || [],
    schema,
    config,
    secretsSet: new Set(c.secrets_set || c.configured_secrets || Object.entries(config).filter(([, v]) => v === '********' || v === '•••').map(([k]) => k)),
    enabled: c.enabled ?? !/disabled|stopped/.test(state),
    state,
    reason: c.reason || c.error || c.state_reason || '',
    webhookURL: c.webhook_url || c.webhookURL || '',
    backfill: { state: bf.state || bf.status || c.backfill_state || '', progress, done: bf.done, total: bf.total, error: bf.error || '' },
    deliveries: c.deliveries || c.recent_deliveries || [],
  }
}

export function stateClass(s) {
  if (/running|ok|healthy/.test(s)) return 'ok'
  if (/restart|start|pending/.test(s)) return 'warn'
  if (/fail|error|crash/.test(s)) return 'bad'
  return ''
}
