package shopify

import (
	"context"
	"testing"
)

// BenchmarkOrderWebhook measures verify + decode + map of the 28 KB
// order.json fixture (no I/O).
func BenchmarkOrderWebhook(b *testing.B) {
	c := newConnector()
	if err := c.Configure(context.Background(), map[string]string{KeyShop: "x.myshopify.com", KeyAccessToken: "t",
		KeyWebhookSecret: testSecret, KeyRegister: "false"}, &testHost{}); err != nil {
		b.Fatal(err)
	}
	body := fixture(b, "order.json")
	req := webhook("orders/create", body, testSecret)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.HandleWebhook(context.Background(), req)
		if err != nil || resp.Status != 200 {
			b.Fatal(resp.Status, err)
		}
	}
}
