package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// settingsPart holds the owner's report settings (metrics_settings).
type settingsPart struct{ m *Module }

func (s *settingsPart) load(app core.App) error                          { return nil }
func (s *settingsPart) routes(g *router.RouterGroup[*core.RequestEvent]) {}
