package topology_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/topology"
)

// openBus connects to a NATS server of its own, as front ends and the
// writer share an external one.
func openBus(t *testing.T) *bus.Bus {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), JetStreamMaxStore: 256 << 20, JetStreamMaxMemory: 16 << 20, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(ns.Shutdown)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, bus.Options{URL: ns.ClientURL(), MaxStore: 64 << 20,
		DedupeWindow: time.Minute, MaxAge: time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// One writer per bus: a second data dir is refused naming the holder; the
// holder's own data dir (a restart after a crash) takes the lease back; a
// released lease is free for the next writer.
func TestOneWriterPerBus(t *testing.T) {
	b := openBus(t)
	ctx := context.Background()
	dirA, dirB := t.TempDir(), t.TempDir()

	a, err := topology.AcquireWriter(ctx, b, dirA, "10.0.0.1:8090", quiet)
	if err != nil {
		t.Fatalf("first writer: %v", err)
	}
	_, err = topology.AcquireWriter(ctx, b, dirB, "10.0.0.2:8090", quiet)
	if !errors.Is(err, topology.ErrAnotherWriter) || !strings.Contains(err.Error(), "10.0.0.1:8090") {
		t.Fatalf("second writer: got %v, want ErrAnotherWriter naming 10.0.0.1:8090", err)
	}

	// The same data dir again, as after kill -9 (a was never released).
	again, err := topology.AcquireWriter(ctx, b, dirA, "10.0.0.1:8090", quiet)
	if err != nil {
		t.Fatalf("restarted writer on its own data dir: %v", err)
	}
	again.Keep(func(err error) { t.Errorf("lease lost: %v", err) })
	again.Release()
	_ = a // its revision is stale; releasing it must not free b's lease later

	bLease, err := topology.AcquireWriter(ctx, b, dirB, "10.0.0.2:8090", quiet)
	if err != nil {
		t.Fatalf("writer after release: %v", err)
	}
	a.Release() // stale: refused by revision, b keeps the lease
	if _, err := topology.AcquireWriter(ctx, b, dirA, "10.0.0.1:8090", quiet); !errors.Is(err, topology.ErrAnotherWriter) {
		t.Fatalf("after a stale release: got %v, want b still holding the lease", err)
	}
	bLease.Release()
}
