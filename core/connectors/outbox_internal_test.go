package connectors

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// fakeMsg is a delivered outbox message that records how it was settled.
type fakeMsg struct {
	jetstream.Msg
	mu    sync.Mutex
	terms int
}

func (f *fakeMsg) Subject() string                           { return "omni.outbox.example" }
func (f *fakeMsg) Data() []byte                              { return []byte("not an OutboundMessage") }
func (f *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) { return nil, nil }
func (f *fakeMsg) Term() error                               { f.mu.Lock(); f.terms++; f.mu.Unlock(); return nil }
func (f *fakeMsg) NakWithDelay(time.Duration) error          { return nil }

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
	if msg.terms != 0 {
		t.Fatalf("%d of 100 messages delivered after stop were handled", msg.terms)
	}
	if len(ob.sem) != 0 {
		t.Fatalf("%d send slots left taken", len(ob.sem))
	}
}
