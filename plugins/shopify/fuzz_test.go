package shopify

import (
	"context"
	"testing"
	"time"

	"github.com/omni/omni/plugins/sdk"
)

// FuzzWebhook feeds arbitrary bodies (correctly signed, so the parsers are
// reached) for every topic: the connector must answer 200 or 400, never
// panic, and never return events with a 4xx.
func FuzzWebhook(f *testing.F) {
	topics := []string{"orders/create", "orders/cancelled", "refunds/create", "checkouts/create", "checkouts/update",
		"customers/update", "customers/email_marketing_consent/update", "customers/marketing_consent/update", "customers/redact", "app/uninstalled"}
	for _, name := range []string{"order.json", "refund.json", "abandoned_checkout.json", "customer.json"} {
		b := fixture(f, name)
		for i := range topics {
			f.Add(uint8(i), b)
		}
	}
	f.Add(uint8(6), []byte(`{"customer_id":1,"email_address":"a@b.co","email_marketing_consent":{"state":"subscribed"}}`))
	f.Add(uint8(8), []byte(`{"customer":{"id":1,"email":"a@b.co"}}`))
	c := newConnector()
	c.now = func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	if err := c.Configure(context.Background(), sdk.Config{KeyShop: "x.myshopify.com", KeyAccessToken: "t",
		KeyWebhookSecret: testSecret, KeyRegister: "false", KeyTestBaseURL: "http://127.0.0.1:1"}, &testHost{}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic uint8, body []byte) {
		req := webhook(topics[int(topic)%len(topics)], body, testSecret)
		resp, err := c.HandleWebhook(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		switch resp.Status {
		case 200:
		case 400:
			if len(resp.Events) > 0 {
				t.Fatal("400 with events")
			}
		case 503: // refund lookup against an unreachable API falls back, so unexpected
			t.Fatalf("503: %s", resp.Body)
		default:
			t.Fatalf("status %d", resp.Status)
		}
	})
}
