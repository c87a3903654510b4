package shopify

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
)

// TestTrackingMessageCannotPreemptWebhook: the write key is public, and the
// Segment messageId used to become the event id unscoped, so tracking
// messageId "shopify:order:<id>" first made the real signed webhook answer
// 200 and be dropped as a duplicate. Tracking ids are now scoped by source:
// both are stored, the order under its vendor id.
func TestTrackingMessageCannotPreemptWebhook(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Omni and a plugin subprocess")
	}
	f := newFakeShopify(t)
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

	const orderID = "shopify:order:450789469" // the fixture order's event id
	if st, b := s.Track(t, "/v1/track", map[string]any{"messageId": orderID, "userId": "squatter", "event": "Order Completed",
		"properties": map[string]any{"total": 0.01, "currency": "USD"}}); st != 200 {
		t.Fatalf("track: %d %s", st, b)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return countEvents(t, s, "event_id = '%s' AND source = 'test'", s.EventID(orderID)) == 1
	}, "tracking message stored under its source's scope")

	hdr := http.Header{}
	for k, v := range vec.Headers {
		hdr.Set(k, v)
	}
	if st, b := s.Do(t, "POST", "/webhooks/shopify", fixture(t, "order.json"), hdr); st != 200 {
		t.Fatalf("signed webhook: %d %s", st, b)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return countEvents(t, s, "event_id = '%s' AND source = 'shopify' AND type = 'order.placed'", orderID) == 1
	}, "the real order stored")
}
