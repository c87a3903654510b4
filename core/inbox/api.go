package inbox

import (
	"context"
	"time"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// conversationRoutes: GET /api/v1/conversations, GET/PATCH
// /api/v1/conversations/{id}, POST /api/v1/conversations/{id}/messages, …
func (m *Module) conversationRoutes(g *router.RouterGroup[*core.RequestEvent]) {}

// wakeSnoozed reopens conversations whose snooze is over.
func (m *Module) wakeSnoozed(ctx context.Context, now time.Time) {}
