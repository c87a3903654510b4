package journeys

import (
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// routes registers /api/v1/journeys (owners edit, staff read). Each part
// registers its own routes from its own file.
func (m *Module) routes(se *core.ServeEvent) {
	g := se.Router.Group("/api/v1/journeys")
	m.journeyRoutes(g)  // journeys_api.go: CRUD, publish/pause/archive, versions, recipes
	m.runRoutes(g)      // runs_api.go: runs, ending a run by hand
	m.enrolRoutes(g)    // enrol.go: manual and segment enrolment
	m.statsRoutes(g)    // stats.go: results per journey, node and arm
	m.backtestRoutes(g) // backtest_api.go: the dry run on history
}

type routeGroup = *router.RouterGroup[*core.RequestEvent]
