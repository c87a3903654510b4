package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// The inbox report reads the survey answers of its period (NPS): a
// partial index holding what it reads of them answers without visiting
// the events' wide rows.
func init() {
	m.Register(func(app core.App) error {
		_, err := app.DB().NewQuery(`CREATE INDEX IF NOT EXISTS idx_metrics_events_surveys ON events (occurred_at, profile, id, properties)
			WHERE type = 'survey.answered'`).Execute()
		return err
	}, func(app core.App) error {
		_, err := app.DB().NewQuery("DROP INDEX IF EXISTS idx_metrics_events_surveys").Execute()
		return err
	})
}
