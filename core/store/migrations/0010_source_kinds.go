package migrations

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// Sources get a kind (issue 9). A browser source's write key is public (it
// ships in page source), so what it may do is limited; a server source
// authenticates with a secret key, of which only a SHA-256 hash is kept
// (hidden: never served by the REST API). Server sources have no write key,
// so the write key index becomes partial. Existing sources are browser
// sources. Tracking-API event ids are now scoped by source ("src:<source
// id>:<messageId>"), which can be longer than 200 characters.
func init() {
	m.Register(func(app core.App) error {
		sources, err := app.FindCollectionByNameOrId("sources")
		if err != nil {
			return err
		}
		sources.Fields.Add(
			&core.SelectField{Name: "kind", Values: []string{"browser", "server"}, MaxSelect: 1, Required: true},
			&core.TextField{Name: "secret_hash", Max: 100, Hidden: true},
		)
		sources.RemoveIndex("idx_sources_write_key")
		sources.AddIndex("idx_sources_write_key", true, "write_key", "write_key != ''")
		sources.AddIndex("idx_sources_secret_hash", true, "secret_hash", "secret_hash != ''")
		if err := app.Save(sources); err != nil {
			return err
		}
		if _, err := app.DB().NewQuery("UPDATE sources SET kind = 'browser' WHERE kind = '' OR kind IS NULL").Execute(); err != nil {
			return err
		}
		evs, err := app.FindCollectionByNameOrId("events")
		if err != nil {
			return err
		}
		if f, ok := evs.Fields.GetByName("event_id").(*core.TextField); ok {
			f.Max = 300
		}
		return app.Save(evs)
	}, func(app core.App) error {
		sources, err := app.FindCollectionByNameOrId("sources")
		if err != nil {
			return nil
		}
		sources.Fields.RemoveByName("kind")
		sources.Fields.RemoveByName("secret_hash")
		sources.RemoveIndex("idx_sources_secret_hash")
		sources.RemoveIndex("idx_sources_write_key")
		sources.AddIndex("idx_sources_write_key", true, "write_key", "")
		return app.Save(sources)
	})
}
