package inbox_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/inbox"
)

const shopOrigin = "https://shop.omni-shop.dev"

// chatEnv is a running Omni with one chat widget.
type chatEnv struct {
	s     *omnitest.Server
	m     *inbox.Module
	owner string
	agent string
	key   string
	id    string
}

func startChat(t *testing.T) *chatEnv {
	t.Helper()
	s, m := startInbox(t, inbox.Options{})
	e := &chatEnv{s: s, m: m, owner: s.Staff(t, "owner@omni-shop.dev", "owner"), agent: s.Staff(t, "agent@omni-shop.dev", "agent")}
	code, body := s.Do(t, "POST", "/api/v1/inbox/widgets", map[string]any{"name": "Shop", "source": "test",
		"allowed_origins": []string{"HTTPS://Shop.omni-shop.dev:443/"}, "title": "Talk to us"}, omnitest.Auth(e.owner))
	if code != 201 {
		t.Fatalf("create widget: %d %s", code, body)
	}
	var w inbox.WidgetView
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(w.Key, inbox.WidgetKeyPrefix) || len(w.AllowedOrigins) != 1 || w.AllowedOrigins[0] != shopOrigin ||
		w.Source != s.SourceID || !strings.Contains(w.Snippet, `/widget/omni-chat.js" data-omni-widget="`+w.Key+`" async></script>`) {
		t.Fatalf("widget = %+v", w)
	}
	e.key, e.id = w.Key, w.ID
	return e
}

// public calls a widget route from a page on origin.
func (e *chatEnv) public(t *testing.T, method, path, origin string, body any) (int, map[string]any) {
	t.Helper()
	h := http.Header{"Content-Type": {"text/plain"}}
	if origin != "" {
		h.Set("Origin", origin)
	}
	code, raw := e.s.Do(t, method, "/widget/"+e.key+path, body, h)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return code, out
}

func (e *chatEnv) session(t *testing.T, anon string) (token, visitor string) {
	t.Helper()
	code, s := e.public(t, "POST", "/session", shopOrigin, map[string]any{"anonymous_id": anon})
	if code != 200 || s["token"] == "" {
		t.Fatalf("session: %d %v", code, s)
	}
	return s["token"].(string), s["visitor"].(string)
}

func TestWidgetAdminRoutes(t *testing.T) {
	e := startChat(t)
	s := e.s
	if code, _ := s.Do(t, "POST", "/api/v1/inbox/widgets", map[string]any{"name": "x", "allowed_origins": []string{shopOrigin}}, omnitest.Auth(e.agent)); code != 403 {
		t.Fatalf("an agent created a widget: %d", code)
	}
	code, body := s.Do(t, "POST", "/api/v1/inbox/widgets", map[string]any{"name": "x", "allowed_origins": []string{shopOrigin, "https://shop.omni-shop.dev/cart"}}, omnitest.Auth(e.owner))
	omnitest.WantFieldError(t, code, body, 400, "allowed_origins.1")
	code, body = s.Do(t, "POST", "/api/v1/inbox/widgets", map[string]any{"name": "x", "allowed_origins": []string{shopOrigin}, "color": "red"}, omnitest.Auth(e.owner))
	omnitest.WantFieldError(t, code, body, 400, "color")
	code, body = s.Do(t, "PATCH", "/api/v1/inbox/widgets/"+e.id, map[string]any{"greeting": "Hello there", "enabled": false}, omnitest.Auth(e.owner))
	if code != 200 || !strings.Contains(string(body), `"greeting":"Hello there"`) {
		t.Fatalf("patch: %d %s", code, body)
	}
	code, body = s.Do(t, "GET", "/api/v1/inbox/widgets", nil, omnitest.Auth(e.agent))
	if code != 200 || !strings.Contains(string(body), e.key) || !strings.Contains(string(body), "snippet") {
		t.Fatalf("list: %d %s", code, body)
	}
	// Switched off: the public routes do not know it.
	if code, _ := e.public(t, "POST", "/session", shopOrigin, map[string]any{}); code != 404 {
		t.Fatalf("session on a disabled widget: %d", code)
	}
	if code, _ := s.Do(t, "DELETE", "/api/v1/inbox/widgets/"+e.id, nil, omnitest.Auth(e.owner)); code != 204 {
		t.Fatalf("delete: %d", code)
	}
}

// The script is small: at most 25 KB gzipped, as served.
func TestWidgetScriptIsSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("a size check, not concurrency: the full run checks it")
	}
	e := startChat(t)
	req, _ := http.NewRequest("GET", e.s.URL+"/widget/omni-chat.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	gz, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
		t.Fatalf("script: %d %v", resp.StatusCode, resp.Header)
	}
	if len(gz) > 25*1024 {
		t.Fatalf("the widget script is %d bytes gzipped, more than 25 KB", len(gz))
	}
	zr, err := gzip.NewReader(strings.NewReader(string(gz)))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(zr)
	if !strings.Contains(string(js), "ajs_anonymous_id") || !strings.Contains(string(js), "EventSource") {
		t.Fatalf("not the widget script: %.200s", js)
	}
}

func TestWidgetPublicRoutesGuardThemselves(t *testing.T) {
	e := startChat(t)
	// Another site, or no origin at all: refused.
	for _, origin := range []string{"https://evil.omni-shop.dev", ""} {
		code, body := e.public(t, "POST", "/session", origin, map[string]any{})
		if code != 403 || !strings.Contains(body["message"].(string), "allowed origins") {
			t.Fatalf("session from %q: %d %v", origin, code, body)
		}
	}
	// A token is required, and must be this widget's.
	code, body := e.public(t, "POST", "/messages", shopOrigin, map[string]any{"text": "hi"})
	if code != 401 || !strings.HasPrefix(body["message"].(string), "token") {
		t.Fatalf("message without a token: %d %v", code, body)
	}
	if code, _ := e.public(t, "GET", "/messages?token=cv_nope", shopOrigin, nil); code != 401 {
		t.Fatalf("history with a made-up token: %d", code)
	}
	token, _ := e.session(t, "anon-guard-1")
	code, body = e.public(t, "POST", "/messages", shopOrigin, map[string]any{"token": token, "text": strings.Repeat("a", 5001)})
	if code != 400 || !strings.HasPrefix(body["message"].(string), "text") {
		t.Fatalf("a message too long: %d %v", code, body)
	}
	// CORS names the allowed origin.
	req, _ := http.NewRequest("GET", e.s.URL+"/widget/"+e.key+"/messages?token="+token, nil)
	req.Header.Set("Origin", shopOrigin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != shopOrigin {
		t.Fatalf("history: %d %v", resp.StatusCode, resp.Header)
	}
	// 20 messages a minute per visitor, then 429 with a JSON message.
	token, _ = e.session(t, "anon-guard-2")
	limited := false
	for i := 0; i < 21; i++ {
		code, body = e.public(t, "POST", "/messages", shopOrigin, map[string]any{"token": token, "text": "spam", "id": "m" + string(rune('a'+i))})
		if code == 429 {
			limited = i == 20 && strings.Contains(body["message"].(string), "Too many messages")
			break
		}
		if code != 202 {
			t.Fatalf("message %d: %d %v", i, code, body)
		}
	}
	if !limited {
		t.Fatalf("the 21st message in a minute was not refused with 429: %d %v", code, body)
	}
}

// A visitor's chat lands on the profile of their anonymousId, the agent's
// reply reaches their live stream and the ledger says sent and delivered,
// the history shows no private note and no staff email, and a visitor
// who left an email and is gone gets the next reply by email.
func TestWidgetChatRoundTrip(t *testing.T) {
	e := startChat(t)
	s := e.s
	anon := "anon-visitor-42"
	if code, body := s.Track(t, "/v1/page", map[string]any{"anonymousId": anon, "messageId": "pv-1", "name": "Boots"}); code != 200 {
		t.Fatalf("page view: %d %s", code, body)
	}
	token, visitor := e.session(t, anon)
	if code, body := e.public(t, "POST", "/messages", shopOrigin, map[string]any{"token": token, "text": "Do you have size 9?", "id": "c1"}); code != 202 {
		t.Fatalf("send: %d %v", code, body)
	}
	var conv inbox.Conversation
	omnitest.Eventually(t, 20*time.Second, func() bool {
		cs := conversationsOf(t, s, "anonymous_id", anon)
		if len(cs) == 1 {
			conv = cs[0]
		}
		return len(cs) == 1
	}, "the chat filed on the visitor's profile")
	var pageProfile string
	if err := s.PB.DB().NewQuery("SELECT profile FROM events WHERE type = 'page.viewed' AND json_extract(identities, '$.anonymous_id') = {:a}").
		Bind(dbx.Params{"a": anon}).Row(&pageProfile); err != nil {
		t.Fatal(err)
	}
	if conv.Channel != "chat" || conv.Widget != e.id || conv.Address != visitor || conv.Profile != pageProfile {
		t.Fatalf("conversation = %+v (page view's profile %s)", conv, pageProfile)
	}

	if code, body := s.Do(t, "GET", "/api/v1/conversations/"+conv.ID, nil, omnitest.Auth(e.agent)); code != 200 || !strings.Contains(string(body), `"channel":"chat"`) {
		t.Fatalf("the chat in the conversations API: %d %s", code, body)
	}

	// The visitor's live stream.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/widget/"+e.key+"/stream?token="+token, nil)
	req.Header.Set("Origin", shopOrigin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
	}
	frames := make(chan string, 16)
	go func() {
		defer close(frames)
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				event = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok && event == "message" {
				frames <- v
			}
		}
	}()
	waitReady := func() {
		omnitest.Eventually(t, 10*time.Second, func() bool { return e.m.VisitorConnected(visitor) }, "the stream registered")
	}
	waitReady()

	agentID := staffID(t, s, "agent@omni-shop.dev")
	if _, err := e.m.ReplyForTest(conv.ID, agentID, "Internal: check the stock room", true); err != nil {
		t.Fatal(err)
	}
	reply, err := e.m.ReplyForTest(conv.ID, agentID, "Yes, size 9 is in stock.", false)
	if err != nil {
		t.Fatal(err)
	}
	var got inbox.VisitorMessage
	deadline := time.After(20 * time.Second)
	for got.ID != reply {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("the stream ended")
			}
			var vm inbox.VisitorMessage
			if err := json.Unmarshal([]byte(f), &vm); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(vm.Text, "Internal") {
				t.Fatalf("a private note reached the visitor: %s", f)
			}
			got = vm
		case <-deadline:
			t.Fatal("the reply never reached the visitor's stream")
		}
	}
	if got.From != "agent" || got.Name != "agent" || got.Text != "Yes, size 9 is in stock." {
		t.Fatalf("reply as the visitor saw it: %+v", got)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool {
		var st string
		_ = s.PB.DB().NewQuery("SELECT status FROM messages WHERE id = {:id}").Bind(dbx.Params{"id": reply}).Row(&st)
		return st == "delivered"
	}, "the ledger row of the chat reply delivered")

	code, hist := e.public(t, "GET", "/messages?token="+token, shopOrigin, nil)
	raw, _ := json.Marshal(hist)
	if code != 200 || strings.Contains(string(raw), "Internal") || strings.Contains(string(raw), "@omni-shop.dev") ||
		strings.Contains(string(raw), agentID) || !strings.Contains(string(raw), `"client_id":"c1"`) || !strings.Contains(string(raw), "size 9 is in stock") {
		t.Fatalf("history: %d %s", code, raw)
	}

	// The visitor closes the page: a reply still goes on the chat (they
	// left no email), sent but not delivered; the history has it.
	cancel()
	omnitest.Eventually(t, 10*time.Second, func() bool { return !e.m.VisitorConnected(visitor) }, "the stream closed")
	unseen, err := e.m.ReplyForTest(conv.ID, agentID, "Shall I hold a pair?", false)
	if err != nil {
		t.Fatal(err)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool {
		var row struct {
			Status  string `db:"status"`
			Channel string `db:"channel"`
		}
		_ = s.PB.DB().NewQuery("SELECT status, channel FROM messages WHERE id = {:id}").Bind(dbx.Params{"id": unseen}).One(&row)
		return row.Status == "sent" && row.Channel == "chat"
	}, "the reply to a visitor who left sent on the chat")
	if _, hist := e.public(t, "GET", "/messages?token="+token, shopOrigin, nil); !strings.Contains(jsonText(hist), "Shall I hold a pair?") {
		t.Fatalf("history without the reply sent while away: %s", jsonText(hist))
	}

	// They leave an email: the next reply, while they are away, goes by email.
	if code, body := e.public(t, "POST", "/email", shopOrigin, map[string]any{"token": token, "email": "Visitor@Omni-Shop.dev"}); code != 200 {
		t.Fatalf("email: %d %v", code, body)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool {
		var p string
		_ = s.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind = 'email' AND value = 'visitor@omni-shop.dev'").Row(&p)
		return p == conv.Profile
	}, "the email on the visitor's profile")
	later, err := e.m.ReplyForTest(conv.ID, agentID, "We just restocked.", false)
	if err != nil {
		t.Fatal(err)
	}
	var send string
	_ = s.PB.DB().NewQuery("SELECT send FROM conversation_messages WHERE id = {:id}").Bind(dbx.Params{"id": later}).Row(&send)
	if !strings.Contains(send, `"channel":"email"`) {
		t.Fatalf("the reply to a visitor who left was not routed by email: send = %s", send)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool {
		var ch string
		_ = s.PB.DB().NewQuery("SELECT channel FROM messages WHERE id = {:id}").Bind(dbx.Params{"id": later}).Row(&ch)
		return ch == "email"
	}, "the gate deciding the reply on email")
}

func staffID(t *testing.T, s *omnitest.Server, email string) string {
	t.Helper()
	r, err := s.PB.FindAuthRecordByEmail("staff", email)
	if err != nil {
		t.Fatal(err)
	}
	return r.Id
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
