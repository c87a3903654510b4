package metrics

import (
	"errors"
	"net/http"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
)

// reportFunc builds one report for a query.
type reportFunc func(app core.App, q Query) (*Report, error)

// routes: GET /api/v1/metrics/{report} for staff, and each part's own
// routes (settings, funnel definitions) under the same group.
func (m *Module) routes(se *core.ServeEvent) {
	g := se.Router.Group("/api/v1/metrics")
	g.Bind(api.RequireStaff())
	reports := map[string]reportFunc{
		"sales":       m.salesReport,       // sales.go
		"customers":   m.customersReport,   // customers.go
		"funnel":      m.funnelReport,      // funnels.go
		"journeys":    m.journeysReport,    // journeys.go
		"inbox":       m.inboxReport,       // inbox.go
		"attribution": m.attributionReport, // attribution.go
	}
	for name, f := range reports {
		g.GET("/"+name, m.serveReport(f))
	}
	m.settings.routes(g) // settings.go: GET /settings, PUT /settings/{key} (owners)
	m.funnels.routes(g)  // funnels.go: /funnels definitions
}

func (m *Module) serveReport(f reportFunc) func(e *core.RequestEvent) error {
	return func(e *core.RequestEvent) error {
		q, err := parseQuery(e.Request, m.loc, m.opts.Now())
		if err != nil {
			return err
		}
		r, err := f(e.App, q)
		if err != nil {
			var ae *router.ApiError
			if errors.As(err, &ae) {
				return ae
			}
			return api.Internal("Could not compute the report.", err)
		}
		return writeReport(e, r)
	}
}

// errNotBuilt answers a report that is not built yet.
var errNotBuilt = api.Error(http.StatusNotImplemented, "This report is not built yet.")
