// Package topology holds what lets Omni run as several processes on one
// NATS cluster (docs/operations.md#topology): the writer lease, so only one
// process ever consumes the streams into SQLite, and the mirror of sources
// (write keys) that front ends authenticate tracking calls with.
package topology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/pocketbase/tools/security"

	"github.com/omni/omni/core/bus"
)

const (
	// LeaseBucket is the KV bucket holding the one writer lease.
	LeaseBucket = "omni_writer"
	leaseKey    = "writer"
	// LeaseTTL is how long a lease outlives a writer that stopped
	// refreshing it (killed, cut off from the cluster); it is refreshed
	// every third of that.
	LeaseTTL = 15 * time.Second
	// idFile names the data dir's writer identity: a writer restarted on
	// the same data dir takes its own lease back at once.
	idFile = "writer.id"
)

// Holder describes the writer that holds the lease.
type Holder struct {
	ID    string    `json:"id"`
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	HTTP  string    `json:"http"`
	Since time.Time `json:"since"`
}

func (h Holder) String() string {
	return fmt.Sprintf("pid %d on %s serving %s, since %s", h.PID, h.Host, h.HTTP, h.Since.Format(time.RFC3339))
}

// ErrAnotherWriter is returned when another data dir's writer holds the
// lease: two writers would store every event twice and run every journey
// step twice.
var ErrAnotherWriter = errors.New("another writer holds the lease")

// Lease is this process's claim to be the one writer on the bus.
type Lease struct {
	kv  jetstream.KeyValue
	me  Holder
	log *slog.Logger

	mu   sync.Mutex
	rev  uint64
	stop chan struct{}
	done chan struct{}
}

// AcquireWriter takes the writer lease for the data dir, or fails naming
// the writer that holds it.
func AcquireWriter(ctx context.Context, b *bus.Bus, dataDir, httpAddr string, log *slog.Logger) (*Lease, error) {
	id, err := writerID(dataDir)
	if err != nil {
		return nil, err
	}
	// A cluster that has just started (or lost a node) may not have
	// elected the lease bucket's leader yet: its requests then find no
	// responders for a moment, which is worth waiting out at start.
	deadline := time.Now().Add(leaseStartWait)
	for {
		l, err := acquireWriter(ctx, b, id, httpAddr, log)
		if err == nil || !transientBusError(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return l, err
		}
		log.Warn("writer lease: the bus is not ready yet; trying again", "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// leaseStartWait is how long AcquireWriter waits out a bus that is not
// ready yet.
const leaseStartWait = 30 * time.Second

// transientBusError is an error of a bus that is still electing leaders.
func transientBusError(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, context.DeadlineExceeded)
}

func acquireWriter(ctx context.Context, b *bus.Bus, id, httpAddr string, log *slog.Logger) (*Lease, error) {
	kv, err := b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "the one Omni writer consuming the streams into SQLite",
		TTL:         LeaseTTL,
		MaxBytes:    1 << 20, // a bound is needed where the streams reserve the rest of the store
		Replicas:    b.Replicas(),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("writer lease: %w", err)
	}
	host, _ := os.Hostname()
	l := &Lease{kv: kv, log: log, me: Holder{ID: id, Host: host, PID: os.Getpid(), HTTP: httpAddr, Since: time.Now().UTC()}}
	if err := l.claim(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// claim takes the lease when nobody holds it or when this data dir does
// (a restart after a crash), and refreshes it when it is ours.
func (l *Lease) claim(ctx context.Context) error {
	val, _ := json.Marshal(l.me)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev != 0 {
		if rev, err := l.kv.Update(ctx, leaseKey, val, l.rev); err == nil {
			l.rev = rev
			return nil
		} else if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return err // the bus is unreachable: try again on the next beat
		}
	}
	entry, err := l.kv.Get(ctx, leaseKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		rev, err := l.kv.Create(ctx, leaseKey, val)
		if err != nil {
			return fmt.Errorf("writer lease: %w", err)
		}
		l.rev = rev
		return nil
	case err != nil:
		return fmt.Errorf("writer lease: %w", err)
	}
	var h Holder
	_ = json.Unmarshal(entry.Value(), &h)
	if h.ID != l.me.ID {
		return fmt.Errorf("%w: %s (data dir id %s); only one writer may consume EVENTS and OUTBOX: stop it first, or wait %s after it died", ErrAnotherWriter, h, h.ID, LeaseTTL)
	}
	rev, err := l.kv.Update(ctx, leaseKey, val, entry.Revision())
	if err != nil {
		return fmt.Errorf("writer lease: %w", err)
	}
	l.rev = rev
	return nil
}

// Keep refreshes the lease until Release. A bus that does not answer is
// retried on the next beat; onLost runs once if another writer took the
// lease meanwhile, and this process must stop consuming.
func (l *Lease) Keep(onLost func(error)) {
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.done)
		t := time.NewTicker(LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), LeaseTTL/3)
			err := l.claim(ctx)
			cancel()
			if errors.Is(err, ErrAnotherWriter) {
				onLost(err)
				return
			}
			if err != nil {
				l.log.Warn("writer lease: not refreshed, retrying", "err", err)
			}
		}
	}()
}

// Release stops refreshing and frees the lease for another writer.
func (l *Lease) Release() {
	if l == nil {
		return
	}
	if l.stop != nil {
		close(l.stop)
		<-l.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.kv.Delete(ctx, leaseKey, jetstream.LastRevision(l.rev)); err != nil {
		l.log.Warn("writer lease: not released; it expires by itself", "after", LeaseTTL, "err", err)
	}
}

// writerID reads (or creates once) the data dir's writer identity.
func writerID(dataDir string) (string, error) {
	p := filepath.Join(dataDir, idFile)
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	id := security.RandomString(20)
	if err := os.WriteFile(p, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writer id: %w", err)
	}
	return id, nil
}
