package migrations

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// relay_pending is the transactional outbox of core/relay: events staged in
// the transaction that produced them, published to the bus after commit.
// Superusers only (nil rules).
func init() {
	m.Register(func(app core.App) error {
		return app.Save(relayPendingCollection())
	}, func(app core.App) error {
		c, err := app.FindCollectionByNameOrId("relay_pending")
		if err != nil {
			return nil
		}
		return app.Delete(c)
	})
}

// relayPendingCollection is relay_pending as this migration creates it
// (migration 0011's down step builds it again).
func relayPendingCollection() *core.Collection {
	c := core.NewBaseCollection("relay_pending")
	c.Fields.Add(
		&core.TextField{Name: "event_id", Required: true, Max: 200},
		&core.TextField{Name: "subject", Required: true, Max: 300},
		&core.TextField{Name: "data", Required: true},
		&core.DateField{Name: "created"},
	)
	return c
}
