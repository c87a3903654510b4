package inbox

import (
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
)

// inboundProcessor files each message.received into a conversation, and
// hands journey.handoff and survey.answered to their parts, in the
// transaction that stores each batch of events (after profiles, which
// resolves each event's customer). One bad event fails only its own
// retry: the events consumer re-runs a failed batch event by event and
// parks the one that keeps failing.
type inboundProcessor struct{ m *Module }

func (p inboundProcessor) ProcessBatch(tx core.App, batch []*eventstore.Stored) (err error) {
	m := p.m
	b := m.batch.begin(tx)
	defer func() {
		staged, serr := m.batch.end(b, err == nil)
		if err == nil {
			err = serr
		}
		if staged && err == nil {
			m.live.staged.Store(true)
		}
	}()
	return m.processInbound(tx, batch)
}

func (m *Module) processInbound(tx core.App, batch []*eventstore.Stored) error {
	for _, s := range batch {
		ev := s.Event
		if s.Profile == "" {
			continue
		}
		switch ev.Type {
		case events.MessageReceived:
			in, ok := inboundFrom(s)
			if !ok {
				continue
			}
			f, err := m.receive(tx, in)
			if err != nil {
				return err
			}
			if f == nil {
				continue
			}
			if err := m.afterInbound(tx, f, ev); err != nil {
				return err
			}
		case events.MessageSent, events.MessageDelivered, events.MessageRead, events.MessageFailed:
			m.touchOutbound(tx, ev)
		case "journey.handoff":
			if err := m.onJourneyHandoff(tx, s); err != nil { // automation.go
				return err
			}
		case events.SurveyAnswered:
			if err := m.onSurveyAnswered(tx, s); err != nil { // csat.go
				return err
			}
		}
	}
	return nil
}

// afterInbound runs the parts that react to a customer's message, in the
// events transaction: SLA due times, then the bot and assignment.
func (m *Module) afterInbound(tx core.App, f *Filed, ev *events.Event) error {
	if f.Message.AutoReply {
		return nil
	}
	if err := m.slaOnCustomerMessage(tx, f); err != nil { // sla.go
		return err
	}
	if err := m.csatOnCustomerMessage(tx, f, ev); err != nil { // csat.go: an answer to "how did we do?"
		return err
	}
	if err := m.widgetOnInbound(tx, f, ev); err != nil { // widget.go
		return err
	}
	if f.SurveyScore > 0 {
		return nil // an answer to "how did we do?": no bot, no hand-off
	}
	return m.automateInbound(tx, f, ev) // automation.go: business hours, bot rules, hand-off, assignment
}

// inboundFrom reads a message.received event as an Inbound.
func inboundFrom(s *eventstore.Stored) (Inbound, bool) {
	ev := s.Event
	ch := ev.Context.Channel
	if !validChannel(ch) {
		return Inbound{}, false
	}
	p := ev.Properties
	str := func(k string) string { v, _ := p[k].(string); return v }
	in := Inbound{Profile: s.Profile, Channel: ch, Text: str("text"), EventID: ev.ID, At: ev.OccurredAt,
		ExternalID: firstNonEmpty(str("provider_message_id"), str("message_id"), ev.ID)}
	if in.At.IsZero() {
		in.At = ev.ReceivedAt
	}
	switch ch {
	case "email":
		in.Subject, in.Thread, in.Address = str("subject"), str("conversation_key"), firstNonEmpty(str("from"), ev.Identities[events.Email])
		if r := str("in_reply_to"); r != "" {
			in.RepliesTo = append(in.RepliesTo, r)
		}
		if refs, ok := p["references"].([]any); ok {
			for _, r := range refs {
				if s, ok := r.(string); ok && s != "" {
					in.RepliesTo = append(in.RepliesTo, s)
				}
			}
		}
	case "sms":
		in.Address = firstNonEmpty(str("from"), ev.Identities[events.Phone])
	case "whatsapp":
		in.Address = firstNonEmpty(ev.Identities[events.WhatsAppID], ev.Identities[events.Phone])
	case "chat":
		in.Widget, in.Address = str("widget"), str("visitor")
	}
	if a, ok := p["auto_reply"].(bool); ok && a {
		in.AutoReply = true
	}
	in.Attachments = attachmentsFrom(p)
	if strings.TrimSpace(in.Text) == "" && len(in.Attachments) == 0 {
		if t := str("type"); t != "" && t != "text" {
			in.Text = "[" + t + "]" // a WhatsApp reaction, location, sticker…
		}
	}
	return in, true
}

// attachmentsFrom lists a message's attachments by reference (names, media
// ids, URLs): the files stay with the vendor.
func attachmentsFrom(p map[string]any) []any {
	var out []any
	if names, ok := p["attachments"].([]any); ok {
		for _, n := range names {
			out = append(out, map[string]any{"name": n})
		}
	}
	if id, ok := p["media_id"].(string); ok && id != "" {
		out = append(out, map[string]any{"media_id": id, "type": p["type"]})
	}
	if urls, ok := p["media_urls"].([]any); ok {
		types, _ := p["media_content_types"].([]any)
		for i, u := range urls {
			a := map[string]any{"url": u}
			if i < len(types) {
				a["type"] = types[i]
			}
			out = append(out, a)
		}
	}
	return out
}

// touchOutbound tells staff watching a conversation that one of its
// replies changed status (the status itself is the send ledger's).
func (m *Module) touchOutbound(tx core.App, ev *events.Event) {
	var keys []any
	for _, k := range []string{"message_id", "outbound_id", "provider_message_id"} {
		if v, _ := ev.Properties[k].(string); v != "" {
			keys = append(keys, v)
		}
	}
	if len(keys) == 0 {
		return
	}
	var row struct {
		ID           string `db:"id"`
		Conversation string `db:"conversation"`
	}
	err := tx.DB().Select("id", "conversation").From("messages").
		Where(dbx.And(dbx.Or(dbx.In("id", keys...), dbx.In("provider_id", keys...)), dbx.NewExp("conversation != ''"))).
		Limit(1).One(&row)
	if err == nil {
		m.live.touch(row.Conversation, row.ID)
	}
}

func validChannel(ch string) bool {
	for _, c := range Channels {
		if c == ch {
			return true
		}
	}
	return false
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
