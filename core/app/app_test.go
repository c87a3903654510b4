package app_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/eventstore"
)

// slowDown is a module whose processor makes each stored batch take a
// while, so a shutdown reliably lands in the middle of consuming.
type slowDown struct{ batches atomic.Int64 }

func (s *slowDown) Name() string { return "slowdown" }
func (s *slowDown) Init(setup *app.Setup) error {
	setup.Processor(s)
	return nil
}
func (s *slowDown) Start(context.Context, *core.ServeEvent) error { return nil }
func (s *slowDown) Stop(context.Context)                          {}
func (s *slowDown) ProcessBatch(_ core.App, batch []*eventstore.Stored) error {
	s.batches.Add(1)
	time.Sleep(time.Duration(len(batch)) * 200 * time.Microsecond)
	return nil
}

func postEvents(t *testing.T, s *omnitest.Server, total, perBatch, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := range next {
				var b strings.Builder
				b.WriteString(`{"batch":[`)
				for i := start; i < start+perBatch; i++ {
					if i > start {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `{"type":"track","messageId":"restart-%d","userId":"user-%d","event":"Tick","properties":{"i":%d}}`, i, i%500, i)
				}
				b.WriteString(`]}`)
				if code, body := s.Track(t, "/v1/batch", b.String()); code != 200 {
					t.Errorf("batch at %d: %d %s", start, code, body)
				}
			}
		}()
	}
	for start := 0; start < total; start += perBatch {
		next <- start
	}
	close(next)
	wg.Wait()
}

// TestRestartMidConsumeStoresEverythingOnce posts 10,000 events, stops the
// server cleanly while the consumer is still working through them, starts
// it again on the same data, and expects every event stored exactly once.
func TestRestartMidConsumeStoresEverythingOnce(t *testing.T) {
	const total = 10000
	dir := t.TempDir()
	slow := &slowDown{}
	s := omnitest.Start(t, omnitest.Options{DataDir: dir, Modules: func(*app.Omni) []app.Module { return []app.Module{slow} }})
	postEvents(t, s, total, 100, 4)
	storedAtStop := s.CountEvents(t)
	s.Stop()
	t.Logf("stored %d of %d when stopped", storedAtStop, total)
	if storedAtStop >= total {
		t.Logf("consumer finished before the stop; the restart still must not duplicate")
	}

	s2 := omnitest.Start(t, omnitest.Options{DataDir: dir})
	s2.WaitEvents(t, total)
	// Give redeliveries a moment to show up as duplicates if they could.
	time.Sleep(300 * time.Millisecond)
	var n, distinct int
	if err := s2.PB.DB().NewQuery("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events").Row(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != total || distinct != total {
		t.Fatalf("stored %d rows (%d distinct), want %d", n, distinct, total)
	}
	pending, ackPending, err := s2.Events.Lag(context.Background())
	if err != nil || pending != 0 || ackPending != 0 {
		t.Fatalf("consumer not caught up: pending=%d ack_pending=%d err=%v", pending, ackPending, err)
	}
}

// TestExternalBusAndListen runs one Omni whose embedded NATS listens on TCP
// and a second Omni that uses it as its external bus (bus.url), the path
// past one machine.
func TestExternalBusAndListen(t *testing.T) {
	addr := freeAddr(t)
	hub := omnitest.Start(t, omnitest.Options{Configure: func(c *config.Config) { c.Bus.Listen = addr }})
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatalf("bus.listen did not open a port: %v", err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("omni.events.>")
	if err != nil {
		t.Fatal(err)
	}

	edge := omnitest.Start(t, omnitest.Options{Configure: func(c *config.Config) { c.Bus.URL = "nats://" + addr }})
	if edge.Bus.Embedded() {
		t.Fatal("edge runs an embedded bus despite bus.url")
	}
	if code, body := edge.Track(t, "/v1/track", `{"messageId":"ext-1","userId":"u","event":"Hello"}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil || !strings.Contains(string(msg.Data), `"`+edge.EventID("ext-1")+`"`) {
		t.Fatalf("event not seen on the shared bus: %v", err)
	}
	// Both processes consume the shared durable; the event is stored once
	// in whichever database took it.
	omnitest.Eventually(t, 20*time.Second, func() bool { return hub.CountEvents(t)+edge.CountEvents(t) == 1 }, "event stored")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
