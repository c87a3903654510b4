package twilio

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/plugins/internal/hosttest"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/twilio/twiliofake"
)

type storedEvent struct {
	ID         string
	Type       string
	Identities map[string]string
	Properties map[string]any
}

func storedEvents(t *testing.T, s *omnitest.Server, typ string) []storedEvent {
	t.Helper()
	var rows []struct {
		ID         string `db:"id"`
		Type       string `db:"type"`
		Identities string `db:"identities"`
		Properties string `db:"properties"`
	}
	if err := s.PB.DB().NewQuery("SELECT id, type, identities, properties FROM events WHERE source = 'twilio' AND type = {:t} ORDER BY occurred_at").
		Bind(map[string]any{"t": typ}).All(&rows); err != nil {
		t.Fatal(err)
	}
	out := make([]storedEvent, 0, len(rows))
	for _, r := range rows {
		e := storedEvent{ID: r.ID, Type: r.Type}
		_ = json.Unmarshal([]byte(r.Identities), &e.Identities)
		_ = json.Unmarshal([]byte(r.Properties), &e.Properties)
		out = append(out, e)
	}
	return out
}

func waitFor(t *testing.T, s *omnitest.Server, typ string, match func(storedEvent) bool, what string) storedEvent {
	t.Helper()
	var found storedEvent
	omnitest.Eventually(t, 60*time.Second, func() bool {
		for _, e := range storedEvents(t, s, typ) {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	}, what)
	return found
}

// The whole SMS path under a real Omni, with the plugin as a subprocess
// and the profiles module: an outbox send reaches the fake with Omni's
// status callback URL; Twilio's signed "delivered" callback becomes
// message.delivered joined to the outbox message (once, though Twilio
// redelivers); the customer's reply is a message.received; their STOP
// unsubscribes SMS consent on their profile, after which Twilio's 21610 is
// a permanent failure; a 429 is retried until sent.
func TestSMSEndToEndUnderOmni(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Omni and a plugin subprocess")
	}
	fake := twiliofake.New(t)
	s := hosttest.Start(t, Name, New, map[string]any{KeyAccountSID: fake.AccountSID, KeyAuthToken: fake.AuthToken,
		KeyFromPhone: shopNumber, KeyTestBaseURL: fake.URL}, profiles.New(profiles.Options{Interval: -1}))
	hosttest.Enable(t, s, Name)
	ctx := context.Background()
	statusURL := s.URL + "/webhooks/twilio/status"
	send := func(id, to, text string) {
		t.Helper()
		msg := &sdk.OutboundMessage{ID: id, Channel: "sms", To: map[string]string{"phone": to}, Text: text,
			Properties: map[string]any{"kind": "transactional", "status_callback_url": statusURL}}
		if err := connectors.Enqueue(ctx, s.Bus, Name, msg); err != nil {
			t.Fatal(err)
		}
	}

	// Send → message.sent with Twilio's sid.
	send("msg-ship", customer, "Your order #1001 has shipped")
	sent := waitFor(t, s, "message.sent", func(e storedEvent) bool { return e.Properties["message_id"] == "msg-ship" }, "message.sent")
	msgs := fake.Messages()
	if len(msgs) != 1 || sent.Properties["provider_message_id"] != msgs[0].SID ||
		msgs[0].Form.Get("StatusCallback") != statusURL+"?outbound_id=msg-ship" || msgs[0].Form.Get("From") != shopNumber {
		t.Fatalf("sent %+v; fake saw %+v", sent, msgs)
	}

	// Twilio's delivered callback, twice: one message.delivered.
	for i := 0; i < 2; i++ {
		if code := fake.Status(t, msgs[0].SID, "delivered", ""); code != 200 {
			t.Fatalf("status callback %d: %d", i, code)
		}
	}
	del := waitFor(t, s, "message.delivered", func(e storedEvent) bool { return true }, "message.delivered")
	if del.Properties["outbound_id"] != "msg-ship" || del.Properties["provider_message_id"] != msgs[0].SID || del.Identities["phone"] != customer {
		t.Fatalf("message.delivered: %+v", del)
	}
	if n := len(storedEvents(t, s, "message.delivered")); n != 1 {
		t.Fatalf("%d message.delivered stored", n)
	}

	// A forged callback is refused through Omni's webhook route.
	forged := url.Values{"MessageSid": {msgs[0].SID}, "MessageStatus": {"failed"}, "To": {customer}, "ErrorCode": {"30005"}}
	code, body := s.Do(t, "POST", "/webhooks/twilio/status?outbound_id=msg-ship", forged.Encode(), http.Header{
		"Content-Type": {"application/x-www-form-urlencoded"}, "X-Twilio-Signature": {twiliofake.Signature("guess", statusURL+"?outbound_id=msg-ship", forged)}})
	if code != 403 || !strings.Contains(string(body), "X-Twilio-Signature") {
		t.Fatalf("forged callback: %d %s", code, body)
	}

	// The customer replies; TwiML stays empty so Twilio answers nothing.
	code, body = fake.Inbound(t, s.URL+"/webhooks/twilio/sms", customer, shopNumber, "Thanks! Can I change the address?")
	if code != 200 || !strings.Contains(string(body), "<Response/>") {
		t.Fatalf("inbound: %d %s", code, body)
	}
	waitFor(t, s, "message.received", func(e storedEvent) bool {
		return e.Properties["text"] == "Thanks! Can I change the address?" && e.Identities["phone"] == customer
	}, "message.received")

	// STOP by SMS → SMS consent unsubscribed on the customer's profile.
	if code, body := fake.Inbound(t, s.URL+"/webhooks/twilio/sms", customer, shopNumber, "STOP"); code != 200 {
		t.Fatalf("STOP: %d %s", code, body)
	}
	var pid string
	omnitest.Eventually(t, 30*time.Second, func() bool {
		_ = s.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind='phone' AND value={:v}").Bind(map[string]any{"v": customer}).Row(&pid)
		if pid == "" {
			return false
		}
		c, err := profiles.Consent(s.PB, pid, "sms")
		return err == nil && c.Status == profiles.ConsentUnsubscribed
	}, "sms consent unsubscribed")
	c, _ := profiles.Consent(s.PB, pid, "sms")
	if c.Source != "twilio" || c.Reason != "replied STOP" {
		t.Fatalf("consent entry: %+v", c)
	}

	// Twilio now blocks sends to that number: 21610, failed for good.
	send("msg-promo", customer, "20% off today")
	failed := waitFor(t, s, "message.failed", func(e storedEvent) bool { return e.Properties["message_id"] == "msg-promo" }, "message.failed")
	if failed.Properties["error_code"] != CodeUnsubscribed || failed.Properties["error_kind"] != "permanent" {
		t.Fatalf("message.failed: %+v", failed)
	}
	if n := fake.Hits(customer); n != 2 {
		t.Fatalf("a permanent failure was retried: %d attempts", n)
	}

	// 429 then accepted: retried after Retry-After, sent once.
	const busy = "+14155550177"
	fake.Fail(busy, twiliofake.Failure{Status: 429, Code: 20429, Message: "Too Many Requests", RetryAfter: "1"})
	send("msg-busy", busy, "Your code is 123456")
	waitFor(t, s, "message.sent", func(e storedEvent) bool { return e.Properties["message_id"] == "msg-busy" }, "message.sent after a 429")
	if n := fake.Hits(busy); n != 2 {
		t.Fatalf("429: %d attempts", n)
	}
}
