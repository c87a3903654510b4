package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// Indexes the customers report reads by (customers.go), so it answers from
// the indexes alone with 100k customers (a row also holds the customer's
// whole contribution, too wide to scan): buyers by first order, by first
// channel and by cohort month, each covering the lifetime figures the
// report averages (and the cohort's months), and by last order (moves
// into at risk).
// Distinct buyers of a range of days come from the rollups' covering
// idx_metrics_orders_buyers.
func init() {
	m.Register(func(app core.App) error {
		customers, err := app.FindCollectionByNameOrId(CustomersCollection)
		if err != nil {
			return err
		}
		customers.AddIndex("idx_metrics_customers_first", false, "first_order_at, orders, net_base", "")
		customers.AddIndex("idx_metrics_customers_channel", false, "first_channel, first_order_at, orders, net_base", "")
		customers.AddIndex("idx_metrics_customers_month", false, "first_month, orders, net_base, months", "")
		customers.AddIndex("idx_metrics_customers_last", false, "last_order_at, profile", "")
		return app.Save(customers)
	}, func(app core.App) error {
		for name, idx := range map[string][]string{
			CustomersCollection: {"idx_metrics_customers_first", "idx_metrics_customers_channel", "idx_metrics_customers_month", "idx_metrics_customers_last"},
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
