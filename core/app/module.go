package app

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/eventstore"
)

// Module is a domain part of Omni (profiles, the connector host, the web
// admin, and the journeys, inbox and metrics to come). A module plugs in
// through this interface alone: nothing in core/app names a module.
//
// Lifecycle, for the modules passed to Use, in that order:
//
//  1. Init, on every module, after the database is migrated and the bus is
//     open and before anything runs: no plugin, relay, HTTP or consumer has
//     started, so nothing has been published yet. A module declares its
//     parts on the Setup: processors of the events transaction, durable
//     consumers (created here, so none misses an event published during
//     start-up), person-owned collections, health. No goroutines yet.
//  2. Start, on every module, when the server starts: routes on se.Router,
//     record hooks, background work, plugins. Then the events consumer and
//     the relay start (they are modules too, run after the domain ones).
//  3. Stop, in reverse order, after HTTP has stopped taking requests; then
//     the events consumer drains and commits what it was handed, and the
//     relay publishes what that last batch staged.
//
// Collections are the module's own migrations, registered from its package
// with file names "<unix time>_<module>_<what>.go", so that migrations
// written on parallel branches never collide and run in the order written.
type Module interface {
	Name() string
	Init(s *Setup) error
	Start(ctx context.Context, se *core.ServeEvent) error
	Stop(ctx context.Context)
}

// Setup is what a module declares in Init. It also gives the module the
// running Omni (config, log, database, bus, relay).
type Setup struct {
	*Omni
	// Ctx bounds start-up work (creating consumers).
	Ctx    context.Context
	module string
}

// Processor adds p to the transaction that stores each batch of events,
// after the processors of the modules before this one (profiles resolves
// before anything reads profiles).
func (s *Setup) Processor(p eventstore.Processor) { s.Events.Use(p) }

// OnCommit runs f after each stored batch commits (realtime pushes, caches).
func (s *Setup) OnCommit(f eventstore.AfterCommit) { s.Events.OnCommit(f) }

// Consumer creates (or updates) a durable JetStream consumer now, before
// anything publishes, and reports its backlog and progress in health. The
// module consumes from it in Start. Streams keep messages by interest, so a
// consumer created later would miss what was published before it existed.
func (s *Setup) Consumer(stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	if cfg.Durable == "" {
		return nil, fmt.Errorf("%s: a module's consumer must be durable (set Durable)", s.module)
	}
	c, err := s.Bus.JS.CreateOrUpdateConsumer(s.Ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: consumer %s: %w", s.module, cfg.Durable, err)
	}
	s.Health.Consumers[cfg.Durable] = jsConsumer{c}
	return c, nil
}

// ReportLag reports in health (bus.consumers.NAME) a backlog a module
// works through outside JetStream, such as a queue table; a c that is
// also an api.ProgressReporter is reported stalled when it stops moving.
func (s *Setup) ReportLag(name string, c api.ConsumerLag) {
	s.Health.Consumers[name] = c
}

// PersonOwned declares a collection whose rows belong to one person through
// its profile field (a profile id): a merge moves them to the surviving
// profile, an export includes them and an erasure deletes them, without the
// profiles module knowing the collection.
func (s *Setup) PersonOwned(collection, profileField string) {
	s.personOwned = append(s.personOwned, PersonOwned{Collection: collection, Field: profileField, Module: s.module})
}

// ReportHealth adds the module's section to /api/v1/health.
func (s *Setup) ReportHealth(c api.ComponentStatus) {
	s.Health.Components = append(s.Health.Components, c)
}

// PersonOwned is a collection of per-person rows owned by a module.
type PersonOwned struct {
	Collection string
	Field      string // holds the profile id
	Module     string
}

// PersonOwned lists the collections modules declared as per-person, in
// declaration order. Complete once every module's Init has run.
func (o *Omni) PersonOwned() []PersonOwned { return append([]PersonOwned(nil), o.personOwned...) }

// jsConsumer reports a JetStream consumer's backlog and when it last
// moved: the later of its last delivery and its last acknowledgement. A
// consumer that holds messages and has neither delivered nor acknowledged
// one for a while is stuck (health answers 503).
type jsConsumer struct{ c jetstream.Consumer }

func (j jsConsumer) Lag(ctx context.Context) (uint64, int, error) {
	info, err := j.c.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	return info.NumPending, info.NumAckPending, nil
}

func (j jsConsumer) LastProgress() time.Time {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := j.c.Info(ctx)
	if err != nil {
		return time.Time{}
	}
	last := info.Created
	for _, t := range []*time.Time{info.Delivered.Last, info.AckFloor.Last} {
		if t != nil && t.After(last) {
			last = *t
		}
	}
	return last
}
