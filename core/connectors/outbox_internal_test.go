package connectors

import (
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// fakeMsg is a delivered outbox message that records whether handle took
// it up. handle reads the metadata first; the fake ends the send goroutine
// there (its deferred releases still run), so the test needs no database.
type fakeMsg struct {
	jetstream.Msg
	mu      sync.Mutex
	handled int
}

func (f *fakeMsg) Subject() string { return "omni.outbox.example" }
func (f *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	f.mu.Lock()
	f.handled++
	f.mu.Unlock()
	runtime.Goexit()
	return nil, nil
}
func (f *fakeMsg) NakWithDelay(time.Duration) error { return nil }

// A message the consumer delivers after stop has begun starts no send: a
// send goroutine added after stop's Wait would run unsupervised (and Add
// racing Wait is a WaitGroup misuse). Before the fix, dispatch picked at
// random between a free send slot and the cancelled context.
func TestOutboxStartsNoSendAfterStop(t *testing.T) {
	m := New(Options{})
	m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	ob := newOutbox(m)
	ob.stop()
	msg := &fakeMsg{}
	for n := 0; n < 100; n++ {
		ob.dispatch(msg)
	}
	ob.wg.Wait()
	msg.mu.Lock()
	defer msg.mu.Unlock()
	if msg.handled != 0 {
		t.Fatalf("%d of 100 messages delivered after stop were handled", msg.handled)
	}
	if len(ob.sem) != 0 {
		t.Fatalf("%d send slots left taken", len(ob.sem))
	}
}
