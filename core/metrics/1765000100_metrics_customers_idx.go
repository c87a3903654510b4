package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// Indexes the customers report reads by (customers.go), so it answers from
// the index with 100k customers: buyers by first order (covering the
// lifetime figures it averages), by last order (moves into at risk), and
// distinct buyers of a range of days (covering).
func init() {
	m.Register(func(app core.App) error {
		customers, err := app.FindCollectionByNameOrId(CustomersCollection)
		if err != nil {
			return err
		}
		customers.AddIndex("idx_metrics_customers_first", false, "first_order_at, orders, net_base", "")
		customers.AddIndex("idx_metrics_customers_month", false, "first_month, orders, net_base", "")
		customers.AddIndex("idx_metrics_customers_last", false, "last_order_at", "")
		if err := app.Save(customers); err != nil {
			return err
		}
		orders, err := app.FindCollectionByNameOrId(OrdersCollection)
		if err != nil {
			return err
		}
		orders.AddIndex("idx_metrics_orders_buyers", false, "kind, day, duplicate, profile", "")
		return app.Save(orders)
	}, func(app core.App) error {
		for name, idx := range map[string][]string{
			CustomersCollection: {"idx_metrics_customers_first", "idx_metrics_customers_month", "idx_metrics_customers_last"},
			OrdersCollection:    {"idx_metrics_orders_buyers"},
		} {
			c, err := app.FindCollectionByNameOrId(name)
			if err != nil {
				continue
			}
			for _, n := range idx {
				c.RemoveIndex(n)
			}
			if err := app.Save(c); err != nil {
				return err
			}
		}
		return nil
	})
}
