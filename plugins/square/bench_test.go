package square

import (
	"context"
	"testing"
)

// BenchmarkCustomerNotification measures verify + decode + map of
// customer_created.json (no I/O; payment notifications add two API calls).
func BenchmarkCustomerNotification(b *testing.B) {
	c := newConnector()
	if err := c.Configure(context.Background(), map[string]string{KeyAccessToken: "t", KeySignatureKey: testKey}, &testHost{}); err != nil {
		b.Fatal(err)
	}
	body := fixture(b, "customer_created.json")
	req := notification(body, testKey)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.HandleWebhook(context.Background(), req)
		if err != nil || resp.Status != 200 {
			b.Fatal(resp.Status, err)
		}
	}
}
