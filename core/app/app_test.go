package app_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/cron"

	"github.com/omni/omni/config"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/eventstore"
)

// gate is a module whose processor holds each batch's transaction until
// the test opens the gate (or the server stops), so a stop reliably lands
// while the consumer is in the middle of storing.
type gate struct {
	open, entered chan struct{}
	openOnce      sync.Once
	enteredOnce   sync.Once
}

func newGate() *gate { return &gate{open: make(chan struct{}), entered: make(chan struct{})} }

func (g *gate) Name() string { return "gate" }
func (g *gate) Init(setup *app.Setup) error {
	setup.Processor(g)
	return nil
}
func (g *gate) Start(context.Context, *core.ServeEvent) error { return nil }

// Stop opens the gate: modules stop before the events consumer drains,
// which must be able to finish the batch it holds.
func (g *gate) Stop(context.Context) { g.release() }
func (g *gate) release()             { g.openOnce.Do(func() { close(g.open) }) }
func (g *gate) ProcessBatch(core.App, []*eventstore.Stored) error {
	g.enteredOnce.Do(func() { close(g.entered) })
	<-g.open
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

// TestRestartMidConsumeStoresEverythingOnce posts 10,000 events while the
// consumer is held in the middle of its first batch, stops the server
// cleanly, starts it again on the same data, and expects every event
// stored exactly once.
func TestRestartMidConsumeStoresEverythingOnce(t *testing.T) {
	const total = 10000
	dir := t.TempDir()
	g := newGate()
	t.Cleanup(g.release)
	s := omnitest.Start(t, omnitest.Options{DataDir: dir, Modules: func(*app.Omni) []app.Module { return []app.Module{g} }})
	postEvents(t, s, total, 100, 4) // each answered 200: acknowledged by JetStream
	select {
	case <-g.entered:
	case <-time.After(60 * time.Second):
		t.Fatal("the consumer never started a batch")
	}
	// The gate holds the first batch's transaction open, so nothing can
	// commit: this is the count at the moment of the stop.
	acked, storedAtStop := total, s.CountEvents(t)
	if acked == 0 || storedAtStop >= acked {
		t.Fatalf("the stop would interrupt nothing: %d acknowledged, %d stored", acked, storedAtStop)
	}
	s.Stop()
	t.Logf("stopped with %d of %d acknowledged events stored", storedAtStop, acked)

	s2 := omnitest.Start(t, omnitest.Options{DataDir: dir})
	s2.WaitEvents(t, total)
	// Let redeliveries show up as duplicates if they could: the consumer
	// has nothing left to deliver or acknowledge.
	omnitest.Eventually(t, 30*time.Second, func() bool {
		pending, ackPending, err := s2.Events.Lag(context.Background())
		return err == nil && pending == 0 && ackPending == 0
	}, "the consumer to catch up")
	var n, distinct int
	if err := s2.PB.DB().NewQuery("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events").Row(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != total || distinct != total {
		t.Fatalf("stored %d rows (%d distinct), want %d", n, distinct, total)
	}
}

// TestFrontEndOnAnotherOmnisBus runs one Omni whose embedded NATS listens
// on TCP and a front end (role: frontend) that uses it as its external bus,
// the path past one machine: the front end authenticates with the source
// copied from the writer, publishes, serves nothing but the tracking API,
// and a second writer on that bus is refused.
func TestFrontEndOnAnotherOmnisBus(t *testing.T) {
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

	edge := omnitest.Start(t, omnitest.Options{Configure: func(c *config.Config) {
		c.Role, c.Bus.URL = config.RoleFrontend, "nats://"+addr
	}})
	if edge.Bus.Embedded() {
		t.Fatal("edge runs an embedded bus despite bus.url")
	}
	if edge.SourceID != hub.SourceID || edge.WriteKey != hub.WriteKey {
		t.Fatalf("front end's source %s/%s, want the writer's %s/%s", edge.SourceID, edge.WriteKey, hub.SourceID, hub.WriteKey)
	}
	if code, body := edge.Track(t, "/v1/track", `{"messageId":"ext-1","userId":"u","event":"Hello"}`); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil || !strings.Contains(string(msg.Data), `"`+hub.EventID("ext-1")+`"`) {
		t.Fatalf("event not seen on the shared bus: %v", err)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool { return hub.CountEvents(t) == 1 }, "event stored by the writer")
	if n := edge.CountEvents(t); n != 0 {
		t.Fatalf("front end stored %d events, want none", n)
	}
	code, body := edge.Do(t, "GET", "/api/collections/events/records", nil, nil)
	if code != 404 || !strings.Contains(string(body), "front end") {
		t.Fatalf("front end served the REST API: %d %s", code, body)
	}
	if code, _ := edge.Do(t, "GET", "/api/v1/health", nil, nil); code != 200 {
		t.Fatalf("front end health: %d", code)
	}

	// A second writer on the same bus would store and send everything twice.
	cfg := config.Default()
	cfg.DataDir, cfg.Bus.URL = t.TempDir(), "nats://"+addr
	second := app.New(cfg, hub.Log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = second.Serve(ln, nil)
	_ = second.Shutdown()
	if err == nil || !strings.Contains(err.Error(), "another writer holds the lease") {
		t.Fatalf("second writer: got %v, want refused naming the lease", err)
	}
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

// PocketBase's hourly clean-ups that come due as the server stops run
// before its database closes or not at all: one that ran on the closed
// database panicked and ended the process mid-shutdown.
func TestCronJobsDueAfterShutdownDoNothing(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	s.Stop()
	ran := 0
	for _, job := range s.PB.Cron().Jobs() {
		if job.Id() == "__pbMFACleanup__" || job.Id() == "__pbOTPCleanup__" {
			job.Run()
			ran++
		}
	}
	if ran != 2 {
		t.Fatalf("ran %d of PocketBase's hourly clean-ups, want 2", ran)
	}
}

// A backup schedule saved while the server runs replaces PocketBase's
// backup job; that job too does nothing once the server has stopped
// (it would back up a closed database).
func TestBackupJobSavedLaterIsGuardedAtShutdown(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	settings := s.PB.Settings()
	settings.Backups.Cron = "0 3 * * *"
	if err := s.PB.Save(settings); err != nil {
		t.Fatal(err)
	}
	var backup *cron.Job
	for _, job := range s.PB.Cron().Jobs() {
		if job.Id() == "__pbAutoBackup__" {
			backup = job
		}
	}
	if backup == nil {
		t.Fatal("no backup job after saving a backup schedule")
	}
	s.Stop()
	started := 0
	s.PB.OnBackupCreate().BindFunc(func(e *core.BackupEvent) error {
		started++
		return e.Next()
	})
	backup.Run()
	if started != 0 {
		t.Fatalf("the backup job started a backup after the server stopped")
	}
}
