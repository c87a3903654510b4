package journeys

import (
	"errors"
	"sync"
	"time"
)

// Results that are slow to work out are kept for a while. With 100,000
// runs a journey's results take about two seconds to compute
// (BenchmarkStats100kRuns), and the results page is opened and reloaded by
// several people at once: each would start the same computation again.
// Results computed in under cacheAbove are always fresh; slower ones are
// served for keepFactor times as long as they took (at most keepAtMost)
// after they were ready, and while they are being computed everyone asking
// waits for the same computation. The answer says when it was computed
// (Stats.ComputedAt).
const (
	cacheAbove = 250 * time.Millisecond
	keepFactor = 20
	keepAtMost = time.Minute
)

// statsCache holds the results of each journey (and version, and graph
// shown) as described above.
type statsCache struct {
	now     func() time.Time
	mu      sync.Mutex
	entries map[string]*statsEntry
}

type statsEntry struct {
	done  chan struct{} // closed once st or err is set
	st    *Stats
	err   error
	until time.Time // served until then; zero: not kept
}

func newStatsCache(now func() time.Time) *statsCache {
	return &statsCache{now: now, entries: map[string]*statsEntry{}}
}

// get returns the results kept for key, or those compute gives (waiting
// for a computation of key already running). The *Stats returned may be
// shared: read only.
func (c *statsCache) get(key string, compute func() (*Stats, error)) (*Stats, error) {
	c.mu.Lock()
	if e := c.entries[key]; e != nil {
		select {
		case <-e.done:
			if e.err == nil && c.now().Before(e.until) {
				c.mu.Unlock()
				return e.st, nil
			}
		default:
			c.mu.Unlock()
			<-e.done
			return e.st, e.err
		}
	}
	now := c.now()
	for k, e := range c.entries { // the map holds only what is running or kept
		select {
		case <-e.done:
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		default:
		}
	}
	e := &statsEntry{done: make(chan struct{})}
	c.entries[key] = e
	c.mu.Unlock()

	finished := false
	defer func() {
		if !finished { // compute panicked: release whoever waits, keep nothing
			e.err = errors.New("the journey's results could not be computed")
			c.forget(key, e)
			close(e.done)
		}
	}()
	start := c.now()
	e.st, e.err = compute()
	if e.st != nil {
		e.st.ComputedAt = start.UTC()
	}
	if end := c.now(); e.err == nil && end.Sub(start) >= cacheAbove {
		e.until = end.Add(min(keepFactor*end.Sub(start), keepAtMost))
	} else {
		c.forget(key, e)
	}
	finished = true
	close(e.done)
	return e.st, e.err
}

// forget drops e from the cache, unless another entry replaced it.
func (c *statsCache) forget(key string, e *statsEntry) {
	c.mu.Lock()
	if c.entries[key] == e {
		delete(c.entries, key)
	}
	c.mu.Unlock()
}
