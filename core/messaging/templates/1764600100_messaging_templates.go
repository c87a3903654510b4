package templates

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/store/migrations"
)

// Message templates: staff read them (agents send with them), owners write
// them; every save is checked by the record hook (see Register).
func init() {
	m.Register(func(app core.App) error {
		c := core.NewBaseCollection(Collection)
		c.Fields.Add(
			&core.TextField{Name: "name", Required: true, Max: 200},
			&core.SelectField{Name: "channel", Values: Channels, MaxSelect: 1, Required: true},
			&core.SelectField{Name: "kind", Values: Kinds, MaxSelect: 1},
			&core.TextField{Name: "subject", Max: 1000},
			&core.TextField{Name: "body", Max: 64 << 10},
			&core.TextField{Name: "html", Max: 512 << 10},
			&core.TextField{Name: "wa_template", Max: 512},
			&core.TextField{Name: "wa_language", Max: 20},
			&core.JSONField{Name: "wa_params", MaxSize: 16 << 10},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		c.AddIndex("idx_templates_name", true, "name", "")
		c.ListRule = types.Pointer(migrations.RuleStaff)
		c.ViewRule = types.Pointer(migrations.RuleStaff)
		c.CreateRule = types.Pointer(migrations.RuleOwner)
		c.UpdateRule = types.Pointer(migrations.RuleOwner)
		c.DeleteRule = types.Pointer(migrations.RuleOwner)
		return app.Save(c)
	}, func(app core.App) error {
		c, err := app.FindCollectionByNameOrId(Collection)
		if err != nil {
			return nil
		}
		return app.Delete(c)
	}, "1764600100_messaging_templates.go")
}
