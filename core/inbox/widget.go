package inbox

import (
	"context"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/events"
)

// widgetRoutes: the chat widget's script and public routes, and the
// owners' widget settings.
func (m *Module) widgetRoutes(se *core.ServeEvent, g *router.RouterGroup[*core.RequestEvent]) {}

// widgetOnInbound: a chat visitor's message, after it is filed.
func (m *Module) widgetOnInbound(tx core.App, f *Filed, ev *events.Event) error { return nil }

func (m *Module) initWidget(s *app.Setup) error         { return nil }
func (m *Module) startWidget(ctx context.Context) error { return nil }
func (m *Module) stopWidget(ctx context.Context)        {}
