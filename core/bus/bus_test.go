package bus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/omni/omni/core/bus"
)

func open(t *testing.T, o bus.Options) *bus.Bus {
	t.Helper()
	if o.URL == "" && o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	if o.MaxStore == 0 {
		o.MaxStore = 64 << 20
	}
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

func streamInfo(t *testing.T, b *bus.Bus, name string) *jetstream.StreamInfo {
	t.Helper()
	s, err := b.JS.Stream(context.Background(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// interested adds a durable consumer on EVENTS: streams keep messages by
// interest, so without one nothing published is kept.
func interested(t *testing.T, b *bus.Bus) {
	t.Helper()
	if _, err := b.JS.CreateOrUpdateConsumer(context.Background(), bus.StreamEvents,
		jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
}

func event(id string) bus.Msg {
	return bus.Msg{Subject: "omni.events.test.track", ID: id, Data: []byte(`{"id":"` + id + `"}`)}
}

// The streams keep what a consumer has not taken (interest), refuse rather
// than evict when full (DiscardNew), dedupe ids within the configured
// window, and live in the given store dir.
func TestOpenEmbeddedCreatesStreamsAsConfigured(t *testing.T) {
	dir := t.TempDir()
	b := open(t, bus.Options{StoreDir: dir, MaxStore: 64 << 20, DedupeWindow: 90 * time.Second, MaxAge: 48 * time.Hour})
	if !b.Embedded() {
		t.Fatal("no URL given, yet not embedded")
	}
	maxBytes := map[string]int64{bus.StreamEvents: 32 << 20, bus.StreamOutbox: 24 << 20, bus.StreamMessaging: 4 << 20, bus.StreamWebhooks: 4 << 20}
	for name, subject := range map[string]string{bus.StreamEvents: bus.EventsSubject, bus.StreamOutbox: bus.OutboxSubject, bus.StreamMessaging: bus.MessagingSubject, bus.StreamWebhooks: bus.WebhooksSubject} {
		c := streamInfo(t, b, name).Config
		if c.Retention != jetstream.InterestPolicy || c.Discard != jetstream.DiscardNew || c.Storage != jetstream.FileStorage {
			t.Errorf("%s: retention %v, discard %v, storage %v; want interest, new, file", name, c.Retention, c.Discard, c.Storage)
		}
		wantDup := 90 * time.Second
		if name == bus.StreamEvents {
			wantDup = bus.EventsDedupeWindow // SQLite dedupes events forever
		}
		if c.Duplicates != wantDup || c.MaxAge != 48*time.Hour || c.MaxBytes != maxBytes[name] {
			t.Errorf("%s: duplicates %s, max age %s, max bytes %d", name, c.Duplicates, c.MaxAge, c.MaxBytes)
		}
		if len(c.Subjects) != 1 || c.Subjects[0] != subject {
			t.Errorf("%s: subjects %v, want %s", name, c.Subjects, subject)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Fatalf("JetStream did not store under the given dir: %v", err)
	}
	if err := b.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}

	// Interest retention: nobody consumes, nothing is kept; a durable
	// consumer makes the stream keep what it has not acknowledged.
	if _, err := b.Publish(context.Background(), event("i-1")); err != nil {
		t.Fatal(err)
	}
	if n := streamInfo(t, b, bus.StreamEvents).State.Msgs; n != 0 {
		t.Fatalf("kept %d messages nobody consumes", n)
	}
	interested(t, b)
	if _, err := b.Publish(context.Background(), event("i-2")); err != nil {
		t.Fatal(err)
	}
	if n := streamInfo(t, b, bus.StreamEvents).State.Msgs; n != 1 {
		t.Fatalf("kept %d messages for a consumer, want 1", n)
	}
}

// Each message gets its own answer: one that no stream takes fails alone,
// as unavailable (callers answer 503), and the others are stored.
func TestPublishAllReportsErrorsPerMessage(t *testing.T) {
	b := open(t, bus.Options{})
	interested(t, b)
	msgs := []bus.Msg{event("p-1"), {Subject: "nowhere.at.all", ID: "p-2", Data: []byte("{}")}, event("p-3")}
	errs := b.PublishAll(context.Background(), msgs)
	if len(errs) != len(msgs) {
		t.Fatalf("%d errors for %d messages", len(errs), len(msgs))
	}
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("stored messages reported failed: %v, %v", errs[0], errs[2])
	}
	if !errors.Is(errs[1], bus.ErrUnavailable) {
		t.Fatalf("a message no stream takes: %v, want ErrUnavailable", errs[1])
	}
	if n := streamInfo(t, b, bus.StreamEvents).State.Msgs; n != 2 {
		t.Fatalf("EVENTS holds %d messages, want 2", n)
	}

}

// A repeated Nats-Msg-Id within the window is acknowledged as a duplicate
// and not stored again, through either publish path.
func TestDuplicateIDWithinTheWindowIsDropped(t *testing.T) {
	b := open(t, bus.Options{DedupeWindow: time.Minute})
	if _, err := b.JS.CreateOrUpdateConsumer(context.Background(), bus.StreamOutbox,
		jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	send := func(id string) bus.Msg {
		return bus.Msg{Subject: "omni.outbox.test", ID: id, Data: []byte(`{"id":"` + id + `"}`)}
	}
	ctx := context.Background()
	first, err := b.Publish(ctx, send("d-1"))
	if err != nil || first.Duplicate {
		t.Fatalf("first publish: %+v %v", first, err)
	}
	again, err := b.Publish(ctx, send("d-1"))
	if err != nil || !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("repeat: %+v %v; want a duplicate of sequence %d", again, err, first.Sequence)
	}
	for i, err := range b.PublishAll(ctx, []bus.Msg{send("d-1"), send("d-2"), send("d-2")}) {
		if err != nil {
			t.Fatalf("PublishAll message %d: %v (a duplicate is not an error)", i, err)
		}
	}
	if n := streamInfo(t, b, bus.StreamOutbox).State.Msgs; n != 2 {
		t.Fatalf("OUTBOX holds %d messages, want 2 (d-1, d-2)", n)
	}
}

// Events carry their id as Omni-Event-Id, not Nats-Msg-Id: JetStream keeps
// no dedupe id of theirs (SQLite's unique index drops a repeat), so a
// repeat is stored again, with its id.
func TestEventsAreNotDedupedByTheBus(t *testing.T) {
	b := open(t, bus.Options{DedupeWindow: time.Minute})
	interested(t, b)
	ctx := context.Background()
	m := event("e-1")
	m.Header = nats.Header{nats.MsgIdHdr: {"e-1"}}
	first, err := b.Publish(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Publish(ctx, event("e-1"))
	if err != nil || again.Duplicate || again.Sequence == first.Sequence {
		t.Fatalf("repeat: %+v %v; want stored again after sequence %d", again, err, first.Sequence)
	}
	stream, err := b.JS.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{first.Sequence, again.Sequence} {
		got, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if got.Header.Get(bus.EventIDHeader) != "e-1" || got.Header.Get(nats.MsgIdHdr) != "" {
			t.Fatalf("message %d headers: %v; want %s e-1 and no %s", seq, got.Header, bus.EventIDHeader, nats.MsgIdHdr)
		}
	}
}

// Headers a publisher sets reach the consumer beside the message's id,
// which a header of the same name cannot replace.
func TestPublishCarriesHeaders(t *testing.T) {
	b := open(t, bus.Options{DedupeWindow: time.Minute})
	interested(t, b)
	ctx := context.Background()
	m := event("h-1")
	m.Header = nats.Header{"Omni-Queued-At": {"2026-01-02T03:04:05Z"}, bus.EventIDHeader: {"other"}, nats.MsgIdHdr: {"other"}}
	ack, err := b.Publish(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := b.JS.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	got, err := stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Get("Omni-Queued-At") != "2026-01-02T03:04:05Z" || got.Header.Get(bus.EventIDHeader) != "h-1" {
		t.Fatalf("stored headers: %v", got.Header)
	}
}

// Close may be called again (shutdown paths overlap); the bus then says it
// is unavailable instead of hanging or panicking.
func TestCloseIsIdempotent(t *testing.T) {
	b := open(t, bus.Options{})
	b.Close()
	b.Close()
	if err := b.Ping(context.Background()); !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("Ping after Close: %v, want ErrUnavailable", err)
	}
	if _, err := b.Publish(context.Background(), event("c-1")); !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("Publish after Close: %v, want ErrUnavailable", err)
	}
}

// External mode: a second bus connects to the first's client URL, finds
// (and keeps) the same streams, and what it publishes is stored there.
func TestExternalURLUsesTheClustersStreams(t *testing.T) {
	hub := open(t, bus.Options{Listen: "127.0.0.1:-1", DedupeWindow: time.Minute}) // -1: any free port
	url := hub.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("ClientURL = %q", url)
	}
	interested(t, hub)
	edge := open(t, bus.Options{URL: url, MaxStore: 64 << 20, DedupeWindow: time.Minute})
	if edge.Embedded() || edge.ClientURL() != url {
		t.Fatalf("edge: embedded %v, url %q", edge.Embedded(), edge.ClientURL())
	}
	for i, err := range edge.PublishAll(context.Background(), []bus.Msg{event("x-1"), event("x-2")}) {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if n := streamInfo(t, hub, bus.StreamEvents).State.Msgs; n != 2 {
		t.Fatalf("the hub's EVENTS holds %d messages, want 2", n)
	}
	// The edge going away leaves the hub's streams alone.
	edge.Close()
	if err := hub.Ping(context.Background()); err != nil {
		t.Fatalf("hub after the edge closed: %v", err)
	}
}

// A bad listen address or an unreachable URL is an error naming it.
func TestOpenErrorsNameTheProblem(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		o    bus.Options
		want string
	}{
		{bus.Options{Listen: "no-port", StoreDir: t.TempDir(), Logger: quiet}, `listen "no-port"`},
		{bus.Options{Listen: "127.0.0.1:http", StoreDir: t.TempDir(), Logger: quiet}, "bad port"},
		{bus.Options{URL: "nats://127.0.0.1:1", Logger: quiet}, "connect"},
	} {
		b, err := bus.Open(ctx, c.o)
		if err == nil {
			b.Close()
			t.Errorf("%+v: no error", c.o)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v does not say %q", c.o, err, c.want)
		}
	}
}

// A full stream refuses new messages (the publisher answers 503) and
// keeps every message it accepted: nothing accepted is evicted.
func TestFullStreamRefusesNewAndKeepsOld(t *testing.T) {
	b := open(t, bus.Options{MaxStore: 1 << 20}) // streams get half: 512 KB
	interested(t, b)
	body := []byte(`{"pad":"` + strings.Repeat("x", 4000) + `"}`)
	var refused error
	accepted := 0
	for i := 0; i < 300 && refused == nil; i++ {
		if _, refused = b.Publish(context.Background(), bus.Msg{Subject: "omni.events.test.track", ID: fmt.Sprintf("f-%d", i), Data: body}); refused == nil {
			accepted++
		}
	}
	if !errors.Is(refused, bus.ErrUnavailable) {
		t.Fatalf("after %d messages of 4 KB: %v, want a refusal as ErrUnavailable", accepted, refused)
	}
	st := streamInfo(t, b, bus.StreamEvents).State
	if st.FirstSeq != 1 || st.Msgs != uint64(accepted) {
		t.Fatalf("stream holds %d messages from sequence %d; want all %d accepted, from 1", st.Msgs, st.FirstSeq, accepted)
	}
}
