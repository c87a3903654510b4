package metrics

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// InboxConversationsCollection holds one compact row per conversation of
// the inbox: what the inbox report needs of it, worked out once (first
// response and resolution in seconds, first resolution, first reopen after
// it, replies by agent) instead of on every report from the inbox's wide
// rows, its messages and its events. The report refreshes the rows whose
// conversation changed (inbox_rows.go); the module writes it only, staff
// read it.
const InboxConversationsCollection = "metrics_conversations"

func init() {
	m.Register(func(app core.App) error {
		c := core.NewBaseCollection(InboxConversationsCollection)
		c.Fields.Add(
			// The row's id is the conversation's id.
			&core.TextField{Name: "profile", Max: 50},
			&core.TextField{Name: "channel", Max: 50},
			&core.TextField{Name: "assignee", Max: 50},
			&core.NumberField{Name: "opened_ms", OnlyInt: true},   // first opening (the conversation's created), unix ms
			&core.NumberField{Name: "resolved_ms", OnlyInt: true}, // latest resolution while resolved, else 0
			&core.NumberField{Name: "frt"},                        // first response of the latest opening, seconds; -1 none
			&core.NumberField{Name: "resolution"},                 // opening to resolution, seconds; -1 none
			&core.BoolField{Name: "by_bot"},
			&core.BoolField{Name: "handed_off"},
			&core.NumberField{Name: "sla_breaches", OnlyInt: true},
			&core.NumberField{Name: "csat", OnlyInt: true},
			&core.NumberField{Name: "first_resolved_ms", OnlyInt: true}, // first resolution, 0 never
			&core.NumberField{Name: "reopened_ms", OnlyInt: true},       // first reopen after it, 0 none
			&core.TextField{Name: "replies", Max: 2000},                 // agent replies: "staff:n,staff:n"
			&core.TextField{Name: "src_updated", Max: 40},               // the conversation's updated the row was worked out from
			&core.BoolField{Name: "dirty"},                              // its events changed: work it out again
			// The report's fields in one text (inboxRow.pack): a report
			// reads tens of thousands of rows, and each column read costs.
			&core.TextField{Name: "packed", Max: 3000},
		)
		// Covering: a period's rows are read from the index alone.
		c.AddIndex("idx_metrics_conversations_opened", false, "opened_ms, packed", "")
		c.AddIndex("idx_metrics_conversations_resolved", false, "resolved_ms, opened_ms, channel, assignee", "resolved_ms > 0")
		c.AddIndex("idx_metrics_conversations_profile", false, "profile", "")
		c.AddIndex("idx_metrics_conversations_src", false, "src_updated", "")
		c.AddIndex("idx_metrics_conversations_dirty", false, "dirty", "dirty = 1")
		staffRead(c)
		if err := app.Save(c); err != nil {
			return err
		}
		// The refresh finds changed conversations by their updated time
		// (covering the id, so the index alone answers).
		if app.HasTable("conversations") {
			if _, err := app.DB().NewQuery("CREATE INDEX IF NOT EXISTS idx_metrics_conversations_updated ON conversations (updated, id)").Execute(); err != nil {
				return err
			}
		}
		return nil
	}, func(app core.App) error {
		if _, err := app.DB().NewQuery("DROP INDEX IF EXISTS idx_metrics_conversations_updated").Execute(); err != nil {
			return err
		}
		c, err := app.FindCollectionByNameOrId(InboxConversationsCollection)
		if err != nil {
			return nil
		}
		return app.Delete(c)
	})
}
