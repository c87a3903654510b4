package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// rate_from says where a fact's exchange rate came from (base, vendor,
// owner; "" = none), so a change of the owner's rates re-rates only the
// facts that used them and keeps the rates vendors reported. repeat_buyer
// marks every fact of a customer with two orders or more, so the covering
// index answers "distinct buyers in a range, and how many of them bought
// again" from the index alone, without a join per buyer.
func init() {
	m.Register(func(app core.App) error {
		c, err := app.FindCollectionByNameOrId(OrdersCollection)
		if err != nil {
			return err
		}
		c.Fields.Add(&core.TextField{Name: "rate_from", Max: 10}, &core.BoolField{Name: "repeat_buyer"})
		c.AddIndex("idx_metrics_orders_buyers", false, "kind, duplicate, day, profile, repeat_buyer", "")
		return app.Save(c)
	}, func(app core.App) error {
		c, err := app.FindCollectionByNameOrId(OrdersCollection)
		if err != nil {
			return nil
		}
		c.Fields.RemoveByName("rate_from")
		c.Fields.RemoveByName("repeat_buyer")
		c.RemoveIndex("idx_metrics_orders_buyers")
		return app.Save(c)
	}, "1765000010_metrics_rollups.go")
}
