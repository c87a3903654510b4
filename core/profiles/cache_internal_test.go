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
)

// The cross-batch cache follows the Go heap's soft limit: at memtune's
// default limit it holds a few thousand profiles, a bigger GOMEMLIMIT
// lets it grow up to its cap, and no limit at all means the cap.
func TestCacheBoundsFollowTheMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	for _, c := range []struct {
		limit    int64
		profiles int
	}{
		{160 << 20, 160 << 20 / 10 / cachedProfileBytes}, // memtune.DefaultLimit
		{2 << 30, 2 << 30 / 10 / cachedProfileBytes},
		{math.MaxInt64, maxCacheProfiles},
		{1 << 20, minCacheProfiles},
	} {
		debug.SetMemoryLimit(c.limit)
		p, ids := cacheBounds()
		if p != c.profiles || ids != 4*c.profiles {
			t.Errorf("limit %d: bounds %d profiles, %d identities; want %d, %d", c.limit, p, ids, c.profiles, 4*c.profiles)
		}
	}
	debug.SetMemoryLimit(160 << 20)
	if p, _ := cacheBounds(); p*cachedProfileBytes > 160<<20/8 {
		t.Errorf("at the default limit the cache may hold %d profiles, about %d MB", p, p*cachedProfileBytes>>20)
	}
}

// BenchmarkCachedProfile reports the heap a cached profile takes
// (cachedProfileBytes): 4,000 customers with three identities, a name,
// two orders and events on ten days, all held in the cache; the heap
// with the cache, less the heap once it was dropped.
func BenchmarkCachedProfile(b *testing.B) {
	prev := debug.SetMemoryLimit(math.MaxInt64) // the cache holds them all
	b.Cleanup(func() { debug.SetMemoryLimit(prev) })
	mod := New(Options{Interval: -1})
	s := omnitest.Start(b, omnitest.Options{Modules: func(*app.Omni) []app.Module { return []app.Module{mod} }})
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
		mod.forgetCache()
		b.ReportMetric(float64(with-heap())/float64(cached), "B/profile")
		b.ReportMetric(float64(cachedProfileBytes), "B/profile-assumed")
	}
}
