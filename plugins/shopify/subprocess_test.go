package shopify

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/sdk/sdktest"
)

// The test binary doubles as the plugin executable for StartSelf.
func TestMain(m *testing.M) { sdktest.MainOrServe(m, New) }

// TestSubprocessWebhookAndBackfill runs the connector exactly as Omni
// does: a separate process speaking go-plugin gRPC, configured through the
// wire, talking to the fake Shopify over real HTTP.
func TestSubprocessWebhookAndBackfill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a plugin subprocess")
	}
	f := newFakeShopify(t)
	f.Seed(t, 3, 2)
	f.Fail429[2] = true
	f.RetryAfter = "1"
	h := sdktest.StartSelf(t, sdk.Config(f.Config(testSecret)))

	var vec struct {
		Headers map[string]string `json:"headers"`
	}
	mustJSON(t, fixture(t, "signature_test_vector.computed.json"), &vec)
	body := fixture(t, "order.json")

	bad := h.Webhook(t, "POST", "", vec.Headers, bytes.Replace(body, []byte("598.94"), []byte("1.00"), 1))
	if bad.Status != 401 || len(bad.Events) != 0 {
		t.Fatalf("tampered: %d %d events", bad.Status, len(bad.Events))
	}
	ok := h.Webhook(t, "POST", "", vec.Headers, body)
	if ok.Status != 200 || len(ok.Events) != 1 {
		t.Fatalf("webhook: %d %s", ok.Status, ok.Body)
	}
	e := ok.Events[0]
	if e.ID != "shopify:order:450789469" || e.Type != events.OrderPlaced || e.Properties["total"] != 598.94 ||
		e.Identities[events.Phone] != "+16136120707" || e.Context.Channel != "web" {
		t.Fatalf("event over the wire: %+v", e)
	}
	again := h.Webhook(t, "POST", "", vec.Headers, body)
	if again.Events[0].ID != e.ID {
		t.Fatal("redelivery changed the id")
	}

	evs, progress, err := h.Backfill(time.Time{}, "")
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}
	if len(evs) != 3+3+2 || len(progress) == 0 || progress[len(progress)-1].Done != 5 || progress[len(progress)-1].Total != 5 {
		t.Fatalf("backfill: %d events, progress %+v", len(evs), progress)
	}
	if f.Requests() != 4 { // counts, customers (429), customers again, orders
		t.Fatalf("the 429 was not retried: %d requests", f.Requests())
	}

	// Configure errors cross the wire typed.
	err = h.Connector.Configure(t.Context(), sdk.Config{KeyShop: "x"}, h)
	if err == nil || !strings.Contains(err.Error(), KeyAccessToken) {
		t.Fatalf("config error: %v", err)
	}
}
