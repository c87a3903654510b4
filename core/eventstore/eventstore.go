// Package eventstore runs the durable consumer that copies every event from
// the EVENTS stream into the events collection, in batches, exactly once.
package eventstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/deadletter"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/store"
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

// BeforeInsert is implemented by a Processor that also works on the batch
// before its rows are written (profiles: resolve identities), so each row
// is inserted once with its Stored.Profile instead of inserted and then
// updated. The batch holds only events not stored before. Its
// ProcessBatch still runs after the rows are written.
type BeforeInsert interface {
	BeforeInsert(tx core.App, batch []*Stored) error
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
	// Omit is set by a BeforeInsert processor for an event that is not
	// kept (profiles: an erasure notice, or an event whose every identity
	// was erased): its row is not written, and the processors still see it.
	Omit bool
	// Identities, when a BeforeInsert processor sets them, are what the
	// row stores instead of the event's own (profiles: erased identities
	// scrubbed); the event is left as it came. Nothing writes a batch's
	// rows after they are inserted.
	Identities events.Identities
}

// Options tune batching and retries; zero values get the defaults given.
type Options struct {
	BatchSize int           // max events per transaction (default 1000)
	MaxWait   time.Duration // max time a partial batch waits (default 20ms)
	AckWait   time.Duration // redelivery after a crash (default 10s)
	// EventAttempts is how often one event is tried on its own, after its
	// batch failed, before it is parked as dead (default 3).
	EventAttempts int
	// RetryBackoff is the first pause between attempts; it doubles up to
	// 30 s while the database itself refuses writes (default 100ms).
	RetryBackoff time.Duration
	// RedriveEvery is how often dead events marked for a retry (by the CLI,
	// the admin or the API, possibly in another process) are looked for
	// (default 2s).
	RedriveEvery time.Duration
	// Busy reports that tracking calls are being answered (nil: never).
	// While it does, a batch is held until its oldest event was published
	// HoldWhileBusy ago: a burst is acknowledged with both cores and
	// stored right after, and under load that never pauses (the backlog
	// already older than that) nothing is held at all.
	Busy          func() bool
	HoldWhileBusy time.Duration
}

// pullBytes bounds the messages the client holds for the loop beyond
// its channel: four of the largest batch messages, so that a pull (asking
// for what half an empty buffer lacks) always has room for one.
const pullBytes = 4 << 20

// holdPoll is how often a held batch looks whether it may go.
const holdPoll = 5 * time.Millisecond

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
	msgs     chan delivery
	done     chan struct{}
	// stopping ends retry pauses at Stop: an event still failing then is
	// left unacknowledged and redelivered at the next start.
	stopping context.Context
	stop     context.CancelFunc
	stopOnce sync.Once
	// progress is when the consumer last moved (acked or parked a message,
	// or picked up work after being idle), in Unix nanoseconds.
	progress atomic.Int64
}

// delivery is a message as the loop gets it: already decoded, on the
// client's delivery goroutine, so decoding the next batch overlaps the
// SQLite write of the one before (decoding is a quarter of the loop's
// work when it runs inline).
type delivery struct {
	msg  jetstream.Msg
	ev   *events.Event
	err  error  // why data does not decode; ev is nil then
	data []byte // the event's own encoded bytes (a line of a batch message)
	// part is set for an event of a batch message (bus.EventCountHeader):
	// the message is acknowledged once each of its events is.
	part *batchMsg
	line int // the event's place in its batch message, from 0
}

// batchMsg counts the events of one batch message not yet stored or
// parked. Only the loop's goroutine touches it.
type batchMsg struct{ left int }

// decode splits a message into its events, decoded.
func decode(m jetstream.Msg) []delivery {
	if m.Headers().Get(bus.EventCountHeader) == "" {
		ev, err := events.Unmarshal(m.Data())
		return []delivery{{msg: m, ev: ev, err: err, data: m.Data()}}
	}
	lines := bus.SplitEvents(m.Headers(), m.Data())
	if len(lines) == 0 {
		return []delivery{{msg: m, err: errors.New("a batch message with no events"), data: m.Data()}}
	}
	part := &batchMsg{left: len(lines)}
	out := make([]delivery, len(lines))
	for i, line := range lines {
		ev, err := events.Unmarshal(line)
		out[i] = delivery{msg: m, ev: ev, err: err, data: line, part: part, line: i}
	}
	return out
}

// ack acknowledges d's message, or for an event of a batch message counts
// it done and acknowledges the message with its last event.
func (d delivery) ack() {
	if d.part != nil {
		if d.part.left--; d.part.left > 0 {
			return
		}
	}
	_ = d.msg.Ack()
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
	if opts.EventAttempts <= 0 {
		opts.EventAttempts = 3
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 100 * time.Millisecond
	}
	if opts.RedriveEvery <= 0 {
		opts.RedriveEvery = 2 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Store{app: app, bus: b, log: log.With("component", "eventstore"), opts: opts, stopping: ctx, stop: cancel}
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

// Create makes sure the durable consumer exists, once; Start calls it
// when it has not run (the app runs it before anything publishes).
func (s *Store) Create(ctx context.Context) error {
	if s.consumer != nil {
		return nil
	}
	cons, err := EnsureConsumer(ctx, s.bus, s.opts.AckWait)
	if err != nil {
		return fmt.Errorf("eventstore: consumer: %w", err)
	}
	s.consumer = cons
	return nil
}

// Start begins consuming.
func (s *Store) Start(ctx context.Context) error {
	if err := s.Create(ctx); err != nil {
		return err
	}
	s.msgs = make(chan delivery, s.opts.BatchSize*2)
	s.done = make(chan struct{})
	s.moved()
	var err error
	s.cc, err = bus.ConsumeBytes(s.consumer, func(m jetstream.Msg) {
		for _, d := range decode(m) {
			s.msgs <- d
		}
	}, pullBytes, func(err error) { s.log.Warn("consume error", "error", err) })
	if err != nil {
		return fmt.Errorf("eventstore: consume: %w", err)
	}
	go s.loop()
	return nil
}

// Stop stops fetching, stores and acknowledges what was already delivered,
// and returns when done (or ctx ends). Retries stop waiting: an event that
// still fails is redelivered at the next start.
func (s *Store) Stop(ctx context.Context) {
	s.stopOnce.Do(func() {
		s.stop()
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

// LastProgress is when the consumer last stored or parked an event, or
// picked up work after being idle. Health reports a consumer that has
// messages waiting and no progress for long as stalled.
func (s *Store) LastProgress() time.Time { return time.Unix(0, s.progress.Load()) }

func (s *Store) moved() { s.progress.Store(time.Now().UnixNano()) }

func (s *Store) loop() {
	defer close(s.done)
	batch := make([]delivery, 0, s.opts.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	redrive := time.NewTicker(s.opts.RedriveEvery)
	defer redrive.Stop()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		s.flush(batch)
		batch = batch[:0]
	}
	// A batch that is due goes unless tracking calls hold it (held); then
	// it looks again in holdPoll.
	due := func() {
		if s.held(batch) {
			timer.Reset(holdPoll)
		} else {
			flush()
		}
	}
	for {
		if len(batch) == 0 {
			select {
			case m, ok := <-s.msgs:
				if !ok {
					return
				}
				s.moved() // idle until now: the stall clock starts here
				batch = append(batch, m)
				if len(batch) >= s.opts.BatchSize {
					flush() // already full (BatchSize 1): do not wait MaxWait
					continue
				}
				timer.Reset(s.opts.MaxWait)
			case <-redrive.C:
				s.redrive()
			}
			continue
		}
		// A full batch that is held takes nothing more until it goes.
		msgs := s.msgs
		if len(batch) >= s.opts.BatchSize {
			msgs = nil
		}
		select {
		case m, ok := <-msgs:
			if !ok {
				flush()
				return
			}
			batch = append(batch, m)
			if len(batch) >= s.opts.BatchSize {
				due()
			}
		case <-timer.C:
			due()
		}
	}
}

// held reports whether batch waits for the tracking calls being answered
// (Options.Busy): not once its oldest event is HoldWhileBusy old, nor
// while stopping.
func (s *Store) held(batch []delivery) bool {
	if s.opts.Busy == nil || s.opts.HoldWhileBusy <= 0 || s.stopping.Err() != nil || !s.opts.Busy() {
		return false
	}
	meta, err := batch[0].msg.Metadata()
	if err != nil {
		return false
	}
	return time.Since(meta.Timestamp) < s.opts.HoldWhileBusy
}

// flush writes a batch in one transaction and acks it only after commit.
// When the batch fails, its events are tried one by one, so one bad event
// cannot hold back the others: each event that keeps failing while the
// database takes other writes is parked in events_dead and acked.
func (s *Store) flush(batch []delivery) {
	good := make([]delivery, 0, len(batch))
	evs := make([]*events.Event, 0, len(batch))
	for _, d := range batch {
		if d.err != nil {
			// Never valid, whatever the retries: park it at once.
			s.log.Error("undecodable event on bus; parking it", "subject", d.msg.Subject(), "error", d.err)
			if s.park(d, fmt.Errorf("decode: %w", d.err), 1) {
				d.ack()
			}
			continue
		}
		good = append(good, d)
		evs = append(evs, d.ev)
	}
	if len(evs) == 0 {
		return
	}
	stored, err := s.write(evs)
	if err == nil {
		s.acked(good, stored)
		return
	}
	s.log.Warn("storing a batch failed; retrying its events one by one", "events", len(evs), "error", err)

	// Keep the unacknowledged rest from being redelivered while we work.
	lastTouch := time.Now()
	touch := func(rest []delivery) {
		if time.Since(lastTouch) > s.opts.AckWait/4 {
			var last jetstream.Msg
			for _, d := range rest {
				if d.msg != last { // a batch message's events share it
					_ = d.msg.InProgress()
					last = d.msg
				}
			}
			lastTouch = time.Now()
		}
	}
	for i := range good {
		if !s.storeOne(good[i], func() { touch(good[i:]) }) {
			return // shutting down: the rest is redelivered at the next start
		}
	}
}

// storeOne writes one event on its own, retrying it; an event that still
// fails is parked. It reports false only when shutdown interrupted it
// (the message is then left unacknowledged).
func (s *Store) storeOne(d delivery, touch func()) bool {
	pause := s.opts.RetryBackoff
	for attempts := 1; ; attempts++ {
		stored, err := s.write([]*events.Event{d.ev})
		if err == nil {
			s.acked([]delivery{d}, stored)
			return true
		}
		if attempts >= s.opts.EventAttempts {
			// Parking is itself a write: if it succeeds, the database takes
			// writes and this event is what fails, so it is set aside. If
			// it fails, the database is the problem: keep the event and
			// keep trying with longer pauses.
			if s.park(d, err, attempts) {
				s.log.Error("event parked as dead", "event_id", d.ev.ID, "type", d.ev.Type, "attempts", attempts, "error", err)
				d.ack()
				s.moved()
				return true
			}
			attempts = 0
		}
		touch()
		if !s.pause(pause) {
			return false
		}
		pause = min(pause*2, 30*time.Second)
	}
}

// park stores d's event in events_dead and reports whether it did: its
// own bytes (a batch message's line), which a retry decodes as one event.
// A message that could not be parked stays unacknowledged (redelivered
// after AckWait).
func (s *Store) park(d delivery, cause error, attempts int) bool {
	f := deadletter.Failure{Consumer: ConsumerName, Subject: d.msg.Subject(), Data: d.data, Err: cause, Attempts: attempts}
	switch {
	case d.ev != nil:
		f.EventID, f.Type = d.ev.ID, d.ev.Type
	case d.part != nil:
		f.EventID = fmt.Sprintf("%s/%d", deadletter.MessageID(d.msg), d.line+1)
	default:
		f.EventID = deadletter.MessageID(d.msg)
	}
	err := deadletter.Park(s.app, f)
	if err == nil {
		return true
	}
	s.log.Error("parking an event failed", "event_id", f.EventID, "error", err)
	return false
}

// acked acknowledges stored events' messages and tells the commit
// callbacks.
func (s *Store) acked(ds []delivery, stored []*Stored) {
	for _, d := range ds {
		d.ack()
	}
	s.moved()
	for _, f := range s.after {
		f(stored)
	}
}

// pause waits d, or less when Stop is called; it reports false then.
func (s *Store) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stopping.Done():
		return false
	}
}

// redrive re-runs dead events an owner asked to retry. It runs on the
// consumer's goroutine, between batches, so the one-writer rule holds.
func (s *Store) redrive() {
	if s.stopping.Err() != nil {
		return // stopping: the database may be closing
	}
	rows, err := deadletter.Requested(s.app, ConsumerName, 100)
	if err != nil {
		s.log.Error("reading dead events to retry", "error", err)
		return
	}
	for _, row := range rows {
		if s.stopping.Err() != nil {
			return
		}
		ev, err := events.Unmarshal([]byte(row.Data))
		if err != nil {
			_ = deadletter.RetryFailed(s.app, row.ID, fmt.Errorf("decode: %w", err))
			continue
		}
		stored, err := s.write([]*events.Event{ev})
		if err != nil {
			s.log.Warn("dead event failed again", "event_id", row.EventID, "error", err)
			if err := deadletter.RetryFailed(s.app, row.ID, err); err != nil {
				s.log.Error("recording a failed retry", "event_id", row.EventID, "error", err)
			}
			continue
		}
		// Stored (or already stored by an earlier retry cut short before
		// this delete): either way it is no longer dead.
		if err := deadletter.Resolve(s.app, row.ID); err != nil {
			s.log.Error("clearing a retried dead event", "event_id", row.EventID, "error", err)
		}
		s.log.Info("dead event stored on retry", "event_id", row.EventID)
		s.moved()
		for _, f := range s.after {
			f(stored)
		}
	}
}

// insertColumns are the events columns the writer fills, in order.
const insertColumns = 13

// insertRows is how many events one INSERT statement writes: each Exec
// through database/sql pays the driver's bind/step/reset round and
// result, so full chunks share one. Not more: the driver finds each
// parameter's argument by scanning the arguments from the start, so its
// bind grows with the square of the parameters (13 a row); at 16 rows
// that scan took from 3 % to 29 % of the insert's CPU depending on where
// the arguments landed in memory (docs/benchmarks.md, twentieth round).
const insertRows = 8

// insertSQL is the INSERT of rows events; a conflicting event id is
// skipped (the first of repeats within one statement is kept). OR IGNORE
// rather than ON CONFLICT(event_id) DO NOTHING: a multi-row statement
// that may abort halfway makes SQLite keep a statement journal (a copy of
// every page it changes, 15 % of the insert's CPU); IGNORE never aborts.
// It would also skip a row failing another constraint (a record id
// collision): insert checks that every skipped row's event id is stored.
func insertSQL(rows int) string {
	var b strings.Builder
	b.WriteString("INSERT OR IGNORE INTO events (id, event_id, type, name, source, channel, occurred_at, received_at, identities, properties, context, profile, created) VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?)")
	}
	return b.String()
}

var insertFull = insertSQL(insertRows)

func (s *Store) write(evs []*events.Event) ([]*Stored, error) {
	return writeBatch(s.app, evs, s.processors)
}

// WriteBatch stores events in one transaction, through processors as the
// consumer does, and returns the new ones (duplicates of stored event ids
// are skipped).
func WriteBatch(app core.App, evs []*events.Event, processors ...Processor) ([]*Stored, error) {
	return writeBatch(app, evs, processors)
}

func writeBatch(app core.App, evs []*events.Event, processors []Processor) ([]*Stored, error) {
	var before []BeforeInsert
	for _, p := range processors {
		if b, ok := p.(BeforeInsert); ok {
			before = append(before, b)
		}
	}
	var stored []*Stored
	err := app.RunInTransaction(func(tx core.App) error {
		stored = stored[:0]
		ins := inserter{exec: store.Executor(tx), now: types.NowDateTime().String()}
		defer ins.close()
		if len(before) == 0 {
			// Nothing to do before the rows: the insert itself skips
			// duplicates.
			all := make([]*Stored, len(evs))
			for i, ev := range evs {
				all[i] = &Stored{RecordID: store.NewRecordID(), Event: ev}
			}
			var err error
			if stored, err = ins.insert(tx, all, false); err != nil {
				return err
			}
		} else {
			fresh, err := notStored(tx, evs)
			if err != nil {
				return err
			}
			for _, ev := range fresh {
				stored = append(stored, &Stored{RecordID: store.NewRecordID(), Event: ev})
			}
			for _, b := range before {
				if err := b.BeforeInsert(tx, stored); err != nil {
					return err
				}
			}
			if _, err := ins.insert(tx, written(stored), true); err != nil {
				return err
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

// inserter writes events rows in multi-row INSERTs, the full-chunk
// statement prepared once per transaction.
type inserter struct {
	exec dbx.Executor
	now  string
	full *sql.Stmt
	args []any
	buf  []byte
}

func (in *inserter) close() {
	if in.full != nil {
		in.full.Close()
	}
}

// insert writes rows and returns those that were new. With allNew (the
// rows were checked by notStored under this transaction's write lock) a
// skipped row is an error: work done before the insert would be void.
func (in *inserter) insert(tx core.App, rows []*Stored, allNew bool) ([]*Stored, error) {
	var stored []*Stored
	if !allNew {
		stored = make([]*Stored, 0, len(rows))
	}
	for start := 0; start < len(rows); start += insertRows {
		chunk := rows[start:min(start+insertRows, len(rows))]
		n, err := in.exec1(chunk)
		if err != nil {
			if len(chunk) == 1 {
				return nil, fmt.Errorf("insert event %s: %w", chunk[0].Event.ID, err)
			}
			return nil, fmt.Errorf("insert events: %w", err)
		}
		switch {
		case n == len(chunk):
			if !allNew {
				stored = append(stored, chunk...)
			}
		case allNew:
			// Cannot happen while this transaction holds the write lock.
			return nil, fmt.Errorf("insert events: %d of %d stored meanwhile", len(chunk)-n, len(chunk))
		default:
			// Some were duplicates: the new ones are the rows under the
			// record ids just made.
			kept, err := newRows(tx, chunk)
			if err != nil {
				return nil, err
			}
			stored = append(stored, kept...)
		}
	}
	return stored, nil
}

// written returns the rows the BeforeInsert processors left to write: all
// of them unless some are omitted (a copy then, so the batch the
// processors see keeps every event).
func written(rows []*Stored) []*Stored {
	omitted := func(s *Stored) bool { return s.Omit }
	if !slices.ContainsFunc(rows, omitted) {
		return rows
	}
	return slices.DeleteFunc(slices.Clone(rows), omitted)
}

// exec1 inserts one chunk (at most insertRows) and returns the rows added.
func (in *inserter) exec1(chunk []*Stored) (int, error) {
	args := in.args[:0]
	buf := in.buf[:0]
	for _, s := range chunk {
		ev := s.Event
		if s.Identities != nil {
			scrubbed := *ev
			scrubbed.Identities = s.Identities
			ev = &scrubbed
		}
		var idsEnd, propsEnd int
		from := len(buf)
		buf, idsEnd, propsEnd = ev.ColumnsJSON(buf)
		cols := buf[from:]
		idsEnd, propsEnd = idsEnd-from, propsEnd-from
		args = append(args, s.RecordID, ev.ID, ev.Type, ev.Name, ev.Source, ev.Context.Channel,
			store.FormatTime(ev.OccurredAt), store.FormatTime(ev.ReceivedAt),
			string(cols[:idsEnd]), string(cols[idsEnd:propsEnd]), string(cols[propsEnd:]), s.Profile, in.now)
	}
	in.args, in.buf = args, buf
	var res sql.Result
	var err error
	if len(chunk) == insertRows {
		if in.full == nil {
			if in.full, err = in.exec.Prepare(insertFull); err != nil {
				return 0, err
			}
		}
		res, err = in.full.Exec(args...)
	} else {
		res, err = in.exec.Exec(insertSQL(len(chunk)), args...)
	}
	clear(args) // let the chunk's strings go
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// newRows returns the rows of chunk stored under their record id, after
// checking that each other one was skipped as a duplicate of a stored
// event id (and not for another constraint).
func newRows(tx core.App, chunk []*Stored) ([]*Stored, error) {
	ids := make([]string, len(chunk))
	for i, s := range chunk {
		ids[i] = s.RecordID
	}
	have, err := existing(tx, "SELECT id FROM events WHERE id IN ", ids)
	if err != nil {
		return nil, fmt.Errorf("look up inserted events: %w", err)
	}
	var out []*Stored
	var skipped []string
	for _, s := range chunk {
		if have[s.RecordID] {
			out = append(out, s)
		} else {
			skipped = append(skipped, s.Event.ID)
		}
	}
	stored, err := existing(tx, "SELECT event_id FROM events WHERE event_id IN ", skipped)
	if err != nil {
		return nil, fmt.Errorf("look up skipped events: %w", err)
	}
	for _, id := range skipped {
		if !stored[id] {
			return nil, fmt.Errorf("insert event %s: row not written", id)
		}
	}
	return out, nil
}

// notStored drops events whose id is already stored, and repeats of an id
// within evs (the first is kept), as the insert's ON CONFLICT would. It
// binds positional parameters on the raw executor: dbx's named-parameter
// parsing of a 500-id list cost more than SQLite's look-up.
func notStored(tx core.App, evs []*events.Event) ([]*events.Event, error) {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	seen, err := existing(tx, "SELECT event_id FROM events WHERE event_id IN ", ids)
	if err != nil {
		return nil, fmt.Errorf("look up stored event ids: %w", err)
	}
	out := make([]*events.Event, 0, len(evs))
	for _, ev := range evs {
		if !seen[ev.ID] {
			seen[ev.ID] = true
			out = append(out, ev)
		}
	}
	return out, nil
}

// existing runs query (ending in "IN ") over values (store.InList) and
// returns the set of strings it selects.
func existing(tx core.App, query string, values []string) (map[string]bool, error) {
	found := make(map[string]bool, len(values))
	in, args := store.InList(values)
	rows, err := store.Executor(tx).Query(query+in, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		found[v] = true
	}
	return found, rows.Err()
}
