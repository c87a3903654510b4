package inbox

import (
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/store"
)

// messageBody is a reply or a note as staff post it.
type messageBody struct {
	Text       string `json:"text"`
	Private    bool   `json:"private"`
	Template   string `json:"template"` // a template's id or name, rendered by the gate
	WATemplate *struct {
		Name     string   `json:"name"`
		Language string   `json:"language"`
		Params   []string `json:"params"`
	} `json:"wa_template"`
	Channel string `json:"channel"` // answer on another channel than the conversation's
}

// outgoing checks b for conversation c and turns it into an Outgoing by
// the signed-in agent; the error names the field.
func (m *Module) outgoing(e *core.RequestEvent, c *Conversation, b messageBody) (Outgoing, error) {
	db := e.App.DB()
	out := Outgoing{Author: AuthorAgent, Staff: staffID(e), Text: strings.TrimSpace(b.Text), Private: b.Private, At: m.opts.Now()}
	if utf8.RuneCountInString(out.Text) > 100000 {
		return out, api.BadRequest("text", "is at most 100000 characters")
	}
	if b.Private {
		if b.Template != "" || b.WATemplate != nil || b.Channel != "" {
			return out, api.BadRequest("private", "a private note is never sent, so it takes no template, wa_template or channel")
		}
		if out.Text == "" {
			return out, api.BadRequest("text", "cannot be empty")
		}
		out.Mentions = resolveMentions(db, out.Text)
		return out, nil
	}
	if out.Text == "" && b.Template == "" && b.WATemplate == nil {
		return out, api.BadRequest("text", "cannot be empty (or send a template)")
	}
	channel := c.Channel
	send := map[string]any{}
	if b.Channel != "" {
		if !validChannel(b.Channel) {
			return out, api.BadRequest("channel", "must be one of "+strings.Join(Channels, ", "))
		}
		if b.Channel == "chat" && c.Channel != "chat" {
			return out, api.BadRequest("channel", "the website chat reaches only the visitor of a chat conversation")
		}
		channel = b.Channel
		if channel != c.Channel {
			send["channel"] = channel
		}
	}
	if b.Template != "" {
		var id, tplChannel string
		err := db.Select("id", "channel").From("templates").Where(dbx.Or(dbx.HashExp{"id": b.Template}, dbx.HashExp{"name": b.Template})).
			Limit(1).Row(&id, &tplChannel)
		if errors.Is(err, sql.ErrNoRows) {
			return out, api.BadRequest("template", "there is no template "+b.Template)
		} else if err != nil {
			return out, api.Internal("Could not read the template.", err)
		}
		if tplChannel != channel {
			return out, api.BadRequest("template", "is a "+tplChannel+" template; this reply goes by "+channel)
		}
		send["template"] = id
	}
	if w := b.WATemplate; w != nil {
		if channel != "whatsapp" {
			return out, api.BadRequest("wa_template", "is for WhatsApp only; this reply goes by "+channel)
		}
		w.Name = strings.TrimSpace(w.Name)
		if w.Name == "" {
			return out, api.BadRequest("wa_template.name", "is the approved template's name and cannot be empty")
		}
		if w.Language = strings.TrimSpace(w.Language); w.Language == "" {
			// The language of the template record that names it, if any.
			_ = db.Select("wa_language").From("templates").Where(dbx.HashExp{"wa_template": w.Name}).Limit(1).Row(&w.Language)
			if w.Language == "" {
				return out, api.BadRequest("wa_template.language", "is the approved template's language code (such as en_GB)")
			}
		}
		params := make([]any, len(w.Params))
		for i, p := range w.Params {
			params[i] = p
		}
		send["wa_template"] = map[string]any{"name": w.Name, "language": w.Language, "params": params}
	}
	if len(send) > 0 {
		out.Send = send
	}
	return out, nil
}

func (m *Module) handlePost(e *core.RequestEvent) error {
	var b messageBody
	if err := readJSON(e, &b); err != nil {
		return err
	}
	id := e.Request.PathValue("id")
	var msg *Message
	err := m.app.RunInTransaction(func(tx core.App) error {
		c, err := m.conversationOr404(tx.DB(), id)
		if err != nil {
			return err
		}
		out, err := m.outgoing(e, c, b)
		if err != nil {
			return err
		}
		msg, err = m.reply(tx, c, out)
		return err
	})
	return m.answerMessage(e, id, msg, err)
}

// reply posts out into c. A reply by an agent to a conversation the bot
// had (pending) takes it over, and an unassigned conversation becomes the
// replying agent's.
func (m *Module) reply(tx core.App, c *Conversation, out Outgoing) (*Message, error) {
	if !out.Private && out.Staff != "" {
		if c.Status == StatusPending {
			if err := m.setStatus(tx, c, StatusOpen, out.Staff, out.At); err != nil {
				return nil, err
			}
		}
		if c.Assignee == "" {
			if err := m.assign(tx, c, out.Staff, out.At); err != nil {
				return nil, err
			}
		}
	}
	return m.post(tx, c, out)
}

// answerMessage commits what a post did and answers 201 with the message.
func (m *Module) answerMessage(e *core.RequestEvent, conv string, msg *Message, err error) error {
	if msg != nil && err == nil {
		m.live.touch(conv, msg.ID) // again after commit: a push taken mid-transaction read the old state
	}
	m.afterCommit()
	if err != nil {
		return apiErr(err, "Could not save the message.")
	}
	db := e.App.DB()
	views, err := messageViews(db, dbx.HashExp{"cm.id": msg.ID}, 1)
	if err != nil || len(views) == 0 {
		return api.Internal("Could not read the message back.", err)
	}
	return e.JSON(http.StatusCreated, m.withAuthors(db, views, "")[0])
}

func (m *Module) handleRetry(e *core.RequestEvent) error {
	id, mid := e.Request.PathValue("id"), e.Request.PathValue("message")
	var msg *Message
	err := m.app.RunInTransaction(func(tx core.App) error {
		db := tx.DB()
		c, err := m.conversationOr404(db, id)
		if err != nil {
			return err
		}
		views, err := messageViews(db, dbx.HashExp{"cm.id": mid, "cm.conversation": id}, 1)
		if err != nil {
			return err
		}
		if len(views) == 0 {
			return api.Error(http.StatusNotFound, "There is no message "+mid+" in this conversation.")
		}
		old := views[0]
		if old.Direction != DirectionOut || (old.Status != "failed" && old.Status != "suppressed") {
			return api.Error(http.StatusConflict, fmt.Sprintf("Only a failed or suppressed reply can be retried; this message is %s.",
				firstNonEmpty(old.Status, old.Direction)))
		}
		msg, err = m.reply(tx, c, Outgoing{Author: AuthorAgent, Staff: staffID(e), Text: old.Text, Send: old.Send, At: m.opts.Now()})
		return err
	})
	return m.answerMessage(e, id, msg, err)
}

// patchBody is what PATCH changes; absent fields stay as they are.
type patchBody struct {
	Status       *string   `json:"status"`
	Assignee     *string   `json:"assignee"`
	Labels       *[]string `json:"labels"`
	Priority     *string   `json:"priority"`
	Team         *string   `json:"team"`
	SnoozedUntil *string   `json:"snoozed_until"`
}

func (m *Module) handlePatch(e *core.RequestEvent) error {
	var b patchBody
	if err := readJSON(e, &b); err != nil {
		return err
	}
	id := e.Request.PathValue("id")
	err := m.app.RunInTransaction(func(tx core.App) error {
		c, err := m.conversationOr404(tx.DB(), id)
		if err != nil {
			return err
		}
		return m.patch(e, tx, c, b)
	})
	m.live.touch(id, "")
	m.afterCommit()
	if err != nil {
		return apiErr(err, "Could not change the conversation.")
	}
	s, err := m.summaryOf(e.App.DB(), id)
	if err != nil {
		return api.Internal("Could not read the conversation back.", err)
	}
	return e.JSON(http.StatusOK, s)
}

// patch applies b to c inside tx: assignee, labels, priority and team,
// then the status (a snooze is a status with its end).
func (m *Module) patch(e *core.RequestEvent, tx core.App, c *Conversation, b patchBody) error {
	now := m.opts.Now()
	by := staffID(e)
	set := dbx.Params{}
	if b.Assignee != nil {
		a, err := assigneeFrom(e, "assignee", *b.Assignee)
		if err != nil {
			return err
		}
		if err := m.assign(tx, c, a, now); err != nil {
			return err
		}
	}
	if b.Labels != nil {
		l, err := normLabels("labels", *b.Labels)
		if err != nil {
			return err
		}
		set["labels"] = jsonText(l)
	}
	if b.Priority != nil {
		p := strings.ToLower(strings.TrimSpace(*b.Priority))
		if p == "" {
			p = "none"
		}
		if !contains(Priorities, p) {
			return api.BadRequest("priority", "must be one of "+strings.Join(Priorities, ", "))
		}
		set["priority"] = p
	}
	if b.Team != nil {
		t := strings.TrimSpace(*b.Team)
		if utf8.RuneCountInString(t) > 100 {
			return api.BadRequest("team", "is at most 100 characters")
		}
		set["team"] = t
	}
	if len(set) > 0 {
		set["updated"] = store.FormatTime(now)
		if _, err := tx.DB().Update(ConversationsCollection, set, dbx.HashExp{"id": c.ID}).Execute(); err != nil {
			return err
		}
		if b.Priority != nil {
			// The SLA target depends on the priority: move the due time.
			if err := m.slaRecompute(tx, c.ID); err != nil {
				return err
			}
		}
		m.live.touch(c.ID, "")
	}
	status := ""
	if b.Status != nil {
		status = strings.TrimSpace(*b.Status)
	}
	if b.SnoozedUntil != nil {
		until := strings.TrimSpace(*b.SnoozedUntil)
		if until == "" { // no snooze: back to open unless the body says otherwise
			if status == "" && c.Status == StatusSnoozed {
				status = StatusOpen
			}
		} else {
			if status != "" && status != StatusSnoozed {
				return api.BadRequest("snoozed_until", "snoozes the conversation, so status cannot be "+status)
			}
			return m.snooze(tx, c, until, by, now)
		}
	}
	switch status {
	case "":
		return nil
	case StatusOpen, StatusResolved:
		return m.setStatus(tx, c, status, by, now)
	case StatusSnoozed:
		return api.BadRequest("snoozed_until", `is needed to snooze: a time (RFC 3339) or "reply" (until the customer replies)`)
	case StatusPending:
		return api.BadRequest("status", "pending means the bot is handling it; a person sets open, snoozed or resolved")
	}
	return api.BadRequest("status", "must be open, snoozed or resolved")
}

// snooze sets c aside until a time or, with "reply", until the customer
// writes again (receive reopens it); wakeSnoozed reopens timed ones.
func (m *Module) snooze(tx core.App, c *Conversation, until, by string, now time.Time) error {
	if c.Status == StatusResolved {
		return api.BadRequest("snoozed_until", "a resolved conversation cannot be snoozed; reopen it first")
	}
	reply, at := until == "reply", ""
	if !reply {
		t, err := time.Parse(time.RFC3339, until)
		if err != nil {
			return api.BadRequest("snoozed_until", `must be a time such as 2026-05-01T09:00:00Z, or "reply"`)
		}
		if !t.After(now) {
			return api.BadRequest("snoozed_until", "must be in the future")
		}
		at = store.FormatTime(t)
	}
	if err := m.setStatus(tx, c, StatusSnoozed, by, now); err != nil {
		return err
	}
	_, err := tx.DB().Update(ConversationsCollection, dbx.Params{"snoozed_until": at, "snooze_until_reply": reply,
		"updated": store.FormatTime(now)}, dbx.HashExp{"id": c.ID}).Execute()
	m.live.touch(c.ID, "")
	return err
}

// assign gives c to a staff member ("" = nobody).
func (m *Module) assign(tx core.App, c *Conversation, staff string, at time.Time) error {
	if c.Assignee == staff {
		return nil
	}
	if _, err := tx.DB().Update(ConversationsCollection, dbx.Params{"assignee": staff, "updated": store.FormatTime(at)},
		dbx.HashExp{"id": c.ID}).Execute(); err != nil {
		return err
	}
	c.Assignee = staff
	m.live.touch(c.ID, "")
	return nil
}

// bulkBody changes many conversations at once.
type bulkBody struct {
	IDs          []string `json:"ids"`
	Status       *string  `json:"status"`
	Assignee     *string  `json:"assignee"`
	AddLabels    []string `json:"add_labels"`
	RemoveLabels []string `json:"remove_labels"`
}

func (m *Module) handleBulk(e *core.RequestEvent) error {
	var b bulkBody
	if err := readJSON(e, &b); err != nil {
		return err
	}
	if len(b.IDs) == 0 {
		return api.BadRequest("ids", "lists the conversations to change and cannot be empty")
	}
	if len(b.IDs) > maxBulk {
		return api.BadRequest("ids", fmt.Sprintf("at most %d conversations at once", maxBulk))
	}
	if b.Status == nil && b.Assignee == nil && len(b.AddLabels) == 0 && len(b.RemoveLabels) == 0 {
		return api.BadRequest("status", "nothing to change: give status, assignee, add_labels or remove_labels")
	}
	if b.Status != nil && *b.Status != StatusOpen && *b.Status != StatusResolved {
		return api.BadRequest("status", "must be open or resolved (snooze one conversation at a time)")
	}
	assignee := ""
	if b.Assignee != nil {
		a, err := assigneeFrom(e, "assignee", *b.Assignee)
		if err != nil {
			return err
		}
		assignee = a
	}
	add, err := normLabels("add_labels", b.AddLabels)
	if err != nil {
		return err
	}
	remove, err := normLabels("remove_labels", b.RemoveLabels)
	if err != nil {
		return err
	}
	updated := 0
	var touched []string
	err = m.app.RunInTransaction(func(tx core.App) error {
		now, by := m.opts.Now(), staffID(e)
		for _, id := range b.IDs {
			c, err := loadConversation(tx.DB(), id)
			if errors.Is(err, ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if b.Assignee != nil {
				if err := m.assign(tx, c, assignee, now); err != nil {
					return err
				}
			}
			if len(add) > 0 || len(remove) > 0 {
				labels := []string{}
				for _, l := range append(labelsOf(c), add...) {
					if !contains(remove, l) && !contains(labels, l) {
						labels = append(labels, l)
					}
				}
				if len(labels) > maxLabels {
					return api.BadRequest("add_labels", fmt.Sprintf("conversation %s would have more than %d labels", c.ID, maxLabels))
				}
				if _, err := tx.DB().Update(ConversationsCollection, dbx.Params{"labels": jsonText(labels), "updated": store.FormatTime(now)},
					dbx.HashExp{"id": c.ID}).Execute(); err != nil {
					return err
				}
			}
			if b.Status != nil {
				if err := m.setStatus(tx, c, *b.Status, by, now); err != nil {
					return err
				}
			}
			m.live.touch(c.ID, "")
			touched = append(touched, c.ID)
			updated++
		}
		return nil
	})
	if err == nil {
		for _, id := range touched {
			m.live.touch(id, "")
		}
	}
	m.afterCommit()
	if err != nil {
		return apiErr(err, "Could not change the conversations.")
	}
	return e.JSON(http.StatusOK, map[string]int{"updated": updated})
}

// startBody starts a conversation: the agent writes first.
type startBody struct {
	Profile string `json:"profile"`
	Channel string `json:"channel"`
	Subject string `json:"subject"` // email: the new thread's subject
	messageBody
}

// handleStart opens a conversation with a customer on a channel and posts
// the agent's first message, sent through the gate like any reply. When
// the customer already has an unresolved conversation on that channel
// (other than email, where each subject is a thread), the message goes
// into it instead of opening a second one their answer could not reach.
func (m *Module) handleStart(e *core.RequestEvent) error {
	var b startBody
	if err := readJSON(e, &b); err != nil {
		return err
	}
	b.Channel = strings.TrimSpace(b.Channel)
	switch {
	case strings.TrimSpace(b.Profile) == "":
		return api.BadRequest("profile", "is the customer's profile id and cannot be empty")
	case b.Channel == "chat":
		return api.BadRequest("channel", "a website chat starts from the visitor; write on whatsapp, email or sms")
	case !validChannel(b.Channel):
		return api.BadRequest("channel", "must be whatsapp, email or sms")
	case b.Private:
		return api.BadRequest("private", "a conversation starts with a message to the customer, not a note")
	}
	profile, err := survivingProfile(e.App.DB(), strings.TrimSpace(b.Profile))
	if errors.Is(err, ErrNotFound) {
		return api.BadRequest("profile", "there is no customer "+b.Profile)
	} else if err != nil {
		return api.Internal("Could not read the customer.", err)
	}
	subject := strings.TrimSpace(b.Subject)
	if b.Channel == "email" && subject == "" && b.Template == "" {
		subject = firstLine(b.Text, 80) // a mail needs a subject; the text's start says what it is about
	}
	var conv string
	var msg *Message
	err = m.app.RunInTransaction(func(tx core.App) error {
		now := m.opts.Now()
		c, err := m.startConversation(tx, profile, b.Channel, clip(subject, 2000), staffID(e), now)
		if err != nil {
			return err
		}
		conv = c.ID
		out, err := m.outgoing(e, c, b.messageBody)
		if err != nil {
			return err
		}
		if b.Channel == "email" && subject != "" && c.Subject == subject && c.LastMessageAt == "" {
			if out.Send == nil {
				out.Send = map[string]any{}
			}
			out.Send["subject"] = subject // the first mail of a thread is not a "Re:"
		}
		msg, err = m.reply(tx, c, out)
		return err
	})
	if msg != nil && err == nil {
		m.live.touch(conv, msg.ID)
	}
	m.afterCommit()
	if err != nil {
		return apiErr(err, "Could not start the conversation.")
	}
	s, err := m.summaryOf(e.App.DB(), conv)
	if err != nil {
		return api.Internal("Could not read the conversation back.", err)
	}
	return e.JSON(http.StatusCreated, s)
}

// startConversation is the customer's unresolved conversation on the
// channel (not for email), else a new one assigned to the agent who
// starts it, with conversation.opened staged.
func (m *Module) startConversation(tx core.App, profile, channel, subject, staff string, now time.Time) (*Conversation, error) {
	db := tx.DB()
	if channel != "email" {
		var c Conversation
		err := db.NewQuery("SELECT * FROM " + ConversationsCollection + " WHERE profile = {:p} AND channel = {:ch} AND status != 'resolved' ORDER BY last_message_at DESC, created DESC LIMIT 1").
			Bind(dbx.Params{"p": profile, "ch": channel}).One(&c)
		if err == nil {
			return &c, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
	}
	at := store.FormatTime(now)
	c := &Conversation{ID: store.NewRecordID(), Profile: profile, Channel: channel, Status: StatusOpen, Assignee: staff,
		Priority: "none", Subject: subject, OpenedAt: at}
	_, err := db.NewQuery(`INSERT INTO ` + ConversationsCollection + ` (id, profile, channel, status, assignee, team, priority, labels,
		subject, thread, widget, address, bot, handoff_at, waiting_since, last_message_at, last_message, last_author, unread,
		snoozed_until, snooze_until_reply, first_response_due, first_response_at, next_response_due, sla_breaches, resolved_at,
		resolved_by, csat_asked_at, csat_score, journey_run, context, opened_at, created, updated)
		VALUES ({:id}, {:profile}, {:channel}, 'open', {:assignee}, '', 'none', '[]', {:subject}, '', '', '', 0, '', '',
		'', '', '', 0, '', 0, '', '', '', 0, '', '', '', 0, '', '{}', {:now}, {:now}, {:now})`).
		Bind(dbx.Params{"id": c.ID, "profile": profile, "channel": channel, "assignee": staff, "subject": subject, "now": at}).Execute()
	if err != nil {
		return nil, err
	}
	if err := m.stage(tx, conversationEvent(EventConversationOpened, c, now, map[string]any{"reopened": false})); err != nil {
		return nil, err
	}
	m.live.touch(c.ID, "")
	return c, nil
}

// survivingProfile follows merges to the profile that holds the customer
// (ErrNotFound for no customer).
func survivingProfile(db dbx.Builder, id string) (string, error) {
	id, err := store.SurvivingProfile(db, id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return id, err
}

// firstLine is the text's first non-empty line, at most n runes.
func firstLine(text string, n int) string {
	for _, l := range strings.Split(text, "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			if r := []rune(l); len(r) > n {
				return strings.TrimSpace(string(r[:n-1])) + "…"
			}
			return l
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
