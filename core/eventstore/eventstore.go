// Package eventstore runs the durable consumer that copies every event from
// the EVENTS stream into the events collection, in batches, exactly once.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/events"
)

// ConsumerName is the durable JetStream consumer of the events store.
const ConsumerName = "eventstore"

// Processor runs inside the transaction that stores a batch, after the
// events rows are written, so derived state (profiles, traits, segments)
// commits or rolls back together with the events. Only events that were
// new (not duplicates) are passed.
type Processor interface {
	ProcessBatch(tx core.App, batch []*Stored) error
}

// AfterCommit is told about each committed batch (for realtime pushes and
// metrics); it must not block for long.
type AfterCommit func(batch []*Stored)

// Stored is an event with the record id it was stored under.
type Stored struct {
	RecordID string
	Event    *events.Event
	// Profile is set by a Processor that resolves the event to a profile.
	Profile string
}

// Options tune batching.
type Options struct {
	BatchSize int           // max events per transaction (default 1000)
	MaxWait   time.Duration // max time a partial batch waits (default 20ms)
	AckWait   time.Duration // redelivery after a crash (default 10s)
}

// Store is the running consumer.
type Store struct {
	app        core.App
	bus        *bus.Bus
	log        *slog.Logger
	opts       Options
	processors []Processor
	after      []AfterCommit

	consumer jetstream.Consumer
	cc       jetstream.ConsumeContext
	msgs     chan jetstream.Msg
	done     chan struct{}
	stopOnce sync.Once
	stored   uint64
	mu       sync.Mutex
}

// New prepares the consumer; call Start to run it.
func New(app core.App, b *bus.Bus, log *slog.Logger, opts Options) *Store {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 20 * time.Millisecond
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 10 * time.Second
	}
	return &Store{app: app, bus: b, log: log.With("component", "eventstore"), opts: opts}
}

// Use adds a processor that runs in each batch's transaction.
func (s *Store) Use(p Processor) { s.processors = append(s.processors, p) }

// OnCommit adds a callback run after each committed batch.
func (s *Store) OnCommit(f AfterCommit) { s.after = append(s.after, f) }

// EnsureConsumer creates the durable consumer (idempotent). It must exist
// before events are published, as the stream keeps messages by interest.
func EnsureConsumer(ctx context.Context, b *bus.Bus, ackWait time.Duration) (jetstream.Consumer, error) {
	if ackWait <= 0 {
		ackWait = 10 * time.Second
	}
	return b.JS.CreateOrUpdateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "stores events in SQLite",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: 5000,
		MaxDeliver:    -1,
		FilterSubject: bus.EventsSubject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
}

// Start begins consuming.
func (s *Store) Start(ctx context.Context) error {
	cons, err := EnsureConsumer(ctx, s.bus, s.opts.AckWait)
	if err != nil {
		return fmt.Errorf("eventstore: consumer: %w", err)
	}
	s.consumer = cons
	s.msgs = make(chan jetstream.Msg, s.opts.BatchSize*2)
	s.done = make(chan struct{})
	s.cc, err = cons.Consume(func(m jetstream.Msg) { s.msgs <- m },
		jetstream.PullMaxMessages(s.opts.BatchSize),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				s.log.Warn("consume error", "error", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("eventstore: consume: %w", err)
	}
	go s.loop()
	return nil
}

// Stop stops fetching, stores and acknowledges what was already delivered,
// and returns when done (or ctx ends).
func (s *Store) Stop(ctx context.Context) {
	s.stopOnce.Do(func() {
		if s.cc == nil {
			return
		}
		s.cc.Drain()
		select {
		case <-s.cc.Closed():
		case <-ctx.Done():
			// The callback may still deliver; leave the channel open.
			s.log.Warn("drain timed out; unacknowledged events will be redelivered on next start")
			return
		}
		close(s.msgs)
		select {
		case <-s.done:
		case <-ctx.Done():
			s.log.Warn("stop timed out; undelivered events will be redelivered on next start")
		}
	})
}

// Lag reports messages not yet delivered and delivered but not acknowledged.
func (s *Store) Lag(ctx context.Context) (pending uint64, ackPending int, err error) {
	if s.consumer == nil {
		return 0, 0, errors.New("not started")
	}
	info, err := s.consumer.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	return info.NumPending, info.NumAckPending, nil
}

func (s *Store) loop() {
	defer close(s.done)
	batch := make([]jetstream.Msg, 0, s.opts.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		s.flush(batch)
		batch = batch[:0]
	}
	for {
		if len(batch) == 0 {
			m, ok := <-s.msgs
			if !ok {
				return
			}
			batch = append(batch, m)
			timer.Reset(s.opts.MaxWait)
			continue
		}
		select {
		case m, ok := <-s.msgs:
			if !ok {
				flush()
				return
			}
			batch = append(batch, m)
			if len(batch) >= s.opts.BatchSize {
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

// flush writes a batch in one transaction and acks it only after commit.
// On a database error nothing is acked and the batch is retried.
func (s *Store) flush(msgs []jetstream.Msg) {
	var good []jetstream.Msg
	evs := make([]*events.Event, 0, len(msgs))
	for _, m := range msgs {
		ev, err := events.Unmarshal(m.Data())
		if err != nil {
			// Never valid: park it rather than retry forever.
			s.log.Error("undecodable event on bus; terminating it", "subject", m.Subject(), "error", err)
			_ = m.Term()
			continue
		}
		good = append(good, m)
		evs = append(evs, ev)
	}
	for attempt := 0; ; attempt++ {
		stored, err := s.write(evs)
		if err == nil {
			for _, m := range good {
				_ = m.Ack()
			}
			for _, f := range s.after {
				f(stored)
			}
			return
		}
		delay := time.Duration(1<<min(attempt, 6)) * 100 * time.Millisecond
		s.log.Error("storing events failed; retrying", "events", len(evs), "attempt", attempt+1, "retry_in", delay, "error", err)
		for _, m := range good {
			_ = m.InProgress()
		}
		time.Sleep(delay)
	}
}

const insertSQL = `INSERT INTO events (id, event_id, type, name, source, channel, occurred_at, received_at, identities, properties, context, profile, created)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?)
ON CONFLICT(event_id) DO NOTHING`

func (s *Store) write(evs []*events.Event) ([]*Stored, error) {
	return writeBatch(s.app, evs, s.processors)
}

// WriteBatch stores events in one transaction and returns the new ones
// (duplicates of stored event ids are skipped).
func WriteBatch(app core.App, evs []*events.Event) ([]*Stored, error) {
	return writeBatch(app, evs, nil)
}

// Executor returns the raw SQL executor of a (transaction) app. Hot paths
// use its prepared statements directly: dbx's named-parameter parsing and
// query hooks cost more than SQLite's own work for small rows.
func Executor(tx core.App) dbx.Executor {
	type executorOf interface{ Executor() dbx.Executor }
	switch db := tx.DB().(type) {
	case *dbx.Tx:
		return db.Builder.(executorOf).Executor()
	case *dbx.DB:
		return db.Builder.(executorOf).Executor()
	case executorOf:
		return db.Executor()
	}
	panic(fmt.Sprintf("eventstore: no SQL executor in %T", tx.DB()))
}

func writeBatch(app core.App, evs []*events.Event, processors []Processor) ([]*Stored, error) {
	var stored []*Stored
	err := app.RunInTransaction(func(tx core.App) error {
		stored = stored[:0]
		stmt, err := Executor(tx).Prepare(insertSQL)
		if err != nil {
			return err
		}
		defer stmt.Close()
		now := types.NowDateTime().String()
		for _, ev := range evs {
			ids, _ := json.Marshal(ev.Identities)
			props := []byte("null")
			if ev.Properties != nil {
				props, _ = json.Marshal(ev.Properties)
			}
			ctxJSON, _ := json.Marshal(ev.Context)
			id := NewRecordID()
			res, err := stmt.Exec(id, ev.ID, ev.Type, ev.Name, ev.Source, ev.Context.Channel,
				FormatTime(ev.OccurredAt), FormatTime(ev.ReceivedAt), string(ids), string(props), string(ctxJSON), now)
			if err != nil {
				return fmt.Errorf("insert event %s: %w", ev.ID, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				stored = append(stored, &Stored{RecordID: id, Event: ev})
			}
		}
		for _, p := range processors {
			if err := p.ProcessBatch(tx, stored); err != nil {
				return err
			}
		}
		return nil
	})
	return stored, err
}

// NewRecordID returns a PocketBase-shaped record id (15 chars of [a-z0-9])
// that starts with the time in milliseconds, so inserts append to the id
// index instead of splitting pages at random, then 7 random characters.
func NewRecordID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [15]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 7; i >= 0; i-- {
		b[i] = alphabet[ms%36]
		ms /= 36
	}
	r := rand.Uint64()
	for i := 8; i < 15; i++ {
		b[i] = alphabet[r%36]
		r /= 36
	}
	return string(b[:])
}

// FormatTime renders a time the way PocketBase stores dates, so stored
// events sort and filter like any other date field.
func FormatTime(t time.Time) string {
	return t.UTC().Format(types.DefaultDateLayout)
}
