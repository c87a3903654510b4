package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/eventstore"
)

// funnelPart keeps owner-defined funnels and cart abandonment.
type funnelPart struct{ m *Module }

func (f *funnelPart) process(tx core.App, batch []*eventstore.Stored) error { return nil }
func (f *funnelPart) recompute(tx core.App, profiles []string) error        { return nil }
func (f *funnelPart) reset(tx core.App) error                               { return nil }
func (f *funnelPart) routes(g *router.RouterGroup[*core.RequestEvent])      {}

func (m *Module) funnelReport(app core.App, q Query) (*Report, error) { return nil, errNotBuilt }
