package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// SalesMonthsCollection holds, per past calendar month, what the sales
// report adds up from the month's rows (sales_months.go): the sums of its
// metrics_daily sales rows, and its counted orders by the day of the
// customer's previous order (distinct buyers of any range are then a sum
// over a few such lists). A row is worked out by the first report that
// needs it. SQLite triggers delete a month's row whenever a sales row of
// metrics_daily or an order fact of that month is written or deleted, so
// every path that writes them (the events processor, merges, erasure,
// re-rating, `omni metrics rebuild`) keeps it right without knowing of it.
const SalesMonthsCollection = "metrics_sales_months"

func init() {
	m.Register(func(app core.App) error {
		c := core.NewBaseCollection(SalesMonthsCollection)
		c.Fields.Add(
			&core.TextField{Name: "month", Required: true, Max: 7}, // YYYY-MM
			&core.TextField{Name: "sums"},                          // JSON: [[metric, dim, currency, value, count], …]
			&core.TextField{Name: "buyers"},                        // JSON: [[prev_day, orders, repeat buyers], …] by prev_day
		)
		c.AddIndex("idx_metrics_sales_months_month", true, "month", "")
		staffRead(c)
		if err := app.Save(c); err != nil {
			return err
		}
		for _, q := range salesMonthTriggers() {
			if _, err := app.DB().NewQuery(q).Execute(); err != nil {
				return err
			}
		}
		return nil
	}, func(app core.App) error {
		for _, t := range []string{"daily_ins", "daily_del", "daily_upd", "orders_ins", "orders_del", "orders_upd"} {
			if _, err := app.DB().NewQuery("DROP TRIGGER IF EXISTS trg_metrics_sales_months_" + t).Execute(); err != nil {
				return err
			}
		}
		c, err := app.FindCollectionByNameOrId(SalesMonthsCollection)
		if err != nil {
			return nil
		}
		return app.Delete(c)
	})
}

// salesMonthTriggers forget a month's row when its rows change.
func salesMonthTriggers() []string {
	in := " IN (" + salesMetricsSQL() + ")"
	forget := func(row string) string {
		return "DELETE FROM " + SalesMonthsCollection + " WHERE month = substr(" + row + ".day, 1, 7);"
	}
	return []string{
		"CREATE TRIGGER trg_metrics_sales_months_daily_ins AFTER INSERT ON " + DailyCollection + " WHEN NEW.metric" + in + " BEGIN " + forget("NEW") + " END",
		"CREATE TRIGGER trg_metrics_sales_months_daily_del AFTER DELETE ON " + DailyCollection + " WHEN OLD.metric" + in + " BEGIN " + forget("OLD") + " END",
		"CREATE TRIGGER trg_metrics_sales_months_daily_upd AFTER UPDATE ON " + DailyCollection + " WHEN NEW.metric" + in + " OR OLD.metric" + in +
			" BEGIN " + forget("OLD") + forget("NEW") + " END",
		"CREATE TRIGGER trg_metrics_sales_months_orders_ins AFTER INSERT ON " + OrdersCollection + " BEGIN " + forget("NEW") + " END",
		"CREATE TRIGGER trg_metrics_sales_months_orders_del AFTER DELETE ON " + OrdersCollection + " BEGIN " + forget("OLD") + " END",
		"CREATE TRIGGER trg_metrics_sales_months_orders_upd AFTER UPDATE OF kind, duplicate, day, prev_day, repeat_buyer, profile ON " + OrdersCollection +
			" BEGIN " + forget("OLD") + forget("NEW") + " END",
	}
}
