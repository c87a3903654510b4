package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/store/migrations"
)

// The rollups behind the sales and customers reports.
//
// metrics_orders holds one fact per stored order.placed, order.refunded
// and order.cancelled event (the event's record id is unique), with the
// amount converted to the base currency and the profile the event belongs
// to now. metrics_customers holds one row per buying customer: first order,
// lifetime figures and the customer's whole contribution to metrics_daily,
// so that a merge, an un-merge or an erasure takes out exactly what the
// customer added before and adds what they add now. metrics_daily is the
// sum of every customer's contribution by day (in the shop's zone), metric,
// dimension and currency. All three are written by the module only (the
// events transaction, `omni metrics rebuild`); staff read them.
// metrics_settings holds the owner's report settings (key → JSON), written
// through PUT /api/v1/metrics/settings/{key}, which checks each value.
func init() {
	m.Register(func(app core.App) error {
		daily := core.NewBaseCollection(DailyCollection)
		daily.Fields.Add(
			&core.TextField{Name: "day", Required: true, Max: 10},    // YYYY-MM-DD in the shop's zone
			&core.TextField{Name: "metric", Required: true, Max: 50}, // orders, refunds, … (see rollups.go)
			&core.TextField{Name: "dim", Max: 300},                   // the breakdown value ("" = none)
			&core.TextField{Name: "currency", Max: 3},                // "" = the base currency
			&core.NumberField{Name: "value"},                         // money or a sum
			&core.NumberField{Name: "count"},                         // how many
		)
		daily.AddIndex("idx_metrics_daily_key", true, "metric, day, dim, currency", "")
		staffRead(daily)
		if err := app.Save(daily); err != nil {
			return err
		}

		orders := core.NewBaseCollection(OrdersCollection)
		orders.Fields.Add(
			&core.TextField{Name: "event", Required: true, Max: 50}, // events record id
			&core.TextField{Name: "event_id", Max: 200},             // events.event_id
			&core.TextField{Name: "profile", Max: 50},               // the customer now (follows merges)
			&core.TextField{Name: "kind", Required: true, Max: 10},  // order | refund | cancel
			&core.TextField{Name: "order_key", Max: 300},            // source + ":" + order id: one order, however often reported
			&core.TextField{Name: "source", Max: 100},               //
			&core.TextField{Name: "channel", Max: 50},               // web, pos, whatsapp, … ("" unknown)
			&core.TextField{Name: "campaign", Max: 300},             // utm_campaign of the order, if any
			&core.TextField{Name: "journey_run", Max: 50},           // context.journey_run, if any
			&core.DateField{Name: "occurred_at", Required: true},    //
			&core.TextField{Name: "day", Max: 10},                   // YYYY-MM-DD in the shop's zone
			&core.TextField{Name: "currency", Max: 3},               // the order's own currency
			&core.NumberField{Name: "amount"},                       // positive, in currency (a refund's amount is positive too)
			&core.NumberField{Name: "rate"},                         // one unit of currency in the base currency; 0 = unknown
			&core.NumberField{Name: "amount_base"},                  // amount × rate (0 when the rate is unknown)
			&core.JSONField{Name: "items", MaxSize: 1 << 16},        // [{key, title, quantity, amount}] (amount in currency)
			&core.BoolField{Name: "duplicate"},                      // a second order.placed for an order_key already counted
			&core.BoolField{Name: "returning"},                      // the customer had ordered before (refunds: of their order)
			&core.AutodateField{Name: "created", OnCreate: true},    //
		)
		orders.AddIndex("idx_metrics_orders_event", true, "event", "")
		orders.AddIndex("idx_metrics_orders_profile", false, "profile, occurred_at", "")
		orders.AddIndex("idx_metrics_orders_day", false, "day, kind", "")
		orders.AddIndex("idx_metrics_orders_key", false, "order_key", "")
		staffRead(orders)
		if err := app.Save(orders); err != nil {
			return err
		}

		customers := core.NewBaseCollection(CustomersCollection)
		customers.Fields.Add(
			&core.TextField{Name: "profile", Required: true, Max: 50},
			&core.DateField{Name: "first_order_at"},
			&core.TextField{Name: "first_month", Max: 7},    // YYYY-MM of the first order (the cohort)
			&core.TextField{Name: "first_channel", Max: 50}, // channel of the first order
			&core.DateField{Name: "last_order_at"},
			&core.NumberField{Name: "orders", OnlyInt: true},
			&core.NumberField{Name: "net_base"},                // orders − refunds, base currency
			&core.JSONField{Name: "months", MaxSize: 1 << 14},  // month offsets (0 = first month) with an order: [0, 1, 4]
			&core.JSONField{Name: "contrib", MaxSize: 1 << 20}, // this customer's rows of metrics_daily
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		customers.AddIndex("idx_metrics_customers_profile", true, "profile", "")
		customers.AddIndex("idx_metrics_customers_cohort", false, "first_month", "")
		staffRead(customers)
		if err := app.Save(customers); err != nil {
			return err
		}

		settings := core.NewBaseCollection(SettingsCollection)
		settings.Fields.Add(
			&core.TextField{Name: "key", Required: true, Max: 50},
			&core.JSONField{Name: "value", MaxSize: 1 << 16},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		settings.AddIndex("idx_metrics_settings_key", true, "key", "")
		staffRead(settings)
		return app.Save(settings)
	}, func(app core.App) error {
		for _, n := range []string{SettingsCollection, CustomersCollection, OrdersCollection, DailyCollection} {
			if c, err := app.FindCollectionByNameOrId(n); err == nil {
				if err := app.Delete(c); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// staffRead lets staff list and view; nobody writes through the records API.
func staffRead(c *core.Collection) {
	c.ListRule = types.Pointer(migrations.RuleStaff)
	c.ViewRule = types.Pointer(migrations.RuleStaff)
}
