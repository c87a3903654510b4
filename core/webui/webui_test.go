package webui_test

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/store"
	"github.com/omni/omni/core/webui"
	"github.com/omni/omni/ui"
)

func start(t *testing.T) *omnitest.Server {
	return omnitest.Start(t, omnitest.Options{Modules: func(o *app.Omni) []app.Module { return []app.Module{webui.New(nil)} }})
}

func TestServesEmbeddedAppAndKeepsAPIPaths(t *testing.T) {
	s := start(t)
	index, err := fs.ReadFile(ui.Dist(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/customers", "/customers/abc123", "/settings/staff"} {
		code, body := s.Do(t, "GET", p, nil, nil)
		if code != 200 || string(body) != string(index) {
			t.Errorf("GET %s: %d, want the embedded index.html (%d bytes, got %d)", p, code, len(index), len(body))
		}
	}
	// A built asset is served as itself.
	assets, _ := fs.Glob(ui.Dist(), "assets/*.js")
	if len(assets) == 0 {
		t.Fatal("no built JS in ui/dist/assets: run npm run build in ui/")
	}
	resp, err := http.Get(s.URL + "/" + assets[0])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("GET /%s: %d %q %q", assets[0], resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	// Unknown server paths are 404 JSON, never the SPA.
	for _, p := range []string{"/api/v1/unknown", "/api/nope", "/v1/unknown", "/webhooks/nobody/x", "/assets/missing-1234.js"} {
		code, body := s.Do(t, "GET", p, nil, nil)
		if code != 404 || strings.Contains(string(body), "<html") || strings.Contains(string(body), `id="app"`) {
			t.Errorf("GET %s: %d %.80s, want 404 without the SPA", p, code, body)
		}
	}
	// PocketBase's own admin stays at /_/.
	if code, body := s.Do(t, "GET", "/_/", nil, nil); code != 200 || string(body) == string(index) {
		t.Errorf("GET /_/: %d (same as the SPA: %v)", code, string(body) == string(index))
	}
	// Real API routes still answer.
	if code, body := s.Do(t, "GET", "/api/v1/health", nil, nil); code != 200 || !strings.Contains(string(body), "{") {
		t.Errorf("health: %d %s", code, body)
	}
}

func TestFirstRunOwnerOnlyOnce(t *testing.T) {
	s := start(t)
	var st struct {
		NeedsOwner bool `json:"needs_owner"`
	}
	_, body := s.Do(t, "GET", "/api/v1/setup", nil, nil)
	if err := json.Unmarshal(body, &st); err != nil || !st.NeedsOwner {
		t.Fatalf("fresh install: %s", body)
	}
	// Bad input names every field in data (PocketBase's shape), the first
	// by name in the message.
	code, body := s.Do(t, "POST", "/api/v1/setup/owner", map[string]string{"email": "not-an-email", "password": "short"}, nil)
	if out := omnitest.WantFieldError(t, code, body, 400, "email"); out.Data["password"].Message == "" {
		t.Fatalf("bad input: %d %s", code, body)
	}
	code, body = s.Do(t, "POST", "/api/v1/setup/owner", map[string]string{"email": "owner@shop.test", "password": "s3cret-pass", "passwordConfirm": "other-pass"}, nil)
	omnitest.WantFieldError(t, code, body, 400, "passwordConfirm")
	code, body = s.Do(t, "POST", "/api/v1/setup/owner", map[string]string{"email": "owner@shop.test", "password": "s3cret-pass", "name": "Olga"}, nil)
	if code != 200 {
		t.Fatalf("create owner: %d %s", code, body)
	}
	var auth struct {
		Token  string         `json:"token"`
		Record map[string]any `json:"record"`
	}
	if err := json.Unmarshal(body, &auth); err != nil || auth.Token == "" || auth.Record["role"] != "owner" {
		t.Fatalf("auth response: %s", body)
	}
	_, body = s.Do(t, "GET", "/api/v1/setup", nil, nil)
	if err := json.Unmarshal(body, &st); err != nil || st.NeedsOwner {
		t.Fatalf("after owner: %s", body)
	}
	code, body = s.Do(t, "POST", "/api/v1/setup/owner", map[string]string{"email": "intruder@shop.test", "password": "s3cret-pass"}, nil)
	omnitest.WantError(t, code, body, 409)
	// The owner's token opens the dashboard; no token does not.
	code, body = s.Do(t, "GET", "/api/v1/dashboard", nil, nil)
	omnitest.WantError(t, code, body, 401)
	code, body = s.Do(t, "GET", "/api/v1/dashboard?range=7d", nil, http.Header{"Authorization": {auth.Token}})
	if code != 200 || !strings.Contains(string(body), `"bucket":"6h"`) {
		t.Errorf("dashboard: %d %s", code, body)
	}
	code, body = s.Do(t, "GET", "/api/v1/dashboard?range=1y", nil, http.Header{"Authorization": {auth.Token}})
	omnitest.WantFieldError(t, code, body, 400, "range")
}

func TestDashboardCountsOrdersByChannel(t *testing.T) {
	s := start(t)
	_, body := s.Do(t, "POST", "/api/v1/setup/owner", map[string]string{"email": "owner@shop.test", "password": "s3cret-pass"}, nil)
	var auth struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(body, &auth)
	batch := map[string]any{"batch": []map[string]any{
		{"type": "track", "event": "Order Completed", "userId": "u1", "properties": map[string]any{"total": 30.5, "currency": "EUR"}, "context": map[string]any{"channel": "web"}},
		{"type": "track", "event": "Order Completed", "userId": "u2", "properties": map[string]any{"total": "12.50", "currency": "EUR"}, "context": map[string]any{"channel": "pos"}},
		{"type": "page", "name": "Home", "anonymousId": "a1"},
	}}
	if code, b := s.Track(t, "/v1/batch", batch); code != 200 {
		t.Fatalf("batch: %d %s", code, b)
	}
	s.WaitEvents(t, 3)
	code, body := s.Do(t, "GET", "/api/v1/dashboard?range=today", nil, http.Header{"Authorization": {auth.Token}})
	if code != 200 {
		t.Fatalf("dashboard: %d %s", code, body)
	}
	var d webui.Dashboard
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	if d.Events != 3 {
		t.Errorf("events = %d, want 3 (%s)", d.Events, body)
	}
	if d.Orders != 2 {
		t.Errorf("orders = %d, want 2 (%s)", d.Orders, body)
	}
	if len(d.OrdersByChannel) != 2 || d.OrdersByChannel[0].Orders != 1 || d.OrdersByChannel[1].Orders != 1 {
		t.Errorf("orders by channel: %+v, want web 1 and pos 1", d.OrdersByChannel)
	}
	// Money is the sales report's (net of refunds): the operator's figures carry none.
	if strings.Contains(string(body), "revenue") {
		t.Errorf("the dashboard endpoint still reports revenue: %s", body)
	}
}

// The "Active conversations" tile counts the inbox's conversations that are
// not over (open, pending with the bot, snoozed), not resolved ones.
func TestDashboardCountsActiveConversations(t *testing.T) {
	s := start(t)
	_, body := s.Do(t, "POST", "/api/v1/setup/owner", map[string]string{"email": "owner@omni-shop.dev", "password": "s3cret-pass"}, nil)
	var auth struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(body, &auth)
	// The inbox's collection (this test runs without the inbox module).
	c := core.NewBaseCollection("conversations")
	c.Fields.Add(&core.TextField{Name: "status"})
	if err := s.PB.Save(c); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"open", "open", "pending", "snoozed", "resolved", "resolved"} {
		r := core.NewRecord(c)
		r.Set("status", st)
		if err := s.PB.Save(r); err != nil {
			t.Fatal(err)
		}
	}
	code, body := s.Do(t, "GET", "/api/v1/dashboard?range=today", nil, http.Header{"Authorization": {auth.Token}})
	if code != 200 {
		t.Fatalf("dashboard: %d %s", code, body)
	}
	var d webui.Dashboard
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	if d.ActiveConversations != 4 {
		t.Errorf("active conversations = %d, want 4 (2 open, 1 pending, 1 snoozed)", d.ActiveConversations)
	}
}

// TestDashboardSurvivesUnreadableStoredJSON: an order stored with properties
// nested 1,500 deep (written with SQL, around the ingest bounds, as rows
// stored before them were) made json_extract fail with "malformed JSON" and
// /api/v1/dashboard answer 500 for as long as the row was in range. It now
// counts as an order (the endpoint reads no JSON), and the other figures are right.
func TestDashboardSurvivesUnreadableStoredJSON(t *testing.T) {
	s := start(t)
	_, body := s.Do(t, "POST", "/api/v1/setup/owner", map[string]string{"email": "owner@shop.test", "password": "s3cret-pass"}, nil)
	var auth struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(body, &auth)
	if code, b := s.Track(t, "/v1/track", map[string]any{"event": "Order Completed", "userId": "u1",
		"properties": map[string]any{"total": 30, "currency": "EUR"}, "context": map[string]any{"channel": "web"}}); code != 200 {
		t.Fatalf("track: %d %s", code, b)
	}
	s.WaitEvents(t, 1)
	deep := strings.Repeat(`{"a":`, 1500) + "1" + strings.Repeat("}", 1500)
	now := store.FormatTime(time.Now())
	_, err := s.PB.DB().NewQuery(`INSERT INTO events (id, event_id, type, name, source, channel, occurred_at, received_at, identities, properties, context, profile, created)
		VALUES ('deeporder000001', 'deep-1', 'order.placed', 'Order Completed', 'test', 'web', {:t}, {:t}, '{"user_id":"u2"}', {:p}, '{}', '', {:t})`).
		Bind(dbx.Params{"t": now, "p": deep}).Execute()
	if err != nil {
		t.Fatal(err)
	}
	for _, rng := range []string{"today", "7d", "30d"} {
		code, body := s.Do(t, "GET", "/api/v1/dashboard?range="+rng, nil, http.Header{"Authorization": {auth.Token}})
		if code != 200 {
			t.Fatalf("%s: dashboard %d %s", rng, code, body)
		}
		var d webui.Dashboard
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		if d.Orders != 2 || d.Events != 2 {
			t.Errorf("%s: orders=%d events=%d, want 2 and 2 (%s)", rng, d.Orders, d.Events, body)
		}
	}
}
