package metrics_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
)

// TestFollowerTakesTheQueueAsTheEventsTransactionWould: with the rollups
// following the stored events (metrics.max_delay > 0), stored batches wait
// in the queue while ingest is busy, health counts them, they survive a
// restart, and once taken they give the same rollups as rolling up in the
// events transaction.
func TestFollowerTakesTheQueueAsTheEventsTransactionWould(t *testing.T) {
	at := time.Now().UTC().Add(-48 * time.Hour).Truncate(24 * time.Hour).Add(10 * time.Hour)
	shopEvents := func() []*events.Event {
		return []*events.Event{
			order(events.OrderPlaced, "shopify", "gus@omni-shop.dev", at, events.ChannelWeb, map[string]any{"order_id": "4001", "total": 30, "currency": "EUR"}),
			order(events.OrderPlaced, "shopify", "gus@omni-shop.dev", at.Add(time.Hour), events.ChannelWeb, map[string]any{"order_id": "4002", "total": 8, "currency": "USD"}),
			order(events.OrderRefunded, "shopify", "gus@omni-shop.dev", at.Add(2*time.Hour), "", map[string]any{"order_id": "4001", "total": 5, "currency": "EUR"}),
			order(events.OrderPlaced, "square", "hal@omni-shop.dev", at.Add(3*time.Hour), events.ChannelPOS, map[string]any{"order_id": "sq-1", "total": 12, "currency": "EUR"}),
		}
	}
	currency := func(s *shop) {
		prev := s.job(t)
		s.putSetting(t, "currency", map[string]any{"base": "EUR", "rates": map[string]any{"USD": 0.5}})
		s.waitJob(t, prev)
	}

	// The reference: each batch rolled up in its own transaction.
	ref := startShop(t, "")
	currency(ref)
	ref.publish(t, shopEvents()...)
	want := ref.daily(t)
	if want == "" {
		t.Fatal("the reference shop rolled nothing up")
	}

	// A follower that waits an hour of quiet: nothing is taken yet.
	dir := t.TempDir()
	s := startShopWith(t, dir, time.Hour, time.Hour)
	currency(s)
	ids := s.send(t, shopEvents()...)
	s.waitInEvents(t, ids...)
	queued := s.count(t, "SELECT COALESCE(SUM(events), 0) FROM metrics_queue", nil)
	if queued < len(ids) {
		t.Fatalf("%d events queued for the rollups, want at least %d", queued, len(ids))
	}
	if got := s.daily(t); got != "" {
		t.Fatalf("rolled up while ingest was busy:\n%s", got)
	}
	if p := healthPending(t, s, "metrics"); p != queued {
		t.Errorf("health: metrics pending %d, want %d", p, queued)
	}

	// Restarted with a short quiet time: the queue is taken.
	s.Stop()
	s2 := startShopWith(t, dir, time.Hour, time.Millisecond)
	s2.waitStored(t, ids...)
	if got := s2.daily(t); got != want {
		t.Errorf("after the follower caught up:\n%s\nwant (rolled up in the events transaction)\n%s", got, want)
	}
	if p := healthPending(t, s2, "metrics"); p != 0 {
		t.Errorf("health: metrics pending %d after catching up", p)
	}
}

// healthPending reads bus.consumers.NAME.pending from /api/v1/health.
func healthPending(t *testing.T, s *shop, name string) int {
	t.Helper()
	resp, err := http.Get(s.URL + "/api/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Bus struct {
			Consumers map[string]struct {
				Pending int `json:"pending"`
			} `json:"consumers"`
		} `json:"bus"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	c, ok := h.Bus.Consumers[name]
	if !ok {
		t.Fatalf("health has no consumer %q", name)
	}
	return c.Pending
}
