package eventstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/bus"
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

// cpuTime is this process's CPU (user+sys) so far: on a shared machine
// CPU per event is steadier than wall-clock rates.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWriteBatch measures the SQLite stage alone: 1,000-event
// transactions through the same code the consumer uses.
func BenchmarkWriteBatch(b *testing.B) {
	o := openApp(b)
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		evs := sample(1000, i*1000)
		b.StartTimer()
		c0 := cpuTime()
		if _, err := eventstore.WriteBatch(o.PB, evs); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*1000), "cpu-µs/event")
}

// BenchmarkDrainOverTCP measures the consumer as a writer of the
// multi-node topology runs it: connected over TCP (not in-process) to the
// NATS server holding a backlog, storing it in 1,000-event transactions.
// The server runs in this process, so a CPU profile shows both sides.
func BenchmarkDrainOverTCP(b *testing.B) {
	const backlog = 20000
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	server, err := bus.Open(context.Background(), bus.Options{StoreDir: b.TempDir(), MaxStore: 256 << 20, Listen: "127.0.0.1:-1", Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer server.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		o := openApp(b)
		client, err := bus.Open(context.Background(), bus.Options{URL: server.ClientURL(), Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := eventstore.EnsureConsumer(context.Background(), client, 0); err != nil {
			b.Fatal(err)
		}
		evs := sample(backlog, i*backlog)
		msgs := make([]bus.Msg, len(evs))
		for k, ev := range evs {
			data, _ := ev.Marshal()
			msgs[k] = bus.Msg{Subject: ev.Subject(), ID: ev.ID, Data: data}
		}
		for start := 0; start < len(msgs); start += 2000 {
			for _, err := range server.PublishAll(context.Background(), msgs[start:start+2000]) {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		s := eventstore.New(o.PB, client, quiet, eventstore.Options{})
		b.StartTimer()
		if err := s.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		for {
			pending, ackPending, err := s.Lag(context.Background())
			if err == nil && pending == 0 && ackPending == 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		b.StopTimer()
		s.Stop(context.Background())
		client.Close()
	}
	b.ReportMetric(float64(b.N*backlog)/b.Elapsed().Seconds(), "events/s")
}

// profileSetter is a BeforeInsert processor doing nothing but set each
// event's profile: the writer's own cost on the path profiles takes
// (the dedupe look-up before the insert).
type profileSetter struct{}

func (profileSetter) BeforeInsert(_ core.App, batch []*eventstore.Stored) error {
	for _, s := range batch {
		s.Profile = "p-" + s.Event.ID
	}
	return nil
}

func (profileSetter) ProcessBatch(core.App, []*eventstore.Stored) error { return nil }

// BenchmarkWriteBatchBeforeInsert is BenchmarkWriteBatch with a processor
// that must see the new events before their rows are written.
func BenchmarkWriteBatchBeforeInsert(b *testing.B) {
	o := openApp(b)
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		evs := sample(1000, i*1000)
		b.StartTimer()
		c0 := cpuTime()
		if _, err := eventstore.WriteBatch(o.PB, evs, profileSetter{}); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*1000), "cpu-µs/event")
}

// BenchmarkWriteBatchIndexes prices each secondary index of events on the
// insert: the same load with that index dropped (compare cpu-µs/event
// with the "all" case of the same run).
func BenchmarkWriteBatchIndexes(b *testing.B) {
	for _, drop := range []string{"", "idx_events_profile_time", "idx_events_type_time", "idx_events_time"} {
		name := drop
		if name == "" {
			name = "all"
		}
		b.Run(name, func(b *testing.B) {
			o := openApp(b)
			if drop != "" {
				if _, err := o.PB.DB().NewQuery("DROP INDEX IF EXISTS " + drop).Execute(); err != nil {
					b.Fatal(err)
				}
			}
			var cpu time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				evs := sample(1000, i*1000)
				for k, ev := range evs {
					ev.Type = []string{"track", "page.viewed", "order.placed", "email.opened"}[k%4]
				}
				b.StartTimer()
				c0 := cpuTime()
				if _, err := eventstore.WriteBatch(o.PB, evs, profileSetter{}); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c0
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*1000), "cpu-µs/event")
		})
	}
}
