package connectors_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
)

// TestWebhookEventOutOfBoundsIs400: a delivery whose event breaks the event
// bounds (core/events) is refused with 400 naming the field, nothing of it
// is stored, and the next delivery is taken as usual.
func TestWebhookEventOutOfBoundsIs400(t *testing.T) {
	e := start(t, connectors.Options{}, nil)
	e.enable(t, "example", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url, "api_token": apiSecret})
	e.waitState(t, "example", "running", 10*time.Second)

	deep := strings.Repeat(`{"a":`, 1500) + "1" + strings.Repeat("}", 1500)
	st, body := e.webhook(t, "", whSecret, []byte(`{"id":"deep-1","type":"order.placed","email":"d@example.com","properties":`+deep+`}`))
	// PocketBase's shape plus the top-level "field" webhooks document.
	var out struct {
		Status  int    `json:"status"`
		Field   string `json:"field"`
		Message string `json:"message"`
		Data    map[string]struct {
			Message string `json:"message"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &out)
	field := "properties" + strings.Repeat(".a", events.MaxDepth)
	if st != 400 || out.Field != field || !strings.Contains(out.Message, "nesting deeper than 32") || out.Data[field].Message == "" {
		t.Fatalf("deep webhook: %d %s", st, body)
	}
	if st, body := e.webhook(t, "", whSecret, []byte(`{"id":"fine-1","type":"order.placed","email":"d@example.com","properties":{"total":1}}`)); st != 200 {
		t.Fatalf("next webhook: %d %s", st, body)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool { return e.countWhere(t, "event_id = 'example:fine-1'") == 1 }, "next event stored")
	if n := e.countWhere(t, "event_id = 'example:deep-1'"); n != 0 {
		t.Fatalf("refused event stored %d times", n)
	}
}

// TestConnectorCannotUseTrackingIDs: ids starting "src:" belong to the
// tracking API (scoped by source), so no connector event can dedupe
// against, or pre-empt, a source's messages.
func TestConnectorCannotUseTrackingIDs(t *testing.T) {
	m := connectors.New(connectors.Options{})
	now := time.Now().UTC()
	ev := sdk.Event{ID: events.TrackingID("abcdefghijklmno", "m-1"), Type: "order.placed", OccurredAt: now, Identities: map[string]string{"email": "a@example.com"}}
	_, err := m.Convert("shopify", []sdk.Event{ev})
	var fe *events.FieldError
	if !errors.As(err, &fe) || fe.Field != "id" {
		t.Fatalf("tracking id accepted from a connector: %v", err)
	}
	ev.ID = "shopify:order:1"
	if _, err := m.Convert("shopify", []sdk.Event{ev}); err != nil {
		t.Fatalf("vendor id refused: %v", err)
	}
}
