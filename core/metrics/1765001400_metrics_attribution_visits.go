package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// Web visits are no longer stored as touches: crediting an order reads
// the customer's page views with a UTM campaign from the events table
// (attrTx.touchesOf), so the stored ones would count twice. Down restores
// nothing: `omni metrics rebuild` on the older version derives them again.
func init() {
	m.Register(func(app core.App) error {
		_, err := app.DB().NewQuery("DELETE FROM " + TouchesCollection + " WHERE kind = 'visit'").Execute()
		return err
	}, nil)
}
