package shopify

import (
	"net/http"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/plugins/internal/hosttest"
)

// Shopify's customers/redact through the real host and plugin subprocess
// erases the customer's profile in Omni (events and identities gone),
// where it used to be stored as one more event on the profile.
func TestCustomersRedactErasesTheProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Omni and a plugin subprocess")
	}
	f := newFakeShopify(t)
	s := hosttest.Start(t, Name, New, map[string]any{KeyTestBaseURL: f.URL}, profiles.New(profiles.Options{Interval: -1}))
	auth := http.Header{"Authorization": {hosttest.SuperuserToken(t, s)}}
	if st, out := s.Do(t, "PATCH", "/api/v1/connectors/shopify", map[string]any{"enabled": true, "config": map[string]string{
		KeyShop: "jsmith.myshopify.com", KeyAccessToken: f.Token, KeyWebhookSecret: testSecret, KeyRegister: "false"}}, auth); st != 200 {
		t.Fatalf("enable: %d %s", st, out)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool {
		r, err := s.PB.FindFirstRecordByData("connectors", "name", Name)
		return err == nil && r.GetString("state") == "running"
	}, "shopify connector running")

	deliver := func(topic, id string, body []byte) {
		t.Helper()
		st, resp := s.Do(t, "POST", "/webhooks/shopify", body, http.Header{"X-Shopify-Topic": {topic},
			"X-Shopify-Hmac-Sha256": {Sign(body, testSecret)}, "X-Shopify-Event-Id": {id}, "X-Shopify-Shop-Domain": {"jsmith.myshopify.com"}})
		if st != 200 {
			t.Fatalf("%s: %d %s", topic, st, resp)
		}
	}
	deliver("orders/create", "evt-order-1", fixture(t, "order.json"))
	var pid string
	omnitest.Eventually(t, 20*time.Second, func() bool {
		_ = s.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind='shopify_customer_id' AND value='207119551'").Row(&pid)
		return pid != ""
	}, "the customer's profile")

	deliver("customers/redact", "evt-redact-1", []byte(`{"shop_id":954889,"shop_domain":"jsmith.myshopify.com","customer":{"id":207119551,"email":"bob.norman@mail.example.com","phone":"+16136120707"},"orders_to_redact":[450789469]}`))
	omnitest.Eventually(t, 20*time.Second, func() bool {
		var n int
		_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM profiles WHERE id={:p}").Bind(map[string]any{"p": pid}).Row(&n)
		return n == 0
	}, "the profile to be erased")
	if n := countEvents(t, s, "source = 'shopify' OR identities LIKE '%%bob.norman%%'"); n != 0 {
		t.Fatalf("%d events of the redacted customer left", n)
	}
	var idents int
	_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM identities WHERE value IN ('207119551','bob.norman@mail.example.com')").Row(&idents)
	if idents != 0 {
		t.Fatalf("%d identities of the redacted customer left", idents)
	}
}
