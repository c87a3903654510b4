package inbox

import (
	"context"
	"time"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// agentRoutes: presence, capacity and the assignment setting.
func (m *Module) agentRoutes(g *router.RouterGroup[*core.RequestEvent]) {}

// assignWaiting assigns conversations that waited for a free agent.
func (m *Module) assignWaiting(ctx context.Context, now time.Time) {}
