package inbox

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/store"
)

// What happens to a customer's message after it is filed, in the events
// transaction: the bot takes a new conversation (when on), answers what
// its rules know and hands the rest to a person; a conversation that
// needs a person gets the away message outside business hours (once per
// opening) and an agent when assignment is automatic.

// EventConversationHandoff is emitted when the bot or a journey hands a
// conversation to staff.
const EventConversationHandoff = "conversation.handoff"

// automationRoutes: the bot's rules (hours and the bot setting are
// settings, through settings_api.go).
func (m *Module) automationRoutes(g *router.RouterGroup[*core.RequestEvent]) {
	m.ruleRoutes(g) // rules_api.go
}

// automateInbound runs business hours, the bot rules, hand-off and
// assignment on a customer's message, in the events transaction.
func (m *Module) automateInbound(tx core.App, f *Filed, ev *events.Event) error {
	// f.Conversation is the row as filed and then changed by the SLA part
	// (which keeps it current); a CSAT answer never gets here.
	c := f.Conversation
	if c.Status == StatusResolved || c.Status == StatusSnoozed {
		return nil
	}
	now := m.opts.Now()
	bot := m.bot()
	if bot.Enabled && (f.Opened || f.Reopened) && c.Status == StatusOpen && c.Assignee == "" {
		// The bot takes new conversations until it hands them off.
		if _, err := tx.DB().Update(ConversationsCollection, dbx.Params{"status": StatusPending, "bot": true,
			"updated": store.FormatTime(now)}, dbx.HashExp{"id": c.ID}).Execute(); err != nil {
			return err
		}
		c.Status, c.Bot = StatusPending, true
		m.live.touch(c.ID, "")
	}
	if c.Status == StatusPending && c.Bot {
		handled, err := m.runBot(tx, c, f.Message, bot, now)
		if err != nil || handled {
			return err
		}
	}
	if c.Status != StatusOpen {
		return nil
	}
	return m.needsPerson(tx, c, now)
}

// needsPerson is what a conversation that waits for staff gets: the away
// message outside business hours, and an agent if assignment is
// automatic.
func (m *Module) needsPerson(tx core.App, c *Conversation, now time.Time) error {
	if err := m.awayMessage(tx, c, now); err != nil {
		return err
	}
	_, err := m.autoAssign(tx, c, now)
	return err
}

// awayMessage posts the away message (author bot) when channel c is
// outside business hours and no away message went out since c last
// opened (the message carries the opening it answered in send.away): one
// per opening, not one per message.
func (m *Module) awayMessage(tx core.App, c *Conversation, now time.Time) error {
	h := m.hours()
	if h.AwayMessage == "" || h.Open(c.Channel, now) {
		return nil
	}
	var n int
	if err := tx.DB().NewQuery(`SELECT COUNT(*) FROM ` + MessagesCollection + ` WHERE conversation = {:c} AND author = 'bot'
		AND json_extract(send, '$.away') = {:opened}`).
		Bind(dbx.Params{"c": c.ID, "opened": c.OpenedAt}).Row(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	_, err := m.post(tx, c, Outgoing{Author: AuthorBot, Text: h.AwayMessage, Send: map[string]any{"liquid": true, "away": c.OpenedAt}, At: now})
	return err
}

// runBot matches msg against the hand-off keywords and the rules; true
// when the bot dealt with it (answered or deliberately left it waiting).
// A hand-off leaves c open for a person and returns false so the caller
// goes on to away message and assignment.
func (m *Module) runBot(tx core.App, c *Conversation, msg *Message, bot Bot, now time.Time) (bool, error) {
	text := normalize(msg.Text)
	if kw, ok := matchesAny(text, bot.HandoffKeywords); ok {
		return false, m.handoff(tx, c, fmt.Sprintf("the customer asked for a person (%q)", kw), now)
	}
	rules, err := listRules(tx.DB(), true)
	if err != nil {
		return false, err
	}
	for i := range rules {
		r := &rules[i]
		if !r.appliesTo(c.Channel) {
			continue
		}
		if _, ok := matchesAny(text, stringsOf(r.Keywords)); !ok {
			continue
		}
		switch r.Action {
		case ActionReply:
			return true, m.botAnswer(tx, c, Outgoing{Author: AuthorBot, Text: r.Reply, Send: map[string]any{"liquid": true, "rule": r.ID}, At: now})
		case ActionOrderStatus:
			o, err := latestOrder(tx.DB(), c.Profile)
			if err != nil {
				return false, err
			}
			if o == nil {
				return false, m.handoff(tx, c, fmt.Sprintf("rule %q: no order found for this customer", r.Name), now)
			}
			return true, m.botAnswer(tx, c, Outgoing{Author: AuthorBot, Text: o.Text(), Send: map[string]any{"rule": r.ID}, At: now})
		case ActionLabel:
			if err := m.addLabel(tx, c, r.Value, now); err != nil {
				return false, err
			}
			continue // a label answers nothing: later rules still run
		case ActionAssign:
			if err := m.handoff(tx, c, fmt.Sprintf("rule %q", r.Name), now); err != nil {
				return false, err
			}
			if _, err := tx.FindRecordById("staff", r.Value); err == nil && c.Assignee == "" {
				if err := m.assignTo(tx, c, r.Value, now); err != nil {
					return false, err
				}
			}
			return false, nil
		case ActionHandoff:
			return false, m.handoff(tx, c, fmt.Sprintf("rule %q", r.Name), now)
		}
	}
	if bot.Fallback == "none" {
		return true, nil // it waits in the pending view
	}
	return false, m.handoff(tx, c, "no rule answered the message", now)
}

// botAnswer posts the bot's answer: the customer is no longer waiting
// (until they write again or the bot hands off).
func (m *Module) botAnswer(tx core.App, c *Conversation, out Outgoing) error {
	if _, err := m.post(tx, c, out); err != nil {
		return err
	}
	_, err := tx.DB().Update(ConversationsCollection, dbx.Params{"waiting_since": ""}, dbx.HashExp{"id": c.ID}).Execute()
	c.WaitingSince = ""
	return err
}

// handoff gives a bot conversation to staff: open, bot off, handoff_at,
// a private "Handed off: <reason>" note and conversation.handoff. The
// bot's messages stay in the history.
func (m *Module) handoff(tx core.App, c *Conversation, reason string, now time.Time) error {
	if err := m.setStatus(tx, c, StatusOpen, "bot", now); err != nil {
		return err
	}
	c.Bot = false
	// From now on the customer waits for a person.
	if _, err := tx.DB().NewQuery(`UPDATE ` + ConversationsCollection + ` SET waiting_since = {:now} WHERE id = {:id} AND waiting_since = ''`).
		Bind(dbx.Params{"now": store.FormatTime(now), "id": c.ID}).Execute(); err != nil {
		return err
	}
	if _, err := m.post(tx, c, Outgoing{Author: AuthorSystem, Text: "Handed off: " + reason, Private: true, At: now}); err != nil {
		return err
	}
	return m.stage(tx, conversationEvent(EventConversationHandoff, c, now, map[string]any{"reason": reason}))
}

// addLabel adds label to c's labels (once).
func (m *Module) addLabel(tx core.App, c *Conversation, label string, now time.Time) error {
	label = strings.TrimSpace(label)
	if label == "" {
		return nil
	}
	labels := stringsOf(c.Labels)
	for _, l := range labels {
		if l == label {
			return nil
		}
	}
	labels = append(labels, label)
	sort.Strings(labels)
	if _, err := tx.DB().Update(ConversationsCollection, dbx.Params{"labels": jsonText(labels), "updated": store.FormatTime(now)},
		dbx.HashExp{"id": c.ID}).Execute(); err != nil {
		return err
	}
	c.Labels = JSONList{}
	for _, l := range labels {
		c.Labels = append(c.Labels, l)
	}
	m.live.touch(c.ID, "")
	return nil
}

// onJourneyHandoff opens (or continues) a conversation for a journey's
// notify step that asked for one (open_conversation): on the channel the
// customer last wrote on, else the first they have an address for (email,
// WhatsApp, SMS), with the journey's run and context on the conversation
// and a private note (author journey) saying why.
func (m *Module) onJourneyHandoff(tx core.App, s *eventstore.Stored) error {
	p := s.Event.Properties
	if open, _ := p["open_conversation"].(bool); !open {
		return nil // a notification only
	}
	now := m.opts.Now()
	db := tx.DB()
	channel, address, err := preferredChannel(db, s.Profile)
	if err != nil {
		return err
	}
	run, _ := p["run"].(string)
	journeyCtx := map[string]any{}
	for _, k := range []string{"journey", "journey_name", "run", "node", "message", "context"} {
		if v, ok := p[k]; ok {
			journeyCtx[k] = v
		}
	}
	c, err := m.openForHandoff(tx, s.Profile, channel, address, now)
	if err != nil {
		return err
	}
	ctxJSON, _ := json.Marshal(journeyCtx)
	if _, err := db.NewQuery(`UPDATE ` + ConversationsCollection + ` SET journey_run = {:run}, context = {:ctx},
		waiting_since = CASE WHEN waiting_since = '' THEN {:now} ELSE waiting_since END, updated = {:now} WHERE id = {:id}`).
		Bind(dbx.Params{"run": clip(run, 50), "ctx": string(ctxJSON), "now": store.FormatTime(now), "id": c.ID}).Execute(); err != nil {
		return err
	}
	c.JourneyRun = run
	if c.Status == StatusPending && c.Bot {
		if err := m.setStatus(tx, c, StatusOpen, "journey", now); err != nil {
			return err
		}
	}
	note := journeyNote(journeyCtx, address == "")
	if _, err := m.post(tx, c, Outgoing{Author: AuthorJourney, Text: note, Private: true, At: now}); err != nil {
		return err
	}
	if err := m.stage(tx, conversationEvent(EventConversationHandoff, c, now,
		map[string]any{"reason": "journey", "journey": p["journey"], "run": run})); err != nil {
		return err
	}
	_, err = m.autoAssign(tx, c, now)
	return err
}

// openForHandoff continues the customer's unresolved conversation on
// channel, or opens a new one (conversation.opened).
func (m *Module) openForHandoff(tx core.App, profile, channel, address string, now time.Time) (*Conversation, error) {
	db := tx.DB()
	var c Conversation
	err := db.NewQuery(`SELECT * FROM ` + ConversationsCollection + ` WHERE profile = {:p} AND channel = {:ch} AND status != 'resolved'
		ORDER BY last_message_at DESC, created DESC LIMIT 1`).Bind(dbx.Params{"p": profile, "ch": channel}).One(&c)
	if err == nil {
		if c.Status == StatusSnoozed {
			if err := m.setStatus(tx, &c, StatusOpen, "journey", now); err != nil {
				return nil, err
			}
		}
		return &c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	ts := store.FormatTime(now)
	c = Conversation{ID: store.NewRecordID(), Profile: profile, Channel: channel, Status: StatusOpen, Priority: "none",
		Address: clip(address, 500), OpenedAt: ts}
	if _, err := db.NewQuery(`INSERT INTO ` + ConversationsCollection + ` (id, profile, channel, status, assignee, team, priority, labels,
		subject, thread, widget, address, bot, handoff_at, waiting_since, last_message_at, last_message, last_author, unread,
		snoozed_until, snooze_until_reply, first_response_due, first_response_at, next_response_due, sla_breaches, resolved_at,
		resolved_by, csat_asked_at, csat_score, journey_run, context, opened_at, created, updated)
		VALUES ({:id}, {:profile}, {:channel}, 'open', '', '', 'none', '[]', '', '', '', {:address}, 0, {:now}, '',
		{:now}, '', 'journey', 0, '', 0, '', '', '', 0, '', '', '', 0, '', '{}', {:now}, {:now}, {:now})`).
		Bind(dbx.Params{"id": c.ID, "profile": profile, "channel": channel, "address": c.Address, "now": ts}).Execute(); err != nil {
		return nil, err
	}
	if err := m.stage(tx, conversationEvent(EventConversationOpened, &c, now, map[string]any{"reopened": false, "journey": true})); err != nil {
		return nil, err
	}
	m.live.touch(c.ID, "")
	return &c, nil
}

// preferredChannel is where to reach a customer: the channel they last
// wrote on, else the first of email, WhatsApp, SMS they have an address
// for, else email with no address (staff still see the hand-off).
func preferredChannel(db dbx.Builder, profile string) (channel, address string, err error) {
	var last struct {
		Channel string `db:"channel"`
		Address string `db:"address"`
	}
	err = db.NewQuery(`SELECT c.channel, c.address FROM ` + MessagesCollection + ` cm JOIN ` + ConversationsCollection + ` c ON c.id = cm.conversation
		WHERE cm.profile = {:p} AND cm.direction = 'in' ORDER BY cm.created DESC LIMIT 1`).Bind(dbx.Params{"p": profile}).One(&last)
	if err == nil && last.Channel != "" {
		return last.Channel, last.Address, nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", "", err
	}
	var ids []struct {
		Kind  string `db:"kind"`
		Value string `db:"value"`
	}
	if err := db.NewQuery("SELECT kind, value FROM identities WHERE profile = {:p} ORDER BY created DESC").
		Bind(dbx.Params{"p": profile}).All(&ids); err != nil {
		return "", "", err
	}
	for _, want := range []struct{ kind, channel string }{{events.Email, "email"}, {events.WhatsAppID, "whatsapp"}, {events.Phone, "sms"}} {
		for _, id := range ids {
			if id.Kind == want.kind {
				return want.channel, id.Value, nil
			}
		}
	}
	return "email", "", nil
}

// journeyNote is the private note a journey's hand-off leaves.
func journeyNote(jc map[string]any, noAddress bool) string {
	var b strings.Builder
	name, _ := jc["journey_name"].(string)
	if name == "" {
		name, _ = jc["journey"].(string)
	}
	fmt.Fprintf(&b, "Journey %q handed this customer to you.", name)
	if msg, _ := jc["message"].(string); strings.TrimSpace(msg) != "" {
		b.WriteString("\n" + strings.TrimSpace(msg))
	}
	if ctx, ok := jc["context"].(map[string]any); ok {
		if ev, _ := ctx["event"].(string); ev != "" {
			b.WriteString("\nTriggered by: " + ev)
		}
		if seg, _ := ctx["segment"].(string); seg != "" {
			b.WriteString("\nSegment: " + seg)
		}
	}
	if noAddress {
		b.WriteString("\nThis customer has no email, WhatsApp or phone on file: a reply cannot be delivered until they write.")
	}
	return b.String()
}
