package eventstore_test

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/logging"
)

func openApp(tb testing.TB) *app.Omni {
	tb.Helper()
	cfg := config.Default()
	cfg.DataDir = tb.TempDir()
	o := app.New(cfg, logging.New(io.Discard, "error", "text"))
	if err := o.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = o.PB.ResetBootstrapState() })
	return o
}

func sample(n, offset int) []*events.Event {
	now := time.Now().UTC()
	evs := make([]*events.Event, n)
	for i := range evs {
		k := offset + i
		evs[i] = &events.Event{ID: fmt.Sprintf("e-%d", k), Type: "track", Name: "Product Viewed", Source: "bench", OccurredAt: now, ReceivedAt: now,
			Identities: events.Identities{"user_id": fmt.Sprintf("user-%d", k%10000)},
			Properties: map[string]any{"sku": fmt.Sprintf("SKU-%d", k%500), "price": 19.99},
			Context:    events.Context{Channel: "server", Page: &events.Page{URL: fmt.Sprintf("https://shop.example/p/%d", k%500)}}}
	}
	return evs
}

// BenchmarkWriteBatch measures the SQLite stage alone: 1,000-event
// transactions through the same code the consumer uses.
func BenchmarkWriteBatch(b *testing.B) {
	o := openApp(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		evs := sample(1000, i*1000)
		b.StartTimer()
		if _, err := eventstore.WriteBatch(o.PB, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}
