package journeys

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/store/migrations"
)

// journeys holds each journey's draft and status; journey_versions every
// published version (runs keep the version they entered with);
// journey_runs one row per customer's pass through a journey, with the
// timer index the engine polls (due_at); journey_steps every step a run
// took and the exit it left by, which the results and the customer page
// read. Staff read them all; writes go through /api/v1/journeys (owners)
// and the engine, which validate what the records API would not.
func init() {
	m.Register(func(app core.App) error {
		j := core.NewBaseCollection(Collection)
		j.Fields.Add(
			&core.TextField{Name: "name", Required: true, Max: 200},
			&core.TextField{Name: "description", Max: 2000},
			&core.TextField{Name: "status", Max: 20},          // draft | live | paused | archived
			&core.NumberField{Name: "version", OnlyInt: true}, // latest published, 0 if never
			&core.JSONField{Name: "graph", MaxSize: 1 << 20},
			&core.JSONField{Name: "settings", MaxSize: 1 << 14},
			&core.TextField{Name: "recipe", Max: 100},
			&core.TextField{Name: "created_by", Max: 50},
			&core.DateField{Name: "published_at"},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		j.AddIndex("idx_journeys_status", false, "status", "")
		j.ListRule = types.Pointer(migrations.RuleStaff)
		j.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(j); err != nil {
			return err
		}

		v := core.NewBaseCollection(VersionsCollection)
		v.Fields.Add(
			&core.TextField{Name: "journey", Required: true, Max: 50},
			&core.NumberField{Name: "version", OnlyInt: true},
			&core.JSONField{Name: "graph", MaxSize: 1 << 20},
			&core.JSONField{Name: "settings", MaxSize: 1 << 14},
			&core.TextField{Name: "published_by", Max: 50},
			&core.TextField{Name: "note", Max: 2000},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		v.AddIndex("idx_journey_versions_version", true, "journey, version", "")
		v.ListRule = types.Pointer(migrations.RuleStaff)
		v.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(v); err != nil {
			return err
		}

		r := core.NewBaseCollection(RunsCollection)
		r.Fields.Add(
			&core.TextField{Name: "journey", Required: true, Max: 50},
			&core.NumberField{Name: "version", OnlyInt: true},
			&core.TextField{Name: "profile", Required: true, Max: 50},
			&core.TextField{Name: "node", Max: 64},        // the step it is at
			&core.TextField{Name: "status", Max: 20},      // active | waiting | completed | exited
			&core.TextField{Name: "exit_reason", Max: 50}, // end | goal | left_segment | unsubscribed | manual | archived | merged | failed
			&core.JSONField{Name: "context", MaxSize: 1 << 16},
			&core.DateField{Name: "due_at"},               // when the engine next looks at it
			&core.TextField{Name: "wait_event", Max: 100}, // the event type a wait_for_event step awaits
			&core.NumberField{Name: "attempt", OnlyInt: true},
			&core.TextField{Name: "arm", Max: 64}, // the A/B arm taken, if any
			&core.BoolField{Name: "holdout"},      // held out: gets nothing, counted for lift
			&core.TextField{Name: "trigger_event", Max: 256},
			&core.DateField{Name: "entered_at"},
			&core.DateField{Name: "ended_at"},
			&core.DateField{Name: "goal_until"}, // end of the goal window
			&core.DateField{Name: "goal_at"},
			&core.TextField{Name: "goal_event", Max: 256},
			&core.NumberField{Name: "goal_value"},
			&core.TextField{Name: "goal_currency", Max: 10},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		// The engine's timer index: runs to look at, by due time.
		r.AddIndex("idx_journey_runs_due", false, "due_at", "status = 'active' OR status = 'waiting'")
		r.AddIndex("idx_journey_runs_profile", false, "profile, journey", "")
		r.AddIndex("idx_journey_runs_journey", false, "journey, status", "")
		r.AddIndex("idx_journey_runs_wait", false, "profile, wait_event", "status = 'waiting' AND wait_event != ''")
		r.AddIndex("idx_journey_runs_goal", false, "profile", "goal_at = '' AND goal_until != ''")
		r.ListRule = types.Pointer(migrations.RuleStaff)
		r.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(r); err != nil {
			return err
		}

		s := core.NewBaseCollection(StepsCollection)
		s.Fields.Add(
			&core.TextField{Name: "run", Required: true, Max: 50},
			&core.TextField{Name: "journey", Max: 50},
			&core.NumberField{Name: "version", OnlyInt: true},
			&core.TextField{Name: "profile", Max: 50},
			&core.TextField{Name: "node", Max: 64},
			&core.TextField{Name: "type", Max: 30},
			&core.TextField{Name: "exit", Max: 64}, // the exit taken; "" while the step waits
			&core.JSONField{Name: "detail", MaxSize: 1 << 14},
			&core.DateField{Name: "at"},
		)
		s.AddIndex("idx_journey_steps_run", false, "run, at", "")
		s.AddIndex("idx_journey_steps_node", false, "journey, version, node", "")
		s.AddIndex("idx_journey_steps_profile", false, "profile", "")
		s.ListRule = types.Pointer(migrations.RuleStaff)
		s.ViewRule = types.Pointer(migrations.RuleStaff)
		return app.Save(s)
	}, func(app core.App) error {
		for _, name := range []string{StepsCollection, RunsCollection, VersionsCollection, Collection} {
			if c, err := app.FindCollectionByNameOrId(name); err == nil {
				if err := app.Delete(c); err != nil {
					return err
				}
			}
		}
		return nil
	}, "1764800000_journeys_collections.go")
}
