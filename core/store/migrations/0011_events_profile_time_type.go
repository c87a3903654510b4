package migrations

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// idx_events_profile_time gains type, so that an event condition of a
// segment rule ("placed an order in the last 90 days": the profile's
// events of one type since a time) is answered from the index alone. Its
// entries are contiguous per profile, and the batch that changed the
// profile has just written to them, so they are in the writer's page
// cache; without type, each of the profile's events in the window was a
// read of its row, one random page of events each. The customer timeline
// still walks the index in time order.
func init() {
	m.Register(func(app core.App) error {
		return setEventsProfileIndex(app, "profile, occurred_at, type")
	}, func(app core.App) error {
		return setEventsProfileIndex(app, "profile, occurred_at")
	}, "0011_events_profile_time_type.go")
}

func setEventsProfileIndex(app core.App, columns string) error {
	events, err := app.FindCollectionByNameOrId("events")
	if err != nil {
		return err
	}
	events.RemoveIndex("idx_events_profile_time")
	events.AddIndex("idx_events_profile_time", false, columns, "")
	return app.Save(events)
}
