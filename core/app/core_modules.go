package app

import (
	"context"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/relay"
)

// The events consumer and the relay are modules too, run after the domain
// modules and in this order both at start and at stop: they start once
// every processor and callback is declared and every domain module runs;
// at stop, after the domain modules, the events consumer drains and commits
// what it was handed, then the relay publishes what that last batch staged.

// relayModule publishes events staged in transactions (core/relay).
type relayModule struct{ r *relay.Relay }

func (relayModule) Name() string { return "relay" }

// Init makes the relay a processor of the events transaction, which
// deletes the rows it published (see relay.Relay.ProcessBatch).
func (m relayModule) Init(s *Setup) error {
	s.Processor(m.r)
	s.OnCommit(m.r.Committed)
	return nil
}

func (m relayModule) Start(context.Context, *core.ServeEvent) error { m.r.Start(); return nil }
func (m relayModule) Stop(ctx context.Context)                      { m.r.Stop(ctx) }

// eventsModule is the consumer that stores every event (core/eventstore).
type eventsModule struct{ s *eventstore.Store }

func (eventsModule) Name() string { return "eventstore" }

// Init creates the durable consumer: the EVENTS stream keeps messages by
// interest, so it must exist before anything publishes.
func (m eventsModule) Init(s *Setup) error {
	if err := m.s.Create(s.Ctx); err != nil {
		return err
	}
	s.Health.Consumers[eventstore.ConsumerName] = m.s
	return nil
}

func (m eventsModule) Start(ctx context.Context, _ *core.ServeEvent) error { return m.s.Start(ctx) }
func (m eventsModule) Stop(ctx context.Context)                            { m.s.Stop(ctx) }
