package messaging

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/store/migrations"
)

// messages is the send ledger: one row per message Omni was asked to send,
// written before the message is enqueued and moved forward by the status
// events. message_suppressions lists addresses that failed permanently
// (hard bounce, SMTP 5xx): only marketing and transactional sends to other
// addresses go out. Staff read both; only the gate writes them (an owner
// may delete a suppression once the address is fixed).
func init() {
	m.Register(func(app core.App) error {
		msgs := core.NewBaseCollection(Collection)
		msgs.Fields.Add(
			&core.TextField{Name: "profile", Required: true, Max: 50},
			&core.TextField{Name: "channel", Max: 20},
			&core.TextField{Name: "kind", Max: 20},
			&core.TextField{Name: "template", Max: 100},
			&core.TextField{Name: "subject", Max: 2000},
			&core.TextField{Name: "body", Max: 200000},
			&core.TextField{Name: "html", Max: 1000000},
			&core.TextField{Name: "to", Max: 300},
			&core.TextField{Name: "status", Max: 20},
			&core.TextField{Name: "reason", Max: 2000},
			&core.TextField{Name: "error_code", Max: 256},
			&core.TextField{Name: "provider_id", Max: 300},
			&core.TextField{Name: "connector", Max: 100},
			&core.TextField{Name: "journey_run", Max: 200},
			&core.TextField{Name: "conversation", Max: 200},
			&core.TextField{Name: "event", Max: 256},
			&core.JSONField{Name: "attempts", MaxSize: 1 << 14},
			// outbound is the exact OutboundMessage to enqueue: a re-drive
			// after a crash or a scheduled send publishes what was staged.
			&core.JSONField{Name: "outbound", MaxSize: 1 << 21, Hidden: true},
			&core.BoolField{Name: "enqueued"},
			&core.DateField{Name: "send_at"},
			&core.DateField{Name: "queued_at"},
			&core.DateField{Name: "sent_at"},
			&core.DateField{Name: "delivered_at"},
			&core.DateField{Name: "read_at"},
			&core.DateField{Name: "failed_at"},
			&core.DateField{Name: "suppressed_at"},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		msgs.AddIndex("idx_messages_profile_created", false, "profile, created", "")
		msgs.AddIndex("idx_messages_due", false, "status, send_at", "")
		msgs.AddIndex("idx_messages_provider", false, "provider_id", "provider_id != ''")
		msgs.ListRule = types.Pointer(migrations.RuleStaff)
		msgs.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(msgs); err != nil {
			return err
		}

		sup := core.NewBaseCollection(SuppressionsCollection)
		sup.Fields.Add(
			&core.TextField{Name: "channel", Required: true, Max: 20},
			&core.TextField{Name: "address", Required: true, Max: 300},
			&core.TextField{Name: "profile", Max: 50},
			&core.TextField{Name: "reason", Max: 2000},
			&core.TextField{Name: "message", Max: 50},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		sup.AddIndex("idx_message_suppressions_address", true, "channel, address", "")
		sup.AddIndex("idx_message_suppressions_profile", false, "profile", "")
		sup.ListRule = types.Pointer(migrations.RuleStaff)
		sup.ViewRule = types.Pointer(migrations.RuleStaff)
		sup.DeleteRule = types.Pointer(migrations.RuleOwner)
		return app.Save(sup)
	}, func(app core.App) error {
		for _, name := range []string{Collection, SuppressionsCollection} {
			if c, err := app.FindCollectionByNameOrId(name); err == nil {
				if err := app.Delete(c); err != nil {
					return err
				}
			}
		}
		return nil
	}, "1764600000_messaging_ledger.go")
}
