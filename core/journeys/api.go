package journeys

import "github.com/pocketbase/pocketbase/core"

// routes registers /api/v1/journeys (owners edit, staff read).
func (m *Module) routes(se *core.ServeEvent) {}
