package msgtest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
)

// Env is a running Omni with profiles and Module, and two staff tokens.
type Env struct {
	*omnitest.Server
	Mod   *Module
	Owner string
	Agent string
}

// Start runs Omni with Module after the given modules: the tests pass the
// profiles module, which resolves customers and applies consent (this
// package may not import it: modules meet on the bus).
func Start(t *testing.T, before ...app.Module) *Env {
	t.Helper()
	mod := &Module{}
	s := omnitest.Start(t, omnitest.Options{Modules: func(o *app.Omni) []app.Module {
		return append(before, mod)
	}})
	return &Env{Server: s, Mod: mod,
		Owner: s.Staff(t, "owner@omni-shop.dev", "owner"), Agent: s.Staff(t, "agent@omni-shop.dev", "agent")}
}

var seq atomic.Int64

// Event publishes one event for the identities and waits until it is
// stored (an order, say, so computed traits move).
func (e *Env) Event(t *testing.T, typ string, ids events.Identities, props map[string]any) {
	t.Helper()
	e.publish(t, typ, ids, props)
}

// Customer makes a customer the way a connector would (an identify event
// with traits, from a server source) and returns the profile id.
func (e *Env) Customer(t *testing.T, ids events.Identities, traits map[string]any) string {
	t.Helper()
	return e.publish(t, events.CustomerUpdated, ids, map[string]any{"traits": traits})
}

// publish sends one event from a server source and returns the profile it
// was stored against.
func (e *Env) publish(t *testing.T, typ string, ids events.Identities, props map[string]any) string {
	t.Helper()
	now := time.Now().UTC()
	ev := &events.Event{ID: fmt.Sprintf("msgtest-%d-%d", now.UnixNano(), seq.Add(1)), Type: typ,
		Source: "shopify", OccurredAt: now, ReceivedAt: now, Identities: ids, Properties: props}
	norm := events.Normalizer{DefaultRegion: "US"}
	norm.Normalize(ev)
	if err := ev.Validate(now); err != nil {
		t.Fatal(err)
	}
	for _, err := range ingest.Publish(context.Background(), e.Bus, []*events.Event{ev}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	var pid string
	omnitest.Eventually(t, 30*time.Second, func() bool {
		_ = e.PB.DB().NewQuery("SELECT profile FROM events WHERE event_id={:id}").Bind(map[string]any{"id": ev.ID}).Row(&pid)
		return pid != ""
	}, "event %s stored with its profile", ev.ID)
	return pid
}
