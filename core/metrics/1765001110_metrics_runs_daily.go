package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// RunsDailyCollection is the journeys report's daily rollup of the runs
// (journeys_rollup.go): per day in the shop's zone and journey, the runs
// that entered, that completed, and that reached their goal (by goal
// currency, with the goal values), kept with the messages' rollup (the
// same days, the same watermarks). Written by the module only; staff
// read it.
const RunsDailyCollection = "metrics_runs_daily"

func init() {
	m.Register(func(app core.App) error {
		c := core.NewBaseCollection(RunsDailyCollection)
		c.Fields.Add(
			&core.TextField{Name: "day", Required: true, Max: 10},
			&core.TextField{Name: "journey", Max: 50},
			&core.TextField{Name: "what", Max: 10}, // entered | completed | goal
			&core.TextField{Name: "currency", Max: 10},
			&core.NumberField{Name: "n", OnlyInt: true},
			&core.NumberField{Name: "value"}, // goal values, in currency
		)
		c.AddIndex("idx_metrics_runs_daily_day", false, "day, journey", "")
		staffRead(c)
		if err := app.Save(c); err != nil {
			return err
		}
		// The days stored so far have no run counts: the next report
		// counts every day again.
		_, err := app.DB().NewQuery("DELETE FROM " + MessagesStateCollection).Execute()
		return err
	}, func(app core.App) error {
		c, err := app.FindCollectionByNameOrId(RunsDailyCollection)
		if err != nil {
			return nil
		}
		return app.Delete(c)
	})
}
