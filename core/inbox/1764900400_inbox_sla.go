package inbox

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// conversations.sla_breached_due is the due time whose breach was last
// counted, so the SLA check counts each due time once, across restarts.
func init() {
	m.Register(func(app core.App) error {
		c, err := app.FindCollectionByNameOrId(ConversationsCollection)
		if err != nil {
			return err
		}
		c.Fields.Add(&core.TextField{Name: "sla_breached_due", Max: 30})
		return app.Save(c)
	}, func(app core.App) error {
		c, err := app.FindCollectionByNameOrId(ConversationsCollection)
		if err != nil {
			return nil
		}
		c.Fields.RemoveByName("sla_breached_due")
		return app.Save(c)
	})
}
