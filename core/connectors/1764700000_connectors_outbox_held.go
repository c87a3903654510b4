package connectors

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/store/migrations"
)

// outbox_held keeps the outbound messages of a connector that is disabled
// or not running (core/connectors/held.go): acknowledged on the bus so
// they hold no slot of the shared outbox consumer, and put back on the
// stream when the connector runs again. Owners may read them (customer
// message content); only the host writes.
func init() {
	m.Register(func(app core.App) error {
		c := core.NewBaseCollection(HeldCollection)
		c.Fields.Add(
			&core.TextField{Name: "connector", Required: true, Max: 100},
			&core.TextField{Name: "message_id", Required: true, Max: 600},
			&core.TextField{Name: "data", Max: 1 << 24},
			&core.DateField{Name: "queued_at"},
			&core.NumberField{Name: "holds", OnlyInt: true},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		c.AddIndex("idx_outbox_held_message", true, "connector, message_id", "")
		c.AddIndex("idx_outbox_held_queued", false, "connector, queued_at", "")
		c.ListRule = types.Pointer(migrations.RuleOwner)
		c.ViewRule = types.Pointer(migrations.RuleOwner)
		return app.Save(c)
	}, func(app core.App) error {
		c, err := app.FindCollectionByNameOrId(HeldCollection)
		if err != nil {
			return nil
		}
		return app.Delete(c)
	})
}
