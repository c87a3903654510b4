package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// Every customer's contribution gains the customers report's rows
// (derive, addBuyerRows): a buyer's lifetime net and orders on their first
// order's day by first channel (summed by month too), and their cohort's
// month offsets.
func init() {
	m.Register(addBuyerRows, removeBuyerRows, "1765001000_metrics_customers_rows.go")
}

// addBuyerRows recomputes the stored customers from their facts, through
// the same path as a new order, so an upgraded shop has the figures
// without a rebuild (some seconds per 100k customers).
func addBuyerRows(app core.App) error {
	var profiles []string
	if err := app.DB().NewQuery("SELECT profile FROM " + CustomersCollection + " ORDER BY profile").Column(&profiles); err != nil {
		return err
	}
	return app.RunInTransaction(func(tx core.App) error { return (&rollups{}).recomputeProfiles(tx, profiles, false) })
}

// removeBuyerRows takes the rows out of metrics_daily and out of what each
// customer is recorded to have added, so the older code's diffs stay right.
func removeBuyerRows(app core.App) error {
	const buyerMetrics = "('customers_first', 'customers_first_orders', 'customers_cohort')"
	if _, err := app.DB().NewQuery("DELETE FROM metrics_daily WHERE metric IN " + buyerMetrics +
		" OR metric IN ('customers_first_month', 'customers_first_orders_month')").Execute(); err != nil {
		return err
	}
	_, err := app.DB().NewQuery(`UPDATE metrics_customers SET contrib = (SELECT json_group_array(json(j.value))
		FROM json_each(metrics_customers.contrib) j WHERE json_extract(j.value, '$[0]') NOT IN ` + buyerMetrics + `)
		WHERE json_valid(contrib)`).Execute()
	return err
}
