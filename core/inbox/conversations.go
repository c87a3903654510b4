package inbox

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/relay"
	"github.com/omni/omni/core/store"
)

// Conversation is a row of conversations. Dates are PocketBase's stored
// form ("2006-01-02 15:04:05.000Z", "" when unset).
type Conversation struct {
	ID               string   `db:"id" json:"id"`
	Profile          string   `db:"profile" json:"profile"`
	Channel          string   `db:"channel" json:"channel"`
	Status           string   `db:"status" json:"status"`
	Assignee         string   `db:"assignee" json:"assignee"`
	Team             string   `db:"team" json:"team"`
	Priority         string   `db:"priority" json:"priority"`
	Labels           JSONList `db:"labels" json:"labels"`
	Subject          string   `db:"subject" json:"subject"`
	Thread           string   `db:"thread" json:"thread"`
	Widget           string   `db:"widget" json:"widget"`
	Address          string   `db:"address" json:"address"`
	Bot              bool     `db:"bot" json:"bot"`
	HandoffAt        string   `db:"handoff_at" json:"handoff_at"`
	WaitingSince     string   `db:"waiting_since" json:"waiting_since"`
	LastMessageAt    string   `db:"last_message_at" json:"last_message_at"`
	LastMessage      string   `db:"last_message" json:"last_message"`
	LastAuthor       string   `db:"last_author" json:"last_author"`
	Unread           int      `db:"unread" json:"unread"`
	SnoozedUntil     string   `db:"snoozed_until" json:"snoozed_until"`
	SnoozeUntilReply bool     `db:"snooze_until_reply" json:"snooze_until_reply"`
	FirstResponseDue string   `db:"first_response_due" json:"first_response_due"`
	FirstResponseAt  string   `db:"first_response_at" json:"first_response_at"`
	NextResponseDue  string   `db:"next_response_due" json:"next_response_due"`
	SLABreaches      int      `db:"sla_breaches" json:"sla_breaches"`
	ResolvedAt       string   `db:"resolved_at" json:"resolved_at"`
	ResolvedBy       string   `db:"resolved_by" json:"resolved_by"`
	CSATAskedAt      string   `db:"csat_asked_at" json:"csat_asked_at"`
	CSATScore        int      `db:"csat_score" json:"csat_score"`
	JourneyRun       string   `db:"journey_run" json:"journey_run"`
	Context          JSONMap  `db:"context" json:"context"`
	OpenedAt         string   `db:"opened_at" json:"opened_at"`
	Created          string   `db:"created" json:"created"`
	Updated          string   `db:"updated" json:"updated"`
}

// Message is a row of conversation_messages.
type Message struct {
	ID           string   `db:"id" json:"id"`
	Conversation string   `db:"conversation" json:"conversation"`
	Profile      string   `db:"profile" json:"profile"`
	Direction    string   `db:"direction" json:"direction"`
	Author       string   `db:"author" json:"author"`
	AuthorStaff  string   `db:"author_staff" json:"author_staff"`
	Text         string   `db:"text" json:"text"`
	Attachments  JSONList `db:"attachments" json:"attachments"`
	Private      bool     `db:"private" json:"private"`
	Mentions     JSONList `db:"mentions" json:"mentions"`
	ExternalID   string   `db:"external_id" json:"external_id"`
	Event        string   `db:"event" json:"event"`
	SendState    string   `db:"send_state" json:"send_state"`
	Send         JSONMap  `db:"send" json:"send"`
	AutoReply    bool     `db:"auto_reply" json:"auto_reply"`
	Created      string   `db:"created" json:"created"`
}

// JSONList and JSONMap scan a JSON column (NULL or "" as empty).
type (
	JSONList []any
	JSONMap  map[string]any
)

func (l *JSONList) Scan(v any) error { return scanJSON(v, l) }
func (m *JSONMap) Scan(v any) error  { return scanJSON(v, m) }

func scanJSON(v any, dst any) error {
	var b []byte
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		return fmt.Errorf("inbox: cannot scan %T as JSON", v)
	}
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return json.Unmarshal(b, dst)
}

func jsonText(v any) string {
	if v == nil {
		return "[]"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// ErrNotFound is a conversation or message that does not exist.
var ErrNotFound = errors.New("not found")

// loadConversation reads one conversation (ErrNotFound when missing).
func loadConversation(db dbx.Builder, id string) (*Conversation, error) {
	var c Conversation
	err := db.NewQuery("SELECT * FROM " + ConversationsCollection + " WHERE id = {:id}").Bind(dbx.Params{"id": id}).One(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// loadMessage reads one conversation message (ErrNotFound when missing).
func loadMessage(db dbx.Builder, id string) (*Message, error) {
	var msg Message
	err := db.NewQuery("SELECT * FROM " + MessagesCollection + " WHERE id = {:id}").Bind(dbx.Params{"id": id}).One(&msg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &msg, nil
}

// Inbound is one customer message to file into a conversation.
type Inbound struct {
	Profile     string
	Channel     string
	Text        string
	Attachments []any
	ExternalID  string // the vendor's id for the message
	EventID     string // the message.received event's id
	At          time.Time
	Subject     string   // email
	Thread      string   // email: the thread's root Message-ID (conversation_key)
	RepliesTo   []string // email: In-Reply-To and References, to find the thread
	Address     string   // where the customer wrote from
	Widget      string   // chat: the chat_widgets row
	AutoReply   bool     // an out-of-office: filed, but opens and reopens nothing
}

// Filed is what receive did with an inbound message.
type Filed struct {
	Conversation *Conversation
	Message      *Message
	Opened       bool // a new conversation
	Reopened     bool // a resolved (or snoozed) one came back
	// SurveyScore is set when the message answers the CSAT question
	// (csat.go): it is filed without reopening or waiting for a reply.
	SurveyScore int
}

// receive files in into the customer's conversation on its channel: the
// email thread it answers, else the latest conversation on the channel if
// it is not resolved or was resolved within the reopen window, else a new
// one. Runs in the events transaction.
func (m *Module) receive(tx core.App, in Inbound) (*Filed, error) {
	c, err := m.findConversation(tx, in)
	if err != nil {
		return nil, err
	}
	now := store.FormatTime(in.At)
	pv, address := preview(in.Text, in.Attachments), clip(in.Address, 500)
	f := &Filed{}
	if c == nil {
		if in.AutoReply {
			return nil, nil // an out-of-office to nothing: no conversation
		}
		// Inserted as the message leaves it (unread, waiting since now),
		// not inserted and then updated like a conversation found.
		c = &Conversation{ID: store.NewRecordID(), Profile: in.Profile, Channel: in.Channel, Status: StatusOpen,
			Priority: "none", Subject: clip(in.Subject, 2000), Thread: clip(in.Thread, 1000), Widget: in.Widget,
			Address: address, Labels: JSONList{}, Context: JSONMap{}, WaitingSince: now, LastMessageAt: now, LastMessage: pv,
			LastAuthor: AuthorCustomer, Unread: 1, OpenedAt: now, Created: now, Updated: now}
		_, err = m.query(tx, `INSERT INTO `+ConversationsCollection+` (id, profile, channel, status, assignee, team, priority, labels,
			subject, thread, widget, address, bot, handoff_at, waiting_since, last_message_at, last_message, last_author, unread,
			snoozed_until, snooze_until_reply, first_response_due, first_response_at, next_response_due, sla_breaches, resolved_at,
			resolved_by, csat_asked_at, csat_score, journey_run, context, opened_at, created, updated)
			VALUES ({:id}, {:profile}, {:channel}, 'open', '', '', 'none', '[]', {:subject}, {:thread}, {:widget}, {:address}, 0, '', {:now},
			{:now}, {:preview}, 'customer', 1, '', 0, '', '', '', 0, '', '', '', 0, '', '{}', {:now}, {:now}, {:now})`).
			Bind(dbx.Params{"id": c.ID, "profile": c.Profile, "channel": c.Channel, "subject": c.Subject, "thread": c.Thread,
				"widget": c.Widget, "address": c.Address, "now": now, "preview": pv}).Execute()
		if err != nil {
			return nil, err
		}
		f.Opened = true
	} else if f.SurveyScore = m.surveyAnswer(c, in); f.SurveyScore == 0 && !in.AutoReply &&
		(c.Status == StatusResolved || c.Status == StatusSnoozed) {
		f.Reopened = true
	}
	msg := &Message{ID: store.NewRecordID(), Conversation: c.ID, Profile: c.Profile, Direction: DirectionIn,
		Author: AuthorCustomer, Text: clip(in.Text, 100000), Attachments: in.Attachments, ExternalID: clip(in.ExternalID, 1000),
		Event: clip(in.EventID, 300), AutoReply: in.AutoReply, Created: now}
	if err := m.insertMessage(tx, msg); err != nil {
		return nil, err
	}
	updated := *c
	if !f.Opened {
		if updated, err = m.fileInto(tx, c, f, in, now, pv, address); err != nil {
			return nil, err
		}
	}
	if f.Opened || f.Reopened {
		if err := m.stage(tx, conversationEvent(EventConversationOpened, c, in.At, map[string]any{"reopened": f.Reopened})); err != nil {
			return nil, err
		}
	}
	f.Conversation = &updated
	f.Message = msg
	m.live.touch(c.ID, msg.ID)
	return f, nil
}

// fileInto updates a conversation found, c, for the message just filed in
// it, and returns the row as the update leaves it. The conversation now
// waits for an answer (unless it already did: waiting_since is the oldest
// unanswered message). The row returned is made from the row as found (the
// writer's own read in this transaction): reading it back with RETURNING *
// cost more than the update (TestFiledConversationIsTheStoredRow holds them
// equal).
func (m *Module) fileInto(tx core.App, c *Conversation, f *Filed, in Inbound, now, pv, address string) (Conversation, error) {
	updated := *c
	set := `last_message_at = {:now}, last_message = {:preview}, last_author = 'customer', updated = {:now}`
	updated.LastMessageAt, updated.LastMessage, updated.LastAuthor, updated.Updated = now, pv, AuthorCustomer, now
	if f.SurveyScore == 0 {
		set += `, unread = unread + 1`
		updated.Unread++
	}
	if !in.AutoReply && f.SurveyScore == 0 {
		set += `, waiting_since = CASE WHEN waiting_since = '' THEN {:now} ELSE waiting_since END`
		if updated.WaitingSince == "" {
			updated.WaitingSince = now
		}
	}
	if f.Reopened {
		set += `, status = 'open', snoozed_until = '', snooze_until_reply = 0, resolved_at = '', resolved_by = '', opened_at = {:now}`
		updated.Status, updated.SnoozedUntil, updated.SnoozeUntilReply, updated.ResolvedAt, updated.ResolvedBy, updated.OpenedAt =
			StatusOpen, "", false, "", "", now
	}
	if in.Address != "" && c.Address == "" {
		set += `, address = {:address}`
		updated.Address = address
	}
	_, err := m.query(tx, "UPDATE "+ConversationsCollection+" SET "+set+" WHERE id = {:id}").
		Bind(dbx.Params{"now": now, "preview": pv, "address": address, "id": c.ID}).Execute()
	return updated, err
}

// findConversation is where an inbound message belongs, or nil for a new
// conversation.
func (m *Module) findConversation(tx core.App, in Inbound) (*Conversation, error) {
	db := tx.DB()
	if in.Channel == "email" {
		// A reply to a thread: its root, or any message of ours or theirs it
		// answers (our replies' Message-IDs are in the send ledger).
		keys := []any{}
		for _, k := range append([]string{in.Thread}, in.RepliesTo...) {
			if k != "" {
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 {
			var id string
			err := db.Select("id").From(ConversationsCollection).Where(dbx.And(dbx.HashExp{"profile": in.Profile}, dbx.In("thread", keys...))).
				OrderBy("last_message_at DESC").Limit(1).Row(&id)
			if errors.Is(err, sql.ErrNoRows) {
				err = db.Select("conversation").From("messages").Where(dbx.And(dbx.In("provider_id", keys...), dbx.NewExp("conversation != ''"))).
					OrderBy("created DESC").Limit(1).Row(&id)
			}
			if errors.Is(err, sql.ErrNoRows) {
				err = db.Select("conversation").From(MessagesCollection).Where(dbx.In("external_id", keys...)).
					OrderBy("created DESC").Limit(1).Row(&id)
			}
			if err == nil && id != "" {
				c, err := loadConversation(db, id)
				if err == nil && c.Profile == in.Profile {
					return c, nil
				}
				if err != nil && !errors.Is(err, ErrNotFound) {
					return nil, err
				}
			} else if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, err
			}
		}
	}
	if in.Channel == "email" && in.Thread != "" {
		return nil, nil // a new email thread is a new conversation
	}
	var c Conversation
	where := "profile = {:p} AND channel = {:ch}"
	if in.Channel == "chat" {
		// A chat belongs to one browser (the widget's visitor): someone
		// else on the same profile (an email they typed in the widget)
		// must neither read it nor write into it.
		where += " AND address = {:address}"
	}
	q := m.query(tx, "SELECT * FROM "+ConversationsCollection+" WHERE "+where+" ORDER BY last_message_at DESC, created DESC LIMIT 1").
		Bind(dbx.Params{"p": in.Profile, "ch": in.Channel, "address": in.Address})
	if err := q.One(&c); errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if c.Status != StatusResolved {
		return &c, nil
	}
	resolved, err := parseTime(c.ResolvedAt)
	if err == nil && in.At.Sub(resolved) <= m.reopenWindow() {
		return &c, nil
	}
	if m.surveyAnswer(&c, in) > 0 { // a late answer to "how did we do?" (csat.go)
		return &c, nil
	}
	return nil, nil
}

// reopenWindow is the owner's setting, else the module's default.
func (m *Module) reopenWindow() time.Duration {
	var g struct {
		ReopenWindow string `json:"reopen_window"`
	}
	if m.setting("general", &g) && g.ReopenWindow != "" {
		if d, err := ParseDuration(g.ReopenWindow); err == nil {
			return d
		}
	}
	return m.opts.ReopenWindow
}

func (m *Module) insertMessage(tx core.App, msg *Message) error {
	if msg.Created == "" {
		msg.Created = store.FormatTime(time.Now())
	}
	_, err := m.query(tx, `INSERT INTO `+MessagesCollection+` (id, conversation, profile, direction, author, author_staff, text,
		attachments, private, mentions, external_id, event, send_state, send, auto_reply, created)
		VALUES ({:id}, {:conversation}, {:profile}, {:direction}, {:author}, {:staff}, {:text}, {:attachments}, {:private}, {:mentions},
		{:external}, {:event}, {:state}, {:send}, {:auto}, {:created})`).Bind(dbx.Params{
		"id": msg.ID, "conversation": msg.Conversation, "profile": msg.Profile, "direction": msg.Direction, "author": msg.Author,
		"staff": msg.AuthorStaff, "text": msg.Text, "attachments": jsonText(msg.Attachments), "private": msg.Private,
		"mentions": jsonText(msg.Mentions), "external": msg.ExternalID, "event": msg.Event, "state": msg.SendState,
		"send": jsonObject(msg.Send), "auto": msg.AutoReply, "created": msg.Created,
	}).Execute()
	return err
}

func jsonObject(m map[string]any) string {
	if m == nil {
		return "{}"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Outgoing is a message from the shop into a conversation: a reply (sent
// through the gate after the transaction commits), or a private note.
type Outgoing struct {
	Author   string // agent | bot | journey | system
	Staff    string // the agent's staff id
	Text     string
	Private  bool     // a note: staff only, never sent
	Mentions []string // staff ids @mentioned in a note
	// Send tunes the send request: "template" (a template id or name),
	// "wa_template" ({name, language, params}), "channel" (to answer on
	// another channel than the conversation's, e.g. email for a chat
	// visitor who left). Empty: the text on the conversation's channel.
	Send map[string]any
	At   time.Time
}

// post adds out to conversation c inside tx. A reply is stored with
// send_state "pending" and goes to the gate once tx commits (the sender
// re-drives it after a crash); its id is the send ledger row's id. A
// reply by a person answers the customer: the conversation stops waiting.
func (m *Module) post(tx core.App, c *Conversation, out Outgoing) (*Message, error) {
	if out.At.IsZero() {
		out.At = m.opts.Now()
	}
	now := store.FormatTime(out.At)
	msg := &Message{ID: store.NewRecordID(), Conversation: c.ID, Profile: c.Profile, Direction: DirectionOut,
		Author: out.Author, AuthorStaff: out.Staff, Text: clip(out.Text, 100000), Send: out.Send, Created: now}
	if out.Private {
		msg.Direction, msg.Private = DirectionNote, true
		for _, s := range out.Mentions {
			msg.Mentions = append(msg.Mentions, s)
		}
	} else {
		msg.SendState = "pending"
		if c.Channel == "chat" {
			msg.Send = m.chatRoute(tx, c, msg.Send) // widget.go: by email when the visitor left
		}
	}
	if err := m.insertMessage(tx, msg); err != nil {
		return nil, err
	}
	db := tx.DB()
	if !out.Private {
		set := `last_message_at = {:now}, last_message = {:preview}, last_author = {:author}, updated = {:now}`
		if out.Author == AuthorAgent {
			set += `, waiting_since = '', unread = 0, first_response_at = CASE WHEN first_response_at = '' THEN {:now} ELSE first_response_at END`
			set += `, first_response_due = '', next_response_due = ''` // answered: no SLA due time (sla.go)
		}
		if _, err := db.NewQuery("UPDATE " + ConversationsCollection + " SET " + set + " WHERE id = {:id}").
			Bind(dbx.Params{"now": now, "preview": preview(out.Text, nil), "author": out.Author, "id": c.ID}).Execute(); err != nil {
			return nil, err
		}
		m.sender.pending.Store(true)
	}
	m.live.touch(c.ID, msg.ID)
	return msg, nil
}

// setStatus moves c to status (open, pending, snoozed, resolved) inside
// tx, recording who did it, and emits conversation.resolved when it
// resolves. Callers validate the move; onResolved (csat.go) runs after.
func (m *Module) setStatus(tx core.App, c *Conversation, status, by string, at time.Time) error {
	if c.Status == status {
		return nil
	}
	now := store.FormatTime(at)
	set := "status = {:status}, updated = {:now}"
	switch status {
	case StatusResolved:
		set += ", resolved_at = {:now}, resolved_by = {:by}, snoozed_until = '', snooze_until_reply = 0, waiting_since = ''"
	case StatusOpen:
		set += ", snoozed_until = '', snooze_until_reply = 0"
		if c.Status == StatusResolved {
			set += ", resolved_at = '', resolved_by = '', opened_at = {:now}"
		}
		if c.Status == StatusPending && c.Bot {
			set += ", bot = 0, handoff_at = {:now}"
		}
	}
	if _, err := tx.DB().NewQuery("UPDATE " + ConversationsCollection + " SET " + set + " WHERE id = {:id}").
		Bind(dbx.Params{"status": status, "now": now, "by": by, "id": c.ID}).Execute(); err != nil {
		return err
	}
	prev := c.Status
	c.Status = status
	m.live.touch(c.ID, "")
	switch {
	case status == StatusResolved:
		if err := m.stage(tx, conversationEvent(events.ConversationResolved, c, at, map[string]any{"resolved_by": by})); err != nil {
			return err
		}
		return m.onResolved(tx, c, at) // csat.go
	case prev == StatusResolved && status == StatusOpen:
		return m.stage(tx, conversationEvent(EventConversationOpened, c, at, map[string]any{"reopened": true}))
	}
	return nil
}

// conversationEvent is a derived event about c for the relay.
func conversationEvent(typ string, c *Conversation, at time.Time, props map[string]any) *events.Event {
	p := map[string]any{"profile_id": c.Profile, "conversation": c.ID, "channel": c.Channel}
	for k, v := range props {
		p[k] = v
	}
	return &events.Event{ID: fmt.Sprintf("%s:%s:%d", typ, c.ID, at.UnixMilli()), Type: typ, Source: "omni", OccurredAt: at,
		ReceivedAt: at, Identities: events.Identities{}, Properties: p, Context: events.Context{Channel: c.Channel}}
}

// stage publishes evs through the relay once tx commits.
func (m *Module) stage(tx core.App, evs ...*events.Event) error {
	if b := m.batch.of(tx); b != nil {
		b.staged = append(b.staged, evs...) // staged at the end of the batch
		return nil
	}
	if err := relay.StageForProfiles(tx, evs); err != nil {
		return err
	}
	m.live.staged.Store(true)
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// preview is the list's one-line view of a message.
func preview(text string, attachments []any) string {
	t := strings.Join(strings.Fields(text), " ")
	if t == "" && len(attachments) > 0 {
		t = fmt.Sprintf("[%d attachment(s)]", len(attachments))
	}
	return clip(t, 300)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("no time")
	}
	return time.Parse("2006-01-02 15:04:05.000Z", s)
}
