package bus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/omni/omni/core/bus"
)

// pullDropper is a client connection that loses the first pull request it
// is asked to send, as a consumer under load was seen to: the server then
// holds no request while the client counts its messages as requested.
type pullDropper struct {
	net.Conn
	mu      sync.Mutex
	dropped bool
	pulls   [][]byte // every pull request's JSON body, the dropped one first
}

var pullOp = []byte("PUB $JS.API.CONSUMER.MSG.NEXT.")

func (d *pullDropper) Write(p []byte) (int, error) {
	d.mu.Lock()
	out := p
	for from := 0; ; {
		i := bytes.Index(out[from:], pullOp)
		if i < 0 {
			break
		}
		start := from + i
		eol := bytes.Index(out[start:], []byte("\r\n"))
		if eol < 0 {
			break // nats.go writes whole operations; a pull request is small
		}
		fields := bytes.Fields(out[start : start+eol])
		var size int
		if err := json.Unmarshal(fields[len(fields)-1], &size); err != nil {
			break
		}
		body := start + eol + 2
		end := body + size + 2
		d.pulls = append(d.pulls, bytes.Clone(out[body:body+size]))
		if !d.dropped {
			d.dropped = true
			out = append(bytes.Clone(out[:start]), out[end:]...)
			from = start
			continue
		}
		from = end
	}
	d.mu.Unlock()
	if _, err := d.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (d *pullDropper) requests() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]byte(nil), d.pulls...)
}

type dropDialer struct{ conn *pullDropper }

func (dd *dropDialer) Dial(network, address string) (net.Conn, error) {
	c, err := net.Dial(network, address)
	if err != nil {
		return nil, err
	}
	dd.conn = &pullDropper{Conn: c}
	return dd.conn, nil
}

// A pull request the server never held is noticed by the missed
// heartbeats and pulled again: the messages arrive, and every request
// asks for PullHeartbeat (the library's default would wait 30 s).
func TestConsumePullsAgainAfterALostPullRequest(t *testing.T) {
	b := open(t, bus.Options{Listen: "127.0.0.1:-1"})
	ctx := context.Background()
	cons, err := b.JS.CreateOrUpdateConsumer(ctx, bus.StreamOutbox, jetstream.ConsumerConfig{
		Durable: "lost-pull", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: bus.OutboxSubject})
	if err != nil {
		t.Fatal(err)
	}
	dd := &dropDialer{}
	nc, err := nats.Connect(b.ClientURL(), nats.SetCustomDialer(dd))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := js.Consumer(ctx, bus.StreamOutbox, cons.CachedInfo().Name)
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	var errs []error
	var errsMu sync.Mutex
	cc, err := bus.Consume(c, func(m jetstream.Msg) { got.Add(1); _ = m.Ack() }, 10, func(err error) {
		errsMu.Lock()
		errs = append(errs, err)
		errsMu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	for i := range 5 {
		if _, err := b.Publish(ctx, bus.Msg{Subject: "omni.outbox.test.lost-pull", Data: []byte("x"), ID: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second) // well below the 30 s the library's default heartbeat takes
	for got.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := got.Load(); n != 5 {
		t.Fatalf("delivered %d of 5 messages after the first pull request was lost", n)
	}
	reqs := dd.conn.requests()
	if len(reqs) < 2 {
		t.Fatalf("%d pull requests sent; want the lost one and at least one more", len(reqs))
	}
	for _, r := range reqs {
		var req struct {
			Heartbeat time.Duration `json:"idle_heartbeat"`
			Batch     int           `json:"batch"`
		}
		if err := json.Unmarshal(r, &req); err != nil {
			t.Fatalf("pull request %s: %v", r, err)
		}
		if req.Heartbeat != bus.PullHeartbeat || req.Batch > 10 {
			t.Errorf("pull request %s: want idle_heartbeat %d and at most 10 messages", r, bus.PullHeartbeat)
		}
	}
	errsMu.Lock()
	defer errsMu.Unlock()
	if len(errs) != 0 {
		t.Errorf("errors reported: %v; a missed heartbeat is the recovery, not an error", errs)
	}
}
