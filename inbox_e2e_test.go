package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/internal/testkit/metafake"
	"github.com/omni/omni/internal/testkit/smtptest"
	"github.com/omni/omni/internal/testkit/vendorfixtures"
	"github.com/omni/omni/plugins/whatsapp"
)

// The inbox end to end through the real omni binary, with the built-in
// whatsapp and email connectors as plugin subprocesses, a local Meta Graph
// API, an IMAP mailbox and an SMTP server, driven only through the
// webhooks, the mailbox and the staff HTTP API:
//
//   - a signed WhatsApp message opens a conversation, an agent's reply
//     reaches WhatsApp, and Meta's signed status webhook shows on it;
//   - a customer's email (read over IMAP) opens a conversation, the reply
//     leaves over SMTP threaded under it, and the customer's answer to the
//     reply lands in the same conversation;
//   - resolving asks for CSAT on the channel and the customer's "5" is
//     stored on the conversation and the profile;
//   - outside business hours the bot holds a customer's message, and
//     asking for a person hands the conversation to the online agent
//     while the away message tells the customer when someone answers.
//
// The parts share one running shop (one binary start); they run in order
// because the last one closes the shop's hours.
func TestInboxThroughTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary with plugin subprocesses")
	}
	shop := startInboxShop(t)
	t.Run("whatsapp reply and its delivery status", shop.whatsappReply)
	t.Run("email thread over IMAP and SMTP", shop.emailThread)
	t.Run("resolve then CSAT on the channel", shop.csat)
	t.Run("away hours then hand-off", shop.awayThenHandoff)
}

func (s *inboxShop) whatsappReply(t *testing.T) {
	const waID = "447700900201"
	wamid := s.waInbound(t, waID, "Ana Alves", "Does it come in another color?")
	c := s.conversationAt(t, "whatsapp", waID)
	if c.Status != "open" || c.Customer.Phone != "+"+waID || c.Unread != 1 || c.WaitingSeconds < 0 {
		t.Fatalf("the new conversation: %+v", c)
	}
	d := s.conversation(t, s.agent, c.ID)
	if len(d.Messages) != 1 || d.Messages[0].Direction != "in" || d.Messages[0].Author != "customer" ||
		d.Messages[0].Text != "Does it come in another color?" || d.Messages[0].ExternalID != wamid {
		t.Fatalf("the customer's message: %+v", d.Messages)
	}
	if d.Window == nil || !d.Window.Open {
		t.Fatalf("the WhatsApp window after the customer wrote: %+v", d.Window)
	}

	// The agent answers from the inbox.
	var reply messageView
	s.doJSON(t, "POST", "/api/v1/conversations/"+c.ID+"/messages", s.agent, map[string]any{"text": "Yes: blue and green {{ too }}."}, 201, &reply)
	if reply.ID == "" || reply.Direction != "out" || reply.Author != "agent" || reply.AuthorStaff != s.agentID {
		t.Fatalf("the reply as posted: %+v", reply)
	}
	var sent metafake.Message
	omnitest.Eventually(t, 30*time.Second, func() bool {
		got := s.meta.SentTo(waID)
		if len(got) == 1 {
			sent = got[0]
		}
		return len(got) > 0
	}, "the reply at WhatsApp\n%s", s.logs)
	text, _ := sent.Body["text"].(map[string]any)
	if sent.Type != "text" || text["body"] != "Yes: blue and green {{ too }}." { // sent as typed
		t.Fatalf("WhatsApp got %+v", sent.Body)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return s.message(t, c.ID, reply.ID).Status == "sent"
	}, "the reply to show sent\n%s", s.logs)

	// Meta reports it delivered, signed like every webhook.
	s.waStatus(t, sent, "delivered")
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return s.message(t, c.ID, reply.ID).Status == "delivered"
	}, "the reply to show delivered\n%s", s.logs)
	after := s.conversation(t, s.agent, c.ID).Conversation
	if after.WaitingSeconds != 0 || after.FirstResponseAt == "" || after.Status != "open" {
		t.Fatalf("the conversation after the reply: %+v", after)
	}
}

func (s *inboxShop) emailThread(t *testing.T) {
	const from = "bea@omni-shop.dev"
	s.mailIn(t, fmt.Sprintf("From: Bea Brown <%s>\r\nTo: help@omni-shop.dev\r\nSubject: Order 1042 arrived damaged\r\n"+
		"Message-ID: <bea-1@mail.omni-shop.dev>\r\nDate: %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"The mug was broken in the box.\r\n", from, time.Now().Format(time.RFC1123Z)))
	c := s.conversationAt(t, "email", from)
	if c.Subject != "Order 1042 arrived damaged" || c.Customer.Email != from {
		t.Fatalf("the email conversation: %+v", c)
	}

	var reply messageView
	s.doJSON(t, "POST", "/api/v1/conversations/"+c.ID+"/messages", s.agent, map[string]any{"text": "Sorry! A new one is on its way."}, 201, &reply)
	var m *mail.Message
	omnitest.Eventually(t, 60*time.Second, func() bool {
		for _, got := range s.smtp.Mails() {
			if len(got.To) == 1 && got.To[0] == from {
				var err error
				if m, err = mail.ReadMessage(bytes.NewReader(got.Data)); err != nil {
					t.Fatal(err)
				}
				return true
			}
		}
		return false
	}, "the reply at the SMTP server\n%s", s.logs)
	body, _ := io.ReadAll(m.Body)
	if m.Header.Get("Subject") != "Re: Order 1042 arrived damaged" || m.Header.Get("In-Reply-To") != "<bea-1@mail.omni-shop.dev>" ||
		!strings.Contains(m.Header.Get("References"), "<bea-1@mail.omni-shop.dev>") || !bytes.Contains(body, []byte("A new one is on its way")) {
		t.Fatalf("the reply mail is not threaded under the customer's:\n%v\n%s", m.Header, body)
	}
	replyID := m.Header.Get("Message-ID")
	if replyID == "" {
		t.Fatal("the reply has no Message-ID")
	}

	// The customer answers the reply from their mail client. A Date header
	// has whole seconds: the next second is after the reply, as an answer is.
	answered := time.Now().Add(time.Second).Truncate(time.Second)
	s.mailIn(t, fmt.Sprintf("From: Bea Brown <%s>\r\nTo: help@omni-shop.dev\r\nSubject: Re: Order 1042 arrived damaged\r\n"+
		"Message-ID: <bea-2@mail.omni-shop.dev>\r\nIn-Reply-To: %s\r\nReferences: <bea-1@mail.omni-shop.dev> %s\r\nDate: %s\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\nThank you, that was quick.\r\n", from, replyID, replyID, answered.Format(time.RFC1123Z)))
	var d conversationDetail
	omnitest.Eventually(t, 60*time.Second, func() bool {
		d = s.conversation(t, s.agent, c.ID)
		return len(d.Messages) >= 3
	}, "the customer's answer in the same conversation\n%s", s.logs)
	if len(d.Messages) != 3 || d.Messages[1].ID != reply.ID || d.Messages[2].Direction != "in" ||
		!strings.Contains(d.Messages[2].Text, "Thank you, that was quick.") {
		t.Fatalf("the thread: %+v", d.Messages)
	}
	if n := len(s.conversations(t, "email", from)); n != 1 {
		t.Fatalf("%s has %d email conversations, want 1", from, n)
	}
}

func (s *inboxShop) csat(t *testing.T) {
	const waID = "447700900202"
	s.ownerJSON(t, "PUT", "/api/v1/inbox/settings/csat", map[string]any{"enabled": true, "via": "message",
		"question": "How did we do? Reply 1 (bad) to 5 (great).", "thanks": "Thank you!"}, 200, nil)
	s.waInbound(t, waID, "Cleo Cruz", "Can I change my delivery address?")
	c := s.conversationAt(t, "whatsapp", waID)
	s.doJSON(t, "POST", "/api/v1/conversations/"+c.ID+"/messages", s.agent, map[string]any{"text": "Done, it goes to the new one."}, 201, nil)
	var resolved conversationSummary
	s.doJSON(t, "PATCH", "/api/v1/conversations/"+c.ID, s.agent, map[string]any{"status": "resolved"}, 200, &resolved)
	if resolved.Status != "resolved" || resolved.ResolvedBy != s.agentID {
		t.Fatalf("resolved: %+v", resolved)
	}

	// The question goes on WhatsApp after the reply.
	omnitest.Eventually(t, 30*time.Second, func() bool {
		for _, m := range s.meta.SentTo(waID) {
			if tx, _ := m.Body["text"].(map[string]any); tx != nil && strings.Contains(fmt.Sprint(tx["body"]), "How did we do?") {
				return true
			}
		}
		return false
	}, "the CSAT question at WhatsApp\n%s", s.logs)

	// Meta's timestamps have whole seconds: the next one is after the
	// question, as the customer's answer is.
	s.waInboundAt(t, waID, "Cleo Cruz", "5", time.Now().Add(time.Second))
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return s.conversation(t, s.agent, c.ID).Conversation.CSATScore == 5
	}, "the score on the conversation\n%s", s.logs)
	after := s.conversation(t, s.agent, c.ID).Conversation
	if after.Status != "resolved" {
		t.Fatalf("the CSAT answer reopened the conversation: %+v", after)
	}
	var tl struct {
		Items []struct {
			Type       string         `json:"type"`
			Properties map[string]any `json:"properties"`
		} `json:"items"`
	}
	omnitest.Eventually(t, 30*time.Second, func() bool {
		s.ownerJSON(t, "GET", "/api/v1/profiles/"+c.Customer.ID+"/timeline?type=survey.answered", nil, 200, &tl)
		return len(tl.Items) > 0
	}, "survey.answered on the customer's timeline\n%s", s.logs)
	p := tl.Items[0].Properties
	if len(tl.Items) != 1 || p["survey"] != "csat" || p["score"] != 5.0 || p["scale"] != 5.0 || p["conversation"] != c.ID {
		t.Fatalf("the survey answer: %+v", tl.Items)
	}
}

func (s *inboxShop) awayThenHandoff(t *testing.T) {
	const waID = "447700900203"
	// The shop opens for one minute a day, twelve hours from now.
	now := time.Now().UTC()
	open := fmt.Sprintf("%02d:00", (now.Hour()+12)%24)
	shut := fmt.Sprintf("%02d:01", (now.Hour()+12)%24)
	week := map[string]any{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		week[d] = []map[string]string{{"from": open, "to": shut}}
	}
	const away = "We are closed now and answer from 9 tomorrow."
	s.ownerJSON(t, "PUT", "/api/v1/inbox/settings/hours", map[string]any{"timezone": "UTC", "week": week, "away_message": away}, 200, nil)
	s.ownerJSON(t, "PUT", "/api/v1/inbox/settings/bot", map[string]any{"enabled": true, "handoff_keywords": []string{"human", "person"},
		"fallback": "none"}, 200, nil)
	s.ownerJSON(t, "PUT", "/api/v1/inbox/settings/assignment", map[string]any{"mode": "round_robin", "capacity": 0}, 200, nil)
	s.doJSON(t, "POST", "/api/v1/inbox/presence", s.agent, map[string]any{"away": false}, 200, nil)

	// The bot holds the first message: no rule answers it, so it waits
	// with the bot (pending) and no one is assigned.
	s.waInbound(t, waID, "Dan Diaz", "Is the shop open on Sunday?")
	c := s.conversationAt(t, "whatsapp", waID)
	omnitest.Eventually(t, 30*time.Second, func() bool {
		c = s.conversation(t, s.agent, c.ID).Conversation
		return c.Status == "pending"
	}, "the bot to hold the conversation: %+v\n%s", c, s.logs)
	if !c.Bot || c.Assignee != "" {
		t.Fatalf("held by the bot: %+v", c)
	}

	// The customer asks for a person: the conversation is handed to the
	// online agent, and as the shop is closed the customer is told when
	// someone will answer.
	s.waInbound(t, waID, "Dan Diaz", "Can I talk to a human please?")
	omnitest.Eventually(t, 30*time.Second, func() bool {
		for _, m := range s.meta.SentTo(waID) {
			if tx, _ := m.Body["text"].(map[string]any); tx != nil && tx["body"] == away {
				return true
			}
		}
		return false
	}, "the away message at WhatsApp\n%s", s.logs)
	d := s.conversation(t, s.agent, c.ID)
	c = d.Conversation
	if c.Status != "open" || c.Bot || c.HandoffAt == "" || c.Assignee != s.agentID {
		t.Fatalf("after the hand-off: %+v", c)
	}
	var asked, answered int
	for i, m := range d.Messages {
		switch {
		case m.Direction == "in" && strings.Contains(m.Text, "human"):
			asked = i
		case m.Direction == "out" && m.Text == away:
			if m.Author != "bot" {
				t.Fatalf("the away message's author: %+v", m)
			}
			answered = i
		}
	}
	if asked == 0 || answered < asked {
		t.Fatalf("the history (the away message answers the request for a person): %+v", d.Messages)
	}
	if n := len(s.meta.SentTo(waID)); n != 1 {
		t.Fatalf("WhatsApp got %d messages for %s, want the away message only: %+v", n, waID, s.meta.SentTo(waID))
	}
	var mine struct {
		Items []conversationSummary `json:"items"`
	}
	s.doJSON(t, "GET", "/api/v1/conversations?assignee=me", s.agent, nil, 200, &mine)
	found := false
	for _, it := range mine.Items {
		found = found || it.ID == c.ID
	}
	if !found {
		t.Fatalf("the handed-off conversation is not in the agent's list: %+v", mine.Items)
	}
}

// inboxShop is a running omni binary with the whatsapp connector (a local
// Graph API) and the email connector (SMTP out, IMAP in) configured from
// the CLI, an owner and an agent signed in.
type inboxShop struct {
	journeyShop
	secret    string // the WhatsApp app secret
	imapAddr  string
	box       *imapclient.Client
	agent     string // the agent's auth token
	agentID   string
	waCounter int
}

func startInboxShop(t *testing.T) *inboxShop {
	t.Helper()
	s := &inboxShop{secret: "wa-app-secret-e2e"}
	s.dir = t.TempDir()
	s.smtp = smtptest.Start(t, smtptest.Options{STARTTLS: true, Username: "shop@omni-shop.dev", Password: "app-password-1"})
	s.meta = metafake.Start(t, "106540352242922", "wa-token")
	s.imapAddr = startIMAPMailbox(t, "help@omni-shop.dev", "imap-pass-1")

	if err := os.WriteFile(filepath.Join(s.dir, "omni.yaml"), []byte("messaging:\n  quiet_hours: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, code := omni(t, s.dir, nil, args...)
		if code != 0 {
			t.Fatalf("omni %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	imapHost, imapPort, _ := net.SplitHostPort(s.imapAddr)
	cli("connector", "configure", "email", "smtp_host="+s.smtp.Host, "smtp_port="+strconv.Itoa(s.smtp.Port),
		"smtp_security=starttls", "smtp_username=shop@omni-shop.dev", "smtp_password=app-password-1",
		"from_email=shop@omni-shop.dev", "from_name=Omni Test Shop", "reply_to=help@omni-shop.dev", "tls_insecure=true",
		"imap_host="+imapHost, "imap_port="+imapPort, "imap_username=help@omni-shop.dev", "imap_password=imap-pass-1",
		"imap_security=tls", "imap_poll_seconds=1")
	cli("connector", "enable", "email")
	cli("connector", "configure", "whatsapp", "phone_number_id="+s.meta.PhoneNumberID, "access_token="+s.meta.Token,
		"app_secret="+s.secret, "verify_token=wa-verify", "base_url="+s.meta.URL)
	cli("connector", "enable", "whatsapp")
	m := regexp.MustCompile(`secret key: (\S+)`).FindStringSubmatch(cli("source", "create", "backend", "--kind", "server"))
	if m == nil {
		t.Fatal("no secret key printed for the server source")
	}
	s.key = m[1]
	s.serve(t)

	var auth struct {
		Token string `json:"token"`
	}
	s.doJSON(t, "POST", "/api/v1/setup/owner", "", map[string]any{"email": "owner@omni-shop.dev", "password": "owner-pass-1234",
		"passwordConfirm": "owner-pass-1234", "name": "Olga Owner"}, 200, &auth)
	s.owner = auth.Token
	// The owner adds an agent, who signs in.
	var agent struct {
		ID string `json:"id"`
	}
	s.ownerJSON(t, "POST", "/api/collections/staff/records", map[string]any{"email": "alex@omni-shop.dev", "password": "agent-pass-1234",
		"passwordConfirm": "agent-pass-1234", "name": "Alex Agent", "role": "agent"}, 200, &agent)
	s.agentID = agent.ID
	var login struct {
		Token string `json:"token"`
	}
	s.doJSON(t, "POST", "/api/collections/staff/auth-with-password", "", map[string]any{"identity": "alex@omni-shop.dev",
		"password": "agent-pass-1234"}, 200, &login)
	s.agent = login.Token

	// Inbound WhatsApp needs the plugin running: Omni answers 503 until then.
	omnitest.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + s.addr + "/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1&hub.verify_token=wa-verify")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "the whatsapp connector to run\n%s", s.logs)
	return s
}

// startIMAPMailbox runs go-imap's in-memory server over implicit TLS (a
// self-signed certificate) with one user and an INBOX, as a mail
// provider's IMAP would be.
func startIMAPMailbox(t *testing.T, user, pass string) string {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(user, pass)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
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

// mailIn delivers a customer's mail into the shop's mailbox, as the mail
// provider would.
func (s *inboxShop) mailIn(t *testing.T, raw string) {
	t.Helper()
	if s.box == nil {
		c, err := imapclient.DialTLS(s.imapAddr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}}) //nolint:gosec // test server
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if err := c.Login("help@omni-shop.dev", "imap-pass-1").Wait(); err != nil {
			t.Fatal(err)
		}
		s.box = c
	}
	cmd := s.box.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: time.Now()})
	if _, err := cmd.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// waInbound posts Meta's signed webhook for a text message from waID (the
// shape of the real delivery in the shared fixtures, with a fresh id and
// time) and returns the message's wamid.
func (s *inboxShop) waInbound(t *testing.T, waID, name, text string) string {
	t.Helper()
	return s.waInboundAt(t, waID, name, text, time.Now())
}

// waInboundAt is waInbound with Meta's timestamp (whole seconds) at a time.
func (s *inboxShop) waInboundAt(t *testing.T, waID, name, text string, at time.Time) string {
	t.Helper()
	var n map[string]any
	if err := json.Unmarshal(vendorfixtures.Read(t, "whatsapp", "inbound_text_message.json"), &n); err != nil {
		t.Fatal(err)
	}
	s.waCounter++
	wamid := fmt.Sprintf("wamid.E2E%s%04d", waID, s.waCounter)
	v := waValue(t, n)
	v["metadata"].(map[string]any)["phone_number_id"] = s.meta.PhoneNumberID
	v["contacts"] = []any{map[string]any{"profile": map[string]any{"name": name}, "wa_id": waID}}
	msg := v["messages"].([]any)[0].(map[string]any)
	msg["from"], msg["id"], msg["timestamp"] = waID, wamid, strconv.FormatInt(at.Unix(), 10)
	msg["text"] = map[string]any{"body": text}
	s.waPost(t, n)
	return wamid
}

// waStatus posts Meta's signed status webhook for a message the fake
// accepted (the shape of the fixture's status update).
func (s *inboxShop) waStatus(t *testing.T, sent metafake.Message, status string) {
	t.Helper()
	var all map[string]map[string]any
	if err := json.Unmarshal(vendorfixtures.Read(t, "whatsapp", "status_updates_sent_delivered_read_failed.json"), &all); err != nil {
		t.Fatal(err)
	}
	n := all[status]
	if n == nil {
		t.Fatalf("no %s status in the fixture", status)
	}
	v := waValue(t, n)
	v["metadata"].(map[string]any)["phone_number_id"] = s.meta.PhoneNumberID
	v["contacts"] = []any{map[string]any{"profile": map[string]any{"name": "x"}, "wa_id": sent.To}}
	st := v["statuses"].([]any)[0].(map[string]any)
	st["id"], st["recipient_id"], st["timestamp"] = sent.WAMID, sent.To, strconv.FormatInt(time.Now().Unix(), 10)
	if cb, ok := sent.Body["biz_opaque_callback_data"]; ok {
		st["biz_opaque_callback_data"] = cb // Meta echoes it
	}
	s.waPost(t, n)
}

func waValue(t *testing.T, n map[string]any) map[string]any {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("the fixture's shape changed: %v", r)
		}
	}()
	return n["entry"].([]any)[0].(map[string]any)["changes"].([]any)[0].(map[string]any)["value"].(map[string]any)
}

func (s *inboxShop) waPost(t *testing.T, n map[string]any) {
	t.Helper()
	body, _ := json.Marshal(n)
	req, _ := http.NewRequest("POST", "http://"+s.addr+"/webhooks/whatsapp", bytes.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", whatsapp.Sign(s.secret, body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("whatsapp webhook: %d %s\n%s", resp.StatusCode, b, s.logs)
	}
}

type conversationSummary struct {
	ID              string `json:"id"`
	Profile         string `json:"profile"`
	Channel         string `json:"channel"`
	Status          string `json:"status"`
	Assignee        string `json:"assignee"`
	Subject         string `json:"subject"`
	Address         string `json:"address"`
	Bot             bool   `json:"bot"`
	HandoffAt       string `json:"handoff_at"`
	Unread          int    `json:"unread"`
	FirstResponseAt string `json:"first_response_at"`
	ResolvedBy      string `json:"resolved_by"`
	CSATScore       int    `json:"csat_score"`
	WaitingSeconds  int    `json:"waiting_seconds"`
	Customer        struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
		Phone string `json:"phone"`
	} `json:"customer"`
}

type messageView struct {
	ID          string `json:"id"`
	Direction   string `json:"direction"`
	Author      string `json:"author"`
	AuthorStaff string `json:"author_staff"`
	Text        string `json:"text"`
	ExternalID  string `json:"external_id"`
	Status      string `json:"status"`
	Reason      string `json:"reason"`
}

type conversationDetail struct {
	Conversation conversationSummary `json:"conversation"`
	Messages     []messageView       `json:"messages"`
	Window       *struct {
		Open bool `json:"open"`
	} `json:"window"`
}

// conversations lists every conversation on channel whose customer wrote
// from address, as an agent sees them.
func (s *inboxShop) conversations(t *testing.T, channel, address string) []conversationSummary {
	t.Helper()
	var list struct {
		Items []conversationSummary `json:"items"`
	}
	s.doJSON(t, "GET", "/api/v1/conversations?status=all&limit=100&channel="+url.QueryEscape(channel), s.agent, nil, 200, &list)
	var out []conversationSummary
	for _, c := range list.Items {
		if c.Address == address {
			out = append(out, c)
		}
	}
	return out
}

// conversationAt waits for the one conversation from address on channel.
func (s *inboxShop) conversationAt(t *testing.T, channel, address string) conversationSummary {
	t.Helper()
	var cs []conversationSummary
	omnitest.Eventually(t, 60*time.Second, func() bool {
		cs = s.conversations(t, channel, address)
		return len(cs) > 0
	}, "a %s conversation from %s\n%s", channel, address, s.logs)
	if len(cs) != 1 {
		t.Fatalf("%d %s conversations from %s: %+v", len(cs), channel, address, cs)
	}
	return cs[0]
}

func (s *inboxShop) conversation(t *testing.T, token, id string) conversationDetail {
	t.Helper()
	var d conversationDetail
	s.doJSON(t, "GET", "/api/v1/conversations/"+id, token, nil, 200, &d)
	return d
}

// message is one message of a conversation as the agent sees it.
func (s *inboxShop) message(t *testing.T, conversation, id string) messageView {
	t.Helper()
	for _, m := range s.conversation(t, s.agent, conversation).Messages {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("message %s is not in conversation %s", id, conversation)
	return messageView{}
}

func (s *inboxShop) ownerJSON(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	s.doJSON(t, method, path, s.owner, body, want, out)
}
