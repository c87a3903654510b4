package messaging_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/outbox"
)

// One server walks the gate end to end: who may send, bad bodies, no
// connector, consent, the cap, fallback, the WhatsApp window, status
// events moving the ledger, and a hard bounce making the address
// undeliverable. Quiet hours are off (noon, shop in UTC).
func TestGate(t *testing.T) {
	e := start(t, envOptions{configure: func(c *config.Config) { c.Messaging.FrequencyCap = []string{"2/24h", "5/7d"} }})
	e.owner = e.Staff(t, "owner@omni-shop.dev", "owner")
	e.agent = e.Staff(t, "agent@omni-shop.dev", "agent")
	ann := e.customer(t, "ann")

	// Nobody but staff.
	if code, _ := e.Do(t, "POST", "/api/v1/messages", map[string]any{"profile": ann, "channel": "email", "kind": "transactional", "body": "hi"}, nil); code != 401 {
		t.Fatalf("guest: %d, want 401", code)
	}
	// Bad bodies name the field.
	for field, body := range map[string]map[string]any{
		"kind":    {"profile": ann, "channel": "email", "kind": "promo", "body": "hi"},
		"channel": {"profile": ann, "channel": "pigeon", "kind": "transactional", "body": "hi"},
		"body":    {"profile": ann, "channel": "email", "kind": "transactional"},
		"profile": {"profile": "nobody", "channel": "email", "kind": "transactional", "body": "hi"},
	} {
		code, raw := e.Do(t, "POST", "/api/v1/messages", body, omnitest.Auth(e.agent))
		omnitest.WantFieldError(t, code, raw, 400, field)
	}

	// No connector sends email yet: 422 naming the setup step, in the ledger.
	code, r := e.send(t, e.agent, map[string]any{"profile": ann, "channel": "email", "kind": "transactional", "subject": "Order", "body": "Thanks"})
	if code != 422 || !strings.Contains(r.Reason, "no email channel is connected") || !strings.Contains(r.Reason, "Connectors page") {
		t.Fatalf("no connector: %d %+v", code, r)
	}
	if row := e.row(t, r.ID); row.Status != "suppressed" || !strings.Contains(row.Reason, "no email channel") {
		t.Fatalf("ledger after no connector: %+v", row)
	}
	e.enableRecorder(t)

	// Unsubscribed from SMS: marketing refused (409, ledger suppressed),
	// transactional still sent, rendered with Liquid.
	e.consent(t, ann, "sms", "unsubscribed")
	e.consent(t, ann, "email", "subscribed")
	code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "sms", "kind": "marketing", "body": "Sale!"})
	if code != 409 || r.MessageStatus != "suppressed" || !strings.Contains(r.Reason, "no marketing consent on sms (unsubscribed)") {
		t.Fatalf("marketing to unsubscribed: %d %+v", code, r)
	}
	if row := e.row(t, r.ID); row.Status != "suppressed" || !strings.Contains(row.Reason, "no marketing consent") {
		t.Fatalf("ledger: %+v", row)
	}
	code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "sms", "kind": "transactional", "body": "Hi {{ customer.first_name }}, your order shipped"})
	if code != 202 || r.Status != "queued" || r.Channel != "sms" {
		t.Fatalf("transactional: %d %+v", code, r)
	}
	e.waitStatus(t, r.ID, "sent")
	got, _ := e.vendor.message(r.ID)
	if got.Text != "Hi Ann, your order shipped" || got.To["phone"] == "" || got.Properties["kind"] != "transactional" ||
		got.Properties["status_callback_url"] != "https://shop.omni-shop.dev/webhooks/twilio/status" {
		t.Fatalf("connector received %+v", got)
	}
	if row := e.row(t, r.ID); row.ProviderID != "prov-"+r.ID || row.SentAt == "" {
		t.Fatalf("sent row: %+v", row)
	}

	// A template record, by name, rendered for the customer.
	col, err := e.PB.FindCollectionByNameOrId("templates")
	if err != nil {
		t.Fatal(err)
	}
	tpl := core.NewRecord(col)
	tpl.Load(map[string]any{"name": "shipped", "channel": "email", "kind": "transactional",
		"subject": "{{ customer.first_name }}, it shipped", "body": "Order {{ event.properties.order_id }} is on its way."})
	if err := e.PB.Save(tpl); err != nil {
		t.Fatal(err)
	}
	code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "email", "kind": "transactional", "template": "shipped",
		"event": map[string]any{"type": "order.fulfilled", "properties": map[string]any{"order_id": "1042"}}})
	if code != 202 {
		t.Fatalf("template send: %d %+v", code, r)
	}
	e.waitStatus(t, r.ID, "sent")
	if got, _ = e.vendor.message(r.ID); got.Subject != "Ann, it shipped" || got.Text != "Order 1042 is on its way." || got.To["email"] != "ann@omni-shop.dev" {
		t.Fatalf("template rendered as %q / %q to %v", got.Subject, got.Text, got.To)
	}
	// Without a kind, the send is what its template says.
	code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "email", "template": "shipped",
		"event": map[string]any{"type": "order.fulfilled", "properties": map[string]any{"order_id": "1043"}}})
	var kind string
	_ = e.PB.DB().NewQuery("SELECT kind FROM messages WHERE id={:id}").Bind(dbx.Params{"id": r.ID}).Row(&kind)
	if code != 202 || kind != "transactional" {
		t.Fatalf("template send without a kind: %d %+v, ledger kind %q", code, r, kind)
	}

	// Fallback: SMS refused, email chosen; the ledger says why SMS was skipped.
	code, r = e.send(t, e.owner, map[string]any{"profile": ann, "channel": []string{"sms", "email"}, "kind": "marketing", "subject": "Sale", "body": "Sale! {{ unsubscribe_url }}"})
	if code != 202 || r.Channel != "email" {
		t.Fatalf("fallback: %d %+v", code, r)
	}
	var attempts []messagingAttempt
	_ = json.Unmarshal([]byte(e.row(t, r.ID).Attempts), &attempts)
	if len(attempts) != 2 || attempts[0].Channel != "sms" || attempts[0].Outcome != "skipped" || !strings.Contains(attempts[0].Reason, "consent") || attempts[1].Outcome != "chosen" {
		t.Fatalf("attempts: %+v", attempts)
	}
	e.waitStatus(t, r.ID, "sent")
	got, _ = e.vendor.message(r.ID)
	unsub, _ := got.Properties["unsubscribe_url"].(string)
	if !strings.HasPrefix(unsub, "https://shop.omni-shop.dev/p/") || !strings.Contains(got.Text, unsub) {
		t.Fatalf("unsubscribe link: %q in %q", unsub, got.Text)
	}

	// Frequency cap: a second marketing message passes, the third is capped.
	if code, r = e.send(t, e.owner, map[string]any{"profile": ann, "channel": "email", "kind": "marketing", "subject": "Two", "body": "2"}); code != 202 {
		t.Fatalf("second marketing: %d %+v", code, r)
	}
	code, r = e.send(t, e.owner, map[string]any{"profile": ann, "channel": "email", "kind": "marketing", "subject": "Three", "body": "3"})
	if code != 409 || r.Reason != "frequency cap: 2 in 24h" {
		t.Fatalf("third marketing: %d %+v", code, r)
	}
	if row := e.row(t, r.ID); row.Status != "suppressed" || row.Reason != "frequency cap: 2 in 24h" {
		t.Fatalf("capped row: %+v", row)
	}
	if code, _ = e.send(t, e.owner, map[string]any{"profile": ann, "channel": "email", "kind": "transactional", "subject": "Receipt", "body": "r"}); code != 202 {
		t.Fatalf("transactional is not capped: %d", code)
	}

	// WhatsApp: free-form outside the 24-hour window is refused, an
	// approved template goes; once the customer writes, free-form goes.
	code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "whatsapp", "kind": "conversation", "body": "Hello"})
	if code != 409 || !strings.Contains(r.Reason, "24-hour window") || !strings.Contains(r.Reason, "template") {
		t.Fatalf("free-form outside window: %d %+v", code, r)
	}
	code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "whatsapp", "kind": "transactional",
		"wa_template": map[string]any{"name": "order_update", "language": "en", "params": []string{"{{ customer.first_name }}"}}})
	if code != 202 {
		t.Fatalf("template outside window: %d %+v", code, r)
	}
	e.waitStatus(t, r.ID, "sent")
	if got, _ = e.vendor.message(r.ID); got.Template == nil || got.Template.Name != "order_update" || len(got.Template.Params) != 1 || got.Template.Params[0] != "Ann" {
		t.Fatalf("template sent: %+v", got.Template)
	}
	e.emit(t, &events.Event{ID: "wa-in-1", Type: events.MessageReceived, Identities: events.Identities{"email": "ann@omni-shop.dev"},
		Properties: map[string]any{"text": "hi"}, Context: events.Context{Channel: "whatsapp"}})
	omnitest.Eventually(t, 30*time.Second, func() bool {
		var p string
		_ = e.PB.DB().NewQuery("SELECT profile FROM events WHERE event_id='wa-in-1'").Row(&p)
		return p == ann
	}, "the customer's WhatsApp message stored")
	if code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "whatsapp", "kind": "conversation", "body": "Hello back"}); code != 202 {
		t.Fatalf("free-form inside the window: %d %+v", code, r)
	}

	// Status events move the ledger forward, never back.
	code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "sms", "kind": "transactional", "body": "track"})
	if code != 202 {
		t.Fatal(code)
	}
	id := r.ID
	e.waitStatus(t, id, "sent")
	// As a vendor's status webhook comes: its own id as message_id (a
	// Twilio sid, a wamid), the ledger row as outbound_id.
	e.emit(t, &events.Event{ID: "st-d-" + id, Type: events.MessageDelivered, Identities: events.Identities{"email": "ann@omni-shop.dev"},
		Properties: map[string]any{"message_id": "SM-vendor-" + id, "outbound_id": id}, Context: events.Context{Channel: "sms"}})
	e.waitStatus(t, id, "delivered")
	e.emit(t, &events.Event{ID: "st-r-" + id, Type: events.MessageRead, Identities: events.Identities{"email": "ann@omni-shop.dev"},
		Properties: map[string]any{"provider_message_id": "prov-" + id}, Context: events.Context{Channel: "sms"}})
	e.waitStatus(t, id, "read")
	e.emit(t, &events.Event{ID: "st-d2-" + id, Type: events.MessageDelivered, Identities: events.Identities{"email": "ann@omni-shop.dev"},
		Properties: map[string]any{"outbound_id": id}, Context: events.Context{Channel: "sms"}})
	omnitest.Eventually(t, 30*time.Second, func() bool {
		var n int
		_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE event_id={:id}").Bind(dbx.Params{"id": "st-d2-" + id}).Row(&n)
		return n == 1
	}, "late delivered event stored")
	if row := e.row(t, id); row.Status != "read" || row.ReadAt == "" {
		t.Fatalf("a late delivered moved read back: %+v", row)
	}

	// A hard bounce marks the address undeliverable: the next
	// transactional email is refused, and says why.
	code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "email", "kind": "transactional", "subject": "Invoice", "body": "inv"})
	if code != 202 {
		t.Fatal(code)
	}
	e.waitStatus(t, r.ID, "sent")
	e.emit(t, &events.Event{ID: "st-f-" + r.ID, Type: events.MessageFailed, Identities: events.Identities{"email": "ann@omni-shop.dev"},
		Properties: map[string]any{"outbound_id": r.ID, "error_code": "550", "error_reason": "5.1.1 mailbox does not exist", "permanent": true},
		Context:    events.Context{Channel: "email"}})
	e.waitStatus(t, r.ID, "failed")
	code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "email", "kind": "transactional", "subject": "Again", "body": "again"})
	if code != 409 || !strings.Contains(r.Reason, "ann@omni-shop.dev is undeliverable (5.1.1 mailbox does not exist)") {
		t.Fatalf("after hard bounce: %d %+v", code, r)
	}

	// The list for the timeline and the inbox.
	code, raw := e.Do(t, "GET", "/api/v1/messages?profile="+ann, nil, omnitest.Auth(e.agent))
	var list struct {
		Items []struct{ ID, Status string } `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); code != 200 || err != nil || len(list.Items) < 10 || list.Items[0].ID != r.ID {
		t.Fatalf("list: %d %s", code, raw)
	}
	if code, _ := e.Do(t, "GET", "/api/v1/messages?profile="+ann, nil, nil); code != 401 {
		t.Fatalf("guest list: %d", code)
	}

	// A queued row whose publish was lost (the process died between the
	// ledger write and the bus) is published from the ledger.
	const lost = "lostpublish0001"
	if _, err := e.PB.DB().NewQuery(`INSERT INTO messages (id, profile, channel, kind, "to", status, connector, attempts, outbound, enqueued, queued_at, created, updated)
		VALUES ({:id}, {:p}, 'sms', 'transactional', '+447700900021', 'queued', 'recorder', '[]', {:out}, 0, '2026-06-01 11:00:00.000Z', '2026-06-01 11:00:00.000Z', '2026-06-01 11:00:00.000Z')`).
		Bind(dbx.Params{"id": lost, "p": ann, "out": `{"id":"` + lost + `","channel":"sms","to":{"phone":"+447700900021"},"text":"survived"}`}).Execute(); err != nil {
		t.Fatal(err)
	}
	e.waitStatus(t, lost, "sent")
	if got, _ := e.vendor.message(lost); got.Text != "survived" {
		t.Fatalf("re-driven message: %+v", got)
	}

	// Other modules send over the bus; the request id makes it idempotent.
	req := &outbox.SendRequest{ID: "journey-run-7:step-2", Profile: ann, Channels: []string{"sms"}, Kind: "transactional", Body: "from a journey", JourneyRun: "run-7"}
	for range 2 {
		if err := outbox.RequestSend(context.Background(), e.Bus, req); err != nil {
			t.Fatal(err)
		}
	}
	var viaBus string
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return e.PB.DB().NewQuery("SELECT id FROM messages WHERE journey_run='run-7' AND status='sent'").Row(&viaBus) == nil
	}, "the bus request sent")
	var n int
	_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM messages WHERE journey_run='run-7'").Row(&n)
	if got, _ := e.vendor.message(viaBus); n != 1 || got.JourneyRun != "run-7" {
		t.Fatalf("bus request: %d rows, sent %+v", n, got)
	}
}

type messagingAttempt struct{ Channel, Outcome, Reason string }

// A marketing message in the customer's quiet hours waits, durably: Omni
// restarts on the same data, the clock passes the window's end, and the
// message is re-checked and sent.
func TestQuietHoursDelayThenSendAfterRestart(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{now: time.Date(2026, 6, 1, 22, 30, 0, 0, time.UTC)} // 23:30 in London (BST)
	v := newVendor(t)
	conf := func(c *config.Config) { c.Messaging.QuietHours = "21:00-08:00"; c.Messaging.Timezone = "Europe/London" }
	e := start(t, envOptions{dataDir: dir, clock: clk, vendor: v, configure: conf})
	e.owner = e.Staff(t, "owner@omni-shop.dev", "owner")
	bo := e.customer(t, "bo")
	e.consent(t, bo, "email", "subscribed")
	e.enableRecorder(t)

	code, r := e.send(t, e.owner, map[string]any{"profile": bo, "channel": "email", "kind": "marketing", "subject": "New in", "body": "Look"})
	if code != 202 || r.Status != "scheduled" || !strings.HasPrefix(r.SendAt, "2026-06-02 07:00:00") {
		t.Fatalf("in quiet hours: %d %+v", code, r)
	}
	// Transactional messages are not held.
	if code, tr := e.send(t, e.owner, map[string]any{"profile": bo, "channel": "email", "kind": "transactional", "subject": "Receipt", "body": "r"}); code != 202 || tr.Status != "queued" {
		t.Fatalf("transactional at night: %d %+v", code, tr)
	}
	e.Stop()
	if _, ok := v.message(r.ID); ok {
		t.Fatal("sent during quiet hours")
	}

	clk.Set(time.Date(2026, 6, 2, 7, 0, 1, 0, time.UTC))
	e2 := start(t, envOptions{dataDir: dir, clock: clk, vendor: v, configure: conf})
	e2.waitStatus(t, r.ID, "sent")
	if got, ok := v.message(r.ID); !ok || got.Subject != "New in" {
		t.Fatalf("after restart the vendor got %+v", got)
	}
}
