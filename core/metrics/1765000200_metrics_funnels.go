package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"

	"github.com/omni/omni/core/store"
)

// Funnels and cart abandonment (funnels.go).
//
// metrics_funnels holds the owner's funnel definitions, written through
// /api/v1/metrics/funnels (which checks each step); state is "backfilling"
// until the funnel's entries have been derived from the stored events,
// then "ready". metrics_funnel_entries holds one row per time a customer
// entered a funnel (its first step) and how far they got within the
// window. metrics_checkouts holds one row per checkout (deduplicated by
// its token) with the customer's first order at or after it. The module
// writes entries and checkouts in the events transaction; staff read all
// three.
func init() {
	m.Register(func(app core.App) error {
		funnels := core.NewBaseCollection(FunnelsCollection)
		funnels.Fields.Add(
			&core.TextField{Name: "name", Required: true, Max: 200},
			&core.JSONField{Name: "steps", MaxSize: 1 << 14}, // [{event, name, path, label}]
			&core.NumberField{Name: "window_days", OnlyInt: true},
			&core.NumberField{Name: "position", OnlyInt: true}, // list order (the first is the default)
			&core.TextField{Name: "state", Max: 20},            // backfilling | ready
			&core.TextField{Name: "created_by", Max: 50},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		staffRead(funnels)
		if err := app.Save(funnels); err != nil {
			return err
		}

		entries := core.NewBaseCollection(FunnelEntriesCollection)
		entries.Fields.Add(
			&core.TextField{Name: "funnel", Required: true, Max: 50},
			&core.TextField{Name: "profile", Required: true, Max: 50},
			&core.DateField{Name: "entered_at", Required: true}, // time of the first step
			&core.TextField{Name: "day", Max: 10},               // entered_at's day in the shop's zone
			&core.TextField{Name: "channel", Max: 50},           // of the first step's event
			&core.NumberField{Name: "reached", OnlyInt: true},   // highest step index reached within the window
			&core.JSONField{Name: "step_at", MaxSize: 1 << 12},  // time of each step reached
			&core.NumberField{Name: "convert_secs"},             // first step to last; 0 unless converted
		)
		// Covering the report's reads: a range is one index walk.
		entries.AddIndex("idx_metrics_funnel_entries_range", false, "funnel, entered_at, day, reached, channel, convert_secs", "")
		entries.AddIndex("idx_metrics_funnel_entries_profile", false, "profile, funnel, entered_at", "")
		staffRead(entries)
		if err := app.Save(entries); err != nil {
			return err
		}

		checkouts := core.NewBaseCollection(CheckoutsCollection)
		checkouts.Fields.Add(
			&core.TextField{Name: "key", Required: true, Max: 400}, // source + ":" + checkout token (or id)
			&core.TextField{Name: "profile", Max: 50},
			&core.TextField{Name: "event", Max: 50}, // events record id of checkout.started
			&core.DateField{Name: "started_at", Required: true},
			&core.TextField{Name: "day", Max: 10}, // started_at's day in the shop's zone
			&core.TextField{Name: "channel", Max: 50},
			&core.DateField{Name: "order_at"},                // the customer's first order at or after started_at
			&core.NumberField{Name: "order_after"},           // seconds from started_at to order_at; -1 without an order
			&core.TextField{Name: "recovered_run", Max: 50},  // the journey run whose message came between, if any
			&core.TextField{Name: "order_event", Max: 50},    // its events record id
			&core.NumberField{Name: "order_total"},           // in order_currency
			&core.TextField{Name: "order_currency", Max: 10}, //
		)
		checkouts.AddIndex("idx_metrics_checkouts_key", true, "key", "")
		checkouts.AddIndex("idx_metrics_checkouts_started", false, "started_at, day, channel, order_after, recovered_run", "")
		checkouts.AddIndex("idx_metrics_checkouts_profile", false, "profile, started_at", "")
		staffRead(checkouts)
		if err := app.Save(checkouts); err != nil {
			return err
		}

		// The default funnel, so the page is never empty. It is derived
		// from the stored events when the module starts.
		def := core.NewRecord(funnels)
		def.Id = store.NewRecordID()
		def.Set("name", "Browse to buy")
		def.Set("steps", defaultFunnelSteps)
		def.Set("window_days", 7)
		def.Set("position", 0)
		def.Set("state", stateBackfilling)
		return app.Save(def)
	}, func(app core.App) error {
		for _, n := range []string{CheckoutsCollection, FunnelEntriesCollection, FunnelsCollection} {
			if c, err := app.FindCollectionByNameOrId(n); err == nil {
				if err := app.Delete(c); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
