package ingest_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	_ "github.com/omni/omni/core/connectors" // its migration: the connectors collection this test names

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
)

func basic(key string) http.Header {
	r, _ := http.NewRequest("POST", "/", nil)
	r.SetBasicAuth(key, "")
	return http.Header{"Authorization": r.Header["Authorization"]}
}

// TestSourcesDedupeOnlyTheirOwnMessages: messageIds are scoped by source, so
// two sources' equal messageIds are two events, and one source's retries
// still dedupe.
func TestSourcesDedupeOnlyTheirOwnMessages(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	other, err := ingest.CreateSource(s.PB, "other", "")
	if err != nil {
		t.Fatal(err)
	}
	body := `{"messageId":"same-1","userId":"u1","event":"Clicked"}`
	for i := 0; i < 2; i++ {
		if code, b := s.Track(t, "/v1/track", body); code != 200 {
			t.Fatalf("%d %s", code, b)
		}
		if code, b := s.Do(t, "POST", "/v1/track", body, basic(other.WriteKey)); code != 200 {
			t.Fatalf("%d %s", code, b)
		}
	}
	s.Track(t, "/v1/track", `{"messageId":"marker","userId":"u1","event":"Done"}`)
	omnitest.Eventually(t, 30*time.Second, func() bool { return countID(t, s, "marker") == 1 }, "marker stored")
	var ids []string
	if err := s.PB.DB().NewQuery("SELECT event_id FROM events WHERE name = 'Clicked' ORDER BY source").Column(&ids); err != nil {
		t.Fatal(err)
	}
	want := []string{events.TrackingID(other.Record.Id, "same-1"), s.EventID("same-1")}
	if len(ids) != 2 || ids[0] != want[0] || ids[1] != want[1] {
		t.Fatalf("stored ids %v, want %v", ids, want)
	}
}

// TestServerSourceSecretKeyShownOnce: a server source is created by an owner
// through POST /api/v1/sources, which answers its secret key once; the REST
// API never serves the key or its hash; the key authenticates tracking
// calls; bad input is refused naming the field.
func TestServerSourceSecretKeyShownOnce(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	owner, agent := s.Staff(t, "owner@shop.test", "owner"), s.Staff(t, "agent@shop.test", "agent")
	as := func(tok string) http.Header { return http.Header{"Authorization": {tok}} }

	if code, _ := s.Do(t, "POST", "/api/v1/sources", map[string]string{"name": "backend", "kind": "server"}, nil); code != 401 {
		t.Errorf("anonymous create: %d", code)
	}
	if code, _ := s.Do(t, "POST", "/api/v1/sources", map[string]string{"name": "backend", "kind": "server"}, as(agent)); code != 403 {
		t.Errorf("agent create: %d", code)
	}
	code, body := s.Do(t, "POST", "/api/v1/sources", map[string]string{"name": "backend", "kind": "server"}, as(owner))
	var created struct {
		ID, Name, Kind string
		SecretKey      string `json:"secret_key"`
		WriteKey       string `json:"write_key"`
	}
	if err := json.Unmarshal(body, &created); err != nil || code != 201 || created.Kind != "server" || !strings.HasPrefix(created.SecretKey, "sk_") || created.WriteKey != "" {
		t.Fatalf("create: %d %s", code, body)
	}
	_, list := s.Do(t, "GET", "/api/collections/sources/records", nil, as(owner))
	if strings.Contains(string(list), created.SecretKey) || strings.Contains(string(list), "secret_hash") || !strings.Contains(string(list), `"kind":"server"`) {
		t.Fatalf("sources list shows the secret or its hash, or no kind: %s", list)
	}

	if code, b := s.Do(t, "POST", "/v1/track", `{"messageId":"s-1","userId":"u","event":"Invoice Paid"}`, basic(created.SecretKey)); code != 200 {
		t.Fatalf("track with secret key: %d %s", code, b)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool {
		var n int
		_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE event_id = {:id} AND source = 'backend'").
			Bind(map[string]any{"id": events.TrackingID(created.ID, "s-1")}).Row(&n)
		return n == 1
	}, "server source's event stored")
	if code, _ := s.Do(t, "POST", "/v1/track", `{"userId":"u","event":"e"}`, basic(created.SecretKey+"x")); code != 401 {
		t.Errorf("wrong secret key: %d", code)
	}

	bad := []struct {
		body  any
		field string
	}{
		{map[string]string{"name": "x", "kind": "admin"}, "kind"},
		{map[string]string{"name": " "}, "name"},
		{map[string]string{"name": "test"}, "name"},                       // taken
		{map[string]string{"name": "Omni", "kind": "browser"}, "name"},    // reserved
		{map[string]string{"name": "Staff", "kind": "server"}, "name"},    // reserved: staff consent changes name who made them
		{map[string]string{"name": "customer", "kind": "server"}, "name"}, // reserved: changes customers make on the preference pages
		{`[1]`, "body"},
	}
	for _, c := range bad {
		code, body := s.Do(t, "POST", "/api/v1/sources", c.body, as(owner))
		var out struct {
			Message string                    `json:"message"`
			Data    map[string]map[string]any `json:"data"`
		}
		_ = json.Unmarshal(body, &out)
		if code != 400 || out.Data[c.field] == nil || !strings.HasPrefix(strings.ToLower(out.Message), c.field+":") {
			t.Errorf("%v: %d %s, want 400 naming %s", c.body, code, body, c.field)
		}
	}

	// Through the record API: no server source without the shown-once key,
	// and a browser source's public key never becomes trusted.
	if code, body := s.Do(t, "POST", "/api/collections/sources/records", map[string]string{"name": "sneaky", "kind": "server"}, as(owner)); code != 400 || !strings.Contains(string(body), `"kind"`) {
		t.Errorf("server source via record API: %d %s", code, body)
	}
	if code, body := s.Do(t, "PATCH", "/api/collections/sources/records/"+s.SourceID, map[string]string{"kind": "server"}, as(owner)); code != 400 || !strings.Contains(string(body), `"kind"`) {
		t.Errorf("browser source turned server: %d %s", code, body)
	}
	code, body = s.Do(t, "POST", "/api/collections/sources/records", map[string]string{"name": "Website"}, as(owner))
	if code != 200 || !strings.Contains(string(body), `"kind":"browser"`) || !strings.Contains(string(body), `"write_key":"wk_`) {
		t.Errorf("browser source via record API: %d %s", code, body)
	}
}

// TestSourceCannotTakeAConnectorsName: events carry the source name, and
// consent, vendor traits and bus subjects are keyed by it.
func TestSourceCannotTakeAConnectorsName(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	col, err := s.PB.FindCollectionByNameOrId("connectors")
	if err != nil {
		t.Fatal(err)
	}
	r := core.NewRecord(col)
	r.Set("name", "shopify")
	if err := s.PB.SaveNoValidate(r); err != nil {
		t.Fatal(err)
	}
	_, err = ingest.CreateSource(s.PB, "Shopify", "")
	var ie *ingest.InputError
	if !errors.As(err, &ie) || ie.Field != "name" || !strings.Contains(ie.Message, "connector") {
		t.Fatalf("source named like a connector: %v", err)
	}
}
