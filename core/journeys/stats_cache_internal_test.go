package journeys

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Results quick to compute are computed on every request; slow ones are
// kept for keepFactor times what they took (at most keepAtMost), per key;
// a failure is not kept.
func TestStatsCacheKeepsOnlySlowResults(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)}
	c := newStatsCache(clk.now)
	var computed atomic.Int32
	taking := func(d time.Duration) func() (*Stats, error) {
		return func() (*Stats, error) {
			computed.Add(1)
			clk.advance(d)
			return &Stats{}, nil
		}
	}
	get := func(key string, compute func() (*Stats, error)) *Stats {
		t.Helper()
		st, err := c.get(key, compute)
		if err != nil || st == nil {
			t.Fatalf("get %s: %v, %v", key, st, err)
		}
		return st
	}

	for range 3 {
		get("quick", taking(cacheAbove/2))
	}
	if n := computed.Load(); n != 3 {
		t.Fatalf("results computed in %v: computed %d times for 3 requests, want 3", cacheAbove/2, n)
	}

	computed.Store(0)
	first := get("slow", taking(time.Second)) // kept 20 s from its end
	if want := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC).Add(3 * cacheAbove / 2); !first.ComputedAt.Equal(want) {
		t.Errorf("computed_at %v, want the computation's start %v", first.ComputedAt, want)
	}
	clk.advance(19 * time.Second)
	if again := get("slow", taking(time.Second)); again != first || computed.Load() != 1 {
		t.Fatalf("19 s after a computation of 1 s: computed %d times, same results %v; want them kept", computed.Load(), again == first)
	}
	if get("slow-other-version", taking(10*time.Millisecond)); computed.Load() != 2 {
		t.Fatalf("another key was served the kept results")
	}
	clk.advance(time.Second)
	if again := get("slow", taking(time.Hour)); again == first || computed.Load() != 3 {
		t.Fatalf("20 s after a computation of 1 s: computed %d times; want it computed again", computed.Load())
	}
	clk.advance(keepAtMost - time.Second)
	if get("slow", taking(time.Hour)); computed.Load() != 3 {
		t.Fatalf("an hour's computation was not kept for %v", keepAtMost-time.Second)
	}
	clk.advance(2 * time.Second)
	if get("slow", taking(time.Second)); computed.Load() != 4 {
		t.Fatalf("an hour's computation was kept past %v", keepAtMost)
	}

	computed.Store(0)
	failing := func() (*Stats, error) { computed.Add(1); clk.advance(time.Second); return nil, errors.New("disk full") }
	for range 2 {
		if _, err := c.get("failing", failing); err == nil {
			t.Fatal("the failure was not returned")
		}
	}
	if computed.Load() != 2 {
		t.Fatalf("a failed computation was kept: computed %d times for 2 requests", computed.Load())
	}
}

// Requests that come while a computation runs wait for it and get its
// results; a computation that panics releases them with an error.
func TestStatsCacheSharesARunningComputation(t *testing.T) {
	c := newStatsCache(time.Now)
	release := make(chan struct{})
	started := make(chan struct{})
	var computed atomic.Int32
	want := &Stats{}
	go func() {
		_, _ = c.get("k", func() (*Stats, error) {
			computed.Add(1)
			close(started)
			<-release
			return want, nil
		})
	}()
	<-started
	var wg sync.WaitGroup
	got := make([]*Stats, 4)
	for i := range got {
		wg.Go(func() {
			st, err := c.get("k", func() (*Stats, error) { computed.Add(1); return &Stats{}, nil })
			if err != nil {
				t.Error(err)
			}
			got[i] = st
		})
	}
	// The waiters are blocked on the running computation (or, if not yet
	// scheduled, will find it running or find it done and not kept).
	close(release)
	wg.Wait()
	for i, st := range got {
		if st != want && computed.Load() == 1 {
			t.Fatalf("request %d got other results though only one computation ran", i)
		}
	}

	started2 := make(chan struct{})
	waiterDone := make(chan error, 1)
	go func() {
		defer func() { _ = recover() }()
		_, _ = c.get("p", func() (*Stats, error) {
			close(started2)
			<-release // already closed: returns at once
			time.Sleep(10 * time.Millisecond)
			panic("boom")
		})
	}()
	<-started2
	go func() {
		_, err := c.get("p", func() (*Stats, error) { return &Stats{}, nil })
		waiterDone <- err
	}()
	<-waiterDone // returns (with the panic's error, or fresh results if it came after): it must not hang
}
