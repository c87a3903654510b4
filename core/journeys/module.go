// Package journeys runs durable, cross-channel automations: a published
// journey (core/journeys/graph) enrols customers on its trigger, and the
// engine walks each customer's run through waits, branches and sends, with
// goals, A/B splits and holdouts, and a backtest on the shop's history.
//
// It meets the rest of Omni on the bus and the tables: triggers ride the
// events transaction (a Processor after profiles), sends go through the
// messaging gate over the MESSAGING stream (outbox.RequestSend), and the
// outcome of a send is read back from the send ledger. Timers are a due-time
// index on journey_runs in SQLite, written in the same transaction as the
// run's state, so a timer and its run never disagree and survive restarts.
package journeys

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/eventstore"
)

// Collections of the module.
const (
	Collection         = "journeys"
	VersionsCollection = "journey_versions"
	RunsCollection     = "journey_runs"
	StepsCollection    = "journey_steps"
)

// Journey statuses.
const (
	StatusDraft    = "draft"
	StatusLive     = "live"
	StatusPaused   = "paused"
	StatusArchived = "archived"
)

// Run statuses: active runs are due for their next step at due_at, waiting
// runs wait for a timer or an event; completed and exited runs are over.
const (
	RunActive    = "active"
	RunWaiting   = "waiting"
	RunCompleted = "completed"
	RunExited    = "exited"
)

// Options tune the module; zero values get the defaults.
type Options struct {
	// Now is the clock (tests move it); default time.Now.
	Now func() time.Time
	// Tick is the longest the engine sleeps between looks at the timer
	// index when nothing wakes it (default 250ms: timers fire at most
	// that late, plus the time to run the steps before them).
	Tick time.Duration
	// Batch is how many due runs the engine steps in one transaction
	// (default 500).
	Batch int
	// DateEvery is how often date triggers look for customers whose day
	// it is (default 1 minute).
	DateEvery time.Duration
}

// Module is the journeys module.
type Module struct {
	opts Options
	o    *app.Omni
	app  core.App
	bus  *bus.Bus
	log  *slog.Logger
	live *liveSet
	// wake nudges the engine: a run became due now (an enrolment, an
	// awaited event). Buffered, never blocks.
	wake chan struct{}

	engine    *engine
	scheduler *scheduler
	triggers  triggerState // triggers.go
	stats     *statsCache  // stats_cache.go
}

// New creates the module; list it in main.go after messaging.
func New(opts Options) *Module {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = 250 * time.Millisecond
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.DateEvery <= 0 {
		opts.DateEvery = time.Minute
	}
	m := &Module{opts: opts, live: newLiveSet(), wake: make(chan struct{}, 1), stats: newStatsCache(time.Now)}
	m.live.onLoad(m.indexTriggers)
	return m
}

func (m *Module) Name() string { return "journeys" }

func (m *Module) Init(s *app.Setup) error {
	m.o, m.app, m.bus, m.log = s.Omni, s.PB, s.Bus, s.Log.With("module", "journeys")
	// Journeys send through the gate, which applies messaging.quiet_hours
	// and messaging.frequency_cap to every marketing message: one set of
	// rules, whoever sends. The journeys.* keys are still accepted (older
	// omni.yaml files) but do nothing; say so rather than ignore them.
	if def := config.Default().Journeys; s.Config.Journeys != def {
		m.log.Warn("journeys.quiet_hours and journeys.frequency_cap have no effect: journeys send through the messaging gate, which applies messaging.quiet_hours and messaging.frequency_cap",
			"journeys.quiet_hours", s.Config.Journeys.QuietHours, "journeys.frequency_cap", s.Config.Journeys.FrequencyCap)
	}
	s.PersonOwned(RunsCollection, "profile")
	s.PersonOwned(StepsCollection, "profile")
	if err := m.live.load(m.app); err != nil {
		return fmt.Errorf("journeys: load live journeys: %w", err)
	}
	// Triggers, awaited events, goals and exit rules ride the events
	// transaction, after profiles has resolved each event's customer.
	s.Processor(triggerProcessor{m})
	s.OnCommit(func(_ []*eventstore.Stored) { m.kick(); m.kickRelayIfStaged() })
	return nil
}

func (m *Module) Start(ctx context.Context, se *core.ServeEvent) error {
	m.routes(se)
	m.engine = newEngine(m)
	if err := m.engine.start(); err != nil {
		return fmt.Errorf("journeys: engine: %w", err)
	}
	m.scheduler = newScheduler(m)
	m.scheduler.start()
	return nil
}

func (m *Module) Stop(ctx context.Context) {
	if m.scheduler != nil {
		m.scheduler.stop(ctx)
	}
	if m.engine != nil {
		m.engine.stop(ctx)
	}
}

// kick wakes the engine without waiting.
func (m *Module) kick() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}
