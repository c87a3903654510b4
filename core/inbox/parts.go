package inbox

import (
	"context"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
)

// The module's parts each keep their hooks in their own file; this is the
// one place that lists them.

// initParts runs each part's Init work (consumers must exist before
// anything publishes).
func (m *Module) initParts(s *app.Setup) error {
	return m.initWidget(s) // widget.go: delivers chat replies the gate queued
}

// startParts starts each part's background work.
func (m *Module) startParts(ctx context.Context, se *core.ServeEvent) error {
	return m.startWidget(ctx) // widget.go
}

// stopParts stops it, in reverse.
func (m *Module) stopParts(ctx context.Context) {
	m.stopWidget(ctx) // widget.go
}

// tick is the periodic work, every Options.Tick.
func (m *Module) tick(ctx context.Context, now time.Time) {
	m.wakeSnoozed(ctx, now)   // api.go: snoozes that are over
	m.checkSLA(ctx, now)      // sla.go: breaches
	m.assignWaiting(ctx, now) // agents.go: conversations no agent could take yet
	m.noticeDecided()         // send.go: replies the gate has decided
}
