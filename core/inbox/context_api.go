package inbox

import (
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// contextRoutes: the customer beside the chat.
func (m *Module) contextRoutes(g *router.RouterGroup[*core.RequestEvent]) {}
