package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
)

// stuckConsumer has messages waiting and last moved long ago.
type stuckConsumer struct {
	pending uint64
	last    time.Time
}

func (c *stuckConsumer) Lag(context.Context) (uint64, int, error) { return c.pending, 0, nil }
func (c *stuckConsumer) LastProgress() time.Time                  { return c.last }

func TestHealthIs503WhenAConsumerStallsWithWork(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	c := &stuckConsumer{pending: 7, last: time.Now().Add(-45 * time.Second)}
	s.Health.Consumers["journeys"] = c

	code, body := s.Do(t, "GET", "/api/v1/health", nil, nil)
	var h struct {
		Status  string   `json:"status"`
		Reasons []string `json:"reasons"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	if code != 503 || h.Status != "unavailable" || len(h.Reasons) != 1 || !strings.Contains(h.Reasons[0], "journeys has made no progress") {
		t.Fatalf("stalled: %d %s", code, body)
	}

	// The same consumer with nothing waiting is idle, not stalled.
	c.pending = 0
	if code, body := s.Do(t, "GET", "/api/v1/health", nil, nil); code != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Fatalf("idle: %d %s", code, body)
	}
	// And with work that it picked up recently, it is busy, not stalled.
	c.pending, c.last = 7, time.Now()
	if code, body := s.Do(t, "GET", "/api/v1/health", nil, nil); code != 200 {
		t.Fatalf("busy: %d %s", code, body)
	}
}
