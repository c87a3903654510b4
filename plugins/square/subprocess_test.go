package square

import (
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.MainOrServe(m, New) }

// harnessURL is the URL sdktest's Webhook reports as the public one.
const harnessURL = "http://omni.test/webhooks/test"

// TestSubprocessInStoreSale: the connector as a real plugin process gets a
// signed payment.updated, fetches the order and the buyer from the fake
// Square, and returns an order.placed that carries the buyer's phone.
func TestSubprocessInStoreSale(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a plugin subprocess")
	}
	f := newFakeSquare(t)
	seedOrder(t, f, "03O3USaPaAaFnI6kkwB1JxGgBsUZY", "QPTXM8PQNX3Q726ZYHPMNP46XC")
	seedCustomer(t, f, "QPTXM8PQNX3Q726ZYHPMNP46XC", "bob.norman@mail.example.com", "+16136120707")
	f.Locations = []string{"S8GWD5R9QB376"}
	f.SearchO["S8GWD5R9QB376"] = []map[string]any{f.Orders["03O3USaPaAaFnI6kkwB1JxGgBsUZY"]}
	f.Fail[3], f.RetryAfter[3] = 429, "1"
	cfg := f.Config(testKey)
	h := sdktest.StartSelf(t, sdk.Config(cfg))

	body := fixture(t, "payment_updated.json")
	bad := h.Webhook(t, "POST", "", map[string]string{SignatureHeader: Sign(body, "https://elsewhere.example.com/", testKey)}, body)
	if bad.Status != 401 || len(bad.Events) != 0 {
		t.Fatalf("bad signature: %d", bad.Status)
	}
	ok := h.Webhook(t, "POST", "", map[string]string{SignatureHeader: Sign(body, harnessURL, testKey)}, body)
	if ok.Status != 200 || len(ok.Events) != 1 {
		t.Fatalf("webhook: %d %s", ok.Status, ok.Body)
	}
	e := ok.Events[0]
	if e.Type != events.OrderPlaced || e.Context.Channel != "pos" || e.Identities[events.Phone] != "+16136120707" ||
		e.Identities[events.SquareCustomer] != "QPTXM8PQNX3Q726ZYHPMNP46XC" || e.Properties["location_id"] != "S8GWD5R9QB376" || e.Properties["total"] != 5.5 {
		t.Fatalf("event over the wire: %+v", e)
	}

	evs, progress, err := h.Backfill(time.Time{}, "")
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}
	if len(evs) != 1 || evs[0].ID != e.ID || len(progress) == 0 {
		t.Fatalf("backfill: %+v %+v", evs, progress)
	}
}
