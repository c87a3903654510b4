package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// A new order fact's month row (metrics_sales_months) is forgotten by the
// rollups, once per batch for every month the batch adds facts to
// (rollupStmts.forgetMonths), no longer by a trigger per fact: a trigger
// makes each insert keep a statement journal (SQLite copies every page
// the insert touches, then drops the copies), which was most of what an
// order cost on ingest. Facts enter metrics_orders only through the
// rollups (rederive). Changed and deleted facts, and metrics_daily's
// rows, still forget their months through the triggers of 1765001100.
func init() {
	m.Register(func(app core.App) error {
		_, err := app.DB().NewQuery("DROP TRIGGER IF EXISTS trg_metrics_sales_months_orders_ins").Execute()
		return err
	}, func(app core.App) error {
		_, err := app.DB().NewQuery("CREATE TRIGGER IF NOT EXISTS trg_metrics_sales_months_orders_ins AFTER INSERT ON " + OrdersCollection +
			" BEGIN DELETE FROM " + SalesMonthsCollection + " WHERE month = substr(NEW.day, 1, 7); END").Execute()
		return err
	})
}
