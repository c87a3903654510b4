// Package metrics turns the events Omni stores into the figures a shop
// owner reads: sales net of refunds, customers (LTV, retention cohorts),
// funnels and cart abandonment, journeys and messages, the inbox (response
// times, FCR, CSAT, NPS, SLA) and multi-touch attribution that credits
// agents' replies.
//
// Sales and customers are rolled up as events are stored (a Processor in
// the events transaction, after profiles has resolved each event), per
// customer, so a merge, an un-merge or an erasure recomputes only the
// customers it touched; `omni metrics rebuild` recomputes everything from
// the events table. Funnels and attribution keep their own per-customer
// state the same way. Journeys and inbox figures are read from those
// modules' tables at query time (their rows are few). Every report is
// GET /api/v1/metrics/{name} and has the same shape (Report).
//
// The module imports no other module: it reads the event model, the
// events table and, read-only, the tables the other modules document.
package metrics

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/eventstore"
)

// Collections of the module (the parts' own tables are named in their files).
const (
	DailyCollection     = "metrics_daily"
	OrdersCollection    = "metrics_orders"
	CustomersCollection = "metrics_customers"
	SettingsCollection  = "metrics_settings"
)

// Options tune the module; zero values get the defaults.
type Options struct {
	// Now is the clock (tests move it); default time.Now.
	Now func() time.Time
	// Quiet is how long ingest must pause before the rollups catch up
	// with the stored events (default 250ms; tests use less).
	Quiet time.Duration
}

// Module is the metrics module.
type Module struct {
	opts Options
	o    *app.Omni
	app  core.App
	log  *slog.Logger
	loc  *time.Location // the shop's zone (messaging.timezone)
	// enabled is metrics.enabled: off, stored batches are not rolled up.
	enabled bool

	// The parts that keep state as events are stored, in the order they
	// process a batch. Each is in its own file.
	rollups  *rollups      // rollups.go: metrics_orders, metrics_customers, metrics_daily
	funnels  *funnelPart   // funnels.go: owner-defined funnels and cart abandonment
	attrib   *attribution  // attribution.go: touches and order credits
	inbox    *inboxPart    // inbox_rows.go: marks inbox report rows to work out again
	settings *settingsPart // settings.go: metrics_settings

	fills fills // fill.go: the journeys and inbox rollups filled in the background

	// follow takes the stored batches into the parts, outside the events
	// transaction (follow.go).
	follow *follower
	// horizon is the rowid the follower's running transaction reads up
	// to (follow.go), 0 when none runs.
	horizon atomic.Int64
}

// part is state a part keeps from the events stream.
type part interface {
	// process takes a stored batch (inside its transaction).
	process(tx core.App, batch []*eventstore.Stored) error
	// recompute rebuilds what the given customers contribute after a
	// merge, an un-merge or an erasure moved or removed their events.
	// A profile id may no longer exist (merged away, erased).
	recompute(tx core.App, profiles []string) error
	// reset empties the part's state before a rebuild.
	reset(tx core.App) error
}

// New creates the module; list it in main.go after inbox.
func New(opts Options) *Module {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Quiet <= 0 {
		opts.Quiet = defaultQuiet
	}
	m := &Module{opts: opts, loc: time.UTC}
	m.rollups = &rollups{m: m}
	m.funnels = &funnelPart{m: m}
	m.attrib = &attribution{m: m}
	m.inbox = &inboxPart{m: m}
	m.settings = &settingsPart{m: m}
	return m
}

func (m *Module) Name() string { return "metrics" }

// parts lists the stateful parts in processing order.
func (m *Module) parts() []part {
	return []part{m.rollups, m.funnels, m.attrib, m.inbox, messagesPart{}}
}

func (m *Module) Init(s *app.Setup) error {
	m.o, m.app, m.log = s.Omni, s.PB, s.Log.With("module", "metrics")
	m.enabled = s.Config.Metrics.Enabled
	if loc, err := time.LoadLocation(s.Config.Messaging.Timezone); err == nil {
		m.loc = loc
	}
	// Order facts belong to a person: an erasure deletes them with the
	// person's events (the rollups then take out what they added).
	s.PersonOwned(OrdersCollection, "profile")
	// Touches too (credits are not: they carry no person's data beyond the
	// id, and the recompute after an erasure takes them out of the sums).
	s.PersonOwned(TouchesCollection, "profile")
	// So are a customer's funnel entries and checkouts.
	s.PersonOwned(FunnelEntriesCollection, "profile")
	s.PersonOwned(CheckoutsCollection, "profile")
	// And the inbox report's rows of the person's conversations.
	s.PersonOwned(InboxConversationsCollection, "profile")
	m.follow = newFollower(m, m.opts.Quiet, s.Config.Metrics.MaxDelay)
	if events := s.Events; events != nil {
		m.follow.backlog = func(ctx context.Context) bool {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			pending, ackPending, err := events.Lag(ctx)
			return err == nil && (pending > 0 || ackPending > 0)
		}
	}
	s.Processor(processor{m})
	s.ReportLag(followConsumer, m.follow)
	return nil
}

func (m *Module) Start(ctx context.Context, se *core.ServeEvent) error {
	if err := m.settings.load(m.app); err != nil {
		return err
	}
	if m.enabled {
		// Funnels created or edited and not yet derived from past events.
		if err := m.funnels.start(m.app); err != nil {
			return err
		}
	}
	// The customers report shows the profiles' stage counts without
	// counting while it waits (customers.go): the first count starts now.
	m.countStagesInBackground(m.app)
	go m.startFills()
	m.follow.start()
	m.routes(se)
	return nil
}

// Stop cancels a running rebuild, re-rating or re-credit and the funnels'
// backfills, and waits for them to end (a job's transaction rolls back; a
// funnel left backfilling resumes at the next start).
func (m *Module) Stop(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		m.funnels.stop()
		close(done)
	}()
	m.rollups.jobs.stop(ctx)
	m.follow.stop(ctx)
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// processor queues each stored batch for the follower, in the events
// transaction (the rollups themselves run in the follower's, follow.go),
// or, with metrics.max_delay 0, rolls it up there and then.
type processor struct{ m *Module }

func (p processor) ProcessBatch(tx core.App, batch []*eventstore.Stored) error {
	if !p.m.enabled {
		return nil
	}
	if p.m.follow.maxDelay == 0 {
		// Kept current with every batch, in its transaction.
		return p.m.processBatch(tx, batch)
	}
	return p.m.follow.enqueue(tx, batch)
}

// processBatch rolls stored events up into every part, then recomputes
// the customers a merge, an un-merge or an erasure among them touched.
func (m *Module) processBatch(tx core.App, batch []*eventstore.Stored) error {
	if err := m.processEvents(tx, batch); err != nil {
		return err
	}
	return m.recomputeMoved(tx, movedProfiles(batch))
}

// processEvents rolls stored events up into every part.
func (m *Module) processEvents(tx core.App, batch []*eventstore.Stored) error {
	for _, pt := range m.parts() {
		if err := pt.process(tx, batch); err != nil {
			return err
		}
	}
	return nil
}

// recomputeMoved re-derives what the customers contribute after a merge,
// an un-merge or an erasure moved or removed their events.
func (m *Module) recomputeMoved(tx core.App, profiles []string) error {
	if len(profiles) == 0 {
		return nil
	}
	for _, pt := range m.parts() {
		if err := pt.recompute(tx, profiles); err != nil {
			return err
		}
	}
	return nil
}

// movedProfiles lists the customers whose events a merge, an un-merge or
// an erasure in this batch's system events moved or removed.
func movedProfiles(batch []*eventstore.Stored) []string {
	var out []string
	seen := map[string]bool{}
	add := func(v any) {
		if s, ok := v.(string); ok && s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range batch {
		ev := s.Event
		switch ev.Type {
		case "profile.merged":
			add(ev.Properties["profile_id"])
			add(ev.Properties["merged_profile_id"])
		case "profile.unmerged":
			add(ev.Properties["profile_id"])
			add(ev.Properties["unmerged_profile_id"])
		case "profile.erased":
			if ev.Source == "omni" { // Omni's own report of an erasure it did
				add(ev.Properties["profile_id"])
			}
		}
	}
	return out
}
