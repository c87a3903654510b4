package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/deadletter"
)

// Version is the build version reported by the health endpoint; set at
// link time with -ldflags "-X github.com/omni/omni/core/api.Version=…".
var Version = "dev"

// ConsumerLag reports a durable consumer's backlog.
type ConsumerLag interface {
	Lag(ctx context.Context) (pending uint64, ackPending int, err error)
}

// ProgressReporter is a consumer that can tell when it last moved; health
// reports it as stalled when it has messages waiting and has not moved for
// StallAfter.
type ProgressReporter interface {
	LastProgress() time.Time
}

// DefaultStallAfter is how long a consumer with waiting messages may go
// without progress before health answers 503.
const DefaultStallAfter = 30 * time.Second

// Level is how a component affects the node's health.
type Level int

const (
	// OK: nothing to report.
	OK Level = iota
	// Degraded: works, but an owner should look (status "degraded", 200).
	Degraded
	// Unavailable: the node cannot do its job (status "unavailable", 503).
	Unavailable
)

// Component is one extra section of the health report (a module's).
type Component struct {
	Name   string
	Status any
	Level  Level
	Reason string // why Level is not OK, for the report's reasons
}

// ComponentStatus reports one component.
type ComponentStatus func(ctx context.Context) Component

// Health serves GET /api/v1/health.
type Health struct {
	App        core.App
	Bus        *bus.Bus
	Consumers  map[string]ConsumerLag
	Components []ComponentStatus
	Started    time.Time
	// StallAfter overrides DefaultStallAfter (tests).
	StallAfter time.Duration
}

// Register adds the route.
func (h *Health) Register(r *router.Router[*core.RequestEvent]) {
	r.GET("/api/v1/health", h.serve).Bind(apis.SkipSuccessActivityLog()) // polled by container health checks
}

func (h *Health) serve(e *core.RequestEvent) error {
	ctx, cancel := context.WithTimeout(e.Request.Context(), 3*time.Second)
	defer cancel()
	healthy := true
	var reasons []string // why the status is not "ok"
	stallAfter := h.StallAfter
	if stallAfter <= 0 {
		stallAfter = DefaultStallAfter
	}

	db := map[string]any{"ok": true}
	var one int
	if err := h.App.DB().NewQuery("SELECT 1").WithContext(ctx).Row(&one); err != nil {
		db = map[string]any{"ok": false, "error": err.Error()}
		healthy = false
	}

	busInfo := map[string]any{"ok": true, "embedded": h.Bus.Embedded()}
	if err := h.Bus.Ping(ctx); err != nil {
		busInfo["ok"] = false
		busInfo["error"] = err.Error()
		healthy = false
	} else {
		streams := map[string]any{}
		for _, name := range []string{bus.StreamEvents, bus.StreamOutbox} {
			s, err := h.Bus.JS.Stream(ctx, name)
			if err != nil {
				streams[name] = map[string]any{"ok": false, "error": err.Error()}
				healthy = false
				continue
			}
			info, err := s.Info(ctx)
			if err != nil {
				streams[name] = map[string]any{"ok": false, "error": err.Error()}
				healthy = false
				continue
			}
			streams[name] = map[string]any{"messages": info.State.Msgs, "bytes": info.State.Bytes, "consumers": info.State.Consumers}
		}
		busInfo["streams"] = streams
		consumers := map[string]any{}
		for name, consumer := range h.Consumers {
			pending, ackPending, err := consumer.Lag(ctx)
			if err != nil {
				consumers[name] = map[string]any{"ok": false, "error": err.Error()}
				healthy = false
				continue
			}
			c := map[string]any{"pending": pending, "ack_pending": ackPending}
			if pr, ok := consumer.(ProgressReporter); ok {
				last := pr.LastProgress() // may ask the bus: once
				idle := time.Since(last)
				c["last_progress"] = last.UTC().Format(time.RFC3339)
				if waiting := pending + uint64(ackPending); waiting > 0 && idle > stallAfter {
					c["stalled"] = true
					healthy = false
					reasons = append(reasons, fmt.Sprintf("consumer %s has made no progress for %s with %d messages waiting",
						name, idle.Round(time.Second), waiting))
				}
			}
			consumers[name] = c
		}
		busInfo["consumers"] = consumers
	}

	out := map[string]any{
		"version":        Version,
		"db":             db,
		"bus":            busInfo,
		"uptime_seconds": int(time.Since(h.Started).Seconds()),
	}
	degraded := false
	for _, report := range h.Components {
		c := report(ctx)
		out[c.Name] = c.Status
		switch c.Level {
		case Unavailable:
			healthy = false
		case Degraded:
			degraded = true
		}
		if c.Level != OK && c.Reason != "" {
			reasons = append(reasons, c.Name+": "+c.Reason)
		}
	}
	// Dead events do not stop anything else: degraded, still 200, so
	// container health checks do not restart a server that works.
	dead, err := deadletter.Count(h.App)
	if err != nil {
		reasons = append(reasons, "dead events: "+err.Error())
	}
	out["dead_events"] = dead
	status := http.StatusOK
	out["status"] = "ok"
	switch {
	case !healthy:
		status = http.StatusServiceUnavailable
		out["status"] = "unavailable"
	case degraded || dead > 0 || err != nil:
		out["status"] = "degraded"
	}
	if dead > 0 {
		reasons = append(reasons, fmt.Sprintf("%d events could not be stored and are parked: see `omni events dead`", dead))
	}
	if len(reasons) > 0 {
		out["reasons"] = reasons
	}
	return e.JSON(status, out)
}
