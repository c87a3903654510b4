package shopify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/plugins/internal/hosttest"
)

// omniWithShopify boots a real Omni (SQLite, embedded JetStream, HTTP) with
// the connector host, which runs this test binary as the shopify plugin
// process, and enables the connector against the fake Shopify.
func omniWithShopify(t testing.TB, f *fakeShopify) (*omnitest.Server, string) {
	t.Helper()
	// The fake's address is a file setting: it is not part of the
	// connector's advertised schema, so the API would refuse it.
	s := hosttest.Start(t, Name, New, map[string]any{KeyTestBaseURL: f.URL})
	return s, hosttest.SuperuserToken(t, s)
}

// waitBackfillDone waits for the host to report the backfill finished and
// returns how many records it reported.
func waitBackfillDone(t testing.TB, s *omnitest.Server, auth http.Header) int64 {
	t.Helper()
	var v struct {
		State string
		Done  int64
		Error string
	}
	omnitest.Eventually(t, 30*time.Second, func() bool {
		_, b := s.Do(t, "GET", "/api/v1/connectors/"+Name+"/backfill", nil, auth)
		json.Unmarshal(b, &v)
		if v.State == "failed" {
			t.Fatalf("backfill failed: %s", v.Error)
		}
		return v.State == "done"
	}, "backfill done")
	return v.Done
}

func countEvents(t testing.TB, s *omnitest.Server, where string, args ...any) int {
	t.Helper()
	var n int
	q := fmt.Sprintf("SELECT COUNT(*) FROM events WHERE "+where, args...)
	if err := s.PB.DB().NewQuery(q).Row(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestEndToEndWebhookStoredAndBackfill: signed Shopify webhooks over HTTP
// to /webhooks/shopify → plugin subprocess → events in SQLite; a tampered
// one is refused; a redelivery is stored once; a backfill through the host
// stores the fake shop's customers and orders.
func TestEndToEndWebhookStoredAndBackfill(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Omni and a plugin subprocess")
	}
	f := newFakeShopify(t)
	f.Seed(t, 4, 3)
	s, tok := omniWithShopify(t, f)
	auth := http.Header{"Authorization": {tok}}

	var vec struct {
		Secret  string            `json:"secret"`
		Headers map[string]string `json:"headers"`
	}
	mustJSON(t, fixture(t, "signature_test_vector.computed.json"), &vec)
	st, out := s.Do(t, "PATCH", "/api/v1/connectors/shopify", map[string]any{"enabled": true, "config": map[string]string{
		KeyShop: "jsmith.myshopify.com", KeyAccessToken: f.Token, KeyWebhookSecret: vec.Secret, KeyRegister: "false"}}, auth)
	if st != 200 {
		t.Fatalf("enable: %d %s", st, out)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool {
		_, b := s.Do(t, "GET", "/api/v1/connectors/shopify", nil, auth)
		var v struct{ State string }
		json.Unmarshal(b, &v)
		return v.State == "running"
	}, "shopify connector running")

	body := fixture(t, "order.json")
	hdr := http.Header{}
	for k, v := range vec.Headers {
		hdr.Set(k, v)
	}
	post := func(b []byte) int {
		st, resp := s.Do(t, "POST", "/webhooks/shopify", b, hdr)
		if st != 200 && st != 401 {
			t.Fatalf("webhook: %d %s", st, resp)
		}
		return st
	}
	if st := post(bytes.Replace(body, []byte(`"598.94"`), []byte(`"1.00"`), 1)); st != 401 {
		t.Fatalf("tampered body: %d", st)
	}
	if st := post(body); st != 200 {
		t.Fatalf("signed body: %d", st)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return countEvents(t, s, "event_id = 'shopify:order:450789469' AND source = 'shopify' AND type = 'order.placed' AND channel = 'web'") == 1
	}, "order.placed stored")
	post(body) // redelivery: the exact final count below proves it was dropped

	st, out = s.Do(t, "POST", "/api/v1/connectors/shopify/backfill", map[string]any{"since": "2000-01-01"}, auth)
	if st != 200 && st != 202 {
		t.Fatalf("backfill start: %d %s", st, out)
	}
	if done := waitBackfillDone(t, s, auth); done != 7 {
		t.Fatalf("backfill reported %d records, want 4 customers + 3 orders", done)
	}
	// 4 customers (+4 consent) and 3 orders; the order 450789469 is the
	// webhook's, stored once.
	omnitest.Eventually(t, 20*time.Second, func() bool {
		return countEvents(t, s, "source = 'shopify'") == 1+4+4+2
	}, "backfilled events stored")
	if n := countEvents(t, s, "source = 'shopify' AND type = 'order.placed'"); n != 3 {
		t.Fatalf("%d orders stored, want 3", n)
	}
	if n := countEvents(t, s, "event_id = 'shopify:order:450789469'"); n != 1 {
		t.Fatalf("order stored %d times", n)
	}
}

// BenchmarkEndToEndOrderWebhook: one signed orders/create after another
// through Omni's HTTP endpoint, the plugin process and JetStream (the 200
// comes after the event is stored on the bus). Each order has its own id.
func BenchmarkEndToEndOrderWebhook(b *testing.B) {
	f := newFakeShopify(b)
	s, tok := omniWithShopify(b, f)
	auth := http.Header{"Authorization": {tok}}
	if st, out := s.Do(b, "PATCH", "/api/v1/connectors/shopify", map[string]any{"enabled": true, "config": map[string]string{
		KeyShop: "jsmith.myshopify.com", KeyAccessToken: f.Token, KeyWebhookSecret: testSecret, KeyRegister: "false"}}, auth); st != 200 {
		b.Fatalf("enable: %d %s", st, out)
	}
	omnitest.Eventually(b, 20*time.Second, func() bool {
		_, body := s.Do(b, "GET", "/api/v1/connectors/shopify", nil, auth)
		var v struct{ State string }
		json.Unmarshal(body, &v)
		return v.State == "running"
	}, "running")
	tmpl := fixture(b, "order.json")
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		n++
		body := bytes.Replace(tmpl, []byte(`"id": 450789469,`), []byte(fmt.Sprintf(`"id": %d,`, 900000000+n)), 1)
		st, resp := s.Do(b, "POST", "/webhooks/shopify", body, http.Header{"X-Shopify-Topic": {"orders/create"},
			"X-Shopify-Hmac-Sha256": {Sign(body, testSecret)}, "X-Shopify-Event-Id": {fmt.Sprint(n)}})
		if st != 200 {
			b.Fatalf("%d %s", st, resp)
		}
	}
}
