package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// The follower's questions about the whole queue (how many events wait,
// since when: lagSQL and oldestSQL) are answered from this index alone.
// The columns come after each row's ids, which spill into overflow pages,
// so without it each question read every queued batch. One small entry
// per stored batch.
func init() {
	m.Register(func(app core.App) error {
		_, err := app.DB().NewQuery("CREATE INDEX IF NOT EXISTS idx_metrics_queue_lag ON " + queueTable + " (queued_at, events)").Execute()
		return err
	}, func(app core.App) error {
		_, err := app.DB().NewQuery("DROP INDEX IF EXISTS idx_metrics_queue_lag").Execute()
		return err
	})
}
