package metrics

import (
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/eventstore"
)

// rollups keeps metrics_orders, metrics_customers and metrics_daily.
type rollups struct{ m *Module }

func (r *rollups) process(tx core.App, batch []*eventstore.Stored) error { return nil }
func (r *rollups) recompute(tx core.App, profiles []string) error        { return nil }
func (r *rollups) reset(tx core.App) error                               { return nil }
