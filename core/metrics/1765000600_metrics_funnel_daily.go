package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// Per-day counts behind the funnel and cart abandonment reports, so a
// year is at most 365 × channels rows instead of every entry and checkout.
//
// metrics_funnel_daily counts a funnel's entries per day entered, channel
// and highest step reached; metrics_checkout_daily counts checkouts per
// day started and channel, and those completed by an order within the
// abandonment window. SQLite triggers on metrics_funnel_entries and
// metrics_checkouts keep them by differences on every insert, update and
// delete, so every path that writes entries or checkouts (the events
// processor, merges, erasure, backfills, edits, `omni metrics rebuild`)
// keeps them right without knowing of them.
//
// The abandonment window is a setting: the row with day "" holds the
// window (seconds) the completed counts were taken with; the report counts
// them again when the setting has changed (funnels_daily.go).
func init() {
	m.Register(func(app core.App) error {
		daily := core.NewBaseCollection(FunnelDailyCollection)
		daily.Fields.Add(
			&core.TextField{Name: "funnel", Required: true, Max: 50},
			&core.TextField{Name: "day", Max: 10},
			&core.TextField{Name: "channel", Max: 50},
			&core.NumberField{Name: "reached", OnlyInt: true},
			&core.NumberField{Name: "n", OnlyInt: true}, // entries
		)
		daily.AddIndex("idx_metrics_funnel_daily_key", true, "funnel, day, channel, reached", "")
		staffRead(daily)
		if err := app.Save(daily); err != nil {
			return err
		}

		checkouts := core.NewBaseCollection(CheckoutDailyCollection)
		checkouts.Fields.Add(
			&core.TextField{Name: "day", Max: 10}, // "" on the row holding the window
			&core.TextField{Name: "channel", Max: 50},
			&core.NumberField{Name: "started", OnlyInt: true},
			&core.NumberField{Name: "completed", OnlyInt: true}, // order within the window
			&core.NumberField{Name: "window"},                   // seconds; on the day "" row only
		)
		checkouts.AddIndex("idx_metrics_checkout_daily_key", true, "day, channel", "")
		staffRead(checkouts)
		if err := app.Save(checkouts); err != nil {
			return err
		}

		// The exact median time to convert walks converted entries in
		// time-to-convert order, reading entered_at from the index.
		entries, err := app.FindCollectionByNameOrId(FunnelEntriesCollection)
		if err != nil {
			return err
		}
		entries.AddIndex("idx_metrics_funnel_entries_convert", false, "funnel, reached, convert_secs, entered_at", "")
		// What still reads a range of entries (hourly points, a segment
		// split by customer) finds every column in the index.
		entries.RemoveIndex("idx_metrics_funnel_entries_range")
		entries.AddIndex("idx_metrics_funnel_entries_span", false, "funnel, entered_at, day, reached, channel, profile", "")
		if err := app.Save(entries); err != nil {
			return err
		}

		// Recovered checkouts (a third of the completed at most) are read
		// in start order from their own index, without a sort.
		co, err := app.FindCollectionByNameOrId(CheckoutsCollection)
		if err != nil {
			return err
		}
		co.AddIndex("idx_metrics_checkouts_recovered", false, "started_at, day, channel, order_after, order_event, order_total, order_currency", "recovered_run != ''")
		if err := app.Save(co); err != nil {
			return err
		}

		for _, q := range funnelDailyTriggers {
			if _, err := app.DB().NewQuery(q).Execute(); err != nil {
				return err
			}
		}
		if _, err := app.DB().NewQuery("INSERT INTO " + FunnelDailyCollection + " (funnel, day, channel, reached, n) " +
			"SELECT funnel, day, channel, reached, COUNT(*) FROM " + FunnelEntriesCollection + " GROUP BY funnel, day, channel, reached").Execute(); err != nil {
			return err
		}
		return countCheckoutDays(app, defaultAbandonSecs)
	}, func(app core.App) error {
		for _, t := range []string{"ins", "del", "upd"} {
			for _, c := range []string{"funnel_entries", "checkouts"} {
				if _, err := app.DB().NewQuery("DROP TRIGGER IF EXISTS trg_metrics_" + c + "_" + t).Execute(); err != nil {
					return err
				}
			}
		}
		for c, idx := range map[string]string{FunnelEntriesCollection: "idx_metrics_funnel_entries_convert", CheckoutsCollection: "idx_metrics_checkouts_recovered"} {
			if col, err := app.FindCollectionByNameOrId(c); err == nil {
				col.RemoveIndex(idx)
				if c == FunnelEntriesCollection {
					col.RemoveIndex("idx_metrics_funnel_entries_span")
					col.AddIndex("idx_metrics_funnel_entries_range", false, "funnel, entered_at, day, reached, channel, convert_secs", "")
				}
				if err := app.Save(col); err != nil {
					return err
				}
			}
		}
		for _, n := range []string{CheckoutDailyCollection, FunnelDailyCollection} {
			if c, err := app.FindCollectionByNameOrId(n); err == nil {
				if err := app.Delete(c); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

const (
	entryPlus = "INSERT INTO " + FunnelDailyCollection + " (funnel, day, channel, reached, n) VALUES (NEW.funnel, NEW.day, NEW.channel, NEW.reached, 1) " +
		"ON CONFLICT (funnel, day, channel, reached) DO UPDATE SET n = n + 1;"
	entryMinus = "UPDATE " + FunnelDailyCollection + " SET n = n - 1 WHERE funnel = OLD.funnel AND day = OLD.day AND channel = OLD.channel AND reached = OLD.reached;" +
		"DELETE FROM " + FunnelDailyCollection + " WHERE funnel = OLD.funnel AND day = OLD.day AND channel = OLD.channel AND reached = OLD.reached AND n <= 0;"

	// A checkout is completed under the window kept on the day "" row.
	checkoutPlus = "INSERT INTO " + CheckoutDailyCollection + " (day, channel, started, completed) VALUES (NEW.day, NEW.channel, 1, " +
		"(NEW.order_after >= 0 AND NEW.order_after < COALESCE((SELECT window FROM " + CheckoutDailyCollection + " WHERE day = '' AND channel = ''), 86400))) " +
		"ON CONFLICT (day, channel) DO UPDATE SET started = started + 1, completed = completed + excluded.completed;"
	checkoutMinus = "UPDATE " + CheckoutDailyCollection + " SET started = started - 1, completed = completed - " +
		"(OLD.order_after >= 0 AND OLD.order_after < COALESCE((SELECT window FROM " + CheckoutDailyCollection + " WHERE day = '' AND channel = ''), 86400)) " +
		"WHERE day = OLD.day AND channel = OLD.channel;" +
		"DELETE FROM " + CheckoutDailyCollection + " WHERE day = OLD.day AND channel = OLD.channel AND day != '' AND started <= 0;"
)

var funnelDailyTriggers = []string{
	"CREATE TRIGGER trg_metrics_funnel_entries_ins AFTER INSERT ON " + FunnelEntriesCollection + " BEGIN " + entryPlus + " END",
	"CREATE TRIGGER trg_metrics_funnel_entries_del AFTER DELETE ON " + FunnelEntriesCollection + " BEGIN " + entryMinus + " END",
	"CREATE TRIGGER trg_metrics_funnel_entries_upd AFTER UPDATE OF funnel, day, channel, reached ON " + FunnelEntriesCollection + " BEGIN " + entryMinus + entryPlus + " END",
	"CREATE TRIGGER trg_metrics_checkouts_ins AFTER INSERT ON " + CheckoutsCollection + " BEGIN " + checkoutPlus + " END",
	"CREATE TRIGGER trg_metrics_checkouts_del AFTER DELETE ON " + CheckoutsCollection + " BEGIN " + checkoutMinus + " END",
	"CREATE TRIGGER trg_metrics_checkouts_upd AFTER UPDATE OF day, channel, order_after ON " + CheckoutsCollection + " BEGIN " + checkoutMinus + checkoutPlus + " END",
}
