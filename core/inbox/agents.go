package inbox

import (
	"encoding/json"

	"context"
	"time"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// agentRoutes: presence, capacity and the assignment setting.
func (m *Module) agentRoutes(g *router.RouterGroup[*core.RequestEvent]) {}

// assignWaiting assigns conversations that waited for a free agent.
func (m *Module) assignWaiting(ctx context.Context, now time.Time) {}

func defaultAssignment() any { return map[string]any{"mode": "manual"} }

func checkAssignment(raw json.RawMessage) (any, error) {
	return nil, fieldErr("assignment", "not built yet")
}
