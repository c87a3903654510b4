// A small history-API router: the server falls back to index.html for any
// path that is not an API, webhook or PocketBase admin route.
export const route = $state({ path: location.pathname, query: new URLSearchParams(location.search) })

export function navigate(to, { replace = false } = {}) {
  if (to === location.pathname + location.search) return
  if (replace) history.replaceState({}, '', to)
  else history.pushState({}, '', to)
  sync()
  window.scrollTo(0, 0)
}

function sync() {
  route.path = location.pathname
  route.query = new URLSearchParams(location.search)
}

window.addEventListener('popstate', sync)

// Same-origin links navigate without a reload (modifier keys keep the
// browser's behaviour: new tab, download, ...).
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return
  const a = e.target.closest?.('a[href]')
  if (!a || a.target || a.hasAttribute('download') || a.origin !== location.origin) return
  const p = a.pathname
  if (p.startsWith('/api/') || p.startsWith('/_/') || p.startsWith('/v1/') || p.startsWith('/webhooks/')) return
  e.preventDefault()
  navigate(p + a.search)
})

// match returns the params of pattern ("/customers/:id") for path, or null.
export function match(pattern, path) {
  const a = pattern.split('/').filter(Boolean)
  const b = path.split('/').filter(Boolean)
  if (a.length !== b.length) return null
  const params = {}
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith(':')) params[a[i].slice(1)] = decodeURIComponent(b[i])
    else if (a[i] !== b[i]) return null
  }
  return params
}

export function setQuery(params) {
  const q = new URLSearchParams(location.search)
  for (const [k, v] of Object.entries(params)) {
    if (v === '' || v == null) q.delete(k)
    else q.set(k, v)
  }
  const s = q.toString()
  navigate(location.pathname + (s ? '?' + s : ''), { replace: true })
}
