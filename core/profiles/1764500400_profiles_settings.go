package profiles

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/store/migrations"
)

// profile_settings: what the profiles module decided by itself and must
// remember across restarts, one key a row. Today the base currency taken
// from the first connector's shop currency when omni.yaml names none
// (currency.go). Staff may read it; only the module writes it.
func init() {
	m.Register(func(app core.App) error {
		c := core.NewBaseCollection("profile_settings")
		c.Fields.Add(
			&core.TextField{Name: "key", Required: true, Max: 100},
			&core.TextField{Name: "value", Max: 1000},
			&core.TextField{Name: "note", Max: 500},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		c.AddIndex("idx_profile_settings_key", true, "key", "")
		c.ListRule = types.Pointer(migrations.RuleStaff)
		c.ViewRule = types.Pointer(migrations.RuleStaff)
		return app.Save(c)
	}, func(app core.App) error {
		c, err := app.FindCollectionByNameOrId("profile_settings")
		if err != nil {
			return nil
		}
		return app.Delete(c)
	}, "1764500400_profiles_settings.go")
}
