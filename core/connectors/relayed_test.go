package connectors_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/core/deadletter"
	"github.com/omni/omni/core/webhooks"
	"github.com/omni/omni/plugins/example"
	"github.com/omni/omni/plugins/sdk"
)

// relay stores a delivery on WEBHOOKS as a front end does.
func relay(t *testing.T, e *env, secret string, body []byte) {
	t.Helper()
	d := &webhooks.Delivery{Connector: "example", Received: time.Now().UTC(), Request: sdk.WebhookRequest{
		Method: "POST", Path: "/", Body: body, URL: "https://shop.example/webhooks/example",
		Headers: http.Header{example.SignatureHeader: {example.Sign(secret, body)}},
	}}
	data, _ := json.Marshal(d)
	if _, err := e.Bus.Publish(context.Background(), bus.Msg{Subject: webhooks.Subject("example"), Data: data, ID: webhooks.MsgID(d)}); err != nil {
		t.Fatal(err)
	}
}

// A delivery a front end took while the connector was off waits on the
// stream and is stored once the connector runs; one the connector
// refuses is parked with the connector's answer.
func TestRelayedDeliveriesWaitForTheConnectorAndRefusalsAreParked(t *testing.T) {
	e := start(t, connectors.Options{}, nil)
	relay(t, e, whSecret, []byte(`{"id":"evt-early","type":"order.placed","email":"early@example.com"}`))
	time.Sleep(300 * time.Millisecond) // a delivery attempt finds the connector off
	if n := e.countWhere(t, "event_id = 'example:evt-early'"); n != 0 {
		t.Fatalf("stored without a connector: %d", n)
	}
	e.enable(t, "example", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url, "api_token": apiSecret})
	e.waitState(t, "example", "running", 10*time.Second)
	omnitest.Eventually(t, 20*time.Second, func() bool {
		return e.countWhere(t, "event_id = 'example:evt-early' AND source = 'example'") == 1
	}, "the early delivery stored once the connector runs")

	relay(t, e, "not-the-secret", []byte(`{"id":"evt-forged","type":"order.placed","email":"forged@example.com"}`))
	var parked []deadletter.Entry
	omnitest.Eventually(t, 10*time.Second, func() bool {
		var err error
		parked, err = deadletter.List(e.PB, connectors.WebhooksDeadConsumer, 10)
		return err == nil && len(parked) == 1
	}, "the refused delivery parked")
	if p := parked[0]; p.Subject != webhooks.Subject("example") || p.Type != "webhook" || !strings.Contains(p.Error, "the connector answered 401") {
		t.Fatalf("parked %+v", p)
	}
	if n := e.countWhere(t, "event_id = 'example:evt-forged'"); n != 0 {
		t.Fatalf("a forged delivery was stored: %d", n)
	}
}
