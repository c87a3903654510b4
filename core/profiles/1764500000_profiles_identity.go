package profiles

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/store/migrations"
)

// profile_blocklist: the identifiers owners added in the admin (Settings →
// Junk identifiers) on top of the built-in list, omni.yaml and connector
// settings (blocklist.go). Staff may read it (it explains why two people
// were not joined); writes go through /api/v1/profiles/blocklist, which
// checks each entry and reloads the list in force.
func init() {
	m.Register(func(app core.App) error {
		c := core.NewBaseCollection("profile_blocklist")
		c.Fields.Add(
			&core.TextField{Name: "entry", Required: true, Max: 300},
			&core.TextField{Name: "note", Max: 500},
			&core.TextField{Name: "created_by", Max: 50},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		c.AddIndex("idx_profile_blocklist_entry", true, "entry", "")
		c.ListRule = types.Pointer(migrations.RuleStaff)
		c.ViewRule = types.Pointer(migrations.RuleStaff)
		return app.Save(c)
	}, func(app core.App) error {
		c, err := app.FindCollectionByNameOrId("profile_blocklist")
		if err != nil {
			return nil
		}
		return app.Delete(c)
	}, "1764500000_profiles_identity.go")
}
