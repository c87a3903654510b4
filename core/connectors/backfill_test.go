package connectors_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/plugins/example"
)

// A backfill that fails midway resumes after the last stored batch.
func TestBackfillResumesFromCursor(t *testing.T) {
	var (
		mu      sync.Mutex
		cursors []string
		broken  = true
	)
	at := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := r.URL.Query().Get("cursor")
		mu.Lock()
		cursors = append(cursors, cur)
		fail := broken && cur == "p2"
		mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		next := map[string]string{"": "p2", "p2": ""}[cur]
		_ = json.NewEncoder(w).Encode(map[string]any{
			"events":      []example.Payload{{ID: "bf-" + cur + "a", Type: "order.placed", Email: "a@example.com", OccurredAt: at}, {ID: "bf-" + cur + "b", Type: "order.placed", Email: "b@example.com", OccurredAt: at}},
			"next_cursor": next, "total": 4,
		})
	}))
	defer vendor.Close()

	e := start(t, connectors.Options{}, nil)
	e.enable(t, "example", map[string]string{"webhook_secret": whSecret, "api_url": vendor.URL})
	e.waitState(t, "example", "running", 10*time.Second)
	backfill := func() map[string]any {
		_, out := e.call(t, "GET", "/api/v1/connectors/example/backfill", nil)
		return out
	}
	if st, out := e.call(t, "POST", "/api/v1/connectors/example/backfill", map[string]string{"since": "2025-01-01"}); st != 202 {
		t.Fatalf("start: %d %v", st, out)
	}
	omnitest.Eventually(t, 15*time.Second, func() bool { return backfill()["state"] == "failed" }, "backfill to fail at page 2")
	if out := backfill(); out["done"] != float64(2) || out["error"] == "" {
		t.Fatalf("after failure: %v", out)
	}
	rec, _ := e.PB.FindFirstRecordByData("connectors", "name", "example")
	if rec.GetString("backfill_cursor") != "p2" {
		t.Fatalf("cursor after the stored first batch: %q", rec.GetString("backfill_cursor"))
	}

	mu.Lock()
	broken = false
	cursors = nil
	mu.Unlock()
	if st, out := e.call(t, "POST", "/api/v1/connectors/example/backfill", map[string]string{"since": "2025-01-01"}); st != 202 {
		t.Fatalf("resume: %d %v", st, out)
	}
	omnitest.Eventually(t, 15*time.Second, func() bool { return backfill()["state"] == "done" }, "backfill done")
	mu.Lock()
	defer mu.Unlock()
	if len(cursors) != 1 || cursors[0] != "p2" {
		t.Fatalf("resumed run should start at p2, fetched %v", cursors)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool { return e.countWhere(t, "event_id LIKE 'example:bf-%%'") == 4 }, "4 backfilled events")
}
