package journeys

import (
	"context"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/eventstore"
)

// triggerProcessor enrols customers on event and segment triggers, resumes
// runs waiting for an event, records goals and applies exit rules, in the
// transaction that stores each batch of events.
type triggerProcessor struct{ m *Module }

func (p triggerProcessor) ProcessBatch(tx core.App, batch []*eventstore.Stored) error { return nil }

// scheduler enrols customers on date triggers (birthdays, N days after the
// last order) once a day per customer's time zone.
type scheduler struct{ m *Module }

func newScheduler(m *Module) *scheduler { return &scheduler{m: m} }

func (s *scheduler) start() {}

func (s *scheduler) stop(ctx context.Context) {}
