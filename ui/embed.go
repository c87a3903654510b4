// Package ui holds the web admin's built files (ui/dist), embedded so that
// `go build` alone yields the full product. Sources are in ui/src; rebuild
// with `npm ci && npm run build` in this directory.
package ui

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Dist returns the built single-page app, rooted at its index.html.
func Dist() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}
