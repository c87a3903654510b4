package eventstore_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/deadletter"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
)

// These tests pin the consumer's retry/park/ack loop on its own: a real
// database and an embedded JetStream, no HTTP and no modules, and small
// Options so retries take milliseconds.

// loop is one consumer under test with what it needs around it.
type loop struct {
	app   core.App
	bus   *bus.Bus
	store *eventstore.Store
	proc  *flaky
	sent  int // messages published, each to end stored or parked
}

// flaky is a processor that fails the batches a test chooses and records
// every batch it was given (by event ids).
type flaky struct {
	mu    sync.Mutex
	calls [][]string
	fail  func(call int, ids []string) error
}

func (f *flaky) ProcessBatch(_ core.App, batch []*eventstore.Stored) error {
	ids := make([]string, len(batch))
	for i, s := range batch {
		ids[i] = s.Event.ID
	}
	f.mu.Lock()
	f.calls = append(f.calls, ids)
	n, fail := len(f.calls), f.fail
	f.mu.Unlock()
	if fail != nil {
		return fail(n, ids)
	}
	return nil
}

func (f *flaky) setFail(fail func(int, []string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
}

// alone counts the calls that held just the event id.
func (f *flaky) alone(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if len(c) == 1 && c[0] == id {
			n++
		}
	}
	return n
}

func (f *flaky) call(i int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i >= len(f.calls) {
		return nil
	}
	return f.calls[i]
}

func (f *flaky) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// failing fails every batch holding one of ids.
func failing(ids ...string) func(int, []string) error {
	return func(_ int, batch []string) error {
		for _, b := range batch {
			for _, id := range ids {
				if b == id {
					return errors.New("cannot process " + id)
				}
			}
		}
		return nil
	}
}

// newLoop opens a database and a bus and creates the durable consumer, so
// events published before start wait for it.
func newLoop(t *testing.T) *loop {
	t.Helper()
	o := openApp(t)
	b, err := bus.Open(context.Background(), bus.Options{StoreDir: t.TempDir(), MaxStore: 64 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if _, err := eventstore.EnsureConsumer(context.Background(), b, time.Minute); err != nil {
		t.Fatal(err)
	}
	return &loop{app: o.PB, bus: b, proc: &flaky{}}
}

// start runs a consumer with small pauses; defaults keep a batch together
// until it is full (BatchSize), so a test controls what one batch holds.
func (l *loop) start(t *testing.T, opts eventstore.Options) {
	t.Helper()
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = 2 * time.Millisecond
	}
	if opts.EventAttempts == 0 {
		opts.EventAttempts = 3
	}
	if opts.AckWait == 0 {
		opts.AckWait = time.Minute // no redelivery during a test unless asked for
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = time.Minute
	}
	if opts.RedriveEvery == 0 {
		opts.RedriveEvery = time.Hour
	}
	l.store = eventstore.New(l.app, l.bus, slog.New(slog.NewTextHandler(io.Discard, nil)), opts)
	l.store.Use(l.proc)
	if err := l.store.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := l.store
	t.Cleanup(func() { s.Stop(context.Background()) })
}

// tick is the message of a test event with id, as ingest publishes one.
func tick(t *testing.T, id string, now time.Time) bus.Msg {
	t.Helper()
	ev := &events.Event{ID: id, Type: "track", Name: "Tick", Source: "test", OccurredAt: now, ReceivedAt: now,
		Identities: events.Identities{"user_id": "u-" + id}}
	data, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return bus.Msg{Subject: ev.Subject(), ID: id, Data: data}
}

// ticks are the messages of test events with ids, sent at one time.
func ticks(t *testing.T, ids []string) []bus.Msg {
	t.Helper()
	now := time.Now().UTC()
	msgs := make([]bus.Msg, len(ids))
	for i, id := range ids {
		msgs[i] = tick(t, id, now)
	}
	return msgs
}

func (l *loop) publish(t *testing.T, ids ...string) {
	t.Helper()
	msgs := ticks(t, ids)
	for i, err := range l.bus.PublishAll(context.Background(), msgs) {
		if err != nil {
			t.Fatalf("publish %s: %v", ids[i], err)
		}
	}
	l.sent += len(ids)
}

// publishRaw publishes data that need not decode as an event.
func (l *loop) publishRaw(t *testing.T, id string, data []byte) {
	t.Helper()
	if _, err := l.bus.Publish(context.Background(), bus.Msg{Subject: "omni.events.test.track", ID: id, Data: data}); err != nil {
		t.Fatal(err)
	}
	l.sent++
}

func (l *loop) stored(t *testing.T, id string) bool {
	t.Helper()
	var n int
	if err := l.app.DB().NewQuery("SELECT COUNT(*) FROM events WHERE event_id = {:id}").Bind(map[string]any{"id": id}).Row(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func (l *loop) storedCount(t *testing.T) int {
	t.Helper()
	var n int
	if err := l.app.DB().NewQuery("SELECT COUNT(*) FROM events").Row(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (l *loop) dead(t *testing.T) []deadletter.Entry {
	t.Helper()
	d, err := deadletter.List(l.app, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// settled waits until every published message is stored or parked and the
// consumer has acknowledged them all. The outcome count comes first: just
// after start the consumer's info can report nothing pending before the
// first fetch, so the lag alone would pass too early.
func (l *loop) settled(t *testing.T) {
	t.Helper()
	omnitest.Eventually(t, 30*time.Second, func() bool {
		if l.storedCount(t)+len(l.dead(t)) < l.sent {
			return false
		}
		pending, ackPending, err := l.store.Lag(context.Background())
		return err == nil && pending == 0 && ackPending == 0
	}, "every message stored or parked, and acknowledged")
}

// stopWithin stops s and fails the test with msg if Stop has not
// returned within d (a hang, not a timing).
func stopWithin(t *testing.T, s *eventstore.Store, d time.Duration, msg string) {
	t.Helper()
	stopped := make(chan struct{})
	go func() { s.Stop(context.Background()); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(d):
		t.Fatal(msg)
	}
}

// ackPending reads the durable consumer's unacknowledged count.
func (l *loop) ackPending(t *testing.T) int {
	t.Helper()
	c, err := eventstore.EnsureConsumer(context.Background(), l.bus, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumAckPending
}

// failOnWrite makes SQLite refuse inserts into table, as a full disk would.
func (l *loop) failOnWrite(t *testing.T, table string) func() {
	t.Helper()
	if _, err := l.app.DB().NewQuery(`CREATE TRIGGER fail_` + table + ` BEFORE INSERT ON ` + table +
		` BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END`).Execute(); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := l.app.DB().NewQuery(`DROP TRIGGER fail_` + table).Execute(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBatchFailingOnceIsStoredWithoutParking(t *testing.T) {
	l := newLoop(t)
	l.proc.fail = func(call int, _ []string) error {
		if call == 1 {
			return errors.New("database busy (test)")
		}
		return nil
	}
	ids := []string{"once-1", "once-2", "once-3", "once-4"}
	l.publish(t, ids...)
	l.start(t, eventstore.Options{BatchSize: len(ids)})
	l.settled(t)
	for _, id := range ids {
		if !l.stored(t, id) {
			t.Errorf("%s not stored", id)
		}
	}
	if d := l.dead(t); len(d) != 0 {
		t.Fatalf("parked %d events after one failed attempt: %+v", len(d), d)
	}
	if first := l.proc.call(0); len(first) != len(ids) {
		t.Fatalf("the first attempt held %v, want the whole batch", first)
	}
}

func TestPoisonedEventIsParkedAfterExactlyEventAttemptsAndTheRestAcked(t *testing.T) {
	const attempts = 4
	l := newLoop(t)
	l.proc.fail = failing("poison")
	ids := []string{"ok-1", "ok-2", "poison", "ok-3", "ok-4"}
	l.publish(t, ids...)
	l.start(t, eventstore.Options{BatchSize: len(ids), EventAttempts: attempts})
	l.settled(t) // acknowledged: the good ones stored, the poisoned one parked

	for _, id := range ids {
		if l.stored(t, id) != (id != "poison") {
			t.Errorf("%s stored = %v", id, l.stored(t, id))
		}
	}
	if n := l.proc.alone("poison"); n != attempts {
		t.Fatalf("the poisoned event was tried %d times on its own, want EventAttempts = %d", n, attempts)
	}
	d := l.dead(t)
	if len(d) != 1 || d[0].EventID != "poison" || d[0].Attempts != attempts || d[0].Consumer != eventstore.ConsumerName ||
		!strings.Contains(d[0].Error, "cannot process poison") {
		t.Fatalf("dead = %+v", d)
	}
	ev, err := events.Unmarshal([]byte(d[0].Data))
	if err != nil || ev.ID != "poison" {
		t.Fatalf("the parked row does not keep the message: %v %q", err, d[0].Data)
	}
}

func TestUndecodableMessageIsParkedAtOnce(t *testing.T) {
	l := newLoop(t)
	l.publishRaw(t, "garbled", []byte(`{"id": 1`))
	l.publish(t, "after-garbled")
	l.start(t, eventstore.Options{BatchSize: 2})
	l.settled(t)
	if !l.stored(t, "after-garbled") {
		t.Fatal("the event after the undecodable one was not stored")
	}
	d := l.dead(t)
	if len(d) != 1 || d[0].EventID != "garbled" || d[0].Attempts != 1 || d[0].Data != `{"id": 1` || !strings.Contains(d[0].Error, "decode") {
		t.Fatalf("dead = %+v", d)
	}
	if n := l.proc.callCount(); n != 1 {
		t.Fatalf("%d processor calls, want 1: the undecodable message never reaches a processor", n)
	}
}

// When parking fails too, the database is the problem, not the event: it
// is kept unacknowledged and stored once the database takes writes again.
func TestNothingIsAckedWhenParkingFails(t *testing.T) {
	const attempts = 2
	l := newLoop(t)
	l.proc.fail = failing("kept")
	restore := l.failOnWrite(t, deadletter.Collection)
	l.publish(t, "kept")
	l.start(t, eventstore.Options{BatchSize: 1, EventAttempts: attempts})

	// More tries than EventAttempts means a park was tried and failed and
	// the loop went on trying instead of acknowledging.
	omnitest.Eventually(t, 30*time.Second, func() bool { return l.proc.alone("kept") > attempts+1 }, "retries past a failed park")
	if n := l.ackPending(t); n != 1 {
		t.Fatalf("ack pending = %d, want the event still unacknowledged", n)
	}
	if d := l.dead(t); len(d) != 0 {
		t.Fatalf("parked %+v although parking fails", d)
	}

	// The cause goes away, then the database recovers: stored, not parked.
	// (In the other order a retry could fail on the cause just after
	// parking works again, and park it.)
	l.proc.setFail(nil)
	restore()
	l.settled(t)
	if !l.stored(t, "kept") || len(l.dead(t)) != 0 {
		t.Fatalf("stored %v, dead %+v; want it stored", l.stored(t, "kept"), l.dead(t))
	}
}

// Stop ends a retry pause at once (here an hour long) and leaves the
// failing event unacknowledged for the next start.
func TestStopDuringARetryPauseIsPromptAndLeavesTheMessageUnacked(t *testing.T) {
	l := newLoop(t)
	l.proc.fail = failing("slow")
	l.publish(t, "slow")
	l.start(t, eventstore.Options{BatchSize: 1, RetryBackoff: time.Hour})
	omnitest.Eventually(t, 30*time.Second, func() bool { return l.proc.alone("slow") >= 2 }, "the first retry, then the pause")

	stopWithin(t, l.store, 30*time.Second, "Stop waited out the retry pause") // the pause is an hour
	if n := l.ackPending(t); n != 1 {
		t.Fatalf("ack pending after Stop = %d, want 1 (redelivered at the next start)", n)
	}
	if l.stored(t, "slow") || len(l.dead(t)) != 0 {
		t.Fatal("the failing event was stored or parked")
	}
}

// Redrive: a row an owner asked to retry is stored and its row deleted; one
// that fails again counts the attempt and waits for the next request.
func TestRedriveStoresRequestedRowsAndCountsFailures(t *testing.T) {
	l := newLoop(t)
	l.proc.fail = failing("still-bad")
	now := time.Now().UTC()
	var rowIDs []string
	for _, id := range []string{"fixed", "still-bad"} {
		ev := &events.Event{ID: id, Type: "track", Name: "Tick", Source: "test", OccurredAt: now, ReceivedAt: now,
			Identities: events.Identities{"user_id": "u"}}
		data, _ := ev.Marshal()
		if err := deadletter.Park(l.app, deadletter.Failure{Consumer: eventstore.ConsumerName, EventID: id, Subject: ev.Subject(),
			Type: ev.Type, Data: data, Err: errors.New("earlier failure"), Attempts: 3}); err != nil {
			t.Fatal(err)
		}
	}
	// A row of another consumer is not this one's to re-drive.
	if err := deadletter.Park(l.app, deadletter.Failure{Consumer: "outbox", EventID: "theirs", Data: []byte("{}"), Err: errors.New("x")}); err != nil {
		t.Fatal(err)
	}
	for _, d := range l.dead(t) {
		rowIDs = append(rowIDs, d.ID)
	}
	if marked, err := deadletter.RequestRetry(l.app, rowIDs...); err != nil || len(marked) != 3 {
		t.Fatalf("request retry: %v %v", marked, err)
	}
	l.start(t, eventstore.Options{RedriveEvery: 5 * time.Millisecond})

	omnitest.Eventually(t, 30*time.Second, func() bool {
		for _, d := range l.dead(t) {
			if d.EventID == "still-bad" && !d.RetryRequested {
				return true
			}
		}
		return false
	}, "the failed retry recorded")
	if !l.stored(t, "fixed") || l.stored(t, "still-bad") {
		t.Fatalf("fixed stored %v, still-bad stored %v", l.stored(t, "fixed"), l.stored(t, "still-bad"))
	}
	byEvent := map[string]deadletter.Entry{}
	for _, d := range l.dead(t) {
		byEvent[d.EventID] = d
	}
	if _, ok := byEvent["fixed"]; ok {
		t.Fatal("the stored event's row was not deleted")
	}
	if d := byEvent["still-bad"]; d.Attempts != 4 || !strings.Contains(d.Error, "cannot process still-bad") {
		t.Fatalf("failed retry row = %+v, want attempts 3+1 and the new error", d)
	}
	if d := byEvent["theirs"]; !d.RetryRequested {
		t.Fatalf("another consumer's row was touched: %+v", d)
	}
	if l.storedCount(t) != 1 {
		t.Fatalf("%d events stored, want 1", l.storedCount(t))
	}
}

// A batch that is full with its first message is written at once, not
// after MaxWait (here an hour).
func TestFullBatchDoesNotWaitForMaxWait(t *testing.T) {
	l := newLoop(t)
	l.start(t, eventstore.Options{BatchSize: 1, MaxWait: time.Hour})
	l.publish(t, "alone-1")
	omnitest.Eventually(t, 30*time.Second, func() bool { return l.stored(t, "alone-1") }, "a one-event batch stored")
}

// While tracking calls are being answered (Options.Busy), a batch waits,
// and goes as soon as they end.
func TestBatchWaitsWhileTrackingCallsAreAnswered(t *testing.T) {
	l := newLoop(t)
	var busy atomic.Bool
	busy.Store(true)
	l.start(t, eventstore.Options{BatchSize: 10, MaxWait: time.Millisecond, Busy: busy.Load, HoldWhileBusy: time.Minute})
	l.publish(t, "held-1", "held-2")
	time.Sleep(300 * time.Millisecond) // 300 times MaxWait: unheld, the batch would be stored by now
	if n := l.storedCount(t); n != 0 {
		t.Fatalf("%d events stored while tracking calls were being answered", n)
	}
	busy.Store(false)
	l.settled(t)
	if !l.stored(t, "held-1") || !l.stored(t, "held-2") {
		t.Fatal("the held batch was not stored once the calls ended")
	}
}

// Under calls that never stop, a batch waits no longer than HoldWhileBusy
// after its oldest event was published: nothing is held for good.
func TestBatchIsStoredWhenHeldLongEnoughThoughCallsGoOn(t *testing.T) {
	l := newLoop(t)
	l.start(t, eventstore.Options{BatchSize: 10, MaxWait: time.Millisecond,
		Busy: func() bool { return true }, HoldWhileBusy: 50 * time.Millisecond})
	l.publish(t, "busy-1", "busy-2", "busy-3")
	l.settled(t)
	for _, id := range []string{"busy-1", "busy-2", "busy-3"} {
		if !l.stored(t, id) {
			t.Errorf("%s not stored", id)
		}
	}
}

// Stop does not wait for the calls to end: what is held is stored.
func TestStopStoresAHeldBatch(t *testing.T) {
	l := newLoop(t)
	l.start(t, eventstore.Options{BatchSize: 10, MaxWait: time.Millisecond,
		Busy: func() bool { return true }, HoldWhileBusy: time.Minute})
	l.publish(t, "at-stop")
	omnitest.Eventually(t, 30*time.Second, func() bool { return l.ackPending(t) == 1 }, "the event delivered and held")
	stopWithin(t, l.store, 20*time.Second, "Stop waited for the held batch")
	if !l.stored(t, "at-stop") {
		t.Fatal("the held batch was not stored at stop")
	}
}

// publishBatch publishes the events ids as one batch message, as ingest
// publishes a tracking request's; a garbled id goes in as a line that does
// not decode.
func (l *loop) publishBatch(t *testing.T, ids ...string) {
	t.Helper()
	single := ticks(t, ids)
	for i, id := range ids {
		if strings.HasPrefix(id, "garbled") {
			single[i].Data = []byte(`{"id": "` + id + `", "type": `)
		}
	}
	msgs, _ := l.bus.JoinEvents(single)
	if len(msgs) != 1 {
		t.Fatalf("%d events made %d messages, want one", len(ids), len(msgs))
	}
	if _, err := l.bus.Publish(context.Background(), msgs[0]); err != nil {
		t.Fatal(err)
	}
	l.sent += len(ids)
}

// A batch message whose events land in two transactions is acknowledged
// with its last event, not its first: a crash between them redelivers it,
// and the events already stored are skipped as duplicates.
func TestABatchMessageIsAckedWhenItsLastEventIsStored(t *testing.T) {
	l := newLoop(t)
	l.publishBatch(t, "b1", "b2", "b3", "b4", "b5")
	l.start(t, eventstore.Options{BatchSize: 3}) // MaxWait a minute: b4 and b5 wait for a third event

	omnitest.Eventually(t, 30*time.Second, func() bool { return l.storedCount(t) == 3 }, "the first transaction (b1–b3) stored")
	if n := l.ackPending(t); n != 1 {
		t.Fatalf("ack pending = %d after part of the message was stored, want 1", n)
	}
	if got := l.proc.call(0); strings.Join(got, ",") != "b1,b2,b3" {
		t.Fatalf("first transaction = %v", got)
	}
	l.publish(t, "after")
	l.settled(t)
	for _, id := range []string{"b1", "b2", "b3", "b4", "b5", "after"} {
		if !l.stored(t, id) {
			t.Errorf("%s not stored", id)
		}
	}
	if got := l.proc.call(1); strings.Join(got, ",") != "b4,b5,after" {
		t.Fatalf("second transaction = %v", got)
	}
}

// One line of a batch message that does not decode is parked on its own,
// with its own bytes (what a retry decodes); the message's other events
// are stored and the message acknowledged.
func TestAnUndecodableLineOfABatchMessageIsParkedAlone(t *testing.T) {
	l := newLoop(t)
	l.publishBatch(t, "first", "garbled-2", "third")
	l.start(t, eventstore.Options{BatchSize: 3})
	l.settled(t)
	if !l.stored(t, "first") || !l.stored(t, "third") {
		t.Fatal("the batch's good events were not stored")
	}
	d := l.dead(t)
	if len(d) != 1 || d[0].Data != `{"id": "garbled-2", "type": ` || d[0].Attempts != 1 || !strings.Contains(d[0].Error, "decode") ||
		d[0].Subject != bus.EventBatchSubject || !strings.HasPrefix(d[0].EventID, bus.EventBatchSubject+"#") || !strings.HasSuffix(d[0].EventID, "/2") {
		t.Fatalf("dead = %+v", d)
	}
}

// A batch message with no events at all is parked, not left to come back.
func TestAnEmptyBatchMessageIsParked(t *testing.T) {
	l := newLoop(t)
	empty := bus.Msg{Subject: bus.EventBatchSubject, Header: nats.Header{bus.EventCountHeader: []string{"0"}}}
	if _, err := l.bus.Publish(context.Background(), empty); err != nil {
		t.Fatal(err)
	}
	l.sent++
	l.start(t, eventstore.Options{BatchSize: 1})
	l.settled(t)
	if d := l.dead(t); len(d) != 1 || !strings.Contains(d[0].Error, "no events") {
		t.Fatalf("dead = %+v", d)
	}
}
