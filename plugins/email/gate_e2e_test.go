package email

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/pocketbase/dbx"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/plugins/internal/hosttest"
)

// gateEnv is Omni with profiles, the messaging gate and this connector as
// a real plugin subprocess, sending to an in-process SMTP server.
type gateEnv struct {
	*omnitest.Server
	owner string
}

// publicURL is where customers reach the shop (behind its https proxy);
// the test maps it back to the test server's address.
const publicURL = "https://shop.omni-shop.dev"

func (e *gateEnv) customer(t *testing.T, email, firstName string) string {
	t.Helper()
	code, body := e.Track(t, "/v1/identify", map[string]any{"userId": "u-" + email, "messageId": "id-" + email,
		"traits": map[string]any{"email": email, "first_name": firstName}})
	if code != 200 {
		t.Fatalf("identify %s: %d %s", email, code, body)
	}
	var id string
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return e.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind='email' AND value={:v}").Bind(dbx.Params{"v": email}).Row(&id) == nil && id != ""
	}, "profile of %s", email)
	return id
}

// gateReply is the gate's answer: "status" is the message's status in a
// 202, the HTTP status in a refusal (which says message_status instead).
type gateReply struct {
	ID            string `json:"id"`
	Status        any    `json:"status"`
	MessageStatus string `json:"message_status"`
	Reason        string `json:"reason"`
}

func (e *gateEnv) send(t *testing.T, body map[string]any) (int, gateReply) {
	t.Helper()
	code, raw := e.Do(t, "POST", "/api/v1/messages", body, omnitest.Auth(e.owner))
	var r gateReply
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("send answered %d, not JSON: %s", code, raw)
	}
	return code, r
}

type ledgerEntry struct {
	Status     string `db:"status"`
	QueuedAt   string `db:"queued_at"`
	SentAt     string `db:"sent_at"`
	Reason     string `db:"reason"`
	ErrorCode  string `db:"error_code"`
	ProviderID string `db:"provider_id"`
}

func (e *gateEnv) ledger(t *testing.T, id string) ledgerEntry {
	t.Helper()
	var r ledgerEntry
	if err := e.PB.DB().NewQuery("SELECT status, queued_at, sent_at, reason, error_code, provider_id FROM messages WHERE id={:id}").
		Bind(dbx.Params{"id": id}).One(&r); err != nil {
		t.Fatalf("ledger row %s: %v", id, err)
	}
	return r
}

func (e *gateEnv) consent(t *testing.T, profile string) map[string]profiles.ConsentEntry {
	t.Helper()
	var raw string
	if err := e.PB.DB().NewQuery("SELECT consent FROM profiles WHERE id={:id}").Bind(dbx.Params{"id": profile}).Row(&raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]profiles.ConsentEntry{}
	if raw != "" && raw != "null" {
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatalf("consent %q: %v", raw, err)
		}
	}
	return out
}

// The email scenario end to end, through the real parts: the
// staff consent API, a Liquid template record, the gate's HTTP API, the
// OUTBOX, the email connector as a plugin subprocess, an SMTP server, the
// status events back into the ledger, the RFC 8058 one-click unsubscribe,
// the hard-bounce suppression and a greylisting retry.
func TestMarketingEmailThroughTheGateToSMTP(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Omni and a plugin subprocess")
	}
	srv := startSMTP(t, func(rcpt string, n int) error {
		switch {
		case strings.HasPrefix(rcpt, "gone@"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		case strings.HasPrefix(rcpt, "busy@") && n == 1:
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "greylisted, try again"}
		}
		return nil
	})
	settings := map[string]any{}
	for k, v := range smtpConfig(srv) {
		settings[k] = v
	}
	s := hosttest.StartConfigured(t, Name, New, settings, func(c *config.Config) {
		c.PublicURL = publicURL
		c.Messaging.QuietHours = "" // the wall clock must not hold this marketing send
	}, profiles.New(profiles.Options{}), messaging.New(messaging.Options{Tick: 100 * time.Millisecond}))
	hosttest.Enable(t, s, Name)
	e := &gateEnv{Server: s, owner: s.Staff(t, "owner@omni-shop.dev", "owner")}

	// A subscribed customer and a marketing template.
	ann := e.customer(t, "ann@omni-shop.dev", "Ann")
	if code, body := e.Do(t, "POST", "/api/v1/profiles/"+ann+"/consent",
		map[string]any{"channel": "email", "status": "subscribed", "reason": "signed up at the till"}, omnitest.Auth(e.owner)); code != 200 {
		t.Fatalf("consent: %d %s", code, body)
	}
	if code, body := e.Do(t, "POST", "/api/collections/templates/records", map[string]any{
		"name": "Spring sale", "channel": "email", "kind": "marketing", "subject": "Spring sale, {{ customer.first_name }}",
		"body": "Hi {{ customer.first_name }}, 20% off this week.\nUnsubscribe: {{ unsubscribe_url }}"}, omnitest.Auth(e.owner)); code != 200 {
		t.Fatalf("template: %d %s", code, body)
	}

	// No kind: the template's (marketing) applies.
	code, first := e.send(t, map[string]any{"profile": ann, "channel": "email", "template": "Spring sale"})
	if code != 202 || first.Status != "queued" || first.ID == "" {
		t.Fatalf("marketing send: %d %+v", code, first)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool { return e.ledger(t, first.ID).Status == "sent" }, "ledger row %s sent", first.ID)
	if row := e.ledger(t, first.ID); row.QueuedAt == "" || row.SentAt == "" {
		t.Fatalf("sent row without its queued and sent times: %+v", row)
	}

	var got *mail.Message
	var raw []byte
	for _, m := range srv.Mails() {
		if m.To[0] == "ann@omni-shop.dev" {
			raw = m.Data
		}
	}
	if raw == nil {
		t.Fatalf("the SMTP server has no mail for ann@: %d mails", len(srv.Mails()))
	}
	pm := parse(t, raw)
	got = pm.header
	wantID := "<omni." + first.ID + "@omni-shop.dev>"
	if got.Header.Get("Message-Id") != wantID || e.ledger(t, first.ID).ProviderID != wantID {
		t.Fatalf("Message-ID %q, ledger provider id %q, want %q", got.Header.Get("Message-Id"), e.ledger(t, first.ID).ProviderID, wantID)
	}
	if subj := got.Header.Get("Subject"); subj != "Spring sale, Ann" {
		t.Fatalf("subject %q", subj)
	}
	if text := pm.parts["text/plain"]; !strings.Contains(text, "Hi Ann, 20% off this week.") || !strings.Contains(text, publicURL+"/p/u/") {
		t.Fatalf("text part not rendered for Ann:\n%s", raw)
	}
	if got.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
		t.Fatalf("no RFC 8058 List-Unsubscribe-Post:\n%s", raw)
	}
	var oneClick string
	hasMailto := false
	for _, part := range strings.Split(got.Header.Get("List-Unsubscribe"), ",") {
		u := strings.Trim(strings.TrimSpace(part), "<>")
		switch {
		case strings.HasPrefix(u, "https://"):
			oneClick = u
		case strings.HasPrefix(u, "mailto:"):
			hasMailto = true
		}
	}
	// No mailbox is read (no IMAP settings), so no mailto: an unsubscribe
	// mailed there would be lost.
	if !strings.HasPrefix(oneClick, publicURL+"/p/u/") || hasMailto {
		t.Fatalf("List-Unsubscribe %q: want only the https one-click URL", got.Header.Get("List-Unsubscribe"))
	}

	// The mail app's Unsubscribe button: RFC 8058's POST to that URL
	// (through the shop's proxy, here straight to Omni).
	u, err := url.Parse(oneClick)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(s.URL+u.Path, "application/x-www-form-urlencoded", bytes.NewReader([]byte("List-Unsubscribe=One-Click")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("one-click unsubscribe answered %d", resp.StatusCode)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.consent(t, ann)["email"].Status == "unsubscribed" }, "Ann unsubscribed from email")
	if c := e.consent(t, ann)["email"]; c.Source != "customer" || !strings.Contains(c.Reason, "RFC 8058") {
		t.Fatalf("consent after one-click: %+v, want source customer, the one-click reason", c)
	}
	code, again := e.send(t, map[string]any{"profile": ann, "channel": "email", "kind": "marketing", "template": "Spring sale"})
	if code != 409 || again.MessageStatus != "suppressed" || !strings.Contains(again.Reason, "unsubscribed") {
		t.Fatalf("marketing after unsubscribe: %d %+v", code, again)
	}

	// A second customer whose mailbox does not exist: 550 → failed,
	// undeliverable, and the next send (even transactional) is refused.
	gone := e.customer(t, "gone@omni-shop.dev", "Gus")
	code, receipt := e.send(t, map[string]any{"profile": gone, "channel": "email", "kind": "transactional",
		"subject": "Your receipt", "body": "Thanks for your order, {{ customer.first_name }}."})
	if code != 202 {
		t.Fatalf("transactional send: %d %+v", code, receipt)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool { return e.ledger(t, receipt.ID).Status == "failed" }, "ledger row %s failed", receipt.ID)
	if row := e.ledger(t, receipt.ID); !strings.Contains(row.Reason, "no such user") || row.ErrorCode != "550" {
		t.Fatalf("failed row %+v: want the server's reason and code 550", row)
	}
	var suppressed int
	if err := e.PB.DB().NewQuery("SELECT COUNT(*) FROM message_suppressions WHERE channel='email' AND address='gone@omni-shop.dev' AND message={:m}").
		Bind(dbx.Params{"m": receipt.ID}).Row(&suppressed); err != nil || suppressed != 1 {
		t.Fatalf("message_suppressions rows for gone@: %d (%v)", suppressed, err)
	}
	code, next := e.send(t, map[string]any{"profile": gone, "channel": "email", "kind": "transactional",
		"subject": "Your order shipped", "body": "On its way."})
	if code != 409 || next.MessageStatus != "suppressed" || !strings.Contains(next.Reason, "undeliverable") {
		t.Fatalf("transactional to a bounced address: %d %+v", code, next)
	}
	if n := srv.Attempts("gone@omni-shop.dev"); n != 1 {
		t.Fatalf("gone@ offered %d times, want 1 (550 is not retried, the refused send never reaches SMTP)", n)
	}

	// A greylisting server (451): retried, then sent once; the ledger
	// ends sent and the address stays deliverable.
	busy := e.customer(t, "busy@omni-shop.dev", "Bo")
	code, greylisted := e.send(t, map[string]any{"profile": busy, "channel": "email", "kind": "transactional",
		"subject": "Your receipt", "body": "Thanks, {{ customer.first_name }}."})
	if code != 202 {
		t.Fatalf("transactional to busy@: %d %+v", code, greylisted)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool { return e.ledger(t, greylisted.ID).Status == "sent" }, "ledger row %s sent after the retry", greylisted.ID)
	delivered := 0
	for _, m := range srv.Mails() {
		if m.To[0] == "busy@omni-shop.dev" {
			delivered++
		}
	}
	if n := srv.Attempts("busy@omni-shop.dev"); n != 2 || delivered != 1 {
		t.Fatalf("busy@ offered %d times, %d mails delivered; want 2 (451, then accepted) and 1", n, delivered)
	}
	if err := e.PB.DB().NewQuery("SELECT COUNT(*) FROM message_suppressions WHERE address='busy@omni-shop.dev'").Row(&suppressed); err != nil || suppressed != 0 {
		t.Fatalf("a 451 made busy@ undeliverable: %d (%v)", suppressed, err)
	}
}
