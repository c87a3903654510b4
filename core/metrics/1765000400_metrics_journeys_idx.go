package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// Indexes the journeys and messages report needs on other modules'
// tables, which it reads at query time: the send ledger by creation time
// (covering the columns the report groups by, so a period's statuses are
// counted from the index alone) and journey runs by when they entered,
// ended and reached their goal. The owning modules have no query of their own that
// needs them, so they are the report's to add; only CREATE INDEX IF NOT
// EXISTS, never a change to the tables, and skipped when a table is not
// there (a binary without that module).
func init() {
	m.Register(func(app core.App) error {
		for _, ix := range []struct{ table, sql string }{
			{"messages", "CREATE INDEX IF NOT EXISTS idx_metrics_messages_hour ON messages " +
				"(substr(created, 1, 13), channel, status, kind, journey_run != '', reason, created, journey_run)"},
			{"journey_runs", "CREATE INDEX IF NOT EXISTS idx_metrics_journey_runs_entered ON journey_runs (entered_at)"},
			{"journey_runs", "CREATE INDEX IF NOT EXISTS idx_metrics_journey_runs_goal ON journey_runs (goal_at) WHERE goal_at != ''"},
			{"journey_runs", "CREATE INDEX IF NOT EXISTS idx_metrics_journey_runs_ended ON journey_runs (ended_at) WHERE ended_at != ''"},
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
		for _, name := range []string{"idx_metrics_messages_hour", "idx_metrics_journey_runs_entered", "idx_metrics_journey_runs_goal", "idx_metrics_journey_runs_ended"} {
			if _, err := app.DB().NewQuery("DROP INDEX IF EXISTS " + name).Execute(); err != nil {
				return err
			}
		}
		return nil
	})
}
