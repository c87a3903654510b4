// Package bus owns Omni's event bus: an embedded NATS server with JetStream
// (or a connection to an external NATS cluster), the stream definitions and
// publishing with dedupe ids.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream and subject names.
const (
	StreamEvents  = "EVENTS"
	StreamOutbox  = "OUTBOX"
	EventsSubject = eventsPrefix + ">"
	OutboxSubject = "omni.outbox.>"
	// StreamMessaging holds send requests for the messaging gate
	// (core/outbox.RequestSend): small, so it takes a sixteenth of the store.
	StreamMessaging  = "MESSAGING"
	MessagingSubject = "omni.messaging.>"
	// StreamWebhooks holds vendor webhooks a front end took for the
	// writer's connectors (core/webhooks): a sixteenth of the store too.
	StreamWebhooks  = "WEBHOOKS"
	WebhooksSubject = "omni.webhooks.>"
)

// EventsDedupeWindow caps the EVENTS stream's dedupe window, which only
// messages published by other tools with a Nats-Msg-Id use: Omni's own
// carry their id as EventIDHeader.
const EventsDedupeWindow = 30 * time.Second

// EventIDHeader carries the id of a message on EVENTS, in place of
// Nats-Msg-Id. SQLite drops a repeated event id forever (a unique index,
// checked before any processor runs), so JetStream's dedupe only saved
// storing a quick retry twice, and it keeps every id of its window in the
// heap: about 250 bytes each, 25 MB after a burst of 100k events, a tenth
// of the memory a serving Omni may use at saturation and live data the
// collector marks in every cycle. The other streams keep Nats-Msg-Id: a
// repeat there is a second send.
const EventIDHeader = "Omni-Event-Id"

// eventsPrefix starts every subject of EVENTS (EventsSubject).
const eventsPrefix = "omni.events."

// Options configures Open.
type Options struct {
	// URL of an external NATS cluster; empty runs an embedded server.
	URL         string
	Credentials string
	// Listen opens a TCP port on the embedded server (empty: in-process only).
	Listen       string
	StoreDir     string
	MaxStore     int64
	MaxMemory    int64
	DedupeWindow time.Duration
	MaxAge       time.Duration
	// Strict fsyncs before a publish returns: PublishAll and Publish
	// wait for a group-committed fsync of the streams after their acks
	// (groupsync.go). With an external cluster the cluster's own
	// sync settings and replicas decide.
	Strict bool
	// Replicas is how many servers of an external cluster keep each
	// stream; 0 means 1. EnsureStreams raises (or lowers) existing streams.
	Replicas int
	Logger   *slog.Logger
}

// Bus is a connected JetStream.
type Bus struct {
	opts     Options
	server   *server.Server // nil when external
	Conn     *nats.Conn
	JS       jetstream.JetStream
	embedded bool
	sync     *groupSync // nil unless Strict and embedded
}

// Open starts (or connects to) NATS and makes sure the streams exist.
func Open(ctx context.Context, o Options) (*Bus, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	b := &Bus{opts: o}
	var err error
	if o.URL == "" {
		if err := b.startEmbedded(); err != nil {
			return nil, err
		}
		b.Conn, err = nats.Connect("", nats.InProcessServer(b.server), nats.Name("omni"))
	} else {
		copts := []nats.Option{nats.Name("omni"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false)}
		if o.Credentials != "" {
			copts = append(copts, nats.UserCredentials(o.Credentials))
		}
		b.Conn, err = nats.Connect(o.URL, copts...)
	}
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("bus: connect: %w", err)
	}
	b.JS, err = jetstream.New(b.Conn, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	if err := b.EnsureStreams(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Bus) startEmbedded() error {
	o := b.opts
	sopts := &server.Options{
		ServerName: "omni",
		JetStream:  true,
		StoreDir:   o.StoreDir,
		// The streams reserve MaxStore between them; the writer lease
		// and the sources bucket (core/topology) need a little more.
		JetStreamMaxStore:  o.MaxStore + 32<<20,
		JetStreamMaxMemory: o.MaxMemory,
		NoSigs:             true, // Omni owns signal handling and shutdown order
		DontListen:         o.Listen == "",
	}
	if o.Strict {
		// Publishes fsync by group commit (groupsync.go); what else the
		// server writes (consumer state) is synced at least every second
		// rather than every two minutes.
		sopts.SyncInterval = time.Second
	}
	if o.Listen != "" {
		host, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return fmt.Errorf("bus: listen %q: %w", o.Listen, err)
		}
		sopts.Host = host
		sopts.Port, err = strconv.Atoi(port)
		if err != nil {
			return fmt.Errorf("bus: listen %q: bad port", o.Listen)
		}
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return fmt.Errorf("bus: embedded NATS: %w", err)
	}
	ns.SetLoggerV2(&natsLogger{l: o.Logger.With("component", "nats")}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return errors.New("bus: embedded NATS did not become ready in 10s")
	}
	b.server = ns
	b.embedded = true
	if o.Strict {
		b.sync = newGroupSync(ns.StoreDir(), []string{StreamEvents, StreamOutbox, StreamMessaging})
	}
	return nil
}

// EnsureStreams creates or updates the EVENTS, OUTBOX and MESSAGING streams.
//
// Retention is by interest: a message is kept until every durable consumer
// (events store, profiles, journeys, …) has acknowledged it, and new
// messages are refused (the publisher sees an error and answers 503) rather
// than unconsumed ones dropped when the stream is full.
func (b *Bus) EnsureStreams(ctx context.Context) error {
	storage := jetstream.FileStorage
	for _, sc := range []jetstream.StreamConfig{
		{Name: StreamEvents, Subjects: []string{EventsSubject}, Description: "every inbound event, unified model"},
		{Name: StreamOutbox, Subjects: []string{OutboxSubject}, Description: "outbound messages to connectors"},
		{Name: StreamMessaging, Subjects: []string{MessagingSubject}, Description: "send requests to the messaging gate"},
		{Name: StreamWebhooks, Subjects: []string{WebhooksSubject}, Description: "vendor webhooks taken by front ends, for the writer's connectors"},
	} {
		sc.Storage = storage
		sc.Retention = jetstream.InterestPolicy
		sc.Discard = jetstream.DiscardNew
		// Each stream reserves its share of the store: a stream without
		// a limit could not be created once the others reserved it all.
		switch sc.Name {
		case StreamEvents:
			sc.MaxBytes = b.opts.MaxStore / 2
		case StreamOutbox:
			sc.MaxBytes = b.opts.MaxStore/2 - 2*(b.opts.MaxStore/16)
		default:
			sc.MaxBytes = b.opts.MaxStore / 16
		}
		sc.MaxAge = b.opts.MaxAge
		sc.Duplicates = b.opts.DedupeWindow
		if sc.Name == StreamEvents {
			sc.Duplicates = min(sc.Duplicates, EventsDedupeWindow)
		}
		sc.Replicas = b.Replicas()
		if _, err := b.JS.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("bus: stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// Replicas is how many servers keep each stream (and Omni's buckets).
func (b *Bus) Replicas() int {
	if b.opts.Replicas < 1 || b.embedded {
		return 1
	}
	return b.opts.Replicas
}

// Embedded reports whether NATS runs inside this process.
func (b *Bus) Embedded() bool { return b.embedded }

// ClientURL is the TCP URL of the embedded server, when it listens.
func (b *Bus) ClientURL() string {
	if b.server != nil && b.opts.Listen != "" {
		return b.server.ClientURL()
	}
	return b.opts.URL
}

// Msg is one message to publish with its id (the dedupe id, but on
// EVENTS: see EventIDHeader) and optional headers.
type Msg struct {
	Subject string
	Data    []byte
	ID      string
	Header  nats.Header
}

// natsMsg carries the id as Nats-Msg-Id, which JetStream dedupes on, or
// on EVENTS as EventIDHeader, which it does not.
func (m Msg) natsMsg() *nats.Msg {
	h := make(nats.Header, len(m.Header)+1)
	for k, v := range m.Header {
		h[k] = v
	}
	if strings.HasPrefix(m.Subject, eventsPrefix) {
		delete(h, nats.MsgIdHdr)
		if m.ID != "" { // a batch (EventCountHeader) has none of its own
			h[EventIDHeader] = []string{m.ID} // the canonical key already
		}
	} else {
		h[nats.MsgIdHdr] = []string{m.ID}
	}
	return &nats.Msg{Subject: m.Subject, Data: m.Data, Header: h}
}

// ErrUnavailable wraps failures to store on the bus: callers answer 503.
var ErrUnavailable = errors.New("event bus unavailable")

// PublishAll publishes msgs asynchronously and waits until JetStream has
// stored every one (or ctx ends): all are in flight at once and the acks
// are awaited together. In strict mode it then waits for the group fsync.
// It returns one error per message (nil when stored, including when
// dropped as a duplicate).
func (b *Bus) PublishAll(ctx context.Context, msgs []Msg) []error {
	errs := make([]error, len(msgs))
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := b.JS.PublishMsgAsync(m.natsMsg())
		if err != nil {
			errs[i] = fmt.Errorf("%w: %v", ErrUnavailable, err)
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs[i] = fmt.Errorf("%w: %v", ErrUnavailable, err)
		case <-ctx.Done():
			errs[i] = fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		}
	}
	if b.sync != nil {
		if err := b.sync.wait(ctx); err != nil {
			for i := range errs {
				if errs[i] == nil {
					errs[i] = err
				}
			}
		}
	}
	return errs
}

// SyncRounds is how many group fsyncs strict mode has run (0 otherwise).
func (b *Bus) SyncRounds() uint64 {
	if b.sync == nil {
		return 0
	}
	return b.sync.rounds.Load()
}

// Publish stores one message and waits for JetStream's ack.
func (b *Bus) Publish(ctx context.Context, m Msg) (*jetstream.PubAck, error) {
	ack, err := b.JS.PublishMsg(ctx, m.natsMsg())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if b.sync != nil {
		if err := b.sync.wait(ctx); err != nil {
			return nil, err
		}
	}
	return ack, nil
}

// Ping checks that the bus answers.
func (b *Bus) Ping(ctx context.Context) error {
	if b.Conn == nil || !b.Conn.IsConnected() {
		return fmt.Errorf("%w: not connected", ErrUnavailable)
	}
	if _, err := b.JS.AccountInfo(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Close drains the connection and stops the embedded server.
func (b *Bus) Close() {
	if b.Conn != nil {
		_ = b.Conn.Flush()
		_ = b.Conn.Drain()
		// Drain is asynchronous; wait until the connection is closed.
		for i := 0; i < 100 && !b.Conn.IsClosed(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.shutdownServer()
}

func (b *Bus) shutdownServer() {
	if b.sync != nil {
		b.sync.close()
	}
	if b.server != nil {
		b.server.Shutdown()
		b.server.WaitForShutdown()
		b.server = nil
	}
}

// natsLogger routes the embedded server's logs into slog.
type natsLogger struct{ l *slog.Logger }

func (n *natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Tracef(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
