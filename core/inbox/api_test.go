package inbox_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app/omnitest"
	_ "github.com/omni/omni/core/connectors" // its collection: a connector the gate can pick (see parkedConnector)
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/inbox"
)

// member creates a staff member with a name and returns their id and
// auth header.
func member(t *testing.T, s *omnitest.Server, email, role, name string) (string, http.Header) {
	t.Helper()
	tok := s.Staff(t, email, role)
	r, err := s.PB.FindAuthRecordByEmail("staff", email)
	if err != nil {
		t.Fatal(err)
	}
	r.Set("name", name)
	if err := s.PB.Save(r); err != nil {
		t.Fatal(err)
	}
	return r.Id, omnitest.Auth(tok)
}

// call sends a request and decodes a 2xx answer into out.
func call(t *testing.T, s *omnitest.Server, h http.Header, method, path string, body any, want int, out any) {
	t.Helper()
	code, b := s.Do(t, method, path, body, h)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

type listAnswer struct {
	Items []inbox.Summary `json:"items"`
	Next  string          `json:"next"`
}

func list(t *testing.T, s *omnitest.Server, h http.Header, query string) listAnswer {
	t.Helper()
	var out listAnswer
	call(t, s, h, "GET", "/api/v1/conversations?"+query, nil, 200, &out)
	return out
}

func ids(items []inbox.Summary) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

func sameIDs(t *testing.T, what string, got []inbox.Summary, want ...string) {
	t.Helper()
	if strings.Join(ids(got), ",") != strings.Join(want, ",") {
		t.Fatalf("%s: %v, want %v", what, ids(got), want)
	}
}

// The list's views (status, assignee, channel, label, q), its orders and
// cursor paging, and the counters, as an agent sees them.
func TestConversationViewsAndCounts(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{})
	agentID, agent := member(t, s, "ana@omni-shop.dev", "agent", "Ana Lopez")
	_, owner := member(t, s, "olga@omni-shop.dev", "owner", "Olga")
	receive(t, s, "wamid.v1", "whatsapp", events.Identities{events.WhatsAppID: "447700900201"}, map[string]any{"text": "Where is my order?"})
	receive(t, s, "email:v2", "email", events.Identities{events.Email: "bea@omni-shop.dev"}, map[string]any{"text": "Which size?",
		"subject": "Sizes", "conversation_key": "<v2@mail.omni-shop.dev>"})
	receive(t, s, "sms:v3", "sms", events.Identities{events.Phone: "+447700900203"}, map[string]any{"text": "Refund please"})
	a := conversationsOf(t, s, events.WhatsAppID, "447700900201")[0].ID
	b := conversationsOf(t, s, events.Email, "bea@omni-shop.dev")[0].ID
	c := conversationsOf(t, s, events.Phone, "+447700900203")[0].ID

	all := list(t, s, agent, "")
	sameIDs(t, "open, longest waiting first", all.Items, a, b, c)
	if it := all.Items[1]; it.Customer.Email != "bea@omni-shop.dev" || it.Customer.ID == "" || it.WaitingSeconds < 0 || it.SLA != nil || it.Unread != 1 {
		t.Fatalf("summary = %+v", it)
	}

	var patched inbox.Summary
	call(t, s, agent, "PATCH", "/api/v1/conversations/"+a, map[string]any{"assignee": "me", "labels": []string{" VIP ", "vip", "Returns"},
		"priority": "High"}, 200, &patched)
	if patched.Assignee != agentID || patched.AssigneeName != "Ana Lopez" || patched.Priority != "high" ||
		len(patched.Labels) != 2 || patched.Labels[0] != "vip" || patched.Labels[1] != "returns" {
		t.Fatalf("patched = %+v", patched)
	}
	sameIDs(t, "mine", list(t, s, agent, "assignee=me").Items, a)
	sameIDs(t, "unassigned", list(t, s, agent, "assignee=none").Items, b, c)
	sameIDs(t, "by staff id", list(t, s, owner, "assignee="+agentID).Items, a)
	sameIDs(t, "email", list(t, s, agent, "channel=email").Items, b)
	sameIDs(t, "label", list(t, s, agent, "label=VIP").Items, a)
	sameIDs(t, "q over the last message", list(t, s, agent, "q=refund").Items, c)
	sameIDs(t, "q over the customer's email", list(t, s, agent, "q="+url.QueryEscape("bea@")).Items, b)
	sameIDs(t, "q with LIKE's wildcard is literal", list(t, s, agent, "q=%25").Items)

	// Paging: two, then the rest, never the same row twice.
	p1 := list(t, s, agent, "limit=2")
	if len(p1.Items) != 2 || p1.Next == "" {
		t.Fatalf("first page = %v next %q", ids(p1.Items), p1.Next)
	}
	p2 := list(t, s, agent, "limit=2&before="+url.QueryEscape(p1.Next))
	sameIDs(t, "second page", p2.Items, c)
	if p2.Next != "" {
		t.Fatalf("last page has next %q", p2.Next)
	}

	var counts inbox.Counts
	call(t, s, agent, "GET", "/api/v1/conversations/counts", nil, 200, &counts)
	if counts.Mine != 1 || counts.Unassigned != 2 || counts.All != 3 || counts.Unread.Mine != 1 || counts.Unread.All != 3 ||
		counts.Channels["whatsapp"] != 1 || counts.Channels["email"] != 1 || counts.Channels["sms"] != 1 || counts.Channels["chat"] != 0 ||
		counts.Labels["vip"] != 1 || counts.Labels["returns"] != 1 {
		t.Fatalf("counts = %+v", counts)
	}
	var read inbox.Summary
	call(t, s, agent, "POST", "/api/v1/conversations/"+a+"/read", nil, 200, &read)
	if read.ID != a || read.Unread != 0 {
		t.Fatalf("read = %+v", read)
	}
	call(t, s, agent, "GET", "/api/v1/conversations/counts", nil, 200, &counts)
	if counts.Unread.Mine != 0 || counts.Unread.All != 2 {
		t.Fatalf("after read: %+v", counts.Unread)
	}

	// The owner answers b: it stops waiting (last now) and becomes theirs.
	call(t, s, owner, "POST", "/api/v1/conversations/"+b+"/messages", map[string]any{"text": "Size M fits most"}, 201, nil)
	sameIDs(t, "answered goes last", list(t, s, agent, "").Items, a, c, b)
	sameIDs(t, "recent first", list(t, s, agent, "sort=recent").Items, b, c, a)
	sameIDs(t, "unassigned after the reply", list(t, s, agent, "assignee=none").Items, c)

	call(t, s, agent, "PATCH", "/api/v1/conversations/"+c, map[string]any{"status": "resolved"}, 200, &patched)
	if patched.Status != inbox.StatusResolved || patched.ResolvedAt == "" || patched.ResolvedBy != agentID {
		t.Fatalf("resolved = %+v", patched)
	}
	sameIDs(t, "open after resolving", list(t, s, agent, "").Items, a, b)
	sameIDs(t, "resolved", list(t, s, agent, "status=resolved").Items, c)
	if n := len(list(t, s, agent, "status=all").Items); n != 3 {
		t.Fatalf("all statuses: %d", n)
	}

	// SLA due times (set by the SLA part; here by hand): the list shows the
	// one that applies and orders by it.
	soon, past := time.Now().UTC().Add(time.Hour), time.Now().UTC().Add(-time.Minute)
	for id, set := range map[string]dbx.Params{a: {"first_response_due": soon.Format("2006-01-02 15:04:05.000Z")},
		b: {"next_response_due": past.Format("2006-01-02 15:04:05.000Z")}, c: {"first_response_due": past.Format("2006-01-02 15:04:05.000Z")}} {
		if _, err := s.PB.DB().Update("conversations", set, dbx.HashExp{"id": id}).Execute(); err != nil {
			t.Fatal(err)
		}
	}
	due := list(t, s, agent, "status=all&sort=due").Items
	sameIDs(t, "due soonest first, resolved last", due, b, a, c)
	if due[0].SLA == nil || due[0].SLA.Kind != "next" || !due[0].SLA.Breached ||
		due[1].SLA == nil || due[1].SLA.Kind != "first" || due[1].SLA.Breached || due[1].SLA.Due != soon.Truncate(time.Second).Format(time.RFC3339) ||
		due[2].SLA != nil {
		t.Fatalf("sla = %+v / %+v / %+v", due[0].SLA, due[1].SLA, due[2].SLA)
	}

	// Paging one at a time walks each order exactly as one page shows it.
	for _, sort := range []string{"waiting", "recent", "due"} {
		whole := ids(list(t, s, agent, "status=all&sort="+sort).Items)
		walked, next := []string{}, ""
		for range 10 {
			page := list(t, s, agent, "status=all&limit=1&sort="+sort+"&before="+url.QueryEscape(next))
			walked = append(walked, ids(page.Items)...)
			if next = page.Next; next == "" {
				break
			}
		}
		if strings.Join(walked, ",") != strings.Join(whole, ",") || len(whole) != 3 {
			t.Fatalf("sort=%s paged %v, whole %v", sort, walked, whole)
		}
	}

	for q, field := range map[string]string{"status=closed": "status", "sort=oldest": "sort", "limit=0": "limit",
		"limit=500": "limit", "before=nonsense": "before", "channel=fax": "channel"} {
		code, body := s.Do(t, "GET", "/api/v1/conversations?"+q, nil, agent)
		omnitest.WantFieldError(t, code, body, 400, field)
	}
}

// parkedConnector makes the gate see an enabled connector that sends on
// channels (nothing runs it): a reply the gate lets through is "queued"
// in the ledger, one it refuses "suppressed" with the reason.
func parkedConnector(t *testing.T, s *omnitest.Server, channels ...string) {
	t.Helper()
	col, err := s.PB.FindCollectionByNameOrId("connectors")
	if err != nil {
		t.Fatal(err)
	}
	caps := []string{}
	for _, ch := range channels {
		caps = append(caps, "send:"+ch)
	}
	r := core.NewRecord(col)
	r.Set("name", "parked")
	r.Set("kind", "external")
	r.Set("enabled", true)
	r.Set("capabilities", caps)
	if err := s.PB.Save(r); err != nil {
		t.Fatal(err)
	}
}

type ledgerRow struct {
	ID           string `db:"id"`
	Kind         string `db:"kind"`
	Channel      string `db:"channel"`
	Status       string `db:"status"`
	Reason       string `db:"reason"`
	Subject      string `db:"subject"`
	Body         string `db:"body"`
	Conversation string `db:"conversation"`
}

// ledger waits for the gate's decision on a message id.
func ledger(t *testing.T, s *omnitest.Server, id string) ledgerRow {
	t.Helper()
	var r ledgerRow
	omnitest.Eventually(t, 20*time.Second, func() bool {
		r = ledgerRow{}
		err := s.PB.DB().NewQuery("SELECT id, kind, channel, status, reason, subject, body, conversation FROM messages WHERE id = {:id}").
			Bind(dbx.Params{"id": id}).One(&r)
		return err == nil && r.Status != ""
	}, "the gate's ledger row %s", id)
	return r
}

type conversationAnswer struct {
	Conversation inbox.Summary      `json:"conversation"`
	Messages     []inbox.MessageOut `json:"messages"`
	Window       *inbox.Window      `json:"window"`
}

// Replies go through the gate as kind conversation, typed text kept as
// typed; a marketing unsubscribe does not stop them; a refused reply shows
// why and can be retried; private notes never reach the gate.
func TestRepliesGoThroughTheGate(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{})
	parkedConnector(t, s, "email")
	anaID, agent := member(t, s, "ana@omni-shop.dev", "agent", "Ana Lopez")
	_, owner := member(t, s, "olga@omni-shop.dev", "owner", "Olga")
	receive(t, s, "email:g1", "email", events.Identities{events.Email: "cara@omni-shop.dev"}, map[string]any{"text": "Do you ship to Spain?",
		"subject": "Shipping", "conversation_key": "<g1@mail.omni-shop.dev>"})
	mail := conversationsOf(t, s, events.Email, "cara@omni-shop.dev")[0]
	call(t, s, owner, "POST", "/api/v1/profiles/"+mail.Profile+"/consent",
		map[string]any{"channel": "email", "status": "unsubscribed", "reason": "asked on the phone"}, 200, nil)
	omnitest.Eventually(t, 10*time.Second, func() bool {
		var consent string
		_ = s.PB.DB().NewQuery("SELECT consent FROM profiles WHERE id = {:p}").Bind(dbx.Params{"p": mail.Profile}).Row(&consent)
		return strings.Contains(consent, "unsubscribed")
	}, "the unsubscribe recorded")

	typed := "Yes, {{ we do }} ship to Spain"
	var reply inbox.MessageOut
	call(t, s, agent, "POST", "/api/v1/conversations/"+mail.ID+"/messages", map[string]any{"text": typed}, 201, &reply)
	if reply.Direction != inbox.DirectionOut || reply.Author != inbox.AuthorAgent || reply.AuthorStaff != anaID ||
		reply.AuthorName != "Ana Lopez" || reply.Text != typed || reply.Status == "" {
		t.Fatalf("reply = %+v", reply)
	}
	row := ledger(t, s, reply.ID)
	if row.Kind != "conversation" || row.Conversation != mail.ID || row.Body != typed || row.Subject != "Re: Shipping" ||
		row.Status != "queued" || row.Channel != "email" {
		t.Fatalf("ledger row of a reply to an unsubscribed customer = %+v", row)
	}

	// A private note mentioning Ana, then another reply: once the later
	// reply is in the ledger, the note was passed over.
	var note inbox.MessageOut
	call(t, s, owner, "POST", "/api/v1/conversations/"+mail.ID+"/messages", map[string]any{"text": "@ana can you check the courier?", "private": true}, 201, &note)
	if note.Direction != inbox.DirectionNote || !note.Private || len(note.Mentions) != 1 || note.Mentions[0] != anaID || note.Status != "" {
		t.Fatalf("note = %+v", note)
	}
	var later inbox.MessageOut
	call(t, s, agent, "POST", "/api/v1/conversations/"+mail.ID+"/messages", map[string]any{"text": "It takes 3 days."}, 201, &later)
	ledger(t, s, later.ID)
	var n int
	if err := s.PB.DB().NewQuery("SELECT COUNT(*) FROM messages WHERE id = {:id}").Bind(dbx.Params{"id": note.ID}).Row(&n); err != nil || n != 0 {
		t.Fatalf("a private note reached the ledger (%d, %v)", n, err)
	}
	code, body := s.Do(t, "POST", "/api/v1/conversations/"+mail.ID+"/messages/"+reply.ID+"/retry", nil, agent)
	omnitest.WantError(t, code, body, 409)

	// A saved template by name, rendered by the gate.
	for _, ch := range []string{"email"} {
		col, err := s.PB.FindCollectionByNameOrId("templates")
		if err != nil {
			t.Fatal(err)
		}
		r := core.NewRecord(col)
		r.Set("name", "Courier delay")
		r.Set("channel", ch)
		r.Set("kind", "conversation")
		r.Set("subject", "About your parcel")
		r.Set("body", "Sorry, the courier is late.")
		if err := s.PB.Save(r); err != nil {
			t.Fatal(err)
		}
	}
	var templated inbox.MessageOut
	call(t, s, agent, "POST", "/api/v1/conversations/"+mail.ID+"/messages", map[string]any{"template": "Courier delay"}, 201, &templated)
	if row := ledger(t, s, templated.ID); row.Channel != "email" || row.Body != "Sorry, the courier is late." || row.Subject != "About your parcel" {
		t.Fatalf("templated reply's ledger row = %+v", row)
	}

	// WhatsApp: no connector sends it, so the gate refuses with a reason
	// the agent sees on the message, and a retry is a new reply.
	receive(t, s, "wamid.g2", "whatsapp", events.Identities{events.WhatsAppID: "447700900301"}, map[string]any{"text": "Hello?"})
	wa := conversationsOf(t, s, events.WhatsAppID, "447700900301")[0]
	var waReply inbox.MessageOut
	call(t, s, agent, "POST", "/api/v1/conversations/"+wa.ID+"/messages", map[string]any{"text": "Hi! How can we help?"}, 201, &waReply)
	if row := ledger(t, s, waReply.ID); row.Status != "suppressed" || row.Reason == "" || row.Kind != "conversation" {
		t.Fatalf("WhatsApp reply without a connector: %+v", row)
	}
	var got conversationAnswer
	call(t, s, agent, "GET", "/api/v1/conversations/"+wa.ID, nil, 200, &got)
	last := got.Messages[len(got.Messages)-1]
	if len(got.Messages) != 2 || got.Messages[0].AuthorName != "" && got.Messages[0].Author != inbox.AuthorCustomer ||
		last.ID != waReply.ID || last.Status != "suppressed" || last.Reason == "" || last.AuthorName != "Ana Lopez" {
		t.Fatalf("messages = %+v", got.Messages)
	}
	if got.Window == nil || !got.Window.Open || got.Window.ClosesAt == "" || got.Window.Templates == nil {
		t.Fatalf("window = %+v", got.Window)
	}
	if got.Conversation.Assignee != anaID || got.Conversation.WaitingSeconds != 0 || got.Conversation.FirstResponseAt == "" {
		t.Fatalf("after the reply: %+v", got.Conversation)
	}
	var retried inbox.MessageOut
	call(t, s, agent, "POST", "/api/v1/conversations/"+wa.ID+"/messages/"+waReply.ID+"/retry", nil, 201, &retried)
	if retried.ID == waReply.ID || retried.Text != waReply.Text {
		t.Fatalf("retry = %+v", retried)
	}
	if row := ledger(t, s, retried.ID); row.Kind != "conversation" || row.Conversation != wa.ID {
		t.Fatalf("retry's ledger row = %+v", row)
	}
	var email conversationAnswer
	call(t, s, agent, "GET", "/api/v1/conversations/"+mail.ID, nil, 200, &email)
	if email.Window != nil {
		t.Fatalf("an email conversation has a WhatsApp window: %+v", email.Window)
	}

	// 400s name the field; 404 an unknown conversation.
	bad := []struct {
		conv  string
		body  any
		field string
	}{
		{mail.ID, map[string]any{"text": "  "}, "text"},
		{mail.ID, map[string]any{"text": "x", "private": true, "template": "t"}, "private"},
		{mail.ID, map[string]any{"text": "x", "template": "no such template"}, "template"},
		{mail.ID, map[string]any{"wa_template": map[string]any{"name": "hello", "language": "en"}}, "wa_template"},
		{wa.ID, map[string]any{"wa_template": map[string]any{"name": "", "language": "en"}}, "wa_template.name"},
		{wa.ID, map[string]any{"wa_template": map[string]any{"name": "hello"}}, "wa_template.language"},
		{wa.ID, map[string]any{"text": "x", "channel": "fax"}, "channel"},
		{wa.ID, map[string]any{"template": "Courier delay"}, "template"}, // an email template
		{wa.ID, map[string]any{"text": "x", "colour": "red"}, "colour"},
		{wa.ID, map[string]any{"text": 5}, "text"},
	}
	for _, c := range bad {
		code, body := s.Do(t, "POST", "/api/v1/conversations/"+c.conv+"/messages", c.body, agent)
		omnitest.WantFieldError(t, code, body, 400, c.field)
	}
	code, body = s.Do(t, "POST", "/api/v1/conversations/nope/messages", map[string]any{"text": "x"}, agent)
	omnitest.WantError(t, code, body, 404)
}

// A snooze until a time wakes on the tick once the clock passes it; a
// snooze until the customer replies wakes on their next message.
func TestSnoozeWakes(t *testing.T) {
	var mu sync.Mutex
	now := time.Now().UTC()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, _ := startInbox(t, inbox.Options{Now: clock, Tick: 50 * time.Millisecond})
	_, agent := member(t, s, "ana@omni-shop.dev", "agent", "Ana")
	wa := events.Identities{events.WhatsAppID: "447700900401"}
	receive(t, s, "wamid.s1", "whatsapp", wa, map[string]any{"text": "I will send the photo tomorrow"})
	id := conversationsOf(t, s, events.WhatsAppID, "447700900401")[0].ID

	until := clock().Add(time.Hour).Format(time.RFC3339)
	var c inbox.Summary
	call(t, s, agent, "PATCH", "/api/v1/conversations/"+id, map[string]any{"snoozed_until": until}, 200, &c)
	if c.Status != inbox.StatusSnoozed || c.SnoozedUntil == "" || c.SnoozeUntilReply {
		t.Fatalf("snoozed = %+v", c)
	}
	sameIDs(t, "snoozed view", list(t, s, agent, "status=snoozed").Items, id)
	var counts inbox.Counts
	call(t, s, agent, "GET", "/api/v1/conversations/counts", nil, 200, &counts)
	if counts.Snoozed != 1 || counts.All != 0 {
		t.Fatalf("counts while snoozed = %+v", counts)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	omnitest.Eventually(t, 10*time.Second, func() bool {
		var got conversationAnswer
		call(t, s, agent, "GET", "/api/v1/conversations/"+id, nil, 200, &got)
		return got.Conversation.Status == inbox.StatusOpen && got.Conversation.SnoozedUntil == ""
	}, "the snooze to end")

	// A customer writing ends a timed snooze too: they are waiting now.
	call(t, s, agent, "PATCH", "/api/v1/conversations/"+id, map[string]any{"snoozed_until": clock().Add(time.Hour).Format(time.RFC3339)}, 200, &c)
	receive(t, s, "wamid.s1b", "whatsapp", wa, map[string]any{"text": "Actually, one more thing"})
	if got := conversationsOf(t, s, events.WhatsAppID, "447700900401"); len(got) != 1 || got[0].Status != inbox.StatusOpen || got[0].SnoozedUntil != "" {
		t.Fatalf("a timed snooze after the customer wrote: %+v", got)
	}

	call(t, s, agent, "PATCH", "/api/v1/conversations/"+id, map[string]any{"snoozed_until": "reply"}, 200, &c)
	if c.Status != inbox.StatusSnoozed || !c.SnoozeUntilReply || c.SnoozedUntil != "" {
		t.Fatalf("snoozed until reply = %+v", c)
	}
	receive(t, s, "wamid.s2", "whatsapp", wa, map[string]any{"text": "Here it is"})
	if got := conversationsOf(t, s, events.WhatsAppID, "447700900401"); len(got) != 1 || got[0].Status != inbox.StatusOpen || got[0].SnoozeUntilReply {
		t.Fatalf("after the customer's reply: %+v", got)
	}

	// Un-snoozing by hand, and the 400s of PATCH.
	until = clock().Add(time.Hour).Format(time.RFC3339)
	call(t, s, agent, "PATCH", "/api/v1/conversations/"+id, map[string]any{"snoozed_until": until}, 200, &c)
	call(t, s, agent, "PATCH", "/api/v1/conversations/"+id, map[string]any{"snoozed_until": ""}, 200, &c)
	if c.Status != inbox.StatusOpen {
		t.Fatalf("un-snoozed = %+v", c)
	}
	labels := make([]string, 21)
	for i := range labels {
		labels[i] = "l" + string(rune('a'+i))
	}
	for _, b := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"snoozed_until": clock().Add(-time.Minute).Format(time.RFC3339)}, "snoozed_until"},
		{map[string]any{"snoozed_until": "tomorrow"}, "snoozed_until"},
		{map[string]any{"status": "snoozed"}, "snoozed_until"},
		{map[string]any{"status": "pending"}, "status"},
		{map[string]any{"status": "closed"}, "status"},
		{map[string]any{"priority": "asap"}, "priority"},
		{map[string]any{"assignee": "nobody-by-that-id"}, "assignee"},
		{map[string]any{"labels": labels}, "labels"},
		{map[string]any{"labels": "vip"}, "labels"},
	} {
		code, body := s.Do(t, "PATCH", "/api/v1/conversations/"+id, b.body, agent)
		omnitest.WantFieldError(t, code, body, 400, b.field)
	}
}

// An @mention in a private note reaches the mentioned agent live, on
// omni/inbox/mentions, and no one else.
func TestMentionsReachTheMentionedAgent(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{})
	_, ana := member(t, s, "ana@omni-shop.dev", "agent", "Ana Lopez")
	bobID, bob := member(t, s, "robert@omni-shop.dev", "agent", "Bob")
	_, owner := member(t, s, "olga@omni-shop.dev", "owner", "Olga")
	receive(t, s, "sms:m1", "sms", events.Identities{events.Phone: "+447700900501"}, map[string]any{"text": "Is it in stock?"})
	id := conversationsOf(t, s, events.Phone, "+447700900501")[0].ID

	bobStream := subscribe(t, s, bob, inbox.MentionsTopic)
	anaStream := subscribe(t, s, ana, inbox.MentionsTopic)
	call(t, s, owner, "POST", "/api/v1/conversations/"+id+"/messages", map[string]any{"text": "@ana, can you look?", "private": true}, 201, nil)
	// Mentioned by the email's local part, with a full stop after it.
	call(t, s, owner, "POST", "/api/v1/conversations/"+id+"/messages", map[string]any{"text": "Or you, @robert.", "private": true}, 201, nil)
	if got := anaStream.next(t); got.Message.Text != "@ana, can you look?" || got.Conversation.ID != id {
		t.Fatalf("Ana heard %+v", got)
	}
	got := bobStream.next(t) // the first note is not Bob's
	if got.Message.Text != "Or you, @robert." || len(got.Message.Mentions) != 1 || got.Message.Mentions[0] != bobID {
		t.Fatalf("Bob heard %+v", got)
	}

	// Every change through the API reaches staff live on omni/inbox once
	// it commits.
	live := subscribe(t, s, bob, inbox.LiveTopic)
	call(t, s, owner, "PATCH", "/api/v1/conversations/"+id, map[string]any{"assignee": bobID, "labels": []string{"stock"}}, 200, nil)
	for {
		var p inbox.Push
		if err := json.Unmarshal([]byte(live.raw(t)), &p); err != nil {
			t.Fatal(err)
		}
		if p.Conversation.ID == id && p.Conversation.Assignee == bobID && len(p.Conversation.Labels) == 1 {
			break
		}
	}
}

type mentionPush struct {
	Conversation inbox.Conversation `json:"conversation"`
	Message      inbox.MessageView  `json:"message"`
}

type stream struct{ data chan string }

// subscribe opens a realtime connection as h and subscribes to topic.
func subscribe(t *testing.T, s *omnitest.Server, h http.Header, topic string) *stream {
	t.Helper()
	resp, err := http.Get(s.URL + "/api/realtime")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	st := &stream{data: make(chan string, 100)}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 1<<16), 1<<22)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var clientID string
	timeout := time.After(20 * time.Second)
	for clientID == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("realtime stream closed")
			}
			if d, ok := strings.CutPrefix(l, "data:"); ok {
				var c struct {
					ClientID string `json:"clientId"`
				}
				_ = json.Unmarshal([]byte(d), &c)
				clientID = c.ClientID
			}
		case <-timeout:
			t.Fatal("no realtime connect")
		}
	}
	call(t, s, h, "POST", "/api/realtime", map[string]any{"clientId": clientID, "subscriptions": []string{topic}}, 204, nil)
	go func() {
		event := ""
		for l := range lines {
			if e, ok := strings.CutPrefix(l, "event:"); ok {
				event = e
			}
			if d, ok := strings.CutPrefix(l, "data:"); ok && event == topic {
				st.data <- d
			}
		}
	}()
	return st
}

// raw is the next push's data.
func (st *stream) raw(t *testing.T) string {
	t.Helper()
	select {
	case d := <-st.data:
		return d
	case <-time.After(20 * time.Second):
		t.Fatal("no push")
	}
	return ""
}

func (st *stream) next(t *testing.T) mentionPush {
	t.Helper()
	d := st.raw(t)
	var p mentionPush
	if err := json.Unmarshal([]byte(d), &p); err != nil {
		t.Fatalf("push %s: %v", d, err)
	}
	return p
}

// Bulk changes and starting a conversation; guests get 401 everywhere.
func TestBulkStartAndGuests(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{})
	parkedConnector(t, s, "email")
	anaID, agent := member(t, s, "ana@omni-shop.dev", "agent", "Ana")
	_, owner := member(t, s, "olga@omni-shop.dev", "owner", "Olga")
	receive(t, s, "sms:b1", "sms", events.Identities{events.Phone: "+447700900601"}, map[string]any{"text": "one"})
	receive(t, s, "sms:b2", "sms", events.Identities{events.Phone: "+447700900602"}, map[string]any{"text": "two"})
	receive(t, s, "email:b3", "email", events.Identities{events.Email: "dora@omni-shop.dev"}, map[string]any{"text": "three",
		"subject": "Hi", "conversation_key": "<b3@mail.omni-shop.dev>"})
	one := conversationsOf(t, s, events.Phone, "+447700900601")[0]
	two := conversationsOf(t, s, events.Phone, "+447700900602")[0]
	dora := conversationsOf(t, s, events.Email, "dora@omni-shop.dev")[0]

	var res struct {
		Updated int `json:"updated"`
	}
	call(t, s, owner, "POST", "/api/v1/conversations/bulk", map[string]any{"ids": []string{one.ID, two.ID, "gone"},
		"assignee": anaID, "add_labels": []string{"Spam", "late"}}, 200, &res)
	if res.Updated != 2 {
		t.Fatalf("updated %d, want 2", res.Updated)
	}
	sameIDs(t, "Ana's after bulk assign", list(t, s, agent, "assignee=me&label=spam").Items, one.ID, two.ID)
	call(t, s, agent, "POST", "/api/v1/conversations/bulk", map[string]any{"ids": []string{one.ID, two.ID}, "status": "resolved",
		"remove_labels": []string{"late"}}, 200, &res)
	resolved := list(t, s, agent, "status=resolved").Items
	sameIDs(t, "bulk resolved, not waiting: the latest message first", resolved, two.ID, one.ID)
	if len(resolved[0].Labels) != 1 || resolved[0].Labels[0] != "spam" {
		t.Fatalf("labels after bulk remove: %v", resolved[0].Labels)
	}
	for _, b := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"status": "resolved"}, "ids"},
		{map[string]any{"ids": []string{one.ID}}, "status"},
		{map[string]any{"ids": []string{one.ID}, "status": "snoozed"}, "status"},
		{map[string]any{"ids": []string{one.ID}, "assignee": "no-such-staff"}, "assignee"},
	} {
		code, body := s.Do(t, "POST", "/api/v1/conversations/bulk", b.body, agent)
		omnitest.WantFieldError(t, code, body, 400, b.field)
	}

	// An agent writes first: a new email thread with its own subject (not
	// "Re:"), theirs, its message through the gate.
	var started inbox.Summary
	call(t, s, agent, "POST", "/api/v1/conversations", map[string]any{"profile": dora.Profile, "channel": "email",
		"subject": "Your order is ready", "text": "Come and collect it today."}, 201, &started)
	if started.ID == dora.ID || started.Assignee != anaID || started.Subject != "Your order is ready" || started.LastMessage != "Come and collect it today." ||
		started.Customer.Email != "dora@omni-shop.dev" {
		t.Fatalf("started = %+v", started)
	}
	var got conversationAnswer
	call(t, s, agent, "GET", "/api/v1/conversations/"+started.ID, nil, 200, &got)
	if len(got.Messages) != 1 {
		t.Fatalf("messages = %+v", got.Messages)
	}
	if row := ledger(t, s, got.Messages[0].ID); row.Subject != "Your order is ready" || row.Kind != "conversation" || row.Conversation != started.ID {
		t.Fatalf("first mail's ledger row = %+v", row)
	}
	// Without a subject, the text's first line is the mail's.
	var noSubject inbox.Summary
	call(t, s, agent, "POST", "/api/v1/conversations", map[string]any{"profile": dora.Profile, "channel": "email",
		"text": "\n  Your refund   is on its way.\nIt takes 5 days."}, 201, &noSubject)
	if noSubject.ID == started.ID || noSubject.Subject != "Your refund is on its way." {
		t.Fatalf("started without a subject = %+v", noSubject)
	}
	// On SMS, a customer's unresolved conversation is continued, not doubled.
	receive(t, s, "sms:b4", "sms", events.Identities{events.Phone: "+447700900601"}, map[string]any{"text": "one more"})
	var again inbox.Summary
	call(t, s, agent, "POST", "/api/v1/conversations", map[string]any{"profile": one.Profile, "channel": "sms", "text": "On it"}, 201, &again)
	if again.ID != one.ID || again.LastMessage != "On it" {
		t.Fatalf("start on sms with an open conversation = %+v", again)
	}
	for _, b := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"channel": "sms", "text": "x"}, "profile"},
		{map[string]any{"profile": "no-such-customer", "channel": "sms", "text": "x"}, "profile"},
		{map[string]any{"profile": one.Profile, "channel": "chat", "text": "x"}, "channel"},
		{map[string]any{"profile": one.Profile, "channel": "sms"}, "text"},
	} {
		code, body := s.Do(t, "POST", "/api/v1/conversations", b.body, agent)
		omnitest.WantFieldError(t, code, body, 400, b.field)
	}

	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/conversations"}, {"GET", "/api/v1/conversations/counts"}, {"POST", "/api/v1/conversations"},
		{"POST", "/api/v1/conversations/bulk"}, {"GET", "/api/v1/conversations/" + one.ID}, {"PATCH", "/api/v1/conversations/" + one.ID},
		{"POST", "/api/v1/conversations/" + one.ID + "/read"}, {"POST", "/api/v1/conversations/" + one.ID + "/messages"},
		{"POST", "/api/v1/conversations/" + one.ID + "/messages/x/retry"},
	} {
		code, body := s.Do(t, r.method, r.path, map[string]any{}, nil)
		omnitest.WantError(t, code, body, 401)
	}
}
