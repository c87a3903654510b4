package profiles

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/store/migrations"
)

// Staff tags and internal notes on a customer (tags.go). Staff read them;
// writes go through /api/v1/profiles/{id}/tags|notes, which keep the search
// index and segment membership in step in the same transaction. Both are
// person-owned: merges move them, GDPR exports include them, erasure
// deletes them.
func init() {
	m.Register(func(app core.App) error {
		tags := core.NewBaseCollection("profile_tags")
		tags.Fields.Add(
			&core.TextField{Name: "profile", Required: true, Max: 50},
			&core.TextField{Name: "tag", Required: true, Max: maxTagLen},
			&core.TextField{Name: "by", Max: 50},
			&core.TextField{Name: "by_name", Max: 300},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		// Not unique: a merge may bring the same tag twice; reads are DISTINCT.
		tags.AddIndex("idx_profile_tags_profile", false, "profile, tag", "")
		tags.AddIndex("idx_profile_tags_tag", false, "tag", "")
		tags.ListRule = types.Pointer(migrations.RuleStaff)
		tags.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(tags); err != nil {
			return err
		}
		notes := core.NewBaseCollection("profile_notes")
		notes.Fields.Add(
			&core.TextField{Name: "profile", Required: true, Max: 50},
			&core.TextField{Name: "text", Required: true, Max: maxNoteLen},
			&core.TextField{Name: "author", Max: 50},
			&core.TextField{Name: "author_name", Max: 300},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		notes.AddIndex("idx_profile_notes_profile", false, "profile, created", "")
		notes.ListRule = types.Pointer(migrations.RuleStaff)
		notes.ViewRule = types.Pointer(migrations.RuleStaff)
		return app.Save(notes)
	}, func(app core.App) error {
		for _, name := range []string{"profile_notes", "profile_tags"} {
			if c, err := app.FindCollectionByNameOrId(name); err == nil {
				if err := app.Delete(c); err != nil {
					return err
				}
			}
		}
		return nil
	}, "1764500301_profiles_tags_notes.go")
}
