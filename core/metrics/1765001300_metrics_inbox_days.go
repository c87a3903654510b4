package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// InboxDaysCollection is the inbox report's daily rollup of
// metrics_conversations: per day (in the shop's zone) of the first
// opening, channel and assignee, the counts that add up and the lists
// the medians, p90 and first-contact resolution need (inbox_days.go).
// Each row carries the stamp of its day's conversation rows (how many,
// and the sum of their versions): a report works out again the days
// whose rows moved since. Written by the module only; staff read it.
const InboxDaysCollection = "metrics_inbox_days"

func init() {
	m.Register(func(app core.App) error {
		rows, err := app.FindCollectionByNameOrId(InboxConversationsCollection)
		if err != nil {
			return err
		}
		rows.Fields.Add(
			// When the customer came back after the first resolution (a
			// reopen, another conversation on the channel), unix ms; 0 never.
			&core.NumberField{Name: "follow_ms", OnlyInt: true},
			// Changes whenever the row is written: the days' stamps add it up.
			&core.NumberField{Name: "version", OnlyInt: true},
		)
		rows.RemoveIndex("idx_metrics_conversations_opened")
		rows.AddIndex("idx_metrics_conversations_opened", false, "opened_ms, follow_ms, version, packed", "")
		rows.AddIndex("idx_metrics_conversations_stamp", false, "opened_ms, version", "")
		rows.AddIndex("idx_metrics_conversations_pair", false, "profile, channel, opened_ms", "")
		if err := app.Save(rows); err != nil {
			return err
		}
		// The rows so far have no follow-up time: the next report works
		// them all out again.
		if _, err := app.DB().NewQuery("DELETE FROM " + InboxConversationsCollection).Execute(); err != nil {
			return err
		}

		c := core.NewBaseCollection(InboxDaysCollection)
		c.Fields.Add(
			&core.TextField{Name: "zone", Max: 100},
			&core.NumberField{Name: "day_ms", OnlyInt: true}, // the day's first instant in zone, unix ms
			&core.TextField{Name: "channel", Max: 50},
			&core.TextField{Name: "assignee", Max: 50},
			&core.TextField{Name: "stamp", Max: 60}, // "count:sum of versions" of the day's conversation rows
			// inboxDay.pack; a busy day's lists run long (the module
			// writes it with SQL, no length limit applies).
			&core.TextField{Name: "packed"},
		)
		c.AddIndex("idx_metrics_inbox_days_day", false, "zone, day_ms", "")
		staffRead(c)
		return app.Save(c)
	}, func(app core.App) error {
		if c, err := app.FindCollectionByNameOrId(InboxDaysCollection); err == nil {
			if err := app.Delete(c); err != nil {
				return err
			}
		}
		rows, err := app.FindCollectionByNameOrId(InboxConversationsCollection)
		if err != nil {
			return nil
		}
		rows.Fields.RemoveByName("follow_ms")
		rows.Fields.RemoveByName("version")
		rows.RemoveIndex("idx_metrics_conversations_stamp")
		rows.RemoveIndex("idx_metrics_conversations_pair")
		rows.RemoveIndex("idx_metrics_conversations_opened")
		rows.AddIndex("idx_metrics_conversations_opened", false, "opened_ms, packed", "")
		return app.Save(rows)
	})
}
