package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/topology"
	"github.com/omni/omni/core/webhooks"
)

// A process's role (config.Role) decides what runs
// (docs/operations.md#topology):
//   - all: everything, as one binary (embedded or external bus);
//   - writer: everything, on an external bus, holding the writer lease;
//   - frontend: the tracking API, vendor webhooks (stored for the
//     writer's connectors, core/webhooks) and health, publishing to the
//     external bus; sources are mirrored from the writer; no module, no
//     connector, no events consumer, no relay, no admin.
//
// Any process that consumes a bus others can reach (an external one, or the
// embedded one with bus.listen) holds the writer lease, so two of them can
// never consume the same streams.

// frontend reports whether this process is a stateless front end.
func (o *Omni) frontend() bool { return o.Config.Role == config.RoleFrontend }

// takeWriterLease claims the one writer lease on a shared bus and
// stops this process (SIGTERM, the normal shutdown) if another writer
// ever takes it over.
func (o *Omni) takeWriterLease(ctx context.Context, httpAddr string) error {
	if !o.Config.SharedBus() {
		return nil // the embedded bus is private to this process (and the data dir lock)
	}
	lease, err := topology.AcquireWriter(ctx, o.Bus, o.Config.DataDir, httpAddr, o.Log)
	if err != nil {
		if errors.Is(err, topology.ErrAnotherWriter) {
			return &config.Error{Key: "role", Problem: err.Error()}
		}
		return err
	}
	o.lease = lease
	lease.Keep(func(err error) {
		o.Log.Error("writer lease lost: stopping so that one writer consumes the streams", "err", err)
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	})
	if err := topology.PublishSources(ctx, o.PB, o.Bus, o.Log); err != nil {
		return err
	}
	return nil
}

// prepareFrontend waits until a writer has created the events consumer
// (the streams keep messages by interest: without it, an acknowledged
// event would be kept by nobody) and mirrors the sources.
func (o *Omni) prepareFrontend(ctx context.Context) error {
	for {
		_, err := o.Bus.JS.Consumer(ctx, bus.StreamEvents, eventstore.ConsumerName)
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) || ctx.Err() != nil {
			return &config.Error{Key: "role", Problem: fmt.Sprintf("frontend: no writer has ever started on bus %s (its events consumer is missing: %v); start the writer first, or an acknowledged event would be kept by no consumer", o.Config.Bus.URL, err)}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	stop, err := topology.MirrorSources(ctx, o.PB, o.Bus, o.Log)
	if err != nil {
		return err
	}
	relay, err := webhooks.NewRelay(ctx, o.Bus, o.Config.Ingest.MaxWebhookKB, o.Log)
	if err != nil {
		stop()
		return err
	}
	o.webhookRelay = relay
	o.stopMirror = func() {
		stop()
		relay.Stop()
	}
	return nil
}

// frontendRoutes are what a front end serves: the tracking API and health
// (and /webhooks/, relayed to the writer's connectors: core/webhooks).
var frontendRoutes = map[string]bool{
	"track": true, "t": true, "identify": true, "i": true, "page": true, "p": true, "screen": true, "s": true,
	"group": true, "g": true, "alias": true, "a": true, "batch": true, "import": true, "b": true, "health": true,
}

// frontendOnly answers 404 for everything but the tracking API and health:
// a front end's local database holds only a copy of the sources, so the
// admin, the REST API and staff logins live on the writer.
func frontendOnly(e *core.RequestEvent) error {
	p := e.Request.URL.Path
	for _, prefix := range []string{"/api/v1/", "/v1/"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok && frontendRoutes[rest] {
			return e.Next()
		}
	}
	if strings.HasPrefix(p, "/webhooks/") {
		return e.Next()
	}
	return api.Error(http.StatusNotFound, "This Omni is a front end (role: frontend): it serves only the tracking API and webhooks; the admin and the API are on the writer.")
}
