package profiles

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// profile_behind lists the profiles whose row waits for changes events
// made to its derived columns (behind.go): a row is added in the events
// transaction that first holds a change back and removed in the one that
// writes it, so after a crash the next start knows exactly which rows to
// recompute from their events. A plain table like profile_search: it is
// the writer's bookkeeping, read by no API.
func init() {
	m.Register(func(app core.App) error {
		_, err := app.DB().NewQuery(`CREATE TABLE IF NOT EXISTS profile_behind (profile TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID`).Execute()
		return err
	}, func(app core.App) error {
		_, err := app.DB().NewQuery("DROP TABLE IF EXISTS profile_behind").Execute()
		return err
	}, "1764500700_profiles_behind.go")
}
