package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// The journeys and messages report's daily rollups (journeys_rollup.go).
// metrics_messages_daily holds, per day in the shop's zone, channel,
// kind, journey, step and refusal reason, what came of the messages
// created that day; metrics_holdout_daily holds, per day of entry,
// journey, side (held out or let through) and goal currency, the runs
// that left a holdout step; metrics_messages_state holds what the rollups
// have seen (watermarks, the last day built, the zone). Written by the
// module only; staff read them. The indexes on the other modules' tables
// find what changed since the rollups were last brought up to date:
// ledger rows and runs by when they were updated, and the few event
// types that change a message's outcome by when they were stored (a
// partial index: other events pay nothing for it).
func init() {
	m.Register(func(app core.App) error {
		daily := core.NewBaseCollection(MessagesDailyCollection)
		daily.Fields.Add(
			&core.TextField{Name: "day", Required: true, Max: 10}, // YYYY-MM-DD in the shop's zone, of the message's creation
			&core.TextField{Name: "channel", Max: 50},
			&core.TextField{Name: "kind", Max: 30},    // journey | marketing | transactional | conversation
			&core.TextField{Name: "journey", Max: 50}, // the run's journey, for journey sends
			&core.TextField{Name: "node", Max: 64},    // the send step
			&core.TextField{Name: "reason", Max: 30},  // refusal reason key, for refused messages
			&core.NumberField{Name: "sent", OnlyInt: true},
			&core.NumberField{Name: "delivered", OnlyInt: true},
			&core.NumberField{Name: "opened", OnlyInt: true},
			&core.NumberField{Name: "clicked", OnlyInt: true},
			&core.NumberField{Name: "replied", OnlyInt: true},
			&core.NumberField{Name: "unsubscribed", OnlyInt: true},
			&core.NumberField{Name: "failed", OnlyInt: true},
			&core.NumberField{Name: "refused", OnlyInt: true},
			// The steps table's opens and clicks (events of the message's own customer).
			&core.NumberField{Name: "node_opened", OnlyInt: true},
			&core.NumberField{Name: "node_clicked", OnlyInt: true},
		)
		daily.AddIndex("idx_metrics_messages_daily_day", false, "day, journey, channel", "")
		staffRead(daily)
		if err := app.Save(daily); err != nil {
			return err
		}
		holdouts := core.NewBaseCollection(HoldoutDailyCollection)
		holdouts.Fields.Add(
			&core.TextField{Name: "day", Required: true, Max: 10}, // YYYY-MM-DD in the shop's zone, of the runs' entry
			&core.TextField{Name: "journey", Max: 50},
			&core.BoolField{Name: "held"}, // held out, else let through
			&core.TextField{Name: "currency", Max: 10},
			&core.NumberField{Name: "runs", OnlyInt: true},
			&core.NumberField{Name: "conversions", OnlyInt: true},
			&core.NumberField{Name: "value"},    // goal value of the converted runs, in currency
			&core.NumberField{Name: "value_sq"}, // Σ value², for the lift's variance
		)
		holdouts.AddIndex("idx_metrics_holdout_daily_day", false, "day, journey", "")
		staffRead(holdouts)
		if err := app.Save(holdouts); err != nil {
			return err
		}
		state := core.NewBaseCollection(MessagesStateCollection)
		state.Fields.Add(
			&core.TextField{Name: "key", Required: true, Max: 50},
			&core.JSONField{Name: "value", MaxSize: 1 << 12},
		)
		state.AddIndex("idx_metrics_messages_state_key", true, "key", "")
		staffRead(state)
		if err := app.Save(state); err != nil {
			return err
		}
		for _, ix := range []struct{ table, sql string }{
			{"messages", "CREATE INDEX IF NOT EXISTS idx_metrics_messages_updated ON messages (updated)"},
			{"messages", "CREATE INDEX IF NOT EXISTS idx_metrics_messages_run ON messages (journey_run) WHERE journey_run != ''"},
			{"journey_runs", "CREATE INDEX IF NOT EXISTS idx_metrics_journey_runs_updated ON journey_runs (updated)"},
			// The runs table's counts (entered, completed, goals) read from
			// the index alone.
			{"journey_runs", "CREATE INDEX IF NOT EXISTS idx_metrics_journey_runs_entered_j ON journey_runs (entered_at, journey)"},
			{"journey_runs", "CREATE INDEX IF NOT EXISTS idx_metrics_journey_runs_ended_j ON journey_runs (ended_at, status, journey) WHERE ended_at != ''"},
			{"journey_runs", "CREATE INDEX IF NOT EXISTS idx_metrics_journey_runs_goal_j ON journey_runs " +
				"(goal_at, goal_until, journey, goal_currency, goal_value) WHERE goal_at != ''"},
			{"events", "CREATE INDEX IF NOT EXISTS idx_metrics_events_outcomes ON events (created) WHERE " + outcomeEventTypes},
		} {
			if !app.HasTable(ix.table) {
				continue
			}
			if _, err := app.DB().NewQuery(ix.sql).Execute(); err != nil {
				return err
			}
		}
		return nil
	}, func(app core.App) error {
		for _, name := range []string{"idx_metrics_messages_updated", "idx_metrics_messages_run", "idx_metrics_journey_runs_updated", "idx_metrics_events_outcomes",
			"idx_metrics_journey_runs_entered_j", "idx_metrics_journey_runs_ended_j", "idx_metrics_journey_runs_goal_j"} {
			if _, err := app.DB().NewQuery("DROP INDEX IF EXISTS " + name).Execute(); err != nil {
				return err
			}
		}
		for _, n := range []string{MessagesStateCollection, HoldoutDailyCollection, MessagesDailyCollection} {
			if c, err := app.FindCollectionByNameOrId(n); err == nil {
				if err := app.Delete(c); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
