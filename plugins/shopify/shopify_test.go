package shopify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/internal/testkit/golden"
	"github.com/omni/omni/plugins/sdk"
)

const testSecret = "shpss_0123456789abcdef_test_only"

type logLine struct {
	level, msg string
	kv         []any
}

type testHost struct {
	mu   sync.Mutex
	logs []logLine
}

func (h *testHost) Emit(context.Context, []sdk.Event) error { return nil }
func (h *testHost) Log(level, msg string, kv ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, logLine{level, msg, kv})
}

// newTestConnector configures a connector against a fake Shopify; waits
// are recorded, not slept.
func newTestConnector(t *testing.T, f *fakeShopify, cfg map[string]string) (*Connector, *testHost, *[]time.Duration) {
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
		cfg = f.Config(testSecret)
	}
	h := &testHost{}
	if err := c.Configure(context.Background(), cfg, h); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return c, h, waits
}

func webhook(topic string, body []byte, secret string) *sdk.WebhookRequest {
	return &sdk.WebhookRequest{
		Method: "POST", Path: "", Body: body, URL: "https://omni.example.com/webhooks/shopify",
		Headers: map[string][]string{
			"X-Shopify-Topic":        {topic},
			"X-Shopify-Hmac-Sha256":  {Sign(body, secret)},
			"X-Shopify-Shop-Domain":  {"jsmith.myshopify.com"},
			"X-Shopify-Api-Version":  {"2026-07"},
			"X-Shopify-Webhook-Id":   {"b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"},
			"X-Shopify-Event-Id":     {"98880550-7158-44d4-b7cd-" + fmt.Sprintf("%012x", len(topic))},
			"X-Shopify-Triggered-At": {"2026-09-04T13:38:55.000000Z"},
		},
	}
}

func handle(t *testing.T, c *Connector, req *sdk.WebhookRequest, wantStatus int) []sdk.Event {
	t.Helper()
	resp, err := c.HandleWebhook(context.Background(), req)
	if err != nil {
		t.Fatalf("HandleWebhook: %v", err)
	}
	if resp.Status != wantStatus {
		t.Fatalf("status %d, want %d; body %s", resp.Status, wantStatus, resp.Body)
	}
	if wantStatus != 200 && len(resp.Events) != 0 {
		t.Fatalf("a %d answer carried %d events", wantStatus, len(resp.Events))
	}
	return resp.Events
}

// checkValid runs every event through the unified model's own validation.
func checkValid(t *testing.T, evs []sdk.Event) {
	t.Helper()
	for _, e := range evs {
		ue := events.Event{ID: e.ID, Type: e.Type, Source: Name, OccurredAt: e.OccurredAt, Identities: e.Identities}
		if err := ue.Validate(time.Now()); err != nil {
			t.Errorf("event %s (%s) invalid: %v", e.ID, e.Type, err)
		}
	}
}

// goldenEvents checks evs are valid events and match their golden file.
func goldenEvents(t *testing.T, name string, evs []sdk.Event) {
	t.Helper()
	checkValid(t, evs)
	golden.JSON(t, name, evs)
}

func TestSignatureTestVectorVerifies(t *testing.T) {
	var vec struct {
		Secret      string            `json:"secret"`
		RawBodyFile string            `json:"raw_body_file"`
		Headers     map[string]string `json:"headers"`
	}
	mustJSON(t, fixture(t, "signature_test_vector.computed.json"), &vec)
	body := fixture(t, vec.RawBodyFile)
	if !Verify(body, vec.Headers["X-Shopify-Hmac-Sha256"], vec.Secret) {
		t.Fatal("the fixture's signature does not verify")
	}
	f := newFakeShopify(t)
	c, _, _ := newTestConnector(t, f, f.Config(vec.Secret))
	req := &sdk.WebhookRequest{Method: "POST", Body: body, Headers: map[string][]string{}}
	for k, v := range vec.Headers {
		req.Headers[k] = []string{v}
	}
	evs := handle(t, c, req, 200)
	if len(evs) != 1 || evs[0].Type != events.OrderPlaced || evs[0].ID != "shopify:order:450789469" {
		t.Fatalf("events = %+v", evs)
	}
	if evs[0].Context.Extra["shopify_event_id"] != vec.Headers["X-Shopify-Event-Id"] {
		t.Fatalf("event id header not recorded: %v", evs[0].Context.Extra)
	}

	// The newer delivery style: same headers without the X- prefix.
	req2 := &sdk.WebhookRequest{Method: "POST", Body: body, Headers: map[string][]string{
		"shopify-hmac-sha256": {vec.Headers["X-Shopify-Hmac-Sha256"]}, "shopify-topic": {"orders/create"},
		"shopify-event-id": {vec.Headers["X-Shopify-Event-Id"]},
	}}
	if evs2 := handle(t, c, req2, 200); len(evs2) != 1 || evs2[0].ID != evs[0].ID {
		t.Fatalf("unprefixed headers: %+v", evs2)
	}
}

func TestTamperedOrWronglySignedBodiesAreRejected(t *testing.T) {
	f := newFakeShopify(t)
	c, _, _ := newTestConnector(t, f, nil)
	body := fixture(t, "order.json")
	good := webhook("orders/create", body, testSecret)

	tampered := webhook("orders/create", bytes.Replace(body, []byte(`"598.94"`), []byte(`"5.94"`), 1), testSecret)
	tampered.Headers["X-Shopify-Hmac-Sha256"] = good.Headers["X-Shopify-Hmac-Sha256"]
	handle(t, c, tampered, 401)

	handle(t, c, webhook("orders/create", body, "another-secret"), 401)

	missing := webhook("orders/create", body, testSecret)
	delete(missing.Headers, "X-Shopify-Hmac-Sha256")
	handle(t, c, missing, 401)

	garbage := webhook("orders/create", body, testSecret)
	garbage.Headers["X-Shopify-Hmac-Sha256"] = []string{"not base64 !!"}
	handle(t, c, garbage, 401)

	// Re-serialising the JSON (what a proxy or framework might do) breaks
	// the signature too.
	var v any
	mustJSON(t, body, &v)
	reformatted, _ := json.Marshal(v)
	re := webhook("orders/create", reformatted, testSecret)
	re.Headers["X-Shopify-Hmac-Sha256"] = good.Headers["X-Shopify-Hmac-Sha256"]
	handle(t, c, re, 401)

	if evs := handle(t, c, good, 200); len(evs) != 1 {
		t.Fatalf("good delivery gave %d events", len(evs))
	}
}

func TestGoldenFixtures(t *testing.T) {
	f := newFakeShopify(t)
	f.Seed(t, 0, 0) // order lookup for the refund
	c, _, _ := newTestConnector(t, f, nil)
	cases := []struct{ name, topic, file string }{
		{"orders_create", "orders/create", "order.json"},
		{"orders_cancelled", "orders/cancelled", "order.json"},
		{"refunds_create", "refunds/create", "refund.json"},
		{"checkouts_create", "checkouts/create", "abandoned_checkout.json"},
		{"checkouts_update", "checkouts/update", "abandoned_checkout.json"},
		{"customers_update", "customers/update", "customer.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs := handle(t, c, webhook(tc.topic, fixture(t, tc.file), testSecret), 200)
			if len(evs) == 0 {
				t.Fatal("no events")
			}
			goldenEvents(t, tc.name, evs)
		})
	}
}

func TestOrderPlacedMapping(t *testing.T) {
	f := newFakeShopify(t)
	c, _, _ := newTestConnector(t, f, nil)
	evs := handle(t, c, webhook("orders/create", fixture(t, "order.json"), testSecret), 200)
	e := evs[0]
	p := e.Properties
	if p["order_id"] != "450789469" || p["total"] != 598.94 || p["currency"] != "USD" {
		t.Fatalf("properties = %v", p)
	}
	if dc := p["discount_codes"].([]any); len(dc) != 1 || dc[0] != "TENOFF" {
		t.Fatalf("discount codes = %v", dc)
	}
	if li := p["line_items"].([]any); len(li) != 3 {
		t.Fatalf("line items = %v", li)
	}
	if e.Context.Channel != "web" {
		t.Fatalf("channel = %q", e.Context.Channel)
	}
	if e.Identities[events.Email] != "bob.norman@mail.example.com" || e.Identities[events.ShopifyCustomer] != "207119551" ||
		e.Identities[events.Phone] != "+16136120707" {
		t.Fatalf("identities = %v", e.Identities)
	}
	if cp := e.Context.Campaign; cp == nil || cp.Source != "otherexample.com" || cp.Medium != "referral" {
		t.Fatalf("campaign = %+v", e.Context.Campaign)
	}
	if !e.OccurredAt.Equal(time.Date(2008, 1, 10, 16, 0, 0, 0, time.UTC)) {
		t.Fatalf("occurred_at = %v", e.OccurredAt)
	}

	// orders/paid for the same order is the same order.placed (counted once).
	paid := handle(t, c, webhook("orders/paid", fixture(t, "order.json"), testSecret), 200)
	if paid[0].ID != e.ID {
		t.Fatalf("orders/paid id %q != orders/create id %q", paid[0].ID, e.ID)
	}
}

func TestUTMAndPOSOrders(t *testing.T) {
	f := newFakeShopify(t)
	c, _, _ := newTestConnector(t, f, nil)
	var o map[string]any
	mustJSON(t, fixture(t, "order.json"), &o)

	o["landing_site"] = "/products/ipod?utm_source=instagram&utm_medium=social&utm_campaign=spring_sale&utm_content=reel1"
	web, _ := json.Marshal(o)
	e := handle(t, c, webhook("orders/create", web, testSecret), 200)[0]
	want := sdk.Campaign{Source: "instagram", Medium: "social", Name: "spring_sale", Content: "reel1"}
	if e.Context.Campaign == nil || *e.Context.Campaign != want {
		t.Fatalf("campaign = %+v", e.Context.Campaign)
	}

	// A Shopify POS walk-in sale: source_name pos, a location and staff,
	// no customer and no contact details.
	o["source_name"], o["location_id"], o["user_id"], o["device_id"] = "pos", 655441491, 548380009, 12345
	o["customer"], o["email"], o["contact_email"], o["phone"] = nil, "", nil, nil
	o["id"] = json.Number("9007199254740993") // above 2^53
	pos, _ := json.Marshal(o)
	e = handle(t, c, webhook("orders/create", pos, testSecret), 200)[0]
	if e.Context.Channel != "pos" || e.Properties["location_id"] != "655441491" || e.Properties["staff_user_id"] != "548380009" {
		t.Fatalf("pos event = %+v", e)
	}
	if e.Context.Campaign != nil {
		t.Fatalf("an in-store sale got web attribution: %+v", e.Context.Campaign)
	}
	if e.ID != "shopify:order:9007199254740993" || e.Identities[events.AnonymousID] != "shopify_order:9007199254740993" {
		t.Fatalf("id %q identities %v", e.ID, e.Identities)
	}
	checkValid(t, []sdk.Event{e})
}

func TestRedeliveryKeepsIDs(t *testing.T) {
	f := newFakeShopify(t)
	f.Seed(t, 0, 0)
	c, _, _ := newTestConnector(t, f, nil)
	for _, tc := range []struct{ topic, file string }{
		{"orders/create", "order.json"}, {"orders/cancelled", "order.json"}, {"refunds/create", "refund.json"},
		{"checkouts/create", "abandoned_checkout.json"}, {"checkouts/update", "abandoned_checkout.json"}, {"customers/update", "customer.json"},
	} {
		a := handle(t, c, webhook(tc.topic, fixture(t, tc.file), testSecret), 200)
		again := webhook(tc.topic, fixture(t, tc.file), testSecret)
		again.Headers["X-Shopify-Webhook-Id"] = []string{"another-delivery-attempt"}
		b := handle(t, c, again, 200)
		if len(a) != len(b) || len(a) == 0 {
			t.Fatalf("%s: %d vs %d events", tc.topic, len(a), len(b))
		}
		for i := range a {
			if a[i].ID != b[i].ID {
				t.Errorf("%s: id changed across redelivery: %q vs %q", tc.topic, a[i].ID, b[i].ID)
			}
		}
	}
}

func TestCustomerConsent(t *testing.T) {
	f := newFakeShopify(t)
	c, _, _ := newTestConnector(t, f, nil)

	// REST/GraphQL shape (older webhook versions, backfill): consent inside.
	evs := handle(t, c, webhook("customers/update", fixture(t, "customer.json"), testSecret), 200)
	if len(evs) != 3 || evs[0].Type != events.CustomerUpdated || evs[1].Type != events.ConsentChanged || evs[2].Type != events.ConsentChanged {
		t.Fatalf("events = %+v", evs)
	}
	if p := evs[1].Properties; p["channel"] != "email" || p["status"] != "unsubscribed" || p["source"] != "shopify" {
		t.Fatalf("email consent = %v", p)
	}
	if p := evs[2].Properties; p["channel"] != "sms" || p["status"] != "unsubscribed" {
		t.Fatalf("sms consent = %v", p)
	}

	// Webhook shape since 2025-01: no consent fields in customers/*.
	var cu map[string]any
	mustJSON(t, fixture(t, "customer.json"), &cu)
	delete(cu, "email_marketing_consent")
	delete(cu, "sms_marketing_consent")
	delete(cu, "tags")
	b, _ := json.Marshal(cu)
	evs = handle(t, c, webhook("customers/update", b, testSecret), 200)
	if len(evs) != 1 || evs[0].Type != events.CustomerUpdated {
		t.Fatalf("2025-01 customer payload: %+v", evs)
	}

	// The dedicated consent topics carry it instead.
	email := []byte(`{"customer_id":207119551,"email_address":"Bob.Norman@mail.example.com","email_marketing_consent":{"state":"subscribed","opt_in_level":"confirmed_opt_in","consent_updated_at":"2026-09-04T09:38:55-04:00"}}`)
	evs = handle(t, c, webhook("customers/email_marketing_consent/update", email, testSecret), 200)
	if len(evs) != 1 || evs[0].Properties["channel"] != "email" || evs[0].Properties["status"] != "subscribed" ||
		evs[0].Identities[events.Email] != "bob.norman@mail.example.com" || evs[0].Identities[events.ShopifyCustomer] != "207119551" {
		t.Fatalf("email consent topic: %+v", evs)
	}
	sms := []byte(`{"id":207119551,"phone":"+16136120707","sms_marketing_consent":{"state":"unsubscribed","opt_in_level":"single_opt_in","consent_updated_at":"2026-09-04T13:40:00Z","consent_collected_from":"SHOPIFY"}}`)
	evs = handle(t, c, webhook("customers/marketing_consent/update", sms, testSecret), 200)
	if len(evs) != 1 || evs[0].Properties["channel"] != "sms" || evs[0].Properties["status"] != "unsubscribed" || evs[0].Identities[events.Phone] != "+16136120707" {
		t.Fatalf("sms consent topic: %+v", evs)
	}
	goldenEvents(t, "consent_topics", append(handle(t, c, webhook("customers/email_marketing_consent/update", email, testSecret), 200), evs...))

	// pending double opt-in is neither consent nor withdrawal.
	pending := []byte(`{"customer_id":1,"email_address":"a@b.co","email_marketing_consent":{"state":"pending","opt_in_level":"confirmed_opt_in","consent_updated_at":null}}`)
	if evs := handle(t, c, webhook("customers/email_marketing_consent/update", pending, testSecret), 200); len(evs) != 0 {
		t.Fatalf("pending consent gave %+v", evs)
	}
}

func TestRefundIdentities(t *testing.T) {
	f := newFakeShopify(t)
	f.Seed(t, 0, 0)
	c, _, _ := newTestConnector(t, f, nil)
	e := handle(t, c, webhook("refunds/create", fixture(t, "refund.json"), testSecret), 200)[0]
	if e.Type != events.OrderRefunded || e.Properties["total"] != 209.0 || e.Properties["order_id"] != "450789469" ||
		e.Identities[events.ShopifyCustomer] != "207119551" || e.Identities[events.Email] != "bob.norman@mail.example.com" {
		t.Fatalf("refund = %+v", e)
	}
	// Unknown order (or API down): the order-scoped anonymous id.
	delete(f.OrderByID, "gid://shopify/Order/450789469")
	e = handle(t, c, webhook("refunds/create", fixture(t, "refund.json"), testSecret), 200)[0]
	if e.Identities[events.AnonymousID] != "shopify_order:450789469" {
		t.Fatalf("fallback identities = %v", e.Identities)
	}
}

func TestCheckoutWithoutContactIsSkipped(t *testing.T) {
	f := newFakeShopify(t)
	c, _, _ := newTestConnector(t, f, nil)
	var ch map[string]any
	mustJSON(t, fixture(t, "abandoned_checkout.json"), &ch)
	ch["email"], ch["customer"] = nil, nil
	b, _ := json.Marshal(ch)
	if evs := handle(t, c, webhook("checkouts/create", b, testSecret), 200); len(evs) != 0 {
		t.Fatalf("anonymous checkout gave %+v", evs)
	}
	evs := handle(t, c, webhook("checkouts/create", fixture(t, "abandoned_checkout.json"), testSecret), 200)
	if evs[0].Properties["abandoned_checkout_url"] != "https://checkout.local/548380009/checkouts/2a1ace52255252df566af0faaedfbfa7/recover" {
		t.Fatalf("checkout = %+v", evs[0].Properties)
	}
}

func TestMalformedBodiesAre400(t *testing.T) {
	f := newFakeShopify(t)
	c, _, _ := newTestConnector(t, f, nil)
	for _, tc := range []struct{ topic, body, want string }{
		{"orders/create", `{"id": 1, "total_price": 12}`, "body"},
		{"orders/create", `{not json`, "body"},
		{"orders/create", `{"id": 1, "total_price": "twelve"}`, "total_price"},
		{"orders/create", `{"total_price": "1.00"}`, "id"},
		{"customers/update", `[]`, "body"},
		{"app/uninstalled", `nope`, "body"},
	} {
		resp, err := c.HandleWebhook(context.Background(), webhook(tc.topic, []byte(tc.body), testSecret))
		if err != nil || resp.Status != 400 || len(resp.Events) != 0 || !strings.Contains(string(resp.Body), tc.want) {
			t.Errorf("%s %s: status %d body %s err %v", tc.topic, tc.body, resp.Status, resp.Body, err)
		}
	}
	// Topics we do not map are acknowledged without events.
	if evs := handle(t, c, webhook("app/uninstalled", []byte(`{"id":1}`), testSecret), 200); len(evs) != 0 {
		t.Fatal("app/uninstalled produced events")
	}
	noTopic := webhook("", []byte(`{}`), testSecret)
	handle(t, c, noTopic, 400)
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	c := newConnector()
	base := map[string]string{KeyShop: "jsmith", KeyAccessToken: "t", KeyWebhookSecret: "s", KeyRegister: "false"}
	for key, bad := range map[string]string{KeyShop: "", KeyAccessToken: "", KeyWebhookSecret: "", KeyAPIVersion: "July", KeyWebhookURL: "http://plain.example.com/webhooks/shopify"} {
		cfg := map[string]string{}
		for k, v := range base {
			cfg[k] = v
		}
		cfg[key] = bad
		err := c.Configure(context.Background(), cfg, &testHost{})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Field != key {
			t.Errorf("%s=%q: err = %v", key, bad, err)
		}
	}
	if err := c.Configure(context.Background(), base, &testHost{}); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := c.settings(); s.shop != "jsmith.myshopify.com" || s.version != DefaultAPIVersion {
		t.Fatalf("settings = %+v", s)
	}
	d, _ := c.Describe(context.Background())
	for _, f := range d.Config {
		if (f.Name == KeyAccessToken || f.Name == KeyWebhookSecret) != f.Secret {
			t.Errorf("field %s secret=%v", f.Name, f.Secret)
		}
		if f.Name == KeyTestBaseURL {
			t.Error("the test base URL must not be advertised")
		}
	}
}

func TestUnconfiguredConnectorAnswers503(t *testing.T) {
	c := newConnector()
	resp, err := c.HandleWebhook(context.Background(), webhook("orders/create", []byte(`{}`), testSecret))
	if err != nil || resp.Status != 503 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
}

func TestSameSecondCustomerUpdatesKeepBoth(t *testing.T) {
	f := newFakeShopify(t)
	c, _, _ := newTestConnector(t, f, nil)
	a := handle(t, c, webhook("customers/update", fixture(t, "customer.json"), testSecret), 200)[0]
	changed := bytes.Replace(fixture(t, "customer.json"), []byte(`"Norman"`), []byte(`"Norman-Smith"`), 1)
	b := handle(t, c, webhook("customers/update", changed, testSecret), 200)[0]
	if a.ID == b.ID {
		t.Fatalf("two different updates with the same updated_at share id %s", a.ID)
	}
}

func TestConsentWithoutTimestampsKeepsItsIDAcrossRetries(t *testing.T) {
	f := newFakeShopify(t)
	c, _, _ := newTestConnector(t, f, nil)
	body := []byte(`{"customer_id":706405506930370084,"email_address":"bob@biller.com","email_marketing_consent":{"state":"subscribed","opt_in_level":null,"consent_updated_at":null}}`)
	req := func() *sdk.WebhookRequest {
		r := webhook("customers/email_marketing_consent/update", body, testSecret)
		delete(r.Headers, "X-Shopify-Triggered-At")
		return r
	}
	a := handle(t, c, req(), 200)
	c.now = func() time.Time { return time.Date(2026, 9, 4, 15, 0, 0, 0, time.UTC) } // a retry, later
	b := handle(t, c, req(), 200)
	if len(a) != 1 || len(b) != 1 || a[0].ID != b[0].ID || !strings.HasPrefix(a[0].ID, "shopify:consent:706405506930370084:email:subscribed:") {
		t.Fatalf("ids %v / %v", a, b)
	}
}

func TestHealthIsCached(t *testing.T) {
	f := newFakeShopify(t)
	c, _, _ := newTestConnector(t, f, nil)
	for i := 0; i < 5; i++ {
		if err := c.Health(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.Requests(); n != 1 {
		t.Fatalf("%d health calls reached Shopify", n)
	}
	c.now = func() time.Time { return time.Date(2026, 9, 4, 13, 40, 0, 0, time.UTC) } // a minute later
	c.Health(context.Background())
	if n := f.Requests(); n != 2 {
		t.Fatalf("%d calls after the cache expired", n)
	}
}
