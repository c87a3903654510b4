package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	analytics "github.com/segmentio/analytics-go/v3"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/bus"
)

type storedEvent struct {
	EventID    string `db:"event_id"`
	Type       string `db:"type"`
	Name       string `db:"name"`
	Source     string `db:"source"`
	Channel    string `db:"channel"`
	Identities string `db:"identities"`
	Properties string `db:"properties"`
	Context    string `db:"context"`
}

// find returns the event the "test" source sent with messageId id.
func find(t *testing.T, s *omnitest.Server, id string) *storedEvent {
	t.Helper()
	var ev storedEvent
	err := s.PB.DB().NewQuery("SELECT event_id, type, name, source, channel, identities, properties, context FROM events WHERE event_id = {:id}").
		Bind(map[string]any{"id": s.EventID(id)}).One(&ev)
	if err != nil {
		t.Fatalf("event %s not stored: %v", id, err)
	}
	return &ev
}

// countID counts the stored events of the "test" source's messageId id.
func countID(t *testing.T, s *omnitest.Server, id string) int {
	t.Helper()
	var n int
	if err := s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE event_id = {:id}").Bind(map[string]any{"id": s.EventID(id)}).Row(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTrackIdentifyPageStored(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	for path, body := range map[string]string{
		"/api/v1/track":  `{"messageId":"t1","userId":"u1","event":"Order Completed","properties":{"total":30,"currency":"USD","coupon":"X"},"context":{"traits":{"email":" Jane@Example.com"}}}`,
		"/v1/identify":   `{"messageId":"i1","userId":"u1","traits":{"email":"JANE@example.com","phone":"+1 415 555 2671","name":"Jane"}}`,
		"/v1/page":       `{"messageId":"p1","anonymousId":"anon-1","name":"Pricing","properties":{"url":"https://shop.test/pricing"}}`,
		"/api/v1/screen": `{"messageId":"s1","anonymousId":"anon-1","name":"Home"}`,
	} {
		code, body := s.Track(t, path, body)
		if code != 200 || !strings.Contains(string(body), `"success":true`) {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	s.WaitEvents(t, 4)

	tr := find(t, s, "t1")
	if tr.Type != "order.placed" || tr.Name != "Order Completed" || tr.Source != "test" || tr.Channel != "server" {
		t.Fatalf("track stored as %+v", tr)
	}
	if !strings.Contains(tr.Identities, `"email":"jane@example.com"`) || !strings.Contains(tr.Properties, `"coupon":"X"`) {
		t.Fatalf("track identities/properties: %s %s", tr.Identities, tr.Properties)
	}
	id := find(t, s, "i1")
	if id.Type != "identify" || !strings.Contains(id.Identities, `"phone":"+14155552671"`) || !strings.Contains(id.Properties, `"name":"Jane"`) {
		t.Fatalf("identify stored as %+v", id)
	}
	pg := find(t, s, "p1")
	if pg.Type != "page.viewed" || pg.Channel != "web" || !strings.Contains(pg.Identities, "anon-1") {
		t.Fatalf("page stored as %+v", pg)
	}
}

func TestDedupeSameMessageID(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	body := `{"messageId":"dup-1","userId":"u1","event":"Clicked"}`
	for i := 0; i < 2; i++ {
		if code, b := s.Track(t, "/v1/track", body); code != 200 {
			t.Fatalf("%d %s", code, b)
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, b := s.Track(t, "/v1/batch", `{"batch":[{"type":"track","messageId":"dup-2","userId":"u1","event":"Clicked"},{"type":"track","messageId":"dup-1","userId":"u1","event":"Clicked"}]}`); code != 200 {
				t.Errorf("%d %s", code, b)
			}
		}()
	}
	wg.Wait()
	// a marker posted last proves the consumer has passed the duplicates
	s.Track(t, "/v1/track", `{"messageId":"marker","userId":"u1","event":"Done"}`)
	omnitest.Eventually(t, 30*time.Second, func() bool { return countID(t, s, "marker") == 1 }, "marker stored")
	if a, b := countID(t, s, "dup-1"), countID(t, s, "dup-2"); a != 1 || b != 1 {
		t.Fatalf("duplicates stored: dup-1=%d dup-2=%d", a, b)
	}
	if n := s.CountEvents(t); n != 3 {
		t.Fatalf("want 3 events, got %d", n)
	}
}

func TestBadInput(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{Configure: nil})
	basic := func(key string) http.Header {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(key, "")
		return http.Header{"Authorization": r.Header["Authorization"]}
	}
	big := strings.Repeat("x", 40*1024)
	deep := strings.Repeat(`{"a":`, 1500) + "1" + strings.Repeat("}", 1500)
	var keys []string
	for i := 0; i < 501; i++ {
		keys = append(keys, fmt.Sprintf(`"k%d":1`, i))
	}
	manyKeys := strings.Join(keys, ",")
	hugeBatch := `{"batch":[` + strings.TrimSuffix(strings.Repeat(`{"type":"track","userId":"u","event":"e","properties":{"p":"`+strings.Repeat("y", 20*1024)+`"}},`, 30), ",") + `]}`
	cases := []struct {
		name, path, body string
		header           http.Header
		status           int
		field, message   string
	}{
		{"no key", "/v1/track", `{"userId":"u","event":"e"}`, nil, 401, "writeKey", "missing write key"},
		{"wrong key", "/v1/track", `{"userId":"u","event":"e"}`, basic("wk_nope"), 401, "writeKey", "invalid write key"},
		{"bad json", "/v1/track", `{"userId":`, basic(s.WriteKey), 400, "body", "not valid JSON"},
		{"missing event", "/v1/track", `{"userId":"u"}`, basic(s.WriteKey), 400, "event", "required"},
		{"missing identity", "/v1/track", `{"event":"e"}`, basic(s.WriteKey), 400, "userId", "userId or anonymousId"},
		{"wrong type field", "/v1/track", `{"userId":"u","event":"e","properties":[1]}`, basic(s.WriteKey), 400, "properties", "properties: must be an object, got array"},
		{"not a time", "/v1/track", `{"userId":"u","event":"e","timestamp":"yesterday"}`, basic(s.WriteKey), 400, "timestamp", `timestamp: must be an ISO 8601 time such as 2026-12-05T09:30:00Z, got "yesterday"`},
		{"future timestamp", "/v1/track", `{"userId":"u","event":"e","timestamp":"2999-01-01T00:00:00Z"}`, basic(s.WriteKey), 400, "occurred_at", "future"},
		{"oversize event", "/v1/track", `{"userId":"u","event":"e","properties":{"p":"` + big + `"}}`, basic(s.WriteKey), 413, "body", "32 KB"},
		{"oversize batch", "/v1/batch", hugeBatch, basic(s.WriteKey), 413, "batch", "500 KB"},
		{"empty batch", "/v1/batch", `{"batch":[]}`, basic(s.WriteKey), 400, "batch", "empty"},
		{"all invalid batch", "/v1/batch", `{"batch":[{"type":"track","userId":"u"}]}`, basic(s.WriteKey), 400, "batch[0].event", "no event"},
		// Bounds (core/events): the 1,500-deep order, and each other bound.
		{"too deep", "/v1/track", `{"userId":"u","event":"Order Completed","properties":` + deep + `}`, basic(s.WriteKey), 400, "properties" + strings.Repeat(".a", 32), "nesting deeper than 32"},
		{"too deep in batch", "/v1/batch", `{"batch":[{"type":"identify","userId":"u","traits":` + deep + `}]}`, basic(s.WriteKey), 400, "batch[0].traits" + strings.Repeat(".a", 32), "no event"},
		{"too many keys", "/v1/track", `{"userId":"u","event":"e","properties":{` + manyKeys + `}}`, basic(s.WriteKey), 400, "properties", "more than 500"},
		{"long name", "/v1/track", `{"userId":"u","event":"` + strings.Repeat("n", 201) + `"}`, basic(s.WriteKey), 400, "event", "longer than 200"},
		{"long messageId", "/v1/track", `{"userId":"u","event":"e","messageId":"` + strings.Repeat("m", 257) + `"}`, basic(s.WriteKey), 400, "messageId", "longer than 256"},
		{"long userId", "/v1/track", `{"userId":"` + strings.Repeat("u", 257) + `","event":"e"}`, basic(s.WriteKey), 400, "userId", "longer than 256"},
	}
	// Both prefixes answer alike: PocketBase's shape (data.<field>), as
	// everywhere under /api/v1, plus the documented top-level "field".
	for _, prefix := range []string{"", "/api"} {
		for _, c := range cases {
			t.Run(prefix+c.path+" "+c.name, func(t *testing.T) {
				code, body := s.Do(t, "POST", prefix+c.path, c.body, c.header)
				if code != c.status {
					t.Fatalf("status %d, want %d: %s", code, c.status, body)
				}
				var out struct {
					Status  int    `json:"status"`
					Message string `json:"message"`
					Field   string `json:"field"`
					Data    map[string]struct {
						Code    string `json:"code"`
						Message string `json:"message"`
					} `json:"data"`
				}
				if err := json.Unmarshal(body, &out); err != nil {
					t.Fatalf("not JSON: %s", body)
				}
				if out.Field != c.field || !strings.Contains(strings.ToLower(out.Message), strings.ToLower(c.message)) || out.Status != c.status {
					t.Fatalf("got %+v, want field %q message ~%q", out, c.field, c.message)
				}
				if strings.Contains(out.Message, c.field+": "+c.field+":") {
					t.Fatalf("the message names its field twice: %q", out.Message)
				}
				if d := out.Data[c.field]; d.Code == "" || d.Message == "" {
					t.Fatalf("no data.%s {code, message}: %s", c.field, body)
				}
			})
		}
	}
	if n := s.CountEvents(t); n != 0 {
		t.Fatalf("rejected input stored %d events", n)
	}
}

func TestBatchKeepsValidItemsAndSaysWhichFailed(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	big := strings.Repeat("z", 33*1024)
	code, body := s.Track(t, "/v1/batch", `{"batch":[
		{"type":"track","messageId":"ok-1","userId":"u","event":"A"},
		{"type":"track","messageId":"bad-1","userId":"u"},
		{"type":"identify","messageId":"ok-2","anonymousId":"a","traits":{"email":"x@y.z"}},
		{"type":"track","messageId":"big-1","userId":"u","event":"B","properties":{"p":"`+big+`"}}
	],"context":{"ip":"10.1.2.3"}}`)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var out struct {
		Accepted int `json:"accepted"`
		Rejected []struct {
			Index     int    `json:"index"`
			MessageID string `json:"messageId"`
			Field     string `json:"field"`
		} `json:"rejected"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	if out.Accepted != 2 || len(out.Rejected) != 2 || out.Rejected[0].Index != 1 || out.Rejected[0].MessageID != "bad-1" ||
		out.Rejected[0].Field != "batch[1].event" || out.Rejected[1].Index != 3 {
		t.Fatalf("response: %s", body)
	}
	s.WaitEvents(t, 2)
	if countID(t, s, "bad-1")+countID(t, s, "big-1") != 0 {
		t.Fatal("rejected items stored")
	}
	if ev := find(t, s, "ok-2"); !strings.Contains(ev.Context, "10.1.2.3") {
		t.Fatalf("batch context not applied: %s", ev.Context)
	}
}

// TestSegmentGoClient sends through the official Segment Go library, only
// its endpoint changed.
func TestSegmentGoClient(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	client, err := analytics.NewWithConfig(s.WriteKey, analytics.Config{Endpoint: s.URL, BatchSize: 10, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := client.Enqueue(analytics.Track{UserId: "seg-user", Event: "Product Viewed", MessageId: fmt.Sprintf("seg-%d", i), Properties: analytics.NewProperties().Set("sku", "A1")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Enqueue(analytics.Identify{UserId: "seg-user", MessageId: "seg-id", Traits: analytics.NewTraits().SetEmail("Seg@Example.com").SetName("Seg")}); err != nil {
		t.Fatal(err)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	s.WaitEvents(t, 4)
	if ev := find(t, s, "seg-id"); ev.Type != "identify" || !strings.Contains(ev.Identities, "seg@example.com") {
		t.Fatalf("identify: %+v", ev)
	}
	if ev := find(t, s, "seg-1"); ev.Type != "track" || ev.Name != "Product Viewed" || !strings.Contains(ev.Properties, `"sku":"A1"`) {
		t.Fatalf("track: %+v", ev)
	}
}

func TestHealth(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	code, body := s.Do(t, "GET", "/api/v1/health", nil, nil)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var h struct {
		Status string            `json:"status"`
		DB     struct{ OK bool } `json:"db"`
		Bus    struct {
			OK        bool                      `json:"ok"`
			Streams   map[string]map[string]any `json:"streams"`
			Consumers map[string]map[string]any `json:"consumers"`
		} `json:"bus"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	if h.Status != "ok" || !h.DB.OK || !h.Bus.OK || h.Bus.Streams["EVENTS"] == nil || h.Bus.Consumers["eventstore"] == nil || h.Version == "" {
		t.Fatalf("health: %s", body)
	}
	// With the bus gone the server still answers, and says it is unhealthy.
	s.Bus.Conn.Close()
	code, body = s.Do(t, "GET", "/api/v1/health", nil, nil)
	if code != 503 || !strings.Contains(string(body), `"status":"unavailable"`) {
		t.Fatalf("bus down: %d %s", code, body)
	}
	code, body = s.Track(t, "/v1/track", `{"userId":"u","event":"e"}`)
	if code != 503 {
		t.Fatalf("ingest with bus down: %d %s", code, body)
	}
}

func TestDisabledSourceIsRefusedAtOnce(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	if code, b := s.Track(t, "/v1/track", `{"userId":"u","event":"e"}`); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	rec, err := s.PB.FindFirstRecordByData("sources", "name", "test")
	if err != nil {
		t.Fatal(err)
	}
	rec.Set("disabled", true)
	if err := s.PB.Save(rec); err != nil {
		t.Fatal(err)
	}
	code, b := s.Track(t, "/v1/track", `{"userId":"u","event":"e"}`)
	if code != 401 || !strings.Contains(string(b), "disabled") {
		t.Fatalf("disabled source still accepted (cached key?): %d %s", code, b)
	}
}

// A small batch is decoded in one pass; one with an item of the wrong JSON
// shape falls back to decoding item by item. Both answer and store alike.
func TestSmallBatchOnePassAndFallbackAgree(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	type answer struct {
		Accepted int `json:"accepted"`
		Rejected []struct {
			Index     int    `json:"index"`
			MessageID string `json:"messageId"`
			Field     string `json:"field"`
		} `json:"rejected"`
	}
	post := func(body string) answer {
		t.Helper()
		code, out := s.Track(t, "/v1/batch", body)
		if code != 200 {
			t.Fatalf("%d %s", code, out)
		}
		var a answer
		if err := json.Unmarshal(out, &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	onePass := post(`{"batch":[{"type":"track","messageId":"fast-ok","userId":"u1","event":"Order Completed","properties":{"total":5}},
		{"type":"track","messageId":"fast-bad","userId":"u1"}],"context":{"ip":"10.9.8.7"}}`)
	if onePass.Accepted != 1 || len(onePass.Rejected) != 1 || onePass.Rejected[0].Index != 1 ||
		onePass.Rejected[0].MessageID != "fast-bad" || onePass.Rejected[0].Field != "batch[1].event" {
		t.Fatalf("one pass: %+v", onePass)
	}
	fallback := post(`{"batch":[{"type":"track","messageId":"slow-ok","userId":"u1","event":"Order Completed","properties":{"total":5}},
		{"type":"track","messageId":"slow-bad","userId":"u1","event":"E","properties":"not an object"}],"context":{"ip":"10.9.8.7"}}`)
	if fallback.Accepted != 1 || len(fallback.Rejected) != 1 || fallback.Rejected[0].Index != 1 || fallback.Rejected[0].MessageID != "slow-bad" {
		t.Fatalf("fallback: %+v", fallback)
	}
	s.WaitEvents(t, 2)
	fast, slow := find(t, s, "fast-ok"), find(t, s, "slow-ok")
	if fast.Type != "order.placed" || fast.Type != slow.Type || fast.Properties != slow.Properties || fast.Context != slow.Context ||
		!strings.Contains(fast.Context, "10.9.8.7") {
		t.Fatalf("one pass stored %+v, fallback %+v", fast, slow)
	}
	if countID(t, s, "fast-bad")+countID(t, s, "slow-bad") != 0 {
		t.Fatal("rejected items stored")
	}
}

// A tracking request's events travel as one message on EVENTS (a batch
// message), and each is stored as its own row.
func TestABatchRequestIsOneMessageOnTheBus(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	lastSeq := func() uint64 {
		str, err := s.Bus.JS.Stream(context.Background(), bus.StreamEvents)
		if err != nil {
			t.Fatal(err)
		}
		return str.CachedInfo().State.LastSeq
	}
	before := lastSeq()
	code, body := s.Track(t, "/v1/batch", `{"batch":[
		{"type":"track","messageId":"one","userId":"u1","event":"Clicked"},
		{"type":"identify","messageId":"two","userId":"u1","traits":{"email":"one@example.com"}},
		{"type":"track","messageId":"bad","event":"No identity"},
		{"type":"page","messageId":"three","anonymousId":"a1","name":"Home"}]}`)
	if code != 200 {
		t.Fatalf("batch: %d %s", code, body)
	}
	if after := lastSeq(); after != before+1 {
		t.Fatalf("the request published %d messages, want one for its three valid events", after-before)
	}
	s.WaitEvents(t, 3)
	for _, id := range []string{"one", "two", "three"} {
		if n := countID(t, s, id); n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	if n := countID(t, s, "bad"); n != 0 {
		t.Errorf("the invalid item was stored")
	}
}
