package connectors

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"

	"github.com/omni/omni/core/store/migrations"
	"github.com/pocketbase/pocketbase/tools/types"
)

// connectors: one record per installed connector (built-in or found in
// plugins_dir). The host (core/connectors) owns the state fields; config
// holds the settings with secret fields AES-GCM encrypted, and is hidden
// from the generic records API (the connectors API returns it masked).
// Registered under the file name it was first applied with, so existing
// databases do not run it again. New migrations of this module are named
// "<unix time>_connectors_<what>.go" (see app.Module).
func init() {
	m.Register(func(app core.App) error {
		c := core.NewBaseCollection("connectors")
		c.Fields.Add(
			&core.TextField{Name: "name", Required: true, Max: 100},
			&core.TextField{Name: "kind", Max: 20}, // builtin | external
			&core.TextField{Name: "path", Max: 1000},
			&core.TextField{Name: "version", Max: 100},
			&core.BoolField{Name: "enabled"},
			&core.JSONField{Name: "config", MaxSize: 1 << 16, Hidden: true},
			&core.JSONField{Name: "schema", MaxSize: 1 << 16},
			&core.JSONField{Name: "capabilities", MaxSize: 1 << 12},
			&core.TextField{Name: "state", Max: 2000},
			&core.TextField{Name: "last_error", Max: 2000},
			&core.DateField{Name: "state_changed"},
			&core.TextField{Name: "backfill_state", Max: 20}, // idle | running | done | failed
			&core.TextField{Name: "backfill_since", Max: 40},
			&core.TextField{Name: "backfill_cursor", Max: 2000},
			&core.NumberField{Name: "backfill_done"},
			&core.NumberField{Name: "backfill_total"},
			&core.TextField{Name: "backfill_error", Max: 2000},
			&core.DateField{Name: "backfill_updated"},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		c.AddIndex("idx_connectors_name", true, "name", "")
		c.ListRule = types.Pointer(migrations.RuleOwner)
		c.ViewRule = types.Pointer(migrations.RuleOwner)
		// Writes go through /api/v1/connectors so secrets get encrypted.
		c.CreateRule = nil
		c.UpdateRule = nil
		c.DeleteRule = nil
		return app.Save(c)
	}, func(app core.App) error {
		c, err := app.FindCollectionByNameOrId("connectors")
		if err != nil {
			return nil
		}
		return app.Delete(c)
	}, "0002_connectors.go")
}
