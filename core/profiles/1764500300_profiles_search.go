package profiles

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// The search index (search.go): one row per word a profile can be found
// by, and the profiles.known flag that separates known customers from
// anonymous visitors. profile_search is a plain table, not a collection: it
// is derived data, rewritten by the events processor, and never read
// through the records API. Existing profiles are indexed here once.
func init() {
	m.Register(func(app core.App) error {
		for _, q := range []string{
			// (token, profile, origin) is the primary key, so a prefix
			// range on token is one B-tree walk.
			`CREATE TABLE IF NOT EXISTS profile_search (token TEXT NOT NULL, profile TEXT NOT NULL, origin TEXT NOT NULL,
PRIMARY KEY (token, profile, origin)) WITHOUT ROWID`,
			`CREATE INDEX IF NOT EXISTS idx_profile_search_profile ON profile_search (profile, origin)`,
		} {
			if _, err := app.DB().NewQuery(q).Execute(); err != nil {
				return err
			}
		}
		profiles, err := app.FindCollectionByNameOrId("profiles")
		if err != nil {
			return err
		}
		profiles.Fields.Add(&core.BoolField{Name: "known"})
		// The customers list's default view: known people by last seen.
		profiles.AddIndex("idx_profiles_known_last_seen", false, "known, last_seen", "merged_into = ''")
		if err := app.Save(profiles); err != nil {
			return err
		}
		if _, err := app.DB().NewQuery(`UPDATE profiles SET known = EXISTS (SELECT 1 FROM identities i WHERE i.profile = profiles.id AND i.kind != 'anonymous_id')
WHERE merged_into = ''`).Execute(); err != nil {
			return err
		}
		return reindexAll(app)
	}, func(app core.App) error {
		if _, err := app.DB().NewQuery("DROP TABLE IF EXISTS profile_search").Execute(); err != nil {
			return err
		}
		profiles, err := app.FindCollectionByNameOrId("profiles")
		if err != nil {
			return nil
		}
		profiles.RemoveIndex("idx_profiles_known_last_seen")
		profiles.Fields.RemoveByName("known")
		return app.Save(profiles)
	}, "1764500300_profiles_search.go")
}
