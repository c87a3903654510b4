package bus

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Strict mode: every publish returns only after a group fsync of the
// stream's block files, and concurrent publishers share the fsyncs.
func TestStrictPublishWaitsForGroupFsync(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, Options{StoreDir: t.TempDir(), MaxStore: 64 << 20, DedupeWindow: time.Minute, Strict: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.JS.CreateOrUpdateConsumer(ctx, StreamEvents, jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	const publishers, per = 8, 50
	var wg sync.WaitGroup
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := make([]Msg, per)
			for i := range msgs {
				id := fmt.Sprintf("p%d-%d", p, i)
				msgs[i] = Msg{Subject: "omni.events.test.track", ID: id, Data: []byte(`{"id":"` + id + `"}`)}
			}
			for i, err := range b.PublishAll(ctx, msgs) {
				if err != nil {
					t.Errorf("publisher %d message %d: %v", p, i, err)
				}
			}
		}()
	}
	wg.Wait()
	if _, err := b.Publish(ctx, Msg{Subject: "omni.events.test.track", ID: "single", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	rounds, files := b.sync.rounds.Load(), b.sync.files.Load()
	if rounds == 0 || files == 0 {
		t.Fatalf("%d fsync rounds over %d block files: strict publishes were not fsynced (dirs %v)", rounds, files, b.sync.dirs)
	}
	// One round per publish call at most, never one per message.
	if rounds > publishers+1 {
		t.Fatalf("%d fsync rounds for %d publish calls", rounds, publishers+1)
	}
	s, _ := b.JS.Stream(ctx, StreamEvents)
	info, _ := s.Info(ctx)
	if info.State.Msgs != publishers*per+1 {
		t.Fatalf("stream holds %d messages, want %d", info.State.Msgs, publishers*per+1)
	}
	b.Close()
	if err := b.sync.wait(ctx); err == nil {
		t.Fatal("wait after Close succeeded")
	}
}

// Without strict, no fsync is waited for.
func TestNormalPublishDoesNotFsync(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, Options{StoreDir: t.TempDir(), MaxStore: 64 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.sync != nil || b.SyncRounds() != 0 {
		t.Fatal("normal durability has a group fsync")
	}
}
