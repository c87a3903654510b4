package email

import (
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/internal/testkit/smtptest"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/sdk/sdktest"
)

const imapUser, imapPass = "help@omni-shop.dev", "imap-app-password"

// startIMAP runs go-imap's in-memory server over implicit TLS with a
// self-signed certificate. It speaks IMAP4rev2, which includes IDLE.
func startIMAP(t *testing.T) string {
	t.Helper()
	return startIMAPWith(t, imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}})
}

// startIMAPWith is startIMAP announcing only caps.
func startIMAPWith(t *testing.T, caps imap.CapSet) string {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(imapUser, imapPass)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
	})
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{smtptest.SelfSigned(t)}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

// mailbox is a second IMAP client standing in for the mail provider's
// delivery and for a person reading the mailbox.
type mailbox struct{ c *imapclient.Client }

func openMailbox(t *testing.T, addr string) *mailbox {
	t.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}}) //nolint:gosec // test server
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Login(imapUser, imapPass).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	return &mailbox{c}
}

func (m *mailbox) deliver(t *testing.T, raw []byte, at time.Time, flags ...imap.Flag) {
	t.Helper()
	cmd := m.c.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: at, Flags: flags})
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func (m *mailbox) flags(t *testing.T) map[imap.UID][]imap.Flag {
	t.Helper()
	msgs, err := m.c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[imap.UID][]imap.Flag{}
	for _, msg := range msgs {
		out[msg.UID] = msg.Flags
	}
	return out
}

func has(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if strings.EqualFold(string(x), string(f)) { // keywords are case-insensitive
			return true
		}
	}
	return false
}

func imapConfig(addr string) sdk.Config {
	host, port, _ := net.SplitHostPort(addr)
	return sdk.Config{keySMTPHost: "127.0.0.1", keySMTPPort: "1", keyFromEmail: "shop@omni-shop.dev", keyReplyTo: imapUser,
		keyIMAPHost: host, keyIMAPPort: port, keyIMAPUser: imapUser, keyIMAPPassword: imapPass, keyIMAPSecurity: "tls",
		keyIMAPPoll: "1", keyTLSInsecure: "true"}
}

func emittedTypes(h *sdktest.Harness) map[string]sdk.Event {
	out := map[string]sdk.Event{}
	for _, e := range h.Emitted() {
		out[e.ID] = e
	}
	return out
}

// The plugin subprocess reads the mailbox over IMAP (TLS, self-signed):
// replies and bounces already there become events, new mail arrives
// through IDLE, mail is flagged with Omni's keyword (not \Seen, which
// stays the staff's), old mail is left alone, and a restarted plugin does
// not emit what it already read.
func TestIMAPReaderUnderPluginHost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts plugin subprocesses")
	}
	addr := startIMAP(t)
	box := openMailbox(t, addr)
	box.deliver(t, crlf(replyMail), time.Now())
	box.deliver(t, crlf(bounceMail), time.Now(), imap.FlagSeen) // a person already opened it
	box.deliver(t, crlf("From: old@omni-shop.dev\nSubject: last month\nMessage-ID: <old-1@omni-shop.dev>\n\nold\n"), time.Now().Add(-30*24*time.Hour))

	h := sdktest.StartSelf(t, imapConfig(addr))
	omnitest.Eventually(t, 30*time.Second, func() bool { return len(h.Emitted()) >= 2 }, "reply and bounce emitted")
	got := emittedTypes(h)
	reply, bounce := got["email:CAF-reply-1@mail.omni-shop.dev"], sdk.Event{}
	for _, e := range got {
		if e.Type == "message.failed" {
			bounce = e
		}
	}
	if reply.Type != "message.received" || reply.Properties["outbound_id"] != "msg0001" || bounce.Properties["outbound_id"] != "msg0003" {
		t.Fatalf("emitted %+v", h.Emitted())
	}

	// New mail while the reader idles.
	box.deliver(t, crlf("From: carl@omni-shop.dev\nTo: help@omni-shop.dev\nSubject: hello\nMessage-ID: <new-2@omni-shop.dev>\n\nAre you open on Sunday?\n"), time.Now())
	omnitest.Eventually(t, 30*time.Second, func() bool { _, ok := emittedTypes(h)["email:new-2@omni-shop.dev"]; return ok }, "new mail emitted")
	for _, e := range h.Emitted() {
		if e.Identities["email"] == "old@omni-shop.dev" {
			t.Fatal("mail older than the lookback was emitted")
		}
	}
	omnitest.Eventually(t, 30*time.Second, func() bool {
		f := box.flags(t)
		return has(f[4], readFlag) && has(f[1], readFlag)
	}, "read mail flagged: %v", box.flags(t))
	f := box.flags(t)
	if has(f[1], imap.FlagSeen) || has(f[3], readFlag) || !has(f[2], imap.FlagSeen) {
		t.Fatalf("flags %v: \\Seen must stay the staff's, old mail untouched", f)
	}

	// A restarted plugin (a new process) reads only what is new.
	h.Process.Kill()
	h2 := sdktest.StartSelf(t, imapConfig(addr))
	box.deliver(t, crlf("From: dora@omni-shop.dev\nSubject: after restart\nMessage-ID: <new-3@omni-shop.dev>\n\nhi\n"), time.Now())
	omnitest.Eventually(t, 30*time.Second, func() bool { return len(h2.Emitted()) >= 1 }, "mail after restart emitted")
	if evs := h2.Emitted(); len(evs) != 1 || evs[0].ID != "email:new-3@omni-shop.dev" {
		t.Fatalf("after restart emitted %+v", evs)
	}
}

// Health logs in to IMAP too, and names the problem when it cannot.
// A server without IDLE (plain IMAP4rev1, as some hosted mailboxes are)
// is checked every poll interval: mail delivered after the reader started
// is still read, once.
func TestIMAPReaderPollsWithoutIdle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts plugin subprocesses")
	}
	addr := startIMAPWith(t, imap.CapSet{imap.CapIMAP4rev1: {}})
	box := openMailbox(t, addr)
	box.deliver(t, crlf(replyMail), time.Now())

	h := sdktest.StartSelf(t, imapConfig(addr)) // imap_poll_seconds: 1
	omnitest.Eventually(t, 30*time.Second, func() bool { return len(h.Emitted()) >= 1 }, "mail already there emitted")
	box.deliver(t, crlf("From: carl@omni-shop.dev\nTo: help@omni-shop.dev\nSubject: hello\nMessage-ID: <poll-2@omni-shop.dev>\n\nAre you open on Sunday?\n"), time.Now())
	omnitest.Eventually(t, 30*time.Second, func() bool { _, ok := emittedTypes(h)["email:poll-2@omni-shop.dev"]; return ok }, "mail delivered later found by polling")
	// A few more polls emit nothing twice.
	time.Sleep(2500 * time.Millisecond)
	seen := map[string]int{}
	for _, e := range h.Emitted() {
		if seen[e.ID]++; seen[e.ID] > 1 {
			t.Fatalf("%s emitted twice: %+v", e.ID, h.Emitted())
		}
	}
	if len(seen) != 2 {
		t.Fatalf("emitted %v, want the reply and the later mail", seen)
	}
}

func TestHealthChecksIMAPLogin(t *testing.T) {
	addr := startIMAP(t)
	srv := smtptest.Start(t, smtptest.Options{})
	cfg := imapConfig(addr)
	cfg[keySMTPHost], cfg[keySMTPPort], cfg[keySMTPSecurity] = srv.Host, strconv.Itoa(srv.Port), "none"
	cfg[keyIMAPPoll] = "3600"
	h := sdktest.StartSelf(t, cfg)
	ctx := t.Context()
	if err := h.Connector.Health(ctx); err != nil {
		t.Fatal(err)
	}
	cfg[keyIMAPPassword] = "wrong"
	if err := h.Connector.Configure(ctx, cfg, h); err != nil {
		t.Fatal(err)
	}
	if err := h.Connector.Health(ctx); err == nil {
		t.Fatal("health passed with a wrong IMAP password")
	}
}
