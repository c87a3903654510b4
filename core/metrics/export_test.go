package metrics

import "github.com/pocketbase/pocketbase/core"

// RecomputeCustomers re-derives the given customers' rollups from their
// order facts, as a new order would (tests seed facts directly).
func RecomputeCustomers(app core.App, profiles ...string) error {
	return app.RunInTransaction(func(tx core.App) error { return (&rollups{}).recomputeProfiles(tx, profiles, false) })
}

// CountStages counts the profiles by stage now, as the background count
// does (tests write profiles directly, behind the profiles module).
func (m *Module) CountStages(app core.App) error { return m.recountStages(app) }

// The upgrade migration 1765001000 and its way back.
var (
	AddBuyerRows    = addBuyerRows
	RemoveBuyerRows = removeBuyerRows
)
