// Package migrations creates Omni's PocketBase collections. Each file is one
// step; blank-import this package wherever an app is opened.
package migrations

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"
)

// Rules shared by the collections: staff are the product's users, owners
// administer. Superusers bypass rules.
const (
	RuleStaff = "@request.auth.collectionName = 'staff'"
	RuleOwner = "@request.auth.collectionName = 'staff' && @request.auth.role = 'owner'"
)

func init() {
	m.Register(func(app core.App) error {
		staff := core.NewAuthCollection("staff")
		staff.Fields.Add(
			&core.TextField{Name: "name", Max: 200},
			&core.SelectField{Name: "role", Values: []string{"owner", "agent"}, MaxSelect: 1, Required: true},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		staff.ListRule = types.Pointer(RuleStaff)
		staff.ViewRule = types.Pointer(RuleStaff)
		staff.CreateRule = types.Pointer(RuleOwner)
		staff.UpdateRule = types.Pointer(RuleOwner + " || id = @request.auth.id")
		staff.DeleteRule = types.Pointer(RuleOwner)
		if err := app.Save(staff); err != nil {
			return err
		}

		sources := core.NewBaseCollection("sources")
		sources.Fields.Add(
			&core.TextField{Name: "name", Required: true, Max: 100},
			&core.TextField{Name: "write_key", Max: 100, Hidden: false},
			&core.BoolField{Name: "disabled"},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		sources.AddIndex("idx_sources_name", true, "name", "")
		sources.AddIndex("idx_sources_write_key", true, "write_key", "")
		sources.ListRule = types.Pointer(RuleOwner)
		sources.ViewRule = types.Pointer(RuleOwner)
		sources.CreateRule = types.Pointer(RuleOwner)
		sources.UpdateRule = types.Pointer(RuleOwner)
		sources.DeleteRule = types.Pointer(RuleOwner)
		if err := app.Save(sources); err != nil {
			return err
		}

		// events is written in batches by the events consumer with plain SQL
		// (see core/eventstore); the collection gives it a schema, indexes and
		// read access through the REST API.
		events := core.NewBaseCollection("events")
		events.Fields.Add(
			&core.TextField{Name: "event_id", Required: true, Max: 200},
			&core.TextField{Name: "type", Required: true, Max: 100},
			&core.TextField{Name: "name", Max: 200},
			&core.TextField{Name: "source", Required: true, Max: 100},
			&core.TextField{Name: "channel", Max: 50},
			&core.DateField{Name: "occurred_at", Required: true},
			&core.DateField{Name: "received_at"},
			&core.JSONField{Name: "identities", MaxSize: 1 << 16},
			&core.JSONField{Name: "properties", MaxSize: 1 << 20},
			&core.JSONField{Name: "context", MaxSize: 1 << 16},
			&core.TextField{Name: "profile", Max: 50},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		events.AddIndex("idx_events_event_id", true, "event_id", "")
		events.AddIndex("idx_events_profile_time", false, "profile, occurred_at", "")
		events.AddIndex("idx_events_type_time", false, "type, occurred_at", "")
		events.AddIndex("idx_events_time", false, "occurred_at", "")
		events.ListRule = types.Pointer(RuleStaff)
		events.ViewRule = types.Pointer(RuleStaff)
		return app.Save(events)
	}, func(app core.App) error {
		for _, name := range []string{"events", "sources", "staff"} {
			c, err := app.FindCollectionByNameOrId(name)
			if err != nil {
				continue
			}
			if err := app.Delete(c); err != nil {
				return err
			}
		}
		return nil
	})
}
