package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// What lets the sales and customers reports answer a year without
// grouping every order or product day:
//   - metrics_orders.prev_day: on a counted order, the day of the
//     customer's previous counted order ("" on the first). A customer
//     bought in a range of days exactly when one of their orders in it has
//     prev_day before the range, so distinct buyers are a count over
//     idx_metrics_orders_prev instead of a GROUP BY profile.
//   - metrics_daily product_sales_month / product_refunds_month: the
//     product rows summed by month (day = the month's 1st), kept equal to
//     the sum of the daily rows by the rollups (rollups.go, addDaily).
//
// Both are filled here from the rows already there.
func init() {
	m.Register(func(app core.App) error {
		c, err := app.FindCollectionByNameOrId(OrdersCollection)
		if err != nil {
			return err
		}
		c.Fields.Add(&core.TextField{Name: "prev_day", Max: 10})
		c.AddIndex("idx_metrics_orders_prev", false, "kind, duplicate, day, prev_day, repeat_buyer, profile", "")
		c.RemoveIndex("idx_metrics_orders_buyers") // what it answered, the new one does without grouping
		if err := app.Save(c); err != nil {
			return err
		}
		if _, err := app.DB().NewQuery(`UPDATE metrics_orders SET prev_day = p.prev FROM (
			SELECT id, COALESCE(LAG(day) OVER (PARTITION BY profile ORDER BY occurred_at, id), '') AS prev
			FROM metrics_orders WHERE kind = 'order' AND duplicate = 0) p WHERE p.id = metrics_orders.id`).Execute(); err != nil {
			return err
		}
		_, err = app.DB().NewQuery(`INSERT INTO metrics_daily (id, day, metric, dim, currency, value, count)
			SELECT substr(lower(hex(randomblob(8))), 1, 15), substr(day, 1, 7) || '-01', metric || '_month', dim, currency, round(SUM(value), 6), SUM(count)
			FROM metrics_daily WHERE metric IN ('product_sales', 'product_refunds') GROUP BY substr(day, 1, 7), metric, dim, currency
			ON CONFLICT(metric, day, dim, currency) DO NOTHING`).Execute()
		return err
	}, func(app core.App) error {
		if _, err := app.DB().NewQuery(`DELETE FROM metrics_daily WHERE metric IN ('product_sales_month', 'product_refunds_month')`).Execute(); err != nil {
			return err
		}
		c, err := app.FindCollectionByNameOrId(OrdersCollection)
		if err != nil {
			return nil
		}
		c.Fields.RemoveByName("prev_day")
		c.RemoveIndex("idx_metrics_orders_prev")
		c.AddIndex("idx_metrics_orders_buyers", false, "kind, duplicate, day, profile, repeat_buyer", "")
		return app.Save(c)
	})
}
