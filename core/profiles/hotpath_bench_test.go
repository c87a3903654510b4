package profiles_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/profiles"
)

// BenchmarkBeforeInsert publishes events straight to the bus (no HTTP) and
// reports the time the profiles module spends in BeforeInsert, and in its
// flush, per stored event: the part of the single writer that resolves
// profiles. Each iteration is 100 events. Shapes:
//
//	loadgen   5,000 users × 20 track events, a userId each (bench.sh)
//	customers 3 identities per customer (email, phone, anonymous id), the
//	          first event links them, then one of the three at random
//	          (bench/profiles)
func BenchmarkBeforeInsert(b *testing.B) {
	for _, shape := range []struct {
		name string
		mk   func(n int) *events.Event
	}{
		{"loadgen", loadgenEvent},
		{"customers", customerEvent},
	} {
		b.Run(shape.name, func(b *testing.B) {
			var mu sync.Mutex
			spent := map[string]time.Duration{}
			mod := profiles.New(profiles.Options{Interval: -1, Observe: func(step string, d time.Duration) {
				mu.Lock()
				spent[step] += d
				mu.Unlock()
			}})
			s := omnitest.Start(b, omnitest.Options{Modules: func(*app.Omni) []app.Module { return []app.Module{mod} }})
			n := 0
			b.ResetTimer()
			for b.Loop() {
				evs := make([]*events.Event, 100)
				for i := range evs {
					evs[i] = shape.mk(n)
					n++
				}
				for i, err := range ingest.Publish(context.Background(), s.Bus, evs) {
					if err != nil {
						b.Fatalf("publish %s: %v", evs[i].ID, err)
					}
				}
			}
			omnitest.Eventually(b, 300*time.Second, func() bool {
				pending, ackPending, err := s.Events.Lag(context.Background())
				return err == nil && pending == 0 && ackPending == 0
			}, "all stored")
			b.StopTimer()
			mu.Lock()
			defer mu.Unlock()
			per := func(step string) float64 { return float64(spent[step].Microseconds()) / float64(n) }
			b.ReportMetric(per("resolve-batch"), "µs-BeforeInsert/event")
			b.ReportMetric(per("flush"), "µs-flush/event")
		})
	}
}

var benchBase = time.Now().Add(-30 * 24 * time.Hour)

func loadgenEvent(n int) *events.Event {
	return &events.Event{ID: fmt.Sprintf("lg-%d", n), Type: "track", Name: "Product Viewed", Source: "bench",
		OccurredAt: benchBase.Add(time.Duration(n) * time.Second), ReceivedAt: time.Now(),
		Identities: events.Identities{events.UserID: fmt.Sprintf("user-%d", n%5000)},
		Properties: map[string]any{"sku": fmt.Sprintf("S%d", n%50), "price": 9.5}, Context: events.Context{Channel: "web"}}
}

// customerEvent: customers arrive in blocks of 10,000 (10 events each),
// every event of a block interleaved so a batch holds many customers.
func customerEvent(n int) *events.Event {
	const block = 10_000
	c := n/(block*10)*block + n%block
	j := n % (block * 10) / block
	email, phone, anon := fmt.Sprintf("c%d@omni-shop.dev", c), fmt.Sprintf("+1415%07d", c), fmt.Sprintf("anon-%d", c)
	ids := events.Identities{}
	typ := events.PageViewed
	var props map[string]any
	switch {
	case j == 0:
		ids[events.Email], ids[events.Phone], ids[events.AnonymousID] = email, phone, anon
		typ, props = events.Identify, map[string]any{"traits": map[string]any{"first_name": "Ada", "last_name": fmt.Sprintf("C%d", c)}}
	case j%3 == 0:
		ids[events.Email] = email
		typ = events.EmailOpened
	case j%3 == 1:
		ids[events.Phone] = phone
		if j == 4 {
			typ, props = events.OrderPlaced, map[string]any{"total": 25.0, "currency": "USD", "order_id": fmt.Sprintf("o-%d", c)}
		}
	default:
		ids[events.AnonymousID] = anon
	}
	return &events.Event{ID: fmt.Sprintf("cu-%d", n), Type: typ, Source: "bench",
		OccurredAt: benchBase.Add(time.Duration(n) * time.Second), ReceivedAt: time.Now(),
		Identities: ids, Properties: props, Context: events.Context{Channel: "web"}}
}
