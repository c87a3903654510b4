package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// The tables behind the attribution report.
//
// metrics_touches holds every customer's marketing touches (a message
// sent by a campaign or a journey, an email opened or clicked, a message
// read, a web visit with a UTM campaign, an agent's reply in the inbox),
// one row per touch (ref is its key: a redelivered or re-reported touch
// is stored once). metrics_credits holds each order's path: one row per
// touch on it with the touch's share under each of the five models (an
// order with no touch has one "direct" row). metrics_attribution_daily
// sums the credits by day (the order's, in the shop's zone) and dimension,
// one column per model, so the report reads a few hundred rows whatever
// the events table holds. All three are written by the module only; staff
// read them.
func init() {
	m.Register(func(app core.App) error {
		touches := core.NewBaseCollection(TouchesCollection)
		touches.Fields.Add(
			&core.TextField{Name: "profile", Required: true, Max: 50},
			&core.DateField{Name: "at", Required: true},
			&core.TextField{Name: "channel", Max: 50},              // email, whatsapp, sms, chat, web, …
			&core.TextField{Name: "kind", Required: true, Max: 20}, // sent | opened | clicked | read | visit | agent_reply
			&core.TextField{Name: "campaign", Max: 300},            // utm campaign or the email campaign's name
			&core.TextField{Name: "journey", Max: 50},              // journeys id, when a journey sent it
			&core.TextField{Name: "agent", Max: 50},                // staff id, for an agent's reply
			&core.TextField{Name: "ref", Required: true, Max: 400},
			&core.TextField{Name: "event", Max: 50}, // events record id
		)
		touches.AddIndex("idx_metrics_touches_ref", true, "ref", "")
		touches.AddIndex("idx_metrics_touches_profile", false, "profile, at", "")
		staffRead(touches)
		if err := app.Save(touches); err != nil {
			return err
		}

		credits := core.NewBaseCollection(CreditsCollection)
		credits.Fields.Add(
			&core.TextField{Name: "order_event", Required: true, Max: 50}, // the order.placed events record id
			&core.TextField{Name: "order_key", Max: 300},                  // source + ":" + order id
			&core.TextField{Name: "profile", Max: 50},
			&core.DateField{Name: "order_at", Required: true},
			&core.TextField{Name: "day", Max: 10},             // of the order, YYYY-MM-DD in the shop's zone
			&core.NumberField{Name: "pos", OnlyInt: true},     // the touch's place on the path, 0 = first
			&core.TextField{Name: "kind", Max: 20},            // the touch's kind; "none" for a direct order
			&core.TextField{Name: "channel", Max: 50},         // "direct" for a direct order
			&core.TextField{Name: "campaign", Max: 300},       //
			&core.TextField{Name: "journey", Max: 50},         //
			&core.TextField{Name: "agent", Max: 50},           //
			&core.DateField{Name: "touch_at"},                 //
			&core.NumberField{Name: "share_first"},            // the touch's share of the order (0..1) under each model;
			&core.NumberField{Name: "share_last"},             // its credit is share × amount
			&core.NumberField{Name: "share_linear"},           //
			&core.NumberField{Name: "share_position"},         //
			&core.NumberField{Name: "share_time_decay"},       //
			&core.NumberField{Name: "amount"},                 // the order's amount in the base currency
			&core.NumberField{Name: "touches", OnlyInt: true}, // touches on the order's path
			&core.BoolField{Name: "unconverted"},              // no exchange rate: amount is 0
		)
		credits.AddIndex("idx_metrics_credits_order", false, "order_event", "")
		credits.AddIndex("idx_metrics_credits_key", false, "order_key", "")
		credits.AddIndex("idx_metrics_credits_profile", false, "profile, order_at", "")
		credits.AddIndex("idx_metrics_credits_time", false, "order_at", "")
		staffRead(credits)
		if err := app.Save(credits); err != nil {
			return err
		}

		daily := core.NewBaseCollection(AttributionDailyCollection)
		daily.Fields.Add(
			&core.TextField{Name: "day", Required: true, Max: 10},
			&core.TextField{Name: "breakdown", Required: true, Max: 20}, // all | channel | campaign | journey | agent
			&core.TextField{Name: "dim", Max: 300},
			&core.NumberField{Name: "credit_first"}, // credited revenue under each model, base currency
			&core.NumberField{Name: "credit_last"},
			&core.NumberField{Name: "credit_linear"},
			&core.NumberField{Name: "credit_position"},
			&core.NumberField{Name: "credit_time_decay"},
			&core.NumberField{Name: "orders", OnlyInt: true},      // orders whose path reached this dim
			&core.NumberField{Name: "touches", OnlyInt: true},     // (all) touches on those orders' paths
			&core.NumberField{Name: "unconverted", OnlyInt: true}, // (all) orders without an exchange rate
		)
		daily.AddIndex("idx_metrics_attribution_daily_key", true, "breakdown, day, dim", "")
		daily.AddIndex("idx_metrics_attribution_daily_day", false, "day", "")
		staffRead(daily)
		return app.Save(daily)
	}, func(app core.App) error {
		for _, n := range []string{AttributionDailyCollection, CreditsCollection, TouchesCollection} {
			if c, err := app.FindCollectionByNameOrId(n); err == nil {
				if err := app.Delete(c); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
