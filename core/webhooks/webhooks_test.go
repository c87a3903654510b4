package webhooks_test

import (
	"crypto/tls"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/omni/omni/core/webhooks"
)

func TestRequestKeepsWhatVendorsSign(t *testing.T) {
	r := httptest.NewRequest("POST", "http://shop.example/webhooks/twilio/inbound?outbound_id=7", strings.NewReader(""))
	r.SetPathValue("path", "inbound")
	r.Header.Set("X-Twilio-Signature", "sig")
	got := webhooks.Request(r, []byte("Body=hi"))
	if got.Path != "/inbound" || got.Query != "outbound_id=7" || string(got.Body) != "Body=hi" || got.Headers["X-Twilio-Signature"][0] != "sig" {
		t.Fatalf("request %+v", got)
	}
	if got.URL != "http://shop.example/webhooks/twilio/inbound?outbound_id=7" {
		t.Fatalf("url %q", got.URL)
	}
	// Behind a proxy that ends TLS, the vendor signed the https URL.
	r.Header.Set("X-Forwarded-Proto", "https")
	if got := webhooks.Request(r, nil); got.URL != "https://shop.example/webhooks/twilio/inbound?outbound_id=7" {
		t.Fatalf("url behind a proxy %q", got.URL)
	}
	r.Header.Del("X-Forwarded-Proto")
	r.TLS = &tls.ConnectionState{}
	if got := webhooks.Request(r, nil); !strings.HasPrefix(got.URL, "https://") {
		t.Fatalf("url over TLS %q", got.URL)
	}
}

func TestMsgIDIsTheSameForARedeliveryOnly(t *testing.T) {
	d := func(connector, url, body string) *webhooks.Delivery {
		r := httptest.NewRequest("POST", url, strings.NewReader(""))
		return &webhooks.Delivery{Connector: connector, Request: webhooks.Request(r, []byte(body))}
	}
	a := webhooks.MsgID(d("shopify", "http://h/webhooks/shopify", `{"id":1}`))
	if b := webhooks.MsgID(d("shopify", "http://h/webhooks/shopify", `{"id":1}`)); a != b {
		t.Fatalf("a redelivery got another id: %s %s", a, b)
	}
	// The same body under another topic (Shopify sends one order to
	// orders/create and orders/paid) is another delivery.
	paid := d("shopify", "http://h/webhooks/shopify", `{"id":1}`)
	paid.Request.Headers = map[string][]string{"X-Shopify-Topic": {"orders/paid"}}
	for _, other := range []*webhooks.Delivery{
		paid,
		d("shopify", "http://h/webhooks/shopify", `{"id":2}`),
		d("square", "http://h/webhooks/shopify", `{"id":1}`),
		d("shopify", "http://h/webhooks/shopify/orders", `{"id":1}`),
	} {
		if webhooks.MsgID(other) == a {
			t.Fatalf("%+v has the id of another delivery", other)
		}
	}
	if !strings.HasPrefix(a, "wh:shopify:") {
		t.Fatalf("id %q does not name its connector", a)
	}
}

func TestOnlyHandshakesAreForwarded(t *testing.T) {
	for method, want := range map[string]bool{"GET": true, "HEAD": true, "POST": false, "PUT": false} {
		if webhooks.Synchronous(method) != want {
			t.Errorf("%s forwarded: %v", method, !want)
		}
	}
}
