package webui

import (
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
)

// reserved are path prefixes owned by APIs, webhooks and PocketBase's own
// admin. An unknown path under them must get a JSON 404, never the SPA's
// index.html (a 200 there would hide typos in API clients and vendor
// webhook URLs).
var reserved = []string{"/api", "/v1", "/webhooks", "/_"}

// IsReserved reports whether p belongs to a server route rather than the
// single-page app.
func IsReserved(p string) bool {
	for _, r := range reserved {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// registerStatic serves the built app at / with a fallback to index.html
// for client-side routes. It is the least specific pattern, so every other
// route wins over it.
func (m *Module) registerStatic(se *core.ServeEvent) {
	se.Router.GET("/{path...}", m.serveStatic).Bind(apis.Gzip())
}

func (m *Module) serveStatic(e *core.RequestEvent) error {
	p := e.Request.URL.Path
	if IsReserved(p) {
		return e.NotFoundError("No route matches "+p+".", nil)
	}
	name := strings.TrimPrefix(path.Clean(p), "/")
	if name != "" && name != "index.html" {
		if fi, err := fs.Stat(m.dist, name); err == nil && !fi.IsDir() {
			if strings.HasPrefix(name, "assets/") {
				// Vite puts a content hash in every asset name.
				e.Response.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			}
			return e.FileFS(m.dist, name)
		}
		if path.Ext(name) != "" {
			// A missing file (e.g. an old asset), not a client route.
			return e.NotFoundError("File not found.", nil)
		}
	}
	// Client routes: always revalidate so a new build is picked up.
	e.Response.Header().Set("Cache-Control", "no-cache")
	e.Response.Header().Set("X-Content-Type-Options", "nosniff")
	return serveIndex(e, m.dist)
}

func serveIndex(e *core.RequestEvent, dist fs.FS) error {
	b, err := fs.ReadFile(dist, "index.html")
	if err != nil {
		return e.InternalServerError("web admin not built", err)
	}
	return e.Blob(http.StatusOK, "text/html; charset=utf-8", b)
}
