package square

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
)

type recordingSink struct {
	events   []sdk.Event
	cursors  []string
	progress []sdk.Progress
	failAt   int
	calls    int
}

var errInterrupted = errors.New("interrupted")

func (s *recordingSink) Batch(_ context.Context, evs []sdk.Event, cursor string, p sdk.Progress) error {
	s.calls++
	if s.failAt > 0 && s.calls == s.failAt {
		return errInterrupted
	}
	s.events = append(s.events, evs...)
	s.cursors = append(s.cursors, cursor)
	s.progress = append(s.progress, p)
	return nil
}

// seedBackfill: 250 customers, 12 locations (two SearchOrders chunks) with
// 30 completed orders each, and a payment per order plus some that are
// not completed.
func seedBackfill(t *testing.T, f *fakeSquare) (nCust, nOrders int) {
	var n map[string]any
	mustJSON(t, fixture(t, "customer_created.json"), &n)
	for i := 0; i < 250; i++ {
		c := map[string]any{}
		for k, v := range obj(n, "customer") {
			c[k] = v
		}
		c["id"] = fmt.Sprintf("CUST%04d", i)
		c["email_address"] = fmt.Sprintf("buyer%d@example.com", i)
		c["phone_number"] = fmt.Sprintf("+1212555%04d", i)
		f.SearchC = append(f.SearchC, c)
	}
	var r struct {
		Order map[string]any `json:"order"`
	}
	mustJSON(t, fixture(t, "retrieve_order_response.json"), &r)
	var pay map[string]any
	mustJSON(t, fixture(t, "payment_updated.json"), &pay)
	for l := 0; l < 12; l++ {
		loc := fmt.Sprintf("LOC%02d", l)
		f.Locations = append(f.Locations, loc)
		for i := 0; i < 30; i++ {
			o := map[string]any{}
			for k, v := range r.Order {
				o[k] = v
			}
			id := fmt.Sprintf("ORD-%s-%d", loc, i)
			o["id"], o["location_id"], o["state"], o["closed_at"] = id, loc, "COMPLETED", "2026-02-01T10:00:00Z"
			o["customer_id"] = fmt.Sprintf("CUST%04d", i)
			f.SearchO[loc] = append(f.SearchO[loc], o)
			p := map[string]any{}
			for k, v := range obj(pay, "payment") {
				p[k] = v
			}
			p["id"], p["order_id"], p["location_id"] = "PAY-"+id, id, loc
			f.Payments = append(f.Payments, p)
		}
	}
	for i := 0; i < 5; i++ {
		f.Payments = append(f.Payments, map[string]any{"id": fmt.Sprintf("PAY-FAILED-%d", i), "status": "FAILED", "order_id": "X",
			"total_money": map[string]any{"amount": 100, "currency": "USD"}})
	}
	return 250, 360
}

func TestBackfillAllPhasesWithRateLimitsAndResume(t *testing.T) {
	f := newFakeSquare(t)
	nCust, nOrders := seedBackfill(t, f)
	f.Fail[2], f.RetryAfter[2] = 429, "3" // second customers page
	f.Fail[6] = 429                       // an orders page, no Retry-After: backoff
	c, waits := newTestConnector(t, f, nil)

	first := &recordingSink{failAt: 5}
	if err := c.Backfill(context.Background(), &sdk.BackfillRequest{Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, first); !errors.Is(err, errInterrupted) {
		t.Fatalf("first run: %v", err)
	}
	second := &recordingSink{}
	if err := c.Backfill(context.Background(), &sdk.BackfillRequest{Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Cursor: first.cursors[len(first.cursors)-1]}, second); err != nil {
		t.Fatalf("resume: %v", err)
	}
	all := append(first.events, second.events...)
	checkValid(t, all)
	byType := map[string]int{}
	ids := map[string]int{}
	for _, e := range all {
		byType[e.Type]++
		ids[e.ID]++
	}
	if byType[events.CustomerUpdated] != nCust {
		t.Fatalf("customers: %d", byType[events.CustomerUpdated])
	}
	// Every order arrives from SearchOrders and again from its payment,
	// under the same id, so the host stores each once.
	if len(ids)-nCust != nOrders || byType[events.OrderPlaced] != 2*nOrders {
		t.Fatalf("distinct order ids %d, order events %d", len(ids)-nCust, byType[events.OrderPlaced])
	}
	for _, e := range all {
		if e.Type == events.OrderPlaced && e.Properties["line_items"] != nil && len(e.Properties["line_items"].([]any)) == 2 {
			if e.Identities[events.SquareCustomer] == "" || e.Context.Channel != "pos" || e.Properties["total"] != 5.5 {
				t.Fatalf("backfilled order %+v", e)
			}
			break
		}
	}
	if len(*waits) != 2 || (*waits)[0] != 3*time.Second {
		t.Fatalf("waits %v (want Retry-After 3s, then a backoff)", *waits)
	}
	var last backfillCursor
	json.Unmarshal([]byte(second.cursors[len(second.cursors)-1]), &last)
	if last.Phase != "done" || last.Done != int64(nCust+nOrders+nOrders+5) {
		t.Fatalf("last cursor %+v", last)
	}
	if p := second.progress[len(second.progress)-1]; !strings.Contains(p.Message, "complete") || p.Done != last.Done {
		t.Fatalf("progress %+v", p)
	}
	// Two location chunks were searched (10 + 2).
	searches := 0
	for _, l := range f.Log() {
		if l == "POST /v2/orders/search" {
			searches++
		}
	}
	if searches < 4 {
		t.Fatalf("%d order searches", searches)
	}
}

func TestBackfillConfiguredLocationsAndBadToken(t *testing.T) {
	f := newFakeSquare(t)
	seedBackfill(t, f)
	cfg := f.Config(testKey)
	cfg[KeyLocationIDs] = "LOC03, LOC04"
	c, _ := newTestConnector(t, f, cfg)
	sink := &recordingSink{}
	if err := c.Backfill(context.Background(), &sdk.BackfillRequest{}, sink); err != nil {
		t.Fatal(err)
	}
	for _, l := range f.Log() {
		if l == "GET /v2/locations" {
			t.Fatal("listed locations although they were configured")
		}
	}
	for _, e := range sink.events {
		if e.Type == events.OrderPlaced && e.Properties["state"] == "COMPLETED" {
			if loc := e.Properties["location_id"]; loc != "LOC03" && loc != "LOC04" {
				t.Fatalf("order from %v", loc)
			}
		}
	}
	cfg[KeyAccessToken] = "wrong"
	c2, _ := newTestConnector(t, f, cfg)
	err := c2.Backfill(context.Background(), &sdk.BackfillRequest{}, &recordingSink{})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Code != "UNAUTHORIZED" {
		t.Fatalf("err = %v", err)
	}
	if c2.Health(context.Background()) == nil || c.Health(context.Background()) != nil {
		t.Fatal("health does not reflect the token")
	}
	if err := c.Backfill(context.Background(), &sdk.BackfillRequest{Cursor: "nope"}, &recordingSink{}); err == nil {
		t.Fatal("accepted a foreign cursor")
	}
}
