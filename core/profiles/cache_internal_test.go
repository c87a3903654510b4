package profiles

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/memtune"
)

// The cross-batch cache follows the Go heap's soft limit: at memtune's
// default limit it holds a thousand decoded profiles and about 22,000
// customers' rows, a bigger GOMEMLIMIT lets it grow up to its caps, and no
// limit at all means the caps.
func TestCacheBoundsFollowTheMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	for _, c := range []struct {
		limit          int64
		profiles, rows int
	}{
		{memtune.DefaultLimit, max(memtune.DefaultLimit/40/cachedProfileBytes, minCacheProfiles), memtune.DefaultLimit / 5},
		{2 << 30, 2 << 30 / 40 / cachedProfileBytes, maxRowBytes}, // a fifth would be 410 MB
		{math.MaxInt64, maxCacheProfiles, maxRowBytes},
		{1 << 20, minCacheProfiles, 1 << 20 / 5},
	} {
		debug.SetMemoryLimit(c.limit)
		p, ids := cacheBounds()
		if rows := rowBudget(); p != c.profiles || rows != c.rows || ids != 4*(p+rows/cachedRowBytes) {
			t.Errorf("limit %d: bounds %d profiles, %d bytes of rows, %d identities; want %d, %d, %d", c.limit, p, rows, ids, c.profiles, c.rows, 4*(c.profiles+c.rows/cachedRowBytes))
		}
	}
	debug.SetMemoryLimit(memtune.DefaultLimit)
	p, ids := cacheBounds()
	if total := p*cachedProfileBytes + rowBudget() + ids*cachedIdentityBytes; total > memtune.DefaultLimit*3/10 {
		t.Errorf("at the default limit the cache may hold %d profiles, %d bytes of rows and %d identities, about %d MB", p, rowBudget(), ids, total>>20)
	}
}

// startUnlimited starts Omni with the profiles module alone and then
// lifts the Go heap's soft limit, so nothing is dropped from the caches for
// their bounds: Start sets memtune's default, so the limit is lifted after
// it. The limit in force before is restored when tb ends.
func startUnlimited(tb testing.TB) (*Module, *omnitest.Server) {
	prev := debug.SetMemoryLimit(-1)
	tb.Cleanup(func() { debug.SetMemoryLimit(prev) })
	mod := New(Options{Interval: -1})
	s := omnitest.Start(tb, omnitest.Options{Modules: func(*app.Omni) []app.Module { return []app.Module{mod} }})
	debug.SetMemoryLimit(math.MaxInt64)
	return mod, s
}

// BenchmarkCachedProfile reports the heap a cached profile takes decoded
// (cachedProfileBytes) and as a row with its identity look-ups
// (cachedRowBytes + 3 × cachedIdentityBytes), beside what the row cache
// counts for it (storedRow.size): 4,000 customers with three identities, a
// name, two orders and events on ten days, all held in the cache; the
// heap with the cache, less the heap once each part was dropped.
func BenchmarkCachedProfile(b *testing.B) {
	mod, s := startUnlimited(b) // the cache holds them all
	const customers = 4000
	base := time.Now().Add(-30 * 24 * time.Hour)
	for b.Loop() {
		n := 0
		for day := 0; day < 10; day++ {
			evs := make([]*events.Event, 0, customers)
			for c := 0; c < customers; c++ {
				email, phone, anon := fmt.Sprintf("c%d@omni-shop.dev", c), fmt.Sprintf("+1415%07d", c), fmt.Sprintf("anon-%d", c)
				ev := &events.Event{ID: fmt.Sprintf("cached-%d", n), Type: events.PageViewed, Source: "bench",
					OccurredAt: base.Add(time.Duration(day)*24*time.Hour + time.Duration(c)*time.Second), ReceivedAt: time.Now(),
					Identities: events.Identities{events.AnonymousID: anon}, Context: events.Context{Channel: "web"}}
				n++
				switch day {
				case 0:
					ev.Type = events.Identify
					ev.Identities[events.Email], ev.Identities[events.Phone] = email, phone
					ev.Properties = map[string]any{"traits": map[string]any{"first_name": "Ada", "last_name": fmt.Sprintf("C%d", c)}}
				case 3, 7:
					ev.Type = events.OrderPlaced
					ev.Identities = events.Identities{events.Phone: phone}
					ev.Properties = map[string]any{"total": 25.0, "currency": "USD", "order_id": fmt.Sprintf("o-%d-%d", c, day)}
				case 5:
					ev.Type = events.EmailOpened
					ev.Identities = events.Identities{events.Email: email}
					ev.Context.Channel = "email"
				}
				evs = append(evs, ev)
			}
			for i := 0; i < len(evs); i += 500 {
				for k, err := range ingest.Publish(context.Background(), s.Bus, evs[i:min(i+500, len(evs))]) {
					if err != nil {
						b.Fatalf("publish %s: %v", evs[i+k].ID, err)
					}
				}
			}
		}
		omnitest.Eventually(b, 300*time.Second, func() bool {
			pending, ackPending, err := s.Events.Lag(context.Background())
			return err == nil && pending == 0 && ackPending == 0
		}, "all stored")
		heap := func() int64 {
			var ms runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&ms)
			return int64(ms.HeapAlloc)
		}
		with := heap()
		mod.cacheMu.Lock()
		cached := len(mod.cache.profiles)
		mod.cacheMu.Unlock()
		if cached < customers {
			b.Fatalf("the cache holds %d profiles, want %d", cached, customers)
		}
		// Without the decoded profiles: what is left is their rows and
		// identity look-ups.
		mod.cacheMu.Lock()
		mod.cache.profiles = map[string]*profile{}
		rows, counted := len(mod.cache.rows.rows), mod.cache.rows.bytes
		mod.cacheMu.Unlock()
		withRows := heap()
		if rows < customers {
			b.Fatalf("the cache holds %d rows, want %d", rows, customers)
		}
		mod.forgetCache()
		b.ReportMetric(float64(with-withRows)/float64(cached), "B/profile")
		b.ReportMetric(float64(cachedProfileBytes), "B/profile-assumed")
		b.ReportMetric(float64(withRows-heap())/float64(rows), "B/row+ids")
		b.ReportMetric(float64(counted)/float64(rows), "B/row-counted")
	}
}
