// Package webui serves the web admin (the embedded single-page app in ui/)
// and the few server routes only it needs: first-run owner creation and the
// dashboard figures, pushed live through PocketBase realtime.
package webui

import (
	"context"
	"io/fs"
	"log/slog"
	"sync"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/ui"
)

// Extension wires the web admin into the CLI's `serve`.
func Extension() app.Extension {
	return app.Extension{Modules: func(o *app.Omni) []app.Module { return []app.Module{New(nil)} }}
}

// Module is the web admin module.
type Module struct {
	omni  *app.Omni
	dist  fs.FS
	setup sync.Mutex // serialises first-owner creation; guards setupToken
	live  *notifier

	// First-run setup token (see registerSetup).
	tokenRequired bool
	setupToken    string // "" once used
	setupAddr     string
	setupLog      *slog.Logger
}

// New returns the module serving dist (nil: the embedded build).
func New(dist fs.FS) *Module {
	if dist == nil {
		dist = ui.Dist()
	}
	return &Module{dist: dist}
}

// Name implements app.Module.
func (m *Module) Name() string { return "webui" }

// Init asks to hear about each stored batch (the live dashboard).
func (m *Module) Init(s *app.Setup) error {
	m.omni = s.Omni
	s.OnCommit(func(batch []*eventstore.Stored) {
		if m.live != nil {
			m.live.onCommit(batch)
		}
	})
	return nil
}

// Start registers the routes and the live dashboard notifier.
func (m *Module) Start(ctx context.Context, se *core.ServeEvent) error {
	o := m.omni
	m.registerSetup(o.PB, se, o.Log)
	m.registerDashboard(o.PB, se)
	m.live = startNotifier(o.PB, o.Log)
	m.registerStatic(se)
	return nil
}

// Stop implements app.Module.
func (m *Module) Stop(ctx context.Context) {
	if m.live != nil {
		m.live.stop()
	}
}
