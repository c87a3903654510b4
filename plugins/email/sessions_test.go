package email

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/omni/omni/plugins/sdk"
)

// Messages share logged-in connections: one TLS handshake and one login
// carry up to sessionMessages of them, one after the other.
func TestSendsShareALoggedInConnection(t *testing.T) {
	srv := startSMTP(t, nil)
	c := newConnector()
	if err := c.Configure(context.Background(), smtpConfig(srv), nil); err != nil {
		t.Fatal(err)
	}
	n := sessionMessages + 5
	for i := range n {
		if _, err := c.Send(context.Background(), &sdk.OutboundMessage{ID: fmt.Sprintf("s%d", i), Channel: "email",
			To: map[string]string{"email": fmt.Sprintf("c%d@omni-shop.dev", i)}, Subject: "Hi", Text: "hello"}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	mails := srv.Mails()
	if len(mails) != n {
		t.Fatalf("server has %d mails, want %d", len(mails), n)
	}
	for i, m := range mails {
		if !m.TLS || m.Auth != "shop@omni-shop.dev" || len(m.To) != 1 || m.To[0] != fmt.Sprintf("c%d@omni-shop.dev", i) {
			t.Fatalf("mail %d: tls %v auth %q to %v", i, m.TLS, m.Auth, m.To)
		}
	}
	if got := srv.Connections(); got != 2 {
		t.Fatalf("%d messages took %d connections, want 2 (%d a connection)", n, got, sessionMessages)
	}
	if got := srv.Logins(); got != 2 {
		t.Fatalf("%d logins, want 2", got)
	}
}

// A kept connection the server dropped meanwhile is noticed at MAIL, before
// the message was accepted: the message goes on a new connection, once.
func TestDroppedSessionIsDialledAgain(t *testing.T) {
	srv := startSMTP(t, nil)
	c := newConnector()
	if err := c.Configure(context.Background(), smtpConfig(srv), nil); err != nil {
		t.Fatal(err)
	}
	send := func(id string) error {
		_, err := c.Send(context.Background(), &sdk.OutboundMessage{ID: id, Channel: "email",
			To: map[string]string{"email": "ann@omni-shop.dev"}, Subject: "Hi", Text: id})
		return err
	}
	if err := send("d1"); err != nil {
		t.Fatal(err)
	}
	srv.DropConnections()
	if err := send("d2"); err != nil {
		t.Fatalf("send after the server dropped the connection: %v", err)
	}
	mails := srv.Mails()
	if len(mails) != 2 || !strings.Contains(string(mails[1].Data), "d2") {
		t.Fatalf("server has %d mails", len(mails))
	}
	if got := srv.Connections(); got != 2 {
		t.Fatalf("%d connections, want 2", got)
	}
	if got := srv.Attempts("ann@omni-shop.dev"); got != 2 {
		t.Fatalf("the recipient was offered %d times, want 2 (once per message)", got)
	}
}

// A refused recipient ends that message only: the connection, reset,
// carries the next one. New settings open a new connection.
func TestRefusalKeepsTheSessionNewSettingsDoNot(t *testing.T) {
	srv := startSMTP(t, func(rcpt string, _ int) error {
		if strings.HasPrefix(rcpt, "gone@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable"}
		}
		return nil
	})
	c := newConnector()
	cfg := smtpConfig(srv)
	if err := c.Configure(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	send := func(to string) error {
		_, err := c.Send(context.Background(), &sdk.OutboundMessage{ID: "r-" + to, Channel: "email", To: map[string]string{"email": to}, Text: "hi"})
		return err
	}
	if err := send("gone@omni-shop.dev"); sdk.AsSendError(err) == nil || sdk.AsSendError(err).Code != "550" {
		t.Fatalf("refused recipient: %v", err)
	}
	if err := send("ann@omni-shop.dev"); err != nil {
		t.Fatal(err)
	}
	if got, mails := srv.Connections(), srv.Mails(); got != 1 || len(mails) != 1 || mails[0].To[0] != "ann@omni-shop.dev" {
		t.Fatalf("%d connections, mails %+v", got, mails)
	}
	cfg[keyFromName] = "Omni Test Shop (new name)"
	if err := c.Configure(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	if err := send("bob@omni-shop.dev"); err != nil {
		t.Fatal(err)
	}
	if got := srv.Connections(); got != 2 {
		t.Fatalf("%d connections after new settings, want 2", got)
	}
}

// Concurrent sends each get a session of their own; all arrive.
func TestConcurrentSendsAllArrive(t *testing.T) {
	srv := startSMTP(t, nil)
	c := newConnector()
	if err := c.Configure(context.Background(), smtpConfig(srv), nil); err != nil {
		t.Fatal(err)
	}
	const senders, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, err := c.Send(context.Background(), &sdk.OutboundMessage{ID: fmt.Sprintf("w%d-%d", w, i), Channel: "email",
					To: map[string]string{"email": fmt.Sprintf("w%d-%d@omni-shop.dev", w, i)}, Text: "hi"})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := len(srv.Mails()); got != senders*each {
		t.Fatalf("server has %d mails, want %d", got, senders*each)
	}
	if got := srv.Connections(); got > senders*each/2 {
		t.Fatalf("%d connections for %d messages: sessions were not kept", got, senders*each)
	}
}
