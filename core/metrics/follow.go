package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/deadletter"
	"github.com/omni/omni/core/eventstore"
)

// The rollups follow the events table instead of working inside the
// events transaction: the events processor only queues each stored
// batch's record ids (one row a batch), and the follower takes the queue
// in its own, larger transactions. While events keep arriving it waits,
// so ingest keeps the single SQLite writer to itself; it catches up as
// soon as ingest pauses for followQuiet, or, under load that does not
// pause, once the oldest queued batch is metrics.max_delay old (it then
// shares the writer until it is back within the delay). Reports are
// therefore at most about max_delay behind the stored events, and
// /api/v1/health shows how many events they still have to take
// (bus.consumers.metrics.pending).

const (
	queueTable = "metrics_queue"
	// followChunk is about how many queued events one follower
	// transaction takes: long enough to amortise each part's per-batch
	// work, short enough that a batch of ingest waits little behind it.
	followChunk = 2000
	// followConsumer names the follower in health and in parked events.
	followConsumer = "metrics"
	// defaultQuiet is how long ingest must pause before the follower
	// catches up.
	defaultQuiet = 250 * time.Millisecond
)

type follower struct {
	m        *Module
	quiet    time.Duration
	maxDelay time.Duration
	// backlog reports whether events wait for the events consumer (nil:
	// never). A batch that takes the writer longer than quiet leaves a
	// gap between two queued batches that is no pause in ingest.
	backlog func(context.Context) bool

	lastQueued atomic.Int64 // unix ns of the last batch queued
	moved      atomic.Int64 // unix ns the follower last took a chunk
	wake       chan struct{}
	cancel     context.CancelFunc
	done       chan struct{}
}

func newFollower(m *Module, quiet, maxDelay time.Duration) *follower {
	return &follower{m: m, quiet: quiet, maxDelay: maxDelay, wake: make(chan struct{}, 1)}
}

// enqueue runs in the events transaction: the batch's records are the
// follower's to take once it commits (a rolled-back batch takes its row
// with it).
func (f *follower) enqueue(tx core.App, batch []*eventstore.Stored) error {
	ids := make([]string, 0, len(batch))
	for _, s := range batch {
		if s.RecordID != "" {
			ids = append(ids, s.RecordID)
		}
	}
	moved := movedProfiles(batch)
	if len(ids) == 0 && len(moved) == 0 {
		return nil
	}
	if err := queueIDs(tx, ids, moved); err != nil {
		return err
	}
	f.lastQueued.Store(time.Now().UnixNano())
	// The follower's own transaction waits for this one's commit (one
	// writer connection), so waking it now loses nothing.
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

func queueIDs(tx core.App, ids, moved []string) error {
	raw, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	var movedRaw []byte
	if len(moved) > 0 {
		if movedRaw, err = json.Marshal(moved); err != nil {
			return err
		}
	}
	_, err = tx.DB().NewQuery("INSERT INTO " + queueTable + " (ids, moved, events, queued_at) VALUES ({:ids}, {:moved}, {:n}, {:at})").
		Bind(dbx.Params{"ids": string(raw), "moved": string(movedRaw), "n": len(ids), "at": time.Now().UnixMilli()}).Execute()
	return err
}

// start runs the follower until stop.
func (f *follower) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	f.moved.Store(time.Now().UnixNano())
	go f.run(ctx)
}

// stop ends the follower and waits for it (a chunk in flight rolls back
// and is taken again at the next start).
func (f *follower) stop(ctx context.Context) {
	if f.cancel == nil {
		return
	}
	f.cancel()
	select {
	case <-f.done:
	case <-ctx.Done():
	}
}

func (f *follower) run(ctx context.Context) {
	defer close(f.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if err := f.catchUp(ctx); err != nil && ctx.Err() == nil {
			f.m.log.Error("metrics: rolling up stored events", "error", err)
		}
		f.retryParked(ctx)
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-tick.C:
		}
	}
}

// catchUp takes the queue a chunk at a time, waiting while ingest is busy
// and the queue is younger than the delay allowed.
func (f *follower) catchUp(ctx context.Context) error {
	for ctx.Err() == nil {
		oldest, err := f.oldestQueued(ctx)
		if err != nil {
			return err
		}
		if oldest.IsZero() {
			return nil
		}
		if wait := f.wait(ctx, oldest); wait > 0 {
			// Holding off is the plan, not a stall (health).
			f.moved.Store(time.Now().UnixNano())
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		// A rebuild or re-rating replays the events table itself.
		if !f.m.rollups.jobs.apart.TryLock() {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		err = f.takeChunk(ctx)
		f.m.rollups.jobs.apart.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// wait is how long to hold off before the next chunk: until ingest has
// been quiet for f.quiet with no events waiting to be stored, or the
// oldest queued batch is f.maxDelay old.
func (f *follower) wait(ctx context.Context, oldest time.Time) time.Duration {
	now := time.Now()
	quietFor := now.Sub(time.Unix(0, f.lastQueued.Load()))
	behind := now.Sub(oldest)
	switch {
	case behind >= f.maxDelay:
		return 0
	case quietFor < f.quiet:
		return min(f.quiet-quietFor, f.maxDelay-behind)
	case f.backlog != nil && f.backlog(ctx):
		// A batch that holds the writer longer than quiet is no pause.
		return min(f.quiet, f.maxDelay-behind)
	}
	return 0
}

type queueRow struct {
	Seq    int64  `db:"seq"`
	IDs    string `db:"ids"`
	Moved  string `db:"moved"`
	Events int    `db:"events"`
}

// takeChunk rolls up the oldest queued batches, about followChunk events,
// in one transaction that also deletes their queue rows. A chunk that
// fails is taken again batch by batch, and a batch that fails event by
// event, so one event that cannot be rolled up is parked (consumer
// "metrics" in the dead-letter list) and stops nothing else.
func (f *follower) takeChunk(ctx context.Context) error {
	var rows []queueRow
	if err := f.m.app.DB().NewQuery("SELECT seq, ids, moved, events FROM " + queueTable + " ORDER BY seq LIMIT 200").All(&rows); err != nil {
		return err
	}
	n, take := 0, 0
	for take < len(rows) && (take == 0 || n+rows[take].Events <= followChunk) {
		n += rows[take].Events
		take++
	}
	rows = rows[:take]
	if len(rows) == 0 {
		return nil
	}
	err := f.m.app.RunInTransaction(func(tx core.App) error { return f.take(tx, rows) })
	if err == nil {
		f.moved.Store(time.Now().UnixNano())
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	f.m.log.Warn("metrics: a chunk of stored events failed; taking it event by event", "error", err)
	for _, r := range rows {
		err := f.m.app.RunInTransaction(func(tx core.App) error { return f.take(tx, []queueRow{r}) })
		if err == nil {
			continue
		}
		for _, id := range idsOf([]queueRow{r}) {
			if err := f.m.app.RunInTransaction(func(tx core.App) error { return f.roll(tx, []string{id}, nil) }); err != nil {
				f.park(id, err)
			}
		}
		if moved := movedOf([]queueRow{r}); len(moved) > 0 {
			if err := f.m.app.RunInTransaction(func(tx core.App) error { return f.roll(tx, nil, moved) }); err != nil {
				return err // a recompute is of the customers' events: taken again next time
			}
		}
		if _, err := f.m.app.DB().NewQuery("DELETE FROM " + queueTable + " WHERE seq = {:s}").Bind(dbx.Params{"s": r.Seq}).Execute(); err != nil {
			return err
		}
	}
	f.moved.Store(time.Now().UnixNano())
	return nil
}

func idsOf(rows []queueRow) []string {
	var ids []string
	for _, r := range rows {
		var part []string
		// A row that does not decode has nothing to take.
		_ = json.Unmarshal([]byte(r.IDs), &part)
		ids = append(ids, part...)
	}
	return ids
}

// movedOf lists the customers the rows' merges, un-merges and erasures
// touched, once each.
func movedOf(rows []queueRow) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rows {
		if r.Moved == "" {
			continue
		}
		var part []string
		_ = json.Unmarshal([]byte(r.Moved), &part)
		for _, p := range part {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// take rolls the rows' records up, recomputes the customers they moved,
// and deletes the rows.
func (f *follower) take(tx core.App, rows []queueRow) error {
	if err := f.roll(tx, idsOf(rows), movedOf(rows)); err != nil {
		return err
	}
	_, err := tx.DB().NewQuery("DELETE FROM " + queueTable + " WHERE seq BETWEEN {:a} AND {:b}").
		Bind(dbx.Params{"a": rows[0].Seq, "b": rows[len(rows)-1].Seq}).Execute()
	return err
}

// horizonOf is the last stored event (rowid) the running transaction may
// read. The follower takes batches that later ones have followed into the
// events table; a part that reads a customer's events (the funnels'
// late-delivery check and their derivation) must not see those yet, or it
// would take each customer's later events for late ones and derive them
// again and again. Only the one writer connection runs transactions, so
// the module's value is the running transaction's; outside the follower
// there is no horizon.
func (m *Module) horizonOf() int64 {
	if h := m.horizon.Load(); h > 0 {
		return h
	}
	return math.MaxInt64
}

// beforeHorizon is a horizon as a condition on the events table.
func beforeHorizon(horizon int64) dbx.Expression {
	return dbx.NewExp("rowid <= {:horizon}", dbx.Params{"horizon": horizon})
}

// roll reads the stored events by record id, in stored order and with
// the profile they belong to now (a merge or an erasure since they were
// queued has moved or deleted them, and the queue row of its own batch,
// taken after, recomputes the customers it touched), hands them to the
// parts as the events transaction used to, then recomputes the moved
// customers.
func (f *follower) roll(tx core.App, ids, moved []string) error {
	batch, last, err := readEventsByID(tx, ids)
	if err != nil {
		return err
	}
	if last == 0 {
		_ = tx.DB().NewQuery("SELECT COALESCE(MAX(rowid), 0) FROM events").Row(&last)
	}
	f.m.horizon.Store(last)
	defer f.m.horizon.Store(0)
	if err := f.m.processEvents(tx, batch); err != nil {
		return err
	}
	return f.m.recomputeMoved(tx, moved)
}

// park records an event the rollups could not take; a retry from the
// dead-letter list queues it again.
func (f *follower) park(recordID string, cause error) {
	f.m.log.Error("metrics: an event could not be rolled up; parked", "record", recordID, "error", cause)
	var eventID, typ string
	_ = f.m.app.DB().NewQuery("SELECT event_id, type FROM events WHERE id = {:id}").Bind(dbx.Params{"id": recordID}).Row(&eventID, &typ)
	if eventID == "" {
		eventID = recordID
	}
	if err := deadletter.Park(f.m.app, deadletter.Failure{Consumer: followConsumer, EventID: eventID, Type: typ,
		Data: []byte(recordID), Err: cause}); err != nil {
		f.m.log.Error("metrics: parking an event", "record", recordID, "error", err)
	}
}

// retryParked takes again the parked events an operator asked to retry.
func (f *follower) retryParked(ctx context.Context) {
	entries, err := deadletter.Requested(f.m.app, followConsumer, 100)
	if err != nil {
		return
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			return
		}
		err := f.m.app.RunInTransaction(func(tx core.App) error { return f.roll(tx, []string{e.Data}, nil) })
		if err != nil {
			_ = deadletter.RetryFailed(f.m.app, e.ID, err)
			continue
		}
		_ = deadletter.Resolve(f.m.app, e.ID)
	}
}

// The follower's two questions about the whole queue. Both are answered
// from idx_metrics_queue_lag alone: without it each read every queued
// batch's ids (overflow pages) to reach the columns after them, a cost
// that grew with the backlog, when health is polled most.
const (
	lagSQL    = "SELECT COALESCE(SUM(events), 0) FROM " + queueTable
	oldestSQL = "SELECT COALESCE(MIN(queued_at), 0) FROM " + queueTable
)

// Lag is what health reports: events queued and not yet rolled up.
func (f *follower) Lag(ctx context.Context) (uint64, int, error) {
	var n int64
	err := f.m.app.DB().NewQuery(lagSQL).WithContext(ctx).Row(&n)
	return uint64(n), 0, err
}

// oldestQueued is when the oldest queued batch was stored (zero when the
// queue is empty).
func (f *follower) oldestQueued(ctx context.Context) (time.Time, error) {
	var ms int64
	if err := f.m.app.DB().NewQuery(oldestSQL).WithContext(ctx).Row(&ms); err != nil || ms == 0 {
		return time.Time{}, err
	}
	return time.UnixMilli(ms), nil
}

// LastProgress is when the follower last took a chunk or chose to wait
// for ingest (health reports it stalled when events wait and it has done
// neither for a while).
func (f *follower) LastProgress() time.Time { return time.Unix(0, f.moved.Load()) }

// readEventsByID reads the given stored events, in stored order, as the
// processors see them, and the last one's rowid; ids no longer stored
// (erased) are skipped.
func readEventsByID(tx core.App, ids []string) ([]*eventstore.Stored, int64, error) {
	raw, err := json.Marshal(ids)
	if err != nil {
		return nil, 0, err
	}
	var rows []eventRow
	err = tx.DB().NewQuery(`SELECT rowid, id, event_id, type, name, source, occurred_at, received_at, identities, properties, context, profile
		FROM events WHERE id IN (SELECT value FROM json_each({:ids})) ORDER BY rowid`).Bind(dbx.Params{"ids": string(raw)}).All(&rows)
	if err != nil {
		return nil, 0, fmt.Errorf("read queued events: %w", err)
	}
	var last int64
	if len(rows) > 0 {
		last = rows[len(rows)-1].RowID
	}
	return storedOf(rows), last, nil
}
