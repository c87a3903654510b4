package metrics

import (
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/eventstore"
)

// attribution keeps every customer's touches and each order's credit
// under the five models.
type attribution struct{ m *Module }

func (a *attribution) process(tx core.App, batch []*eventstore.Stored) error { return nil }
func (a *attribution) recompute(tx core.App, profiles []string) error        { return nil }
func (a *attribution) reset(tx core.App) error                               { return nil }

func (m *Module) attributionReport(app core.App, q Query) (*Report, error) { return nil, errNotBuilt }
