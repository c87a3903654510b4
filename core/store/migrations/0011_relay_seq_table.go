package migrations

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// relay_pending becomes a plain table keyed by seq (core/relay). As a
// collection it had three B-trees (the rows by rowid, the id, the seq
// index), each written when a row is staged and again when it is deleted,
// for every event a module derives; and the relay skipped the rows waiting
// to be deleted by listing them in every read. Keyed by seq it is one
// B-tree, appended at its end and deleted from its start, and the relay
// reads on from the last seq it published. It was never served by the
// records API (superusers only), so nothing outside core/relay reads it.
// Rows still staged keep their order.
func init() {
	m.Register(func(app core.App) error {
		rows, err := readStaged(app, "SELECT event_id, subject, data, created FROM relay_pending ORDER BY seq, id")
		if err != nil {
			return err
		}
		c, err := app.FindCollectionByNameOrId("relay_pending")
		if err != nil {
			return err
		}
		if err := app.Delete(c); err != nil {
			return err
		}
		if _, err := app.DB().NewQuery(`CREATE TABLE relay_pending (seq INTEGER PRIMARY KEY AUTOINCREMENT,
event_id TEXT NOT NULL, subject TEXT NOT NULL, data TEXT NOT NULL, created TEXT NOT NULL DEFAULT '')`).Execute(); err != nil {
			return err
		}
		for _, r := range rows {
			if _, err := app.DB().NewQuery("INSERT INTO relay_pending (event_id, subject, data, created) VALUES ({:e}, {:s}, {:d}, {:c})").
				Bind(map[string]any{"e": r.EventID, "s": r.Subject, "d": r.Data, "c": r.Created}).Execute(); err != nil {
				return err
			}
		}
		return nil
	}, func(app core.App) error {
		rows, err := readStaged(app, "SELECT event_id, subject, data, created FROM relay_pending ORDER BY seq")
		if err != nil {
			return err
		}
		if _, err := app.DB().NewQuery("DROP TABLE relay_pending").Execute(); err != nil {
			return err
		}
		// As migrations 0007 and 0008 left it.
		c := relayPendingCollection()
		addRelaySeq(c)
		if err := app.Save(c); err != nil {
			return err
		}
		for i, r := range rows {
			rec := core.NewRecord(c)
			rec.Set("event_id", r.EventID)
			rec.Set("subject", r.Subject)
			rec.Set("data", r.Data)
			rec.Set("created", r.Created)
			rec.Set("seq", i+1)
			if err := app.Save(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

type stagedRow struct {
	EventID string `db:"event_id"`
	Subject string `db:"subject"`
	Data    string `db:"data"`
	Created string `db:"created"`
}

func readStaged(app core.App, query string) ([]stagedRow, error) {
	var rows []stagedRow
	err := app.DB().NewQuery(query).All(&rows)
	return rows, err
}
