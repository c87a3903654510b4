package inbox_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/inbox"
	"github.com/omni/omni/core/ingest"
)

// clock is a movable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// put saves an inbox setting as an owner.
func put(t *testing.T, s *omnitest.Server, owner, key string, v any) {
	t.Helper()
	code, body := s.Do(t, "PUT", "/api/v1/inbox/settings/"+key, v, omnitest.Auth(owner))
	if code != 200 {
		t.Fatalf("PUT settings/%s: %d %s", key, code, body)
	}
}

// presence sends an agent's heartbeat and returns their staff id.
func presence(t *testing.T, s *omnitest.Server, token string, body any) inbox.Agent {
	t.Helper()
	code, b := s.Do(t, "POST", "/api/v1/inbox/presence", body, omnitest.Auth(token))
	var a inbox.Agent
	if code != 200 || json.Unmarshal(b, &a) != nil || a.ID == "" {
		t.Fatalf("presence: %d %s", code, b)
	}
	return a
}

func messagesOf(t *testing.T, s *omnitest.Server, conversation string) []inbox.Message {
	t.Helper()
	var out []inbox.Message
	if err := s.PB.DB().NewQuery("SELECT * FROM conversation_messages WHERE conversation = {:c} ORDER BY created, id").
		Bind(dbx.Params{"c": conversation}).All(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func conversation(t *testing.T, s *omnitest.Server, id string) inbox.Conversation {
	t.Helper()
	var c inbox.Conversation
	if err := s.PB.DB().NewQuery("SELECT * FROM conversations WHERE id = {:id}").Bind(dbx.Params{"id": id}).One(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func onlyConversation(t *testing.T, s *omnitest.Server, kind, value string) inbox.Conversation {
	t.Helper()
	cs := conversationsOf(t, s, kind, value)
	if len(cs) != 1 {
		t.Fatalf("%s %s has %d conversations, want 1", kind, value, len(cs))
	}
	return cs[0]
}

// Round robin gives each new conversation to the online agent assigned
// longest ago, up to capacity; away or silent agents get none; a
// conversation nobody could take is assigned once someone has room.
func TestRoundRobinAssignsOnlineAgentsUnderCapacity(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{})
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	ana := s.Staff(t, "ana@omni-shop.dev", "agent")
	ben := s.Staff(t, "ben@omni-shop.dev", "agent")
	cid := s.Staff(t, "cid@omni-shop.dev", "agent")
	put(t, s, owner, "assignment", map[string]any{"mode": "round_robin", "capacity": 1})
	anaID := presence(t, s, ana, nil).ID
	benID := presence(t, s, ben, nil).ID
	presence(t, s, cid, map[string]any{"away": true}) // away: gets nothing
	code, body := s.Do(t, "POST", "/api/v1/inbox/presence", "{nope", omnitest.Auth(cid))
	omnitest.WantFieldError(t, code, body, 400, "away")

	assignees := map[string]string{}
	for i, wa := range []string{"447700900001", "447700900002", "447700900003"} {
		receive(t, s, "wamid.rr"+wa, "whatsapp", events.Identities{events.WhatsAppID: wa}, map[string]any{"text": "hello"})
		c := onlyConversation(t, s, events.WhatsAppID, wa)
		assignees[wa] = c.Assignee
		if i < 2 && c.Assignee == "" {
			t.Fatalf("conversation %d was not assigned: %+v", i+1, c)
		}
	}
	if assignees["447700900001"] == assignees["447700900002"] ||
		!(has([]string{anaID, benID}, assignees["447700900001"]) && has([]string{anaID, benID}, assignees["447700900002"])) {
		t.Fatalf("round robin gave %v, want one each to ana %s and ben %s", assignees, anaID, benID)
	}
	if assignees["447700900003"] != "" {
		t.Fatalf("a third conversation went to %s though both agents are at capacity 1", assignees["447700900003"])
	}

	// The agents list shows who is online and how full they are.
	code, body = s.Do(t, "GET", "/api/v1/inbox/agents", nil, omnitest.Auth(ana))
	var list struct{ Items []inbox.Agent }
	if code != 200 || json.Unmarshal(body, &list) != nil {
		t.Fatalf("agents: %d %s", code, body)
	}
	byID := map[string]inbox.Agent{}
	for _, a := range list.Items {
		byID[a.ID] = a
	}
	if a := byID[anaID]; !a.Online || a.Open != 1 || a.Limit != 1 {
		t.Fatalf("ana in the list = %+v", a)
	}
	if len(list.Items) != 4 {
		t.Fatalf("agents list has %d staff, want 4: %s", len(list.Items), body)
	}

	// An agent may not raise their own capacity; the owner may, and the
	// waiting conversation goes to that agent.
	code, body = s.Do(t, "PATCH", "/api/v1/inbox/agents/"+benID, map[string]any{"capacity": 2}, omnitest.Auth(ben))
	omnitest.WantError(t, code, body, 403)
	code, body = s.Do(t, "PATCH", "/api/v1/inbox/agents/"+benID, map[string]any{"capacity": -1}, omnitest.Auth(owner))
	omnitest.WantFieldError(t, code, body, 400, "capacity")
	code, body = s.Do(t, "PATCH", "/api/v1/inbox/agents/"+benID, map[string]any{"capacity": 2}, omnitest.Auth(owner))
	if code != 200 {
		t.Fatalf("owner sets capacity: %d %s", code, body)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return onlyConversation(t, s, events.WhatsAppID, "447700900003").Assignee == benID
	}, "the waiting conversation assigned to ben once he has room")

	// An agent may set only themself away.
	code, body = s.Do(t, "PATCH", "/api/v1/inbox/agents/"+anaID, map[string]any{"away": true}, omnitest.Auth(ben))
	omnitest.WantError(t, code, body, 403)
	code, body = s.Do(t, "PATCH", "/api/v1/inbox/agents/"+anaID, map[string]any{"away": true}, omnitest.Auth(ana))
	var a inbox.Agent
	if code != 200 || json.Unmarshal(body, &a) != nil || !a.Away || a.Online {
		t.Fatalf("ana sets herself away: %d %s", code, body)
	}
}

// least_open prefers the agent holding the fewest open conversations.
func TestLeastOpenAssignsTheAgentWithFewestOpen(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{})
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	ana := s.Staff(t, "ana@omni-shop.dev", "agent")
	ben := s.Staff(t, "ben@omni-shop.dev", "agent")
	anaID := presence(t, s, ana, nil).ID
	// Ana already holds two open conversations (assigned by hand).
	put(t, s, owner, "assignment", map[string]any{"mode": "manual"})
	for _, wa := range []string{"447700900011", "447700900012"} {
		receive(t, s, "wamid.lo"+wa, "whatsapp", events.Identities{events.WhatsAppID: wa}, map[string]any{"text": "hi"})
		c := onlyConversation(t, s, events.WhatsAppID, wa)
		if c.Assignee != "" {
			t.Fatalf("manual mode assigned %+v", c)
		}
		if _, err := s.PB.DB().Update("conversations", dbx.Params{"assignee": anaID}, dbx.HashExp{"id": c.ID}).Execute(); err != nil {
			t.Fatal(err)
		}
	}
	benID := presence(t, s, ben, nil).ID
	put(t, s, owner, "assignment", map[string]any{"mode": "least_open"})
	for _, wa := range []string{"447700900013", "447700900014"} {
		receive(t, s, "wamid.lo"+wa, "whatsapp", events.Identities{events.WhatsAppID: wa}, map[string]any{"text": "hi"})
	}
	// Ben had none: he gets the third; then ben 1 < ana 2: the fourth too.
	for _, wa := range []string{"447700900013", "447700900014"} {
		if got := onlyConversation(t, s, events.WhatsAppID, wa).Assignee; got != benID {
			t.Fatalf("least_open gave %s's conversation to %q, want ben %s", wa, got, benID)
		}
	}
}

// Outside business hours the customer gets the away message once per
// opening, and the conversation still waits for a person; inside hours
// there is none.
func TestAwayMessageOncePerOpeningOutsideHours(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 11, 29, 3, 0, 0, 0, london)} // a Sunday night
	s, _ := startInbox(t, inbox.Options{Now: clk.Now})
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	code, body := s.Do(t, "PUT", "/api/v1/inbox/settings/hours", map[string]any{"timezone": "Mars/Olympus"}, omnitest.Auth(owner))
	omnitest.WantFieldError(t, code, body, 400, "hours.timezone")
	code, body = s.Do(t, "PUT", "/api/v1/inbox/settings/hours", map[string]any{"week": map[string]any{"mon": []any{map[string]any{"from": "17:00", "to": "09:00"}}}}, omnitest.Auth(owner))
	omnitest.WantFieldError(t, code, body, 400, "hours.week.mon.0.to")
	weekday := []map[string]string{{"from": "09:00", "to": "17:30"}}
	put(t, s, owner, "hours", map[string]any{"timezone": "Europe/London",
		"week":         map[string]any{"mon": weekday, "tue": weekday, "wed": weekday, "thu": weekday, "fri": weekday},
		"away_message": "Thanks {{ first_name }}! We are closed; we answer from 9:00 on weekdays."})

	wa := events.Identities{events.WhatsAppID: "447700900021"}
	receive(t, s, "wamid.away1", "whatsapp", wa, map[string]any{"text": "Hello?"})
	receive(t, s, "wamid.away2", "whatsapp", wa, map[string]any{"text": "Anyone there?"})
	c := onlyConversation(t, s, events.WhatsAppID, "447700900021")
	var away []inbox.Message
	for _, msg := range messagesOf(t, s, c.ID) {
		if msg.Author == inbox.AuthorBot {
			away = append(away, msg)
		}
	}
	if len(away) != 1 || !strings.HasPrefix(away[0].Text, "Thanks {{ first_name }}") || away[0].Direction != inbox.DirectionOut ||
		away[0].Send["liquid"] != true {
		t.Fatalf("away messages after two customer messages: %+v", away)
	}
	if c.Status != inbox.StatusOpen || c.WaitingSince == "" {
		t.Fatalf("after the away message the conversation should wait for a person: %+v", c)
	}

	// Monday 10:00: a new customer gets no away message.
	clk.Set(time.Date(2026, 11, 30, 10, 0, 0, 0, london))
	receive(t, s, "wamid.away3", "whatsapp", events.Identities{events.WhatsAppID: "447700900022"}, map[string]any{"text": "Hi"})
	c2 := onlyConversation(t, s, events.WhatsAppID, "447700900022")
	for _, msg := range messagesOf(t, s, c2.ID) {
		if msg.Author == inbox.AuthorBot {
			t.Fatalf("an away message in business hours: %+v", msg)
		}
	}

	// With the bot on, at night: the bot hands off what it cannot answer,
	// then the away message tells the customer when a person will.
	clk.Set(time.Date(2026, 11, 30, 22, 0, 0, 0, london))
	put(t, s, owner, "bot", map[string]any{"enabled": true})
	receive(t, s, "wamid.away4", "whatsapp", events.Identities{events.WhatsAppID: "447700900023"}, map[string]any{"text": "Do you ship to Spain?"})
	c3 := onlyConversation(t, s, events.WhatsAppID, "447700900023")
	msgs := messagesOf(t, s, c3.ID)
	authors := map[string]inbox.Message{}
	for _, msg := range msgs {
		authors[msg.Author] = msg
	}
	if c3.Status != inbox.StatusOpen || c3.Bot || len(msgs) != 3 || !authors[inbox.AuthorSystem].Private ||
		authors[inbox.AuthorBot].Send["away"] == nil {
		t.Fatalf("bot at night: %+v %+v", c3, msgs)
	}
}

// publishFixture publishes the Shopify connector's golden events (real
// Shopify webhook samples mapped by the connector) for a customer of ours.
func publishFixture(t *testing.T, s *omnitest.Server, file, email string) {
	t.Helper()
	b, err := os.ReadFile("../../plugins/shopify/testdata/golden/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var evs []*events.Event
	if err := json.Unmarshal(b, &evs); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		ev.Source, ev.ReceivedAt = "shopify", time.Now().UTC()
		ev.Identities = events.Identities{events.Email: email}
	}
	for _, err := range ingest.Publish(context.Background(), s.Bus, evs) {
		if err != nil {
			t.Fatal(err)
		}
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		var n int
		_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE event_id = {:id}").Bind(dbx.Params{"id": evs[0].ID}).Row(&n)
		return n == 1
	}, "%s stored", file)
}

func rule(t *testing.T, s *omnitest.Server, owner string, body map[string]any) inbox.Rule {
	t.Helper()
	code, b := s.Do(t, "POST", "/api/v1/inbox/rules", body, omnitest.Auth(owner))
	var r inbox.Rule
	if code != 201 || json.Unmarshal(b, &r) != nil {
		t.Fatalf("create rule: %d %s", code, b)
	}
	return r
}

// The bot answers "where is my order" with the status of the customer's
// latest order, keeps a reply rule's Liquid for the gate, hands off when
// the customer asks for a human (its own messages stay in the history),
// and hands off a message no rule answers.
func TestBotAnswersOrderStatusAndHandsOff(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{})
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	put(t, s, owner, "bot", map[string]any{"enabled": true, "handoff_keywords": []string{"human", "real person"}})
	rule(t, s, owner, map[string]any{"name": "Order status", "keywords": []string{"where is my order", "order status"}, "action": "order_status"})
	rule(t, s, owner, map[string]any{"name": "Opening hours", "keywords": []string{"open"}, "action": "reply",
		"reply": "Hi {{ first_name }}, we open at 9."})
	rule(t, s, owner, map[string]any{"name": "Returns", "keywords": []string{"return"}, "action": "label", "value": "returns", "channels": []string{"email"}, "position": 5}) // a label does not stop later rules

	const bob = "bob.norman@omni-shop.dev"
	publishFixture(t, s, "orders_create.json", bob)
	publishFixture(t, s, "orders_cancelled.json", bob)
	mail := events.Identities{events.Email: bob}
	receive(t, s, "email:bot1", "email", mail, map[string]any{"text": "Hi, WHERE is my order?!", "subject": "My order",
		"conversation_key": "<bot1@mail.omni-shop.dev>", "provider_message_id": "<bot1@mail.omni-shop.dev>"})
	c := onlyConversation(t, s, events.Email, bob)
	if c.Status != inbox.StatusPending || !c.Bot {
		t.Fatalf("a new conversation with the bot on should be pending with the bot: %+v", c)
	}
	msgs := messagesOf(t, s, c.ID)
	if c = conversation(t, s, c.ID); c.WaitingSince != "" {
		t.Fatalf("the bot answered, yet the customer is waiting since %s", c.WaitingSince)
	}
	if len(msgs) != 2 || msgs[1].Author != inbox.AuthorBot || !strings.Contains(msgs[1].Text, "#1001") ||
		!strings.Contains(msgs[1].Text, "cancelled") {
		t.Fatalf("the bot's answer about the order: %+v", msgs)
	}

	// A reply rule: the text goes to the gate as Liquid (rendered there).
	receive(t, s, "email:bot2", "email", mail, map[string]any{"text": "When do you open? I want to return a thing", "subject": "Re: My order",
		"conversation_key": "<bot1@mail.omni-shop.dev>", "in_reply_to": "<bot1@mail.omni-shop.dev>"})
	c = onlyConversation(t, s, events.Email, bob)
	msgs = messagesOf(t, s, c.ID)
	last := msgs[len(msgs)-1]
	if c.Status != inbox.StatusPending || last.Author != inbox.AuthorBot || last.Text != "Hi {{ first_name }}, we open at 9." || last.Send["liquid"] != true {
		t.Fatalf("after the reply rule: %+v, last %+v", c, last)
	}
	if len(c.Labels) != 1 || c.Labels[0] != "returns" {
		t.Fatalf("the label rule (email only) did not label: %v", c.Labels)
	}

	// "human": hand-off, with the bot's part of the history still there.
	receive(t, s, "email:bot3", "email", mail, map[string]any{"text": "Can I talk to a Human please", "subject": "Re: My order",
		"conversation_key": "<bot1@mail.omni-shop.dev>", "in_reply_to": "<bot1@mail.omni-shop.dev>"})
	c = onlyConversation(t, s, events.Email, bob)
	if c.Status != inbox.StatusOpen || c.Bot || c.HandoffAt == "" || c.WaitingSince == "" {
		t.Fatalf("after asking for a human: %+v", c)
	}
	msgs = messagesOf(t, s, c.ID)
	var bots int
	var note *inbox.Message
	for i, msg := range msgs {
		if msg.Author == inbox.AuthorBot {
			bots++
		}
		if msg.Author == inbox.AuthorSystem {
			note = &msgs[i]
		}
	}
	if bots != 2 || note == nil || !note.Private || note.Direction != inbox.DirectionNote || !strings.HasPrefix(note.Text, "Handed off: ") {
		t.Fatalf("history after the hand-off: %+v", msgs)
	}
	// The bot is done with this conversation: more messages go to staff.
	receive(t, s, "email:bot4", "email", mail, map[string]any{"text": "where is my order", "subject": "Re: My order",
		"conversation_key": "<bot1@mail.omni-shop.dev>", "in_reply_to": "<bot1@mail.omni-shop.dev>"})
	if n := len(messagesOf(t, s, c.ID)); n != len(msgs)+1 {
		t.Fatalf("the bot answered after the hand-off: %d messages, want %d", n, len(msgs)+1)
	}

	// A message no rule answers: hand-off (fallback).
	sms := events.Identities{events.Phone: "+447700900031"}
	receive(t, s, "sms:bot5", "sms", sms, map[string]any{"text": "Do you sell gift cards?"})
	c = onlyConversation(t, s, events.Phone, "+447700900031")
	msgs = messagesOf(t, s, c.ID)
	if c.Status != inbox.StatusOpen || c.Bot || len(msgs) != 2 || !strings.Contains(msgs[1].Text, "no rule answered") {
		t.Fatalf("a rule-less message: %+v %+v", c, msgs)
	}

	// A customer with no order: the order rule hands off.
	receive(t, s, "sms:bot6", "sms", events.Identities{events.Phone: "+447700900032"}, map[string]any{"text": "order status please"})
	c = onlyConversation(t, s, events.Phone, "+447700900032")
	msgs = messagesOf(t, s, c.ID)
	if c.Status != inbox.StatusOpen || !strings.Contains(msgs[len(msgs)-1].Text, "no order found") {
		t.Fatalf("order status with no order: %+v %+v", c, msgs)
	}

	// An assign rule hands off to the agent it names.
	sales := presence(t, s, s.Staff(t, "sales@omni-shop.dev", "agent"), nil).ID
	rule(t, s, owner, map[string]any{"name": "Wholesale", "keywords": []string{"wholesale"}, "action": "assign", "value": sales, "position": 1})
	receive(t, s, "sms:bot7", "sms", events.Identities{events.Phone: "+447700900033"}, map[string]any{"text": "Wholesale prices?"})
	c = onlyConversation(t, s, events.Phone, "+447700900033")
	if c.Status != inbox.StatusOpen || c.Bot || c.Assignee != sales {
		t.Fatalf("an assign rule: %+v", c)
	}
}

// Rules: agents read, owners write; a bad rule is refused naming the field.
func TestRulesAPI(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{})
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	agent := s.Staff(t, "ana@omni-shop.dev", "agent")
	good := map[string]any{"name": "Hours", "keywords": []string{"open"}, "action": "reply", "reply": "We open at 9."}
	code, body := s.Do(t, "POST", "/api/v1/inbox/rules", good, omnitest.Auth(agent))
	omnitest.WantError(t, code, body, 403)
	for _, path := range []string{"/api/v1/inbox/rules", "/api/v1/inbox/agents"} {
		code, body := s.Do(t, "GET", path, nil, nil)
		omnitest.WantError(t, code, body, 401)
	}
	code, body = s.Do(t, "POST", "/api/v1/inbox/presence", nil, nil)
	omnitest.WantError(t, code, body, 401)
	for field, bad := range map[string]map[string]any{
		"keywords": {"name": "x", "keywords": []string{" ", "!"}, "action": "handoff"},
		"action":   {"name": "x", "keywords": []string{"a"}, "action": "dance"},
		"reply":    {"name": "x", "keywords": []string{"a"}, "action": "reply", "reply": "Hi {{ first_name"},
		"value":    {"name": "x", "keywords": []string{"a"}, "action": "assign", "value": "nobody"},
		"channels": {"name": "x", "keywords": []string{"a"}, "action": "handoff", "channels": []string{"fax"}},
		"name":     {"keywords": []string{"a"}, "action": "handoff"},
	} {
		code, body := s.Do(t, "POST", "/api/v1/inbox/rules", bad, omnitest.Auth(owner))
		omnitest.WantFieldError(t, code, body, 400, field)
	}
	r := rule(t, s, owner, good)
	if !r.Enabled || r.Position == 0 || r.ID == "" {
		t.Fatalf("created rule = %+v", r)
	}
	code, body = s.Do(t, "PATCH", "/api/v1/inbox/rules/"+r.ID, map[string]any{"enabled": false, "keywords": []string{"opening hours"}}, omnitest.Auth(owner))
	if code != 200 {
		t.Fatalf("patch: %d %s", code, body)
	}
	code, body = s.Do(t, "GET", "/api/v1/inbox/rules", nil, omnitest.Auth(agent))
	var list struct{ Items []inbox.Rule }
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list.Items) != 1 || list.Items[0].Enabled ||
		list.Items[0].Keywords[0] != "opening hours" || list.Items[0].Reply != "We open at 9." {
		t.Fatalf("rules as an agent sees them: %d %s", code, body)
	}
	code, body = s.Do(t, "DELETE", "/api/v1/inbox/rules/"+r.ID, nil, omnitest.Auth(agent))
	omnitest.WantError(t, code, body, 403)
	if code, body = s.Do(t, "DELETE", "/api/v1/inbox/rules/"+r.ID, nil, omnitest.Auth(owner)); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	code, body = s.Do(t, "DELETE", "/api/v1/inbox/rules/"+r.ID, nil, omnitest.Auth(owner))
	omnitest.WantError(t, code, body, 404)
	code, body = s.Do(t, "PUT", "/api/v1/inbox/settings/bot", map[string]any{"fallback": "shrug"}, omnitest.Auth(owner))
	omnitest.WantFieldError(t, code, body, 400, "bot.fallback")
	code, body = s.Do(t, "PUT", "/api/v1/inbox/settings/assignment", map[string]any{"mode": "random"}, omnitest.Auth(owner))
	omnitest.WantFieldError(t, code, body, 400, "assignment.mode")
}

// A journey's notify step with open_conversation opens a conversation on
// the channel the customer last wrote on, with the run and its context,
// and a private note from the journey; without a conversation so far it
// uses their email.
func TestJourneyHandoffOpensConversationWithContext(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{})
	wa := events.Identities{events.WhatsAppID: "447700900041"}
	receive(t, s, "wamid.j1", "whatsapp", wa, map[string]any{"text": "thanks, bye"})
	first := onlyConversation(t, s, events.WhatsAppID, "447700900041")

	handoff := func(id string, ids events.Identities, open bool) {
		now := time.Now().UTC()
		ev := &events.Event{ID: id, Type: "journey.handoff", Source: "omni", OccurredAt: now, ReceivedAt: now, Identities: ids,
			Properties: map[string]any{"journey": "j123", "journey_name": "VIP winback", "run": "run" + id, "node": "n4",
				"message": "Call them about their big order", "open_conversation": open,
				"context": map[string]any{"event": "order.placed", "properties": map[string]any{"total": 512.0}}}}
		for _, err := range ingest.Publish(context.Background(), s.Bus, []*events.Event{ev}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		omnitest.Eventually(t, 10*time.Second, func() bool {
			var n int
			_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE event_id = {:id}").Bind(dbx.Params{"id": id}).Row(&n)
			return n == 1
		}, "event %s stored", id)
	}
	handoff("h1", wa, true)
	c := conversation(t, s, first.ID)
	if c.JourneyRun != "runh1" || c.Context["journey_name"] != "VIP winback" || c.Context["message"] != "Call them about their big order" ||
		c.Status != inbox.StatusOpen {
		t.Fatalf("the customer's WhatsApp conversation after the hand-off: %+v", c)
	}
	if ctx, _ := c.Context["context"].(map[string]any); ctx["event"] != "order.placed" {
		t.Fatalf("the journey's context: %+v", c.Context)
	}
	msgs := messagesOf(t, s, c.ID)
	note := msgs[len(msgs)-1]
	if note.Author != inbox.AuthorJourney || !note.Private || !strings.Contains(note.Text, "VIP winback") ||
		!strings.Contains(note.Text, "Call them about their big order") {
		t.Fatalf("the journey's note: %+v", note)
	}

	// Someone who never wrote: a new conversation on their email.
	mail := events.Identities{events.Email: "vip@omni-shop.dev"}
	handoff("h2", mail, true)
	c = onlyConversation(t, s, events.Email, "vip@omni-shop.dev")
	if c.Channel != "email" || c.Address != "vip@omni-shop.dev" || c.JourneyRun != "runh2" || c.Status != inbox.StatusOpen || c.WaitingSince == "" {
		t.Fatalf("a hand-off for a customer who never wrote: %+v", c)
	}
	// A notify step without open_conversation opens nothing.
	handoff("h3", events.Identities{events.Email: "quiet@omni-shop.dev"}, false)
	if cs := conversationsOf(t, s, events.Email, "quiet@omni-shop.dev"); len(cs) != 0 {
		t.Fatalf("a notification-only hand-off opened %+v", cs)
	}
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// A real journey's notify step reaches the inbox: the customer's event
// starts the run, its journey.handoff goes out through the relay, and the
// inbox opens a conversation on the customer's email with the run.
func TestJourneyNotifyStepOpensAConversation(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{})
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	graph := map[string]any{"trigger": map[string]any{"event": "checkout.started"}, "start": "nt", "nodes": map[string]any{
		"nt":  map[string]any{"type": "notify", "message": "Big basket: call them", "open_conversation": true, "next": "end"},
		"end": map[string]any{"type": "exit"}}}
	code, body := s.Do(t, "POST", "/api/v1/journeys", map[string]any{"name": "Big baskets", "graph": graph}, omnitest.Auth(owner))
	var j struct{ ID string }
	if code != 201 || json.Unmarshal(body, &j) != nil {
		t.Fatalf("create journey: %d %s", code, body)
	}
	if code, body = s.Do(t, "POST", "/api/v1/journeys/"+j.ID+"/publish", map[string]any{}, omnitest.Auth(owner)); code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	now := time.Now().UTC()
	ev := &events.Event{ID: "checkout-big-1", Type: events.CheckoutStarted, Source: "shop", OccurredAt: now, ReceivedAt: now,
		Identities: events.Identities{events.Email: "big@omni-shop.dev"}, Properties: map[string]any{"total": 900.0}}
	for _, err := range ingest.Publish(context.Background(), s.Bus, []*events.Event{ev}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return len(conversationsOf(t, s, events.Email, "big@omni-shop.dev")) == 1
	}, "a conversation from the journey's hand-off")
	c := onlyConversation(t, s, events.Email, "big@omni-shop.dev")
	msgs := messagesOf(t, s, c.ID)
	if c.JourneyRun == "" || c.Context["journey"] != j.ID || c.Channel != "email" || len(msgs) != 1 ||
		msgs[0].Author != inbox.AuthorJourney || !strings.Contains(msgs[0].Text, "Big basket: call them") ||
		!strings.Contains(msgs[0].Text, "checkout.started") {
		t.Fatalf("conversation %+v, messages %+v", c, msgs)
	}
}
