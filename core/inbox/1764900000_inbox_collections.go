package inbox

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/store/migrations"
)

// conversations holds one thread with a customer on one channel;
// conversation_messages every message in it (the customer's, an agent's,
// the bot's, a journey's hand-off and private notes). Both are written by
// the inbox (the events transaction and /api/v1/conversations) and read by
// staff; the records API writes nothing, so a reply always goes through
// the gate. The owner's inbox configuration (business hours, SLA targets,
// assignment, CSAT, bot rules, canned responses, chat widgets) is ordinary
// records: owners write, agents read. chat_visitors holds each website
// visitor's hashed widget token, for the server only.
func init() {
	m.Register(func(app core.App) error {
		c := core.NewBaseCollection(ConversationsCollection)
		c.Fields.Add(
			&core.TextField{Name: "profile", Required: true, Max: 50},
			&core.TextField{Name: "channel", Required: true, Max: 20}, // whatsapp | email | sms | chat
			&core.TextField{Name: "status", Max: 20},                  // open | pending | snoozed | resolved
			&core.TextField{Name: "assignee", Max: 50},                // staff id, "" = unassigned
			&core.TextField{Name: "team", Max: 100},
			&core.TextField{Name: "priority", Max: 20}, // none | low | medium | high | urgent
			&core.JSONField{Name: "labels", MaxSize: 1 << 12},
			&core.TextField{Name: "subject", Max: 2000},     // email subject of the thread
			&core.TextField{Name: "thread", Max: 1000},      // email: the thread's root Message-ID
			&core.TextField{Name: "widget", Max: 50},        // chat: the chat_widgets row
			&core.TextField{Name: "address", Max: 500},      // where the customer wrote from (email, phone, wa_id, chat visitor)
			&core.BoolField{Name: "bot"},                    // the bot is handling it (status pending until hand-off)
			&core.DateField{Name: "handoff_at"},             // when it was handed to a person
			&core.DateField{Name: "waiting_since"},          // oldest customer message not yet answered; empty = not waiting
			&core.DateField{Name: "last_message_at"},        //
			&core.TextField{Name: "last_message", Max: 300}, // preview of the latest message
			&core.TextField{Name: "last_author", Max: 20},   // customer | agent | bot | journey | system
			&core.NumberField{Name: "unread", OnlyInt: true},
			&core.DateField{Name: "snoozed_until"},
			&core.BoolField{Name: "snooze_until_reply"},
			&core.DateField{Name: "first_response_due"},
			&core.DateField{Name: "first_response_at"},
			&core.DateField{Name: "next_response_due"},
			&core.NumberField{Name: "sla_breaches", OnlyInt: true},
			&core.DateField{Name: "resolved_at"},
			&core.TextField{Name: "resolved_by", Max: 50},
			&core.DateField{Name: "csat_asked_at"},
			&core.NumberField{Name: "csat_score", OnlyInt: true},
			&core.TextField{Name: "journey_run", Max: 50}, // opened by a journey's hand-off
			&core.JSONField{Name: "context", MaxSize: 1 << 16},
			&core.DateField{Name: "opened_at"},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		c.AddIndex("idx_conversations_profile", false, "profile, channel, last_message_at", "")
		c.AddIndex("idx_conversations_status", false, "status, waiting_since", "")
		c.AddIndex("idx_conversations_assignee", false, "assignee, status", "")
		c.AddIndex("idx_conversations_thread", false, "thread", "thread != ''")
		c.AddIndex("idx_conversations_snoozed", false, "snoozed_until", "status = 'snoozed'")
		c.ListRule = types.Pointer(migrations.RuleStaff)
		c.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(c); err != nil {
			return err
		}

		msg := core.NewBaseCollection(MessagesCollection)
		msg.Fields.Add(
			&core.TextField{Name: "conversation", Required: true, Max: 50},
			&core.TextField{Name: "profile", Required: true, Max: 50},
			&core.TextField{Name: "direction", Max: 10}, // in | out | note
			&core.TextField{Name: "author", Max: 20},    // customer | agent | bot | journey | system
			&core.TextField{Name: "author_staff", Max: 50},
			&core.TextField{Name: "text", Max: 100000},
			&core.JSONField{Name: "attachments", MaxSize: 1 << 16}, // [{name, url?, media_id?, type?}] by reference
			&core.BoolField{Name: "private"},
			&core.JSONField{Name: "mentions", MaxSize: 1 << 12}, // staff ids
			&core.TextField{Name: "external_id", Max: 1000},     // the vendor's message id (wamid, Message-ID, SMS sid)
			&core.TextField{Name: "event", Max: 300},            // the message.received event's id
			&core.TextField{Name: "send_state", Max: 20},        // out: pending (not yet on the bus) | requested (the gate has not decided) | decided
			&core.JSONField{Name: "send", MaxSize: 1 << 16},     // out: the send request (template, wa_template, channel)
			&core.BoolField{Name: "auto_reply"},                 // an out-of-office or similar automatic mail
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		msg.AddIndex("idx_conversation_messages_conv", false, "conversation, created", "")
		msg.AddIndex("idx_conversation_messages_external", false, "external_id", "external_id != ''")
		msg.AddIndex("idx_conversation_messages_pending", false, "send_state", "send_state = 'pending'")
		msg.AddIndex("idx_conversation_messages_requested", false, "send_state", "send_state = 'requested'")
		msg.ListRule = types.Pointer(migrations.RuleStaff)
		msg.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(msg); err != nil {
			return err
		}

		// inbox_settings: one row per part, key → JSON value (hours,
		// sla, assignment, csat, bot, general), so each is edited alone.
		s := core.NewBaseCollection(SettingsCollection)
		s.Fields.Add(
			&core.TextField{Name: "key", Required: true, Max: 50},
			&core.JSONField{Name: "value", MaxSize: 1 << 16},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		s.AddIndex("idx_inbox_settings_key", true, "key", "")
		s.ListRule = types.Pointer(migrations.RuleStaff)
		s.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(s); err != nil {
			return err
		}

		canned := core.NewBaseCollection(CannedCollection)
		canned.Fields.Add(
			&core.TextField{Name: "shortcut", Required: true, Max: 50},
			&core.TextField{Name: "title", Max: 200},
			&core.TextField{Name: "body", Required: true, Max: 10000}, // Liquid, with customer variables
			&core.TextField{Name: "created_by", Max: 50},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		canned.AddIndex("idx_canned_responses_shortcut", true, "shortcut", "")
		canned.ListRule = types.Pointer(migrations.RuleStaff)
		canned.ViewRule = types.Pointer(migrations.RuleStaff)
		canned.CreateRule = types.Pointer(migrations.RuleOwner)
		canned.UpdateRule = types.Pointer(migrations.RuleOwner)
		canned.DeleteRule = types.Pointer(migrations.RuleOwner)
		if err := app.Save(canned); err != nil {
			return err
		}

		rules := core.NewBaseCollection(RulesCollection)
		rules.Fields.Add(
			&core.TextField{Name: "name", Required: true, Max: 200},
			&core.BoolField{Name: "enabled"},
			&core.NumberField{Name: "position", OnlyInt: true},
			&core.JSONField{Name: "channels", MaxSize: 1 << 10}, // [] = every channel
			&core.JSONField{Name: "keywords", MaxSize: 1 << 12}, // any of these words or phrases
			&core.TextField{Name: "action", Max: 30},            // reply | order_status | handoff | label | assign
			&core.TextField{Name: "reply", Max: 10000},          // Liquid
			&core.TextField{Name: "value", Max: 200},            // the label or staff id for label/assign
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		rules.ListRule = types.Pointer(migrations.RuleStaff)
		rules.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(rules); err != nil {
			return err
		}

		w := core.NewBaseCollection(WidgetsCollection)
		w.Fields.Add(
			&core.TextField{Name: "name", Required: true, Max: 100},
			&core.TextField{Name: "source", Max: 50}, // the browser source whose anonymousId the widget shares
			&core.TextField{Name: "key", Max: 100},   // public, in the snippet
			&core.BoolField{Name: "enabled"},
			&core.JSONField{Name: "allowed_origins", MaxSize: 1 << 12},
			&core.TextField{Name: "title", Max: 200},
			&core.TextField{Name: "greeting", Max: 2000},
			&core.TextField{Name: "color", Max: 20},
			&core.BoolField{Name: "ask_email_offline"},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		w.AddIndex("idx_chat_widgets_key", true, "key", "key != ''")
		w.ListRule = types.Pointer(migrations.RuleStaff)
		w.ViewRule = types.Pointer(migrations.RuleStaff)
		if err := app.Save(w); err != nil {
			return err
		}

		v := core.NewBaseCollection(VisitorsCollection)
		v.Fields.Add(
			&core.TextField{Name: "widget", Required: true, Max: 50},
			&core.TextField{Name: "anonymous_id", Max: 200},
			&core.TextField{Name: "token_hash", Max: 100, Hidden: true},
			&core.TextField{Name: "profile", Max: 50},
			&core.TextField{Name: "email", Max: 320},
			&core.DateField{Name: "last_seen"},
			&core.AutodateField{Name: "created", OnCreate: true},
		)
		v.AddIndex("idx_chat_visitors_token", true, "token_hash", "token_hash != ''")
		v.AddIndex("idx_chat_visitors_anon", false, "widget, anonymous_id", "")
		if err := app.Save(v); err != nil {
			return err
		}

		a := core.NewBaseCollection(AgentsCollection)
		a.Fields.Add(
			&core.TextField{Name: "staff", Required: true, Max: 50},
			&core.NumberField{Name: "capacity", OnlyInt: true}, // open conversations at most; 0 = no limit
			&core.BoolField{Name: "away"},                      // the agent set themself away
			&core.DateField{Name: "seen_at"},                   // last heartbeat of an open inbox
			&core.DateField{Name: "last_assigned_at"},
			&core.AutodateField{Name: "created", OnCreate: true},
			&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
		)
		a.AddIndex("idx_inbox_agents_staff", true, "staff", "")
		a.ListRule = types.Pointer(migrations.RuleStaff)
		a.ViewRule = types.Pointer(migrations.RuleStaff)
		return app.Save(a)
	}, func(app core.App) error {
		for _, name := range []string{AgentsCollection, VisitorsCollection, WidgetsCollection, RulesCollection, CannedCollection,
			SettingsCollection, MessagesCollection, ConversationsCollection} {
			if c, err := app.FindCollectionByNameOrId(name); err == nil {
				if err := app.Delete(c); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
