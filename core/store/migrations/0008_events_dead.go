package migrations

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"
)

// events_dead holds the messages a consumer could not process after
// retrying them one by one (core/deadletter): parked and acknowledged, so
// one bad event never stops the rest. Owners see them and ask for a retry
// (retry_requested); the consumer that parked a row re-drives it.
//
// relay_pending gets a monotonic seq so staged events are published in the
// order they were staged (record ids are only millisecond-ordered).
func init() {
	m.Register(func(app core.App) error {
		c := core.NewBaseCollection("events_dead")
		c.Fields.Add(
			&core.TextField{Name: "consumer", Required: true, Max: 100},
			&core.TextField{Name: "event_id", Required: true, Max: 600},
			&core.TextField{Name: "subject", Max: 300},
			&core.TextField{Name: "type", Max: 200},
			&core.TextField{Name: "data"},
			&core.TextField{Name: "error", Max: 4000},
			&core.NumberField{Name: "attempts", OnlyInt: true},
			&core.DateField{Name: "first_failed"},
			&core.DateField{Name: "last_failed"},
			&core.BoolField{Name: "retry_requested"},
		)
		c.AddIndex("idx_events_dead_consumer_event", true, "consumer, event_id", "")
		c.AddIndex("idx_events_dead_retry", false, "consumer", "retry_requested = 1")
		// Owners read them and ask for retries (update of retry_requested
		// goes through /api/v1/events/dead/retry); agents never see raw events
		// of other people's failures.
		c.ListRule = types.Pointer(RuleOwner)
		c.ViewRule = types.Pointer(RuleOwner)
		c.DeleteRule = types.Pointer(RuleOwner)
		if err := app.Save(c); err != nil {
			return err
		}

		relay, err := app.FindCollectionByNameOrId("relay_pending")
		if err != nil {
			return err
		}
		addRelaySeq(relay)
		return app.Save(relay)
	}, func(app core.App) error {
		if c, err := app.FindCollectionByNameOrId("events_dead"); err == nil {
			if err := app.Delete(c); err != nil {
				return err
			}
		}
		return nil
	})
}

// addRelaySeq gives relay_pending its seq field and index (migration
// 0011's down step adds them again).
func addRelaySeq(c *core.Collection) {
	c.Fields.Add(&core.NumberField{Name: "seq", OnlyInt: true})
	c.AddIndex("idx_relay_pending_seq", false, "seq", "")
}
