package healthcache

import (
	"errors"
	"testing"
	"time"
)

func TestCachesPerKeyAndExpires(t *testing.T) {
	c := &Cache{Every: time.Minute}
	calls := 0
	probe := func() error { calls++; return errors.New("down") }
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := c.Check(t0, "a", probe); err == nil || calls != 1 {
		t.Fatalf("first check: %v, %d calls", err, calls)
	}
	if err := c.Check(t0.Add(30*time.Second), "a", probe); err == nil || calls != 1 {
		t.Fatalf("cached result not used: %d calls", calls)
	}
	c.Check(t0.Add(30*time.Second), "b", probe) // new settings probe again
	c.Check(t0.Add(2*time.Minute), "b", probe)  // expired
	if calls != 3 {
		t.Fatalf("want 3 probes, got %d", calls)
	}
}
