package messaging_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/profiles"
)

// benchGate starts Omni with the gate, a connector record declaring
// send:email (nothing consumes OUTBOX, so only the gate and the publish are
// measured) and one customer.
func benchGate(b *testing.B) (*messaging.Module, string) {
	msg := messaging.New(messaging.Options{})
	s := omnitest.Start(b, omnitest.Options{Modules: func(*app.Omni) []app.Module {
		return []app.Module{profiles.New(profiles.Options{}), msg}
	}})
	col, err := s.PB.FindCollectionByNameOrId("connectors")
	if err != nil {
		b.Fatal(err)
	}
	// A connector that declares send:email; nothing consumes OUTBOX here,
	// so only the gate and the publish are measured.
	rec := core.NewRecord(col)
	rec.Set("name", "bench")
	rec.Set("enabled", true)
	rec.Set("capabilities", []string{"send:email"})
	if err := s.PB.Save(rec); err != nil {
		b.Fatal(err)
	}
	if code, body := s.Track(b, "/v1/identify", map[string]any{"userId": "bench", "messageId": "bench-1",
		"traits": map[string]any{"email": "bench@omni-shop.dev", "first_name": "Bea"}}); code != 200 {
		b.Fatalf("identify: %d %s", code, body)
	}
	var profile string
	omnitest.Eventually(b, 30*time.Second, func() bool {
		return s.PB.DB().NewQuery("SELECT profile FROM identities WHERE value='bench@omni-shop.dev'").Row(&profile) == nil && profile != ""
	}, "bench profile")
	return msg, profile
}

func benchRequest(profile string, i int) messaging.Request {
	return messaging.Request{Profile: profile, Channels: []string{"email"}, Kind: messaging.KindTransactional,
		Subject: "Order {{ event.properties.n }}", Body: "Hi {{ customer.first_name }}, order {{ event.properties.n }} shipped.",
		Event: map[string]any{"properties": map[string]any{"n": i}}}
}

// BenchmarkGateToOutbox measures messages through the gate (profile and
// consent read, connector lookup, rendering, ledger insert) until they are
// stored on the OUTBOX stream, one at a time.
func BenchmarkGateToOutbox(b *testing.B) {
	msg, profile := benchGate(b)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		res, err := msg.Send(ctx, benchRequest(profile, i))
		if err != nil || res.Status != messaging.StatusQueued {
			b.Fatalf("send %d: %+v %v", i, res, err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkGateToOutboxConcurrent sends from 16 goroutines, as API
// requests and the send-request consumer do: decisions are serialised,
// publishes overlap.
func BenchmarkGateToOutboxConcurrent(b *testing.B) {
	msg, profile := benchGate(b)
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := msg.Send(ctx, benchRequest(profile, int(n.Add(1))))
			if err != nil || res.Status != messaging.StatusQueued {
				b.Errorf("send: %+v %v", res, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
