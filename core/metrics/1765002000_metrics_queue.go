package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// metrics_queue holds the stored batches the rollups have not taken yet
// (follow.go): one row per batch (its record ids, and the customers a
// merge, an un-merge or an erasure in it touched: an erasure's event is
// not kept in the events table), written in the events transaction, read
// and deleted by the module's follower in its own. It is a plain table,
// not a collection: derived bookkeeping the records API never serves.
// AUTOINCREMENT so a sequence number is never used twice.
func init() {
	m.Register(func(app core.App) error {
		_, err := app.DB().NewQuery(`CREATE TABLE IF NOT EXISTS ` + queueTable + ` (seq INTEGER PRIMARY KEY AUTOINCREMENT,
ids TEXT NOT NULL, moved TEXT NOT NULL DEFAULT '', events INTEGER NOT NULL, queued_at INTEGER NOT NULL)`).Execute()
		return err
	}, func(app core.App) error {
		_, err := app.DB().NewQuery("DROP TABLE IF EXISTS " + queueTable).Execute()
		return err
	})
}
