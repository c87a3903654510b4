package square

import (
	"context"
	"testing"
	"time"

	"github.com/omni/omni/plugins/sdk"
)

// FuzzNotification: any signed body gets 200, 400 or (API unreachable) 503,
// never a panic, never events with an error.
func FuzzNotification(f *testing.F) {
	for _, name := range []string{"payment_created.json", "payment_updated.json", "order_created.json", "order_updated.json",
		"customer_created.json", "refund_created.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"type":"order.updated","event_id":"e","data":{"object":{"order_updated":{"order_id":"o","state":"COMPLETED"}}}}`))
	f.Add([]byte(`{"type":"refund.updated","event_id":"e","data":{"object":{"refund":{"id":"r","status":"COMPLETED","amount_money":{"amount":5,"currency":"JPY"}}}}}`))
	c := newConnector()
	c.sleep = func(context.Context, time.Duration) error { return nil }
	if err := c.Configure(context.Background(), sdk.Config{KeyAccessToken: "t", KeySignatureKey: testKey,
		KeyTestBaseURL: "http://127.0.0.1:1"}, &testHost{}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := c.HandleWebhook(context.Background(), notification(body, testKey))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 200 && len(resp.Events) > 0 {
			t.Fatalf("%d with events", resp.Status)
		}
		if resp.Status != 200 && resp.Status != 400 && resp.Status != 503 {
			t.Fatalf("status %d", resp.Status)
		}
	})
}
