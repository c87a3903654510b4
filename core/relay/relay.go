// Package relay publishes events that were derived inside a database
// transaction (segment entries, merges, erasures) to the bus after that
// transaction commits: the transactional outbox pattern. Stage writes the
// events into the relay_pending table in the same transaction as the state
// they describe; the relay publishes and deletes them. A crash between the
// commit and the publish leaves the rows behind, and the next start
// publishes them, so no derived event is lost. Event ids are stable, so a
// publish repeated after a crash is dropped as a duplicate.
//
// relay_pending is a plain table keyed by seq (INTEGER PRIMARY KEY
// AUTOINCREMENT): one B-tree, rows appended at its end and deleted from
// its start. Transactions commit one at a time, so seq order is commit
// order, and the relay reads on from the last row it published (its
// cursor) instead of skipping the rows that wait to be deleted.
//
// The published rows are deleted in the next transaction that stores
// events (the relay is one of its processors: Relay.ProcessBatch), not in
// a transaction of their own: under load each of those took the one
// writer connection between two batches of events. When no batch comes
// within deleteAfter, or too many published rows wait, the relay deletes
// them itself. Either deletes every row up to the cursor: one range.
package relay

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/store"
)

// Table holds staged events until they are on the bus.
const Table = "relay_pending"

// batchSize bounds one publish round.
const batchSize = 500

// deleteAfter is how long published rows wait for a batch of events to
// delete them before the relay deletes them itself; maxWaiting is how
// many may wait (each drain round reads past them).
const (
	deleteAfter = time.Second
	maxWaiting  = 5000
)

// Stage records events to publish once tx commits. Call it inside the
// transaction that changes the state the events describe. They are
// published in the order staged: seq grows with every row (AUTOINCREMENT
// never reuses one, even after the table empties).
func Stage(tx core.App, evs []*events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	now := store.FormatTime(time.Now())
	// Rows go a few per statement (store.Statements.ExecRows): one
	// statement per event cost more than the events' JSON. A statement's
	// rows get their seq in the order listed.
	args := make([]any, 0, len(evs)*4)
	for _, ev := range evs {
		data, err := ev.Marshal() // json.Marshal's bytes, without reflection
		if err != nil {
			return err
		}
		args = append(args, ev.ID, ev.Subject(), string(data), now)
	}
	st := store.NewStatements(tx)
	defer st.Close()
	return st.ExecRows("INSERT INTO "+Table+" (event_id, subject, data, created) VALUES ", 4, "", args)
}

// Relay moves staged events to the bus.
type Relay struct {
	app     core.App
	bus     *bus.Bus
	log     *slog.Logger
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
	started atomic.Bool
	// Every is how often staged rows are looked for without a Kick (rows
	// left by a crash, or staged by another process).
	Every time.Duration

	mu sync.Mutex
	// cursor is the seq of the last row published: every row at or
	// below it is on the bus. published are the seqs of those rows not
	// yet deleted, in order; since is when the oldest was published.
	cursor    int64
	published []int64
	since     time.Time
	deleting  int64 // what the current events transaction deletes up to (ProcessBatch)
}

// New creates a relay; call Start.
func New(app core.App, b *bus.Bus, log *slog.Logger) *Relay {
	return &Relay{app: app, bus: b, log: log.With("component", "relay"), wake: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{}), Every: 5 * time.Second}
}

// Start publishes what an earlier run left staged, then keeps going.
func (r *Relay) Start() {
	if !r.started.CompareAndSwap(false, true) {
		return
	}
	go r.loop()
	r.Kick()
}

// Kick asks the relay to publish now (after a commit that staged events).
func (r *Relay) Kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stop publishes what is staged (until ctx ends) and stops. Rows still
// staged are published at the next start.
func (r *Relay) Stop(ctx context.Context) {
	r.once.Do(func() {
		if !r.started.Load() {
			return // never started: rows stay staged for the next start
		}
		close(r.quit)
		select {
		case <-r.done:
		case <-ctx.Done():
		}
		r.drain(ctx)
		// No events transaction comes after this: what was published is
		// deleted here (a crash instead leaves it to be published again,
		// and dropped as a duplicate).
		if err := r.deleteWaiting(true); err != nil {
			r.log.Error("clearing published events", "error", err)
		}
	})
}

func (r *Relay) loop() {
	defer close(r.done)
	t := time.NewTicker(r.Every)
	defer t.Stop()
	// late wakes the relay when published rows are due (see due).
	late := time.NewTicker(deleteAfter / 2)
	defer late.Stop()
	for {
		select {
		case <-r.quit:
			return
		case <-r.wake:
		case <-t.C:
		case <-late.C:
			if !r.due() {
				continue
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r.drain(ctx)
		cancel()
	}
}

// ProcessBatch deletes, in the transaction that stores a batch of events,
// the rows published since the last one (eventstore.Processor). They are
// forgotten once that transaction commits (Committed); if it rolls back,
// the next one deletes them again.
func (r *Relay) ProcessBatch(tx core.App, _ []*eventstore.Stored) error {
	r.mu.Lock()
	r.deleting = 0
	if len(r.published) > 0 {
		r.deleting = r.cursor
	}
	upTo := r.deleting
	r.mu.Unlock()
	if upTo == 0 {
		return nil
	}
	return deleteUpTo(tx, upTo)
}

// Committed forgets the rows the committed transaction deleted
// (eventstore.AfterCommit).
func (r *Relay) Committed([]*eventstore.Stored) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forget(r.deleting)
	r.deleting = 0
}

// forget drops the published rows up to seq upTo, which are deleted (the
// caller holds mu). Forgetting a range twice is harmless: the relay and an
// events transaction may both have deleted it.
func (r *Relay) forget(upTo int64) {
	n := 0
	for n < len(r.published) && r.published[n] <= upTo {
		n++
	}
	if n == 0 {
		return
	}
	r.published = append(r.published[:0], r.published[n:]...)
	if len(r.published) == 0 {
		r.since = time.Time{}
	}
}

// due reports whether the published rows are for the relay to delete
// itself: they waited deleteAfter, or maxWaiting of them wait.
func (r *Relay) due() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dueLocked()
}

func (r *Relay) dueLocked() bool {
	return len(r.published) >= maxWaiting || len(r.published) > 0 && time.Since(r.since) >= deleteAfter
}

// deleteWaiting deletes the published rows in a transaction of its own
// when force (with any waiting) or when they are due.
func (r *Relay) deleteWaiting(force bool) error {
	r.mu.Lock()
	if len(r.published) == 0 || !force && !r.dueLocked() {
		r.mu.Unlock()
		return nil
	}
	upTo := r.cursor
	r.mu.Unlock()
	if err := deleteUpTo(r.app, upTo); err != nil {
		return err
	}
	r.mu.Lock()
	r.forget(upTo)
	r.mu.Unlock()
	return nil
}

// deleteUpTo deletes the staged rows up to seq upTo: every one of them is
// on the bus (see Relay.cursor).
func deleteUpTo(app core.App, upTo int64) error {
	_, err := app.DB().NewQuery("DELETE FROM " + Table + " WHERE seq <= {:upTo}").
		Bind(dbx.Params{"upTo": upTo}).Execute()
	return err
}

type row struct {
	Seq     int64  `db:"seq"`
	EventID string `db:"event_id"`
	Subject string `db:"subject"`
	Data    string `db:"data"`
}

// drain publishes staged rows in seq order from the cursor on until none
// are left or a publish fails. The cursor moves past the rows published
// before the first that failed; that one and those after it go again on
// the next round (a repeat of one that did reach the bus is dropped as a
// duplicate). The published rows wait for the next events transaction to
// delete them (ProcessBatch), unless deleteWaiting finds they waited too
// long.
func (r *Relay) drain(ctx context.Context) {
	defer func() {
		if err := r.deleteWaiting(false); err != nil {
			r.log.Error("clearing published events", "error", err)
		}
	}()
	for ctx.Err() == nil {
		if err := r.deleteWaiting(false); err != nil {
			r.log.Error("clearing published events", "error", err)
			return
		}
		r.mu.Lock()
		after := r.cursor
		r.mu.Unlock()
		var rows []row
		if err := r.app.DB().NewQuery("SELECT seq, event_id, subject, data FROM " + Table +
			" WHERE seq > {:after} ORDER BY seq LIMIT {:n}").
			Bind(dbx.Params{"n": batchSize, "after": after}).WithContext(ctx).All(&rows); err != nil {
			r.log.Error("reading staged events", "error", err)
			return
		}
		if len(rows) == 0 {
			return
		}
		single := make([]bus.Msg, len(rows))
		for i, rw := range rows {
			single[i] = bus.Msg{Subject: rw.Subject, Data: []byte(rw.Data), ID: rw.EventID}
		}
		// Runs of derived events go as batch messages, as a tracking
		// request's do.
		msgs, covers := r.bus.JoinEvents(single)
		errs := r.bus.PublishAll(ctx, msgs)
		sent := 0
		for k := 0; k < len(msgs) && errs[k] == nil; k++ {
			sent = covers[k]
		}
		if sent > 0 {
			r.mu.Lock()
			if len(r.published) == 0 {
				r.since = time.Now()
			}
			for _, rw := range rows[:sent] {
				r.published = append(r.published, rw.Seq)
			}
			r.cursor = rows[sent-1].Seq
			r.mu.Unlock()
		}
		if sent < len(rows) {
			r.log.Warn("some staged events could not be published; retrying later", "failed", len(rows)-sent,
				"first", rows[sent].EventID, "error", errs[sent])
			return
		}
	}
}

// StageForProfiles is Stage for events a module derives about customers:
// each event names its customer in the property "profile_id", and gets
// that customer's strongest identity (read in one query) so that profiles
// resolves it to the same person when it comes back from the bus.
func StageForProfiles(tx core.App, evs []*events.Event) error {
	seen := map[string]bool{}
	var ids []string
	for _, ev := range evs {
		if p, _ := ev.Properties["profile_id"].(string); p != "" && !seen[p] {
			seen[p] = true
			ids = append(ids, p)
		}
	}
	strongest, err := strongestIdentities(tx, ids)
	if err != nil {
		return err
	}
	for _, ev := range evs {
		p, _ := ev.Properties["profile_id"].(string)
		if id, ok := strongest[p]; ok {
			if ev.Identities == nil {
				ev.Identities = events.Identities{}
			}
			ev.Identities[id[0]] = id[1]
		}
	}
	return Stage(tx, evs)
}

// strongestIdentities reads each customer's strongest identity (kind and
// value, by events.Strongest: the order of events.IdentityKinds, the
// earliest of a kind) in one statement: the ids go as one JSON list, so
// its text stays the same from batch to batch and the writer keeps it
// prepared.
func strongestIdentities(tx core.App, ids []string) (map[string][2]string, error) {
	strongest := map[string][2]string{}
	if len(ids) == 0 {
		return strongest, nil
	}
	in, args := store.InList(ids)
	rows, err := store.Executor(tx).Query("SELECT profile, kind, value FROM identities WHERE profile IN "+in+" ORDER BY created, id", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byProfile := map[string][]events.KindValue{}
	for rows.Next() {
		var profile string
		var kv events.KindValue
		if err := rows.Scan(&profile, &kv.Kind, &kv.Value); err != nil {
			return nil, err
		}
		byProfile[profile] = append(byProfile[profile], kv)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for profile, kvs := range byProfile {
		if s, ok := events.Strongest(kvs); ok {
			strongest[profile] = [2]string{s.Kind, s.Value}
		}
	}
	return strongest, nil
}
