import PocketBase from 'pocketbase'

// One client for the whole app; the auth token lives in localStorage.
export const pb = new PocketBase(location.origin)
pb.autoCancellation(false)

// api calls one of Omni's own routes (/api/v1/...) with the staff token.
export function api(path, { method = 'GET', body, query } = {}) {
  return pb.send(path, { method, body, query })
}

// errorMessage turns a thrown error into a sentence for the user.
export function errorMessage(err) {
  if (!err) return ''
  if (err.isAbort) return ''
  const msg = err.response?.message || err.message || String(err)
  if (err.status === 0) return 'Cannot reach the server. Check your connection.'
  return msg
}

// fieldErrors maps an error answer to {field: message}. Omni's own routes
// answer in PocketBase's shape too: {status, message, data: {field: {code,
// message}}}, the field named as the request spelled it ("config.api_key").
export function fieldErrors(err) {
  const out = {}
  const data = err?.response?.data || {}
  for (const [k, v] of Object.entries(data)) {
    if (v && typeof v === 'object' && v.message) out[k] = v.message
  }
  return out
}

export const isNotFound = (err) => err?.status === 404
