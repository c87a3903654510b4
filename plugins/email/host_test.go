package email

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/internal/testkit/smtptest"
	"github.com/omni/omni/plugins/internal/hosttest"
	"github.com/omni/omni/plugins/sdk"
)

type storedEvent struct {
	ID         string
	Type       string
	Identities map[string]string
	Properties map[string]any
}

func storedEvents(t *testing.T, s *omnitest.Server) []storedEvent {
	t.Helper()
	var rows []struct {
		ID         string `db:"id"`
		Type       string `db:"type"`
		Identities string `db:"identities"`
		Properties string `db:"properties"`
	}
	if err := s.PB.DB().NewQuery("SELECT id, type, identities, properties FROM events WHERE source = 'email' ORDER BY occurred_at").All(&rows); err != nil {
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

func findEvent(t *testing.T, s *omnitest.Server, match func(storedEvent) bool) (storedEvent, bool) {
	for _, e := range storedEvents(t, s) {
		if match(e) {
			return e, true
		}
	}
	return storedEvent{}, false
}

// Through the real Omni: the outbox hands messages to the plugin
// subprocess, which sends them to an in-process SMTP server over
// STARTTLS + AUTH PLAIN. A 451 is retried and then sent once; a 550 is
// recorded as a permanent message.failed with the code; the customer's
// reply, read over IMAP, is stored as message.received threaded to the
// outbound message.
func TestOutboxAndMailboxUnderOmniHost(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Omni and a plugin subprocess")
	}
	srv := startSMTP(t, func(rcpt string, n int) error {
		switch {
		case strings.HasPrefix(rcpt, "busy@") && n == 1:
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "greylisted, try again"}
		case strings.HasPrefix(rcpt, "gone@"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	})
	imapAddr := startIMAP(t)
	cfg := imapConfig(imapAddr)
	for k, v := range smtpConfig(srv) {
		cfg[k] = v
	}
	cfg[keyReplyTo] = imapUser
	settings := map[string]any{}
	for k, v := range cfg {
		settings[k] = v
	}
	s := hosttest.Start(t, Name, New, settings)
	hosttest.Enable(t, s, Name)

	ctx := context.Background()
	busy := &sdk.OutboundMessage{ID: "out-busy", Channel: "email", To: map[string]string{"email": "busy@omni-shop.dev"},
		Subject: "Back in stock", Text: "The blue one is back.",
		Properties: map[string]any{"kind": "marketing", "unsubscribe_url": "https://shop.omni-shop.dev/p/u/t1"}}
	gone := &sdk.OutboundMessage{ID: "out-gone", Channel: "email", To: map[string]string{"email": "gone@omni-shop.dev"},
		Subject: "Your receipt", Text: "Thanks!", Properties: map[string]any{"kind": "transactional"}}
	for _, m := range []*sdk.OutboundMessage{busy, gone} {
		if err := connectors.Enqueue(ctx, s.Bus, Name, m); err != nil {
			t.Fatal(err)
		}
	}
	omnitest.Eventually(t, 60*time.Second, func() bool {
		_, sent := findEvent(t, s, func(e storedEvent) bool { return e.Type == "message.sent" })
		_, failed := findEvent(t, s, func(e storedEvent) bool { return e.Type == "message.failed" })
		return sent && failed
	}, "message.sent and message.failed stored")

	sent, _ := findEvent(t, s, func(e storedEvent) bool { return e.Type == "message.sent" })
	if sent.Properties["message_id"] != "out-busy" || sent.Properties["provider_message_id"] != "<omni.out-busy@omni-shop.dev>" {
		t.Fatalf("message.sent %+v", sent)
	}
	if srv.Attempts("busy@omni-shop.dev") != 2 {
		t.Fatalf("busy@ offered %d times, want 2 (451 then accepted)", srv.Attempts("busy@omni-shop.dev"))
	}
	delivered := 0
	for _, m := range srv.Mails() {
		if m.To[0] == "busy@omni-shop.dev" {
			delivered++
			if !strings.Contains(string(m.Data), "List-Unsubscribe-Post: List-Unsubscribe=One-Click") {
				t.Fatalf("marketing mail without one-click unsubscribe:\n%s", m.Data)
			}
		}
	}
	if delivered != 1 {
		t.Fatalf("busy@ received %d mails", delivered)
	}
	failed, _ := findEvent(t, s, func(e storedEvent) bool { return e.Type == "message.failed" })
	if failed.Properties["message_id"] != "out-gone" || failed.Properties["error_kind"] != "permanent" ||
		failed.Properties["error_code"] != "550" || failed.Properties["permanent"] != true ||
		!strings.Contains(failed.Properties["error"].(string), "5.1.1") || failed.Identities["email"] != "gone@omni-shop.dev" {
		t.Fatalf("message.failed %+v", failed)
	}
	if srv.Attempts("gone@omni-shop.dev") != 1 {
		t.Fatalf("a 550 was retried: %d attempts", srv.Attempts("gone@omni-shop.dev"))
	}

	// The customer replies; the reply lands in the mailbox Omni reads.
	box := openMailbox(t, imapAddr)
	reply := "From: Busy Bee <busy@omni-shop.dev>\nTo: " + imapUser + "\nSubject: Re: Back in stock\n" +
		"Message-ID: <reply-9@mail.omni-shop.dev>\nIn-Reply-To: <omni.out-busy@omni-shop.dev>\nReferences: <omni.out-busy@omni-shop.dev>\n\nGreat, I'll take it in M.\n"
	box.deliver(t, crlf(reply), time.Now())
	omnitest.Eventually(t, 60*time.Second, func() bool {
		_, ok := findEvent(t, s, func(e storedEvent) bool { return e.Type == "message.received" })
		return ok
	}, "reply stored")
	got, _ := findEvent(t, s, func(e storedEvent) bool { return e.Type == "message.received" })
	if got.Identities["email"] != "busy@omni-shop.dev" || got.Properties["outbound_id"] != "out-busy" ||
		got.Properties["conversation_key"] != "<omni.out-busy@omni-shop.dev>" || got.Properties["text"] != "Great, I'll take it in M." {
		t.Fatalf("message.received %+v", got)
	}
}

// Staff mail: with no mail server set up, a password-reset request says so
// (instead of "sent"); once the email connector runs, PocketBase's reset
// mail goes out through its SMTP settings.
func TestStaffPasswordResetGoesThroughTheConnector(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Omni and a plugin subprocess")
	}
	srv := smtptest.Start(t, smtptest.Options{Username: "shop@omni-shop.dev", Password: "relay-pass"})
	s := hosttest.Start(t, Name, New, map[string]any{
		keySMTPHost: srv.Host, keySMTPPort: strconv.Itoa(srv.Port), keySMTPSecurity: "none",
		keySMTPUser: "shop@omni-shop.dev", keySMTPPassword: "relay-pass",
		keyFromEmail: "shop@omni-shop.dev", keyFromName: "Omni Test Shop",
	})
	s.Staff(t, "agent@omni-shop.dev", "agent")
	reset := func() (int, []byte) {
		return s.Do(t, "POST", "/api/collections/staff/request-password-reset", map[string]string{"email": "agent@omni-shop.dev"}, nil)
	}
	status := func() map[string]any {
		code, body := s.Do(t, "GET", "/api/v1/mail/status", nil, nil)
		var out map[string]any
		if code != 200 || json.Unmarshal(body, &out) != nil {
			t.Fatalf("mail status: %d %s", code, body)
		}
		return out
	}

	if st := status(); st["ready"] != false {
		t.Fatalf("mail status before setup: %v", st)
	}
	code, body := reset()
	if e := omnitest.WantError(t, code, body, 503); !strings.Contains(e.Message, "Email isn't set up yet") || !strings.Contains(e.Message, "omni superuser") {
		t.Fatalf("reset without mail: %s", body)
	}

	hosttest.Enable(t, s, Name)
	if st := status(); st["ready"] != true || st["via"] != "connector" {
		t.Fatalf("mail status with the connector: %v", st)
	}
	if code, body := reset(); code != 204 {
		t.Fatalf("reset: %d %s", code, body)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool { return len(srv.Mails()) == 1 }, "reset mail delivered to the SMTP server")
	m := srv.Mails()[0]
	if m.To[0] != "agent@omni-shop.dev" || m.From != "shop@omni-shop.dev" || m.Auth != "shop@omni-shop.dev" ||
		!strings.Contains(string(m.Data), "\r\nSubject: Reset your") {
		t.Fatalf("reset mail from %s to %v (auth %q):\n%s", m.From, m.To, m.Auth, m.Data)
	}
}
