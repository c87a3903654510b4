package square

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/internal/testkit/golden"
	"github.com/omni/omni/plugins/sdk"
)

const (
	testKey = "Ibxx_5AKakO-3qeNVR61Dw"
	testURL = "https://omni.example.com/webhooks/square"
)

type testHost struct {
	mu   sync.Mutex
	logs []string
}

func (h *testHost) Emit(context.Context, []sdk.Event) error { return nil }
func (h *testHost) Log(level, msg string, kv ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, level+": "+msg)
}

func newTestConnector(t *testing.T, f *fakeSquare, cfg map[string]string) (*Connector, *[]time.Duration) {
	t.Helper()
	c := newConnector()
	var mu sync.Mutex
	waits := &[]time.Duration{}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	c.now = func() time.Time { return time.Date(2026, 9, 4, 13, 38, 55, 0, time.UTC) }
	if cfg == nil {
		cfg = f.Config(testKey)
	}
	if err := c.Configure(context.Background(), cfg, &testHost{}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return c, waits
}

func notification(body []byte, key string) *sdk.WebhookRequest {
	return &sdk.WebhookRequest{Method: "POST", Body: body, URL: testURL, Headers: map[string][]string{
		"X-Square-Hmacsha256-Signature": {Sign(body, testURL, key)},
		"Square-Environment":            {"Production"},
		"Content-Type":                  {"application/json"},
	}}
}

func handle(t *testing.T, c *Connector, req *sdk.WebhookRequest, want int) []sdk.Event {
	t.Helper()
	resp, err := c.HandleWebhook(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != want {
		t.Fatalf("status %d want %d: %s", resp.Status, want, resp.Body)
	}
	if want != 200 && len(resp.Events) > 0 {
		t.Fatal("events with an error status")
	}
	return resp.Events
}

func checkValid(t *testing.T, evs []sdk.Event) {
	t.Helper()
	for _, e := range evs {
		ue := events.Event{ID: e.ID, Type: e.Type, Source: Name, OccurredAt: e.OccurredAt, Identities: e.Identities}
		if err := ue.Validate(time.Now()); err != nil {
			t.Errorf("event %s invalid: %v", e.ID, err)
		}
	}
}

// goldenEvents checks evs are valid events and match their golden file.
func goldenEvents(t *testing.T, name string, evs []sdk.Event) {
	t.Helper()
	checkValid(t, evs)
	golden.JSON(t, name, evs)
}

// edit returns a fixture with a change applied to its decoded JSON.
func edit(t *testing.T, name string, fn func(m map[string]any)) []byte {
	var m map[string]any
	if err := json.Unmarshal(fixture(t, name), &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, _ := json.Marshal(m)
	return b
}

func obj(m map[string]any, key string) map[string]any {
	return m["data"].(map[string]any)["object"].(map[string]any)[key].(map[string]any)
}

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func TestSignatureTestVector(t *testing.T) {
	var vec struct {
		Key, URL, Header, Value, Body string
	}
	var raw map[string]string
	mustJSON(t, fixture(t, "signature_test_vector.json"), &raw)
	vec.Key, vec.URL, vec.Header, vec.Value, vec.Body = raw["signature_key"], raw["notification_url"], raw["header_name"], raw["header_value"], raw["raw_body"]
	if !Verify([]byte(vec.Body), vec.URL, vec.Value, vec.Key) {
		t.Fatal("the Square SDK's test vector does not verify")
	}
	f := newFakeSquare(t)
	cfg := f.Config(testKey)
	cfg[KeySignatureKey] = vec.Key
	c, _ := newTestConnector(t, f, cfg)
	req := &sdk.WebhookRequest{Method: "POST", URL: vec.URL, Body: []byte(vec.Body), Headers: map[string][]string{vec.Header: {vec.Value}}}
	if evs := handle(t, c, req, 200); len(evs) != 0 {
		t.Fatalf("test notification produced %v", evs)
	}
	// Tampered body, other URL, other key, missing header: all 401.
	tampered := *req
	tampered.Body = bytes.Replace(req.Body, []byte("MLEFBHHSJGVHD"), []byte("MLEFBHHSJGVHE"), 1)
	handle(t, c, &tampered, 401)
	other := *req
	other.URL = "https://webhook.site/another"
	handle(t, c, &other, 401)
	none := *req
	none.Headers = map[string][]string{}
	handle(t, c, &none, 401)
	// Behind a proxy the URL Omni sees differs; the configured one is used.
	cfg[KeyNotificationURL] = vec.URL
	c2, _ := newTestConnector(t, f, cfg)
	proxied := *req
	proxied.URL = "http://10.0.0.7:8090/webhooks/square"
	handle(t, c2, &proxied, 200)
}

func TestFixturesGolden(t *testing.T) {
	f := newFakeSquare(t)
	seedOrder(t, f, "03O3USaPaAaFnI6kkwB1JxGgBsUZY", "")
	seedOrder(t, f, "eA3vssLHKJrv9H0IdJCM3gNqfdcZY", "")
	c, _ := newTestConnector(t, f, nil)

	// Not-yet-complete states produce nothing: an approved card
	// authorisation, OPEN orders, a PENDING refund.
	for _, name := range []string{"payment_created.json", "order_created.json", "order_updated.json", "refund_created.json"} {
		if evs := handle(t, c, notification(fixture(t, name), testKey), 200); len(evs) != 0 {
			t.Errorf("%s: %+v", name, evs)
		}
	}
	paid := handle(t, c, notification(fixture(t, "payment_updated.json"), testKey), 200)
	goldenEvents(t, "payment_updated", paid)
	cust := handle(t, c, notification(fixture(t, "customer_created.json"), testKey), 200)
	goldenEvents(t, "customer_created", cust)

	completed := edit(t, "order_updated.json", func(m map[string]any) { obj(m, "order_updated")["state"] = "COMPLETED" })
	goldenEvents(t, "order_updated_completed", handle(t, c, notification(completed, testKey), 200))

	refundDone := edit(t, "refund_created.json", func(m map[string]any) { obj(m, "refund")["status"] = "COMPLETED" })
	goldenEvents(t, "refund_completed", handle(t, c, notification(refundDone, testKey), 200))
}

func TestPaymentMapsToOrderPlaced(t *testing.T) {
	f := newFakeSquare(t)
	seedOrder(t, f, "03O3USaPaAaFnI6kkwB1JxGgBsUZY", "")
	c, _ := newTestConnector(t, f, nil)
	e := handle(t, c, notification(fixture(t, "payment_updated.json"), testKey), 200)[0]
	p := e.Properties
	if e.Type != events.OrderPlaced || e.Context.Channel != "pos" || e.ID != "square:order:03O3USaPaAaFnI6kkwB1JxGgBsUZY" {
		t.Fatalf("event = %+v", e)
	}
	if p["total"] != 5.5 || p["currency"] != "USD" || p["location_id"] != "S8GWD5R9QB376" || p["payment_id"] != "hYy9pRFVxpDsO1FB05SunFWUe9JZY" {
		t.Fatalf("properties = %v", p)
	}
	items := p["line_items"].([]any)
	if len(items) != 2 || items[1].(map[string]any)["quantity"] != int64(2) || items[1].(map[string]any)["price"] != 3.0 {
		t.Fatalf("line items = %v", items)
	}
	if dc := p["discount_codes"].([]any); len(dc) != 1 || dc[0] != "50% Off" {
		t.Fatalf("discounts = %v", dc)
	}
	// Walk-in without a customer: order-scoped anonymous profile.
	if e.Identities[events.AnonymousID] != "square_order:03O3USaPaAaFnI6kkwB1JxGgBsUZY" || len(e.Identities) != 1 {
		t.Fatalf("identities = %v", e.Identities)
	}
	// The same sale seen via order.updated COMPLETED has the same id.
	completed := edit(t, "order_updated.json", func(m map[string]any) {
		obj(m, "order_updated")["state"] = "COMPLETED"
		obj(m, "order_updated")["order_id"] = "03O3USaPaAaFnI6kkwB1JxGgBsUZY"
	})
	if e2 := handle(t, c, notification(completed, testKey), 200)[0]; e2.ID != e.ID {
		t.Fatalf("order path id %s != payment path id %s", e2.ID, e.ID)
	}
}

func TestInStoreBuyerJoinsOnlineProfile(t *testing.T) {
	f := newFakeSquare(t)
	seedOrder(t, f, "03O3USaPaAaFnI6kkwB1JxGgBsUZY", "")
	// The buyer is on file in Square with the phone they use online.
	seedCustomer(t, f, "QPTXM8PQNX3Q726ZYHPMNP46XC", "Bob.Norman@mail.example.com", "+1 613-612-0707")
	c, _ := newTestConnector(t, f, nil)
	body := edit(t, "payment_updated.json", func(m map[string]any) {
		obj(m, "payment")["customer_id"] = "QPTXM8PQNX3Q726ZYHPMNP46XC"
	})
	e := handle(t, c, notification(body, testKey), 200)[0]
	want := map[string]string{events.SquareCustomer: "QPTXM8PQNX3Q726ZYHPMNP46XC", events.Phone: "+16136120707", events.Email: "bob.norman@mail.example.com"}
	for k, v := range want {
		if e.Identities[k] != v {
			t.Fatalf("identities = %v", e.Identities)
		}
	}
	if _, anon := e.Identities[events.AnonymousID]; anon {
		t.Fatal("a known buyer got an anonymous id")
	}
}

func TestCustomerEventsAndConsent(t *testing.T) {
	f := newFakeSquare(t)
	c, _ := newTestConnector(t, f, nil)
	evs := handle(t, c, notification(fixture(t, "customer_created.json"), testKey), 200)
	if len(evs) != 1 || evs[0].Type != events.CustomerUpdated || evs[0].Identities[events.Phone] != "+12126668929" ||
		evs[0].Identities[events.Email] != "jenkins+smorly@squareup.com" || evs[0].Identities[events.SquareCustomer] != "QPTXM8PQNX3Q726ZYHPMNP46XC" {
		t.Fatalf("customer = %+v", evs)
	}
	unsub := edit(t, "customer_created.json", func(m map[string]any) {
		m["type"], m["event_id"] = "customer.updated", "0b3e2f1a-0000-4000-8000-000000000001"
		cu := obj(m, "customer")
		cu["preferences"] = map[string]any{"email_unsubscribed": true}
		cu["version"] = 1
	})
	evs = handle(t, c, notification(unsub, testKey), 200)
	if len(evs) != 2 || evs[1].Type != events.ConsentChanged {
		t.Fatalf("events = %+v", evs)
	}
	want := map[string]any{"channel": "email", "status": "unsubscribed", "source": "square", "email_unsubscribed": true}
	for k, v := range want {
		if evs[1].Properties[k] != v {
			t.Fatalf("consent = %v", evs[1].Properties)
		}
	}
	if evs[0].ID == handle(t, c, notification(fixture(t, "customer_created.json"), testKey), 200)[0].ID {
		t.Fatal("a newer customer version reused the old id")
	}
}

func TestRedeliveryKeepsIDs(t *testing.T) {
	f := newFakeSquare(t)
	seedOrder(t, f, "03O3USaPaAaFnI6kkwB1JxGgBsUZY", "")
	c, _ := newTestConnector(t, f, nil)
	for _, name := range []string{"payment_updated.json", "customer_created.json"} {
		a := handle(t, c, notification(fixture(t, name), testKey), 200)
		b := handle(t, c, notification(fixture(t, name), testKey), 200)
		if len(a) == 0 || len(a) != len(b) || a[0].ID != b[0].ID {
			t.Fatalf("%s: %v vs %v", name, a, b)
		}
	}
}

func TestOrderFetchFailures(t *testing.T) {
	f := newFakeSquare(t)
	c, waits := newTestConnector(t, f, nil)
	// Square's API down: 503 so Square redelivers later; nothing emitted.
	f.FailPath["/v2/orders/03O3USaPaAaFnI6kkwB1JxGgBsUZY"] = 500
	handle(t, c, notification(fixture(t, "payment_updated.json"), testKey), 503)
	if len(*waits) == 0 {
		t.Fatal("no retry before giving up")
	}
	// Unknown order: the payment alone is enough for order.placed.
	delete(f.FailPath, "/v2/orders/03O3USaPaAaFnI6kkwB1JxGgBsUZY")
	evs := handle(t, c, notification(fixture(t, "payment_updated.json"), testKey), 200)
	if len(evs) != 1 || evs[0].Properties["total"] != 1.0 || evs[0].ID != "square:order:03O3USaPaAaFnI6kkwB1JxGgBsUZY" {
		t.Fatalf("events = %+v", evs)
	}
}

func TestMalformedNotifications(t *testing.T) {
	f := newFakeSquare(t)
	c, _ := newTestConnector(t, f, nil)
	for body, want := range map[string]string{
		`{not json`:                  "body",
		`{"type":"payment.updated"}`: "event_id",
		`{"type":"payment.updated","event_id":"x","data":{"object":{}}}`:                                    "data.object.payment",
		`{"type":"payment.updated","event_id":"x","data":{"object":{"payment":[]}}}`:                        "data.object.payment",
		`{"type":"order.updated","event_id":"x","data":{"object":{"order_updated":{"state":"COMPLETED"}}}}`: "order_id",
		`{"type":"customer.updated","event_id":"x","data":{"object":{"customer":{}}}}`:                      "customer.id",
	} {
		resp, _ := c.HandleWebhook(context.Background(), notification([]byte(body), testKey))
		if resp.Status != 400 || !strings.Contains(string(resp.Body), want) {
			t.Errorf("%s: %d %s", body, resp.Status, resp.Body)
		}
	}
}

func TestConfig(t *testing.T) {
	c := newConnector()
	base := map[string]string{KeyAccessToken: "t", KeySignatureKey: "k"}
	for key, bad := range map[string]string{KeyAccessToken: "", KeySignatureKey: "", KeyEnvironment: "staging", KeyAPIVersion: "v2", KeyNotificationURL: "omni.example.com/webhooks/square"} {
		cfg := map[string]string{}
		for k, v := range base {
			cfg[k] = v
		}
		cfg[key] = bad
		var ce *sdk.ConfigError
		if err := c.Configure(context.Background(), cfg, &testHost{}); !errors.As(err, &ce) || ce.Field != key {
			t.Errorf("%s=%q: %v", key, bad, err)
		}
	}
	if err := c.Configure(context.Background(), map[string]string{KeyAccessToken: "t", KeySignatureKey: "k", KeyEnvironment: "sandbox"}, &testHost{}); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := c.settings(); s.baseURL != SandboxURL || s.version != DefaultAPIVersion {
		t.Fatalf("settings %+v", s)
	}
	if err := c.Configure(context.Background(), base, &testHost{}); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := c.settings(); s.baseURL != ProductionURL {
		t.Fatalf("default base %s", s.baseURL)
	}
	d, _ := c.Describe(context.Background())
	for _, f := range d.Config {
		if (f.Name == KeyAccessToken || f.Name == KeySignatureKey) != f.Secret || f.Name == KeyTestBaseURL {
			t.Errorf("field %+v", f)
		}
	}
}

func TestCustomerWithoutVersionUsesEventID(t *testing.T) {
	f := newFakeSquare(t)
	c, _ := newTestConnector(t, f, nil)
	mk := func(eventID string) []byte {
		return edit(t, "customer_created.json", func(m map[string]any) {
			m["event_id"] = eventID
			cu := obj(m, "customer")
			delete(cu, "version")
			delete(cu, "updated_at")
		})
	}
	a := handle(t, c, notification(mk("ev-1"), testKey), 200)[0]
	again := handle(t, c, notification(mk("ev-1"), testKey), 200)[0]
	b := handle(t, c, notification(mk("ev-2"), testKey), 200)[0]
	if a.ID != again.ID || a.ID == b.ID {
		t.Fatalf("ids: %s %s %s", a.ID, again.ID, b.ID)
	}
}
