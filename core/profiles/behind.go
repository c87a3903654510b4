package profiles

import (
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/store"
)

// Write-behind of the columns events derive (docs/profiles.md, "How
// current a profile's row is").
//
// Every stored event changes its customer's computed values (last seen at
// the least), and rewriting the ~900-byte row, its index entries and its
// page in the WAL for each one was the writer's largest single cost after
// the events insert. A change that touches only the derived columns
// (deferrableColumns) therefore waits, up to profiles.write_delay after
// the first change that waited, and the row takes every change of that
// window in one UPDATE. Meanwhile the writer itself works from the waiting
// row (loads decode it, as from the row cache); everything that reads the
// row with SQL first has it written (catchUp, store.SyncProfiles); names,
// identities, traits, consent, merges and new profiles are written at once
// as before. profile_behind lists the waiting rows in the database, so a
// start after a crash recomputes them from their events (recoverBehind).

// deferrableColumns are the profileColumns a change may leave waiting:
// computed, first_seen, last_seen, orders_count, lifecycle_stage,
// engagement_level and traits_due_at.
const deferrableColumns uint16 = 1<<5 | 1<<7 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12

// behindRow is one profile's waiting change.
type behindRow struct {
	mask  uint16     // the columns that wait (every change's since the row was written)
	vals  []any      // profileColumns' values as they stand now
	row   *storedRow // the profile as it stands now: loads decode it
	since time.Time  // when the first waiting change came
	ver   uint64
	first uint64 // ver of the first waiting change: its place in the queue
}

// queued is a place in behindSet.queue: id's waiting change that began
// with ver first.
type queued struct {
	id    string
	first uint64
}

type behindUndo struct {
	id   string
	prev *behindRow // nil: there was none
}

// behindSet holds the waiting rows (under Module.cacheMu). Entries are
// replaced, never changed in place, so an undo can hold the one before.
type behindSet struct {
	rows map[string]*behindRow
	// queue holds the waiting changes in the order their first change
	// came; those written since stay in it until they reach its front.
	queue []queued
	ver   uint64
	// undo is what the events transaction in progress (or not yet
	// confirmed committed) changed, to put back if it did not commit.
	undo     []behindUndo
	undoSeen map[string]bool
	// probe is the record id of an event that transaction inserted: a
	// start of the next one that was not told of its commit looks it up.
	probe string
}

func (s *behindSet) get(id string) *behindRow {
	if s == nil {
		return nil
	}
	return s.rows[id]
}

func (s *behindSet) logUndo(id string) {
	if s.undoSeen == nil {
		s.undoSeen = map[string]bool{}
	}
	if !s.undoSeen[id] {
		s.undoSeen[id] = true
		s.undo = append(s.undo, behindUndo{id: id, prev: s.rows[id]})
	}
}

// set makes e id's waiting change; logged when the events transaction
// makes it.
func (s *behindSet) set(id string, e *behindRow, logged bool) {
	if logged {
		s.logUndo(id)
	}
	if s.rows == nil {
		s.rows = map[string]*behindRow{}
	}
	s.ver++
	e.ver = s.ver
	if prev := s.rows[id]; prev != nil {
		e.first = prev.first
	} else {
		e.first = e.ver // a new place, at the back
		s.queue = append(s.queue, queued{id, e.first})
	}
	s.rows[id] = e
}

// remove forgets id's waiting change (it was written, or the row is gone).
func (s *behindSet) remove(id string, logged bool) {
	if s.rows[id] == nil {
		return
	}
	if logged {
		s.logUndo(id)
	}
	delete(s.rows, id)
	if len(s.queue) > 64 && len(s.queue) > 2*len(s.rows) {
		q := s.queue[:0]
		for _, it := range s.queue {
			if s.current(it) {
				q = append(q, it)
			}
		}
		clear(s.queue[len(q):])
		s.queue = q
	}
}

// current says whether it is still a waiting change's place.
func (s *behindSet) current(it queued) bool {
	e := s.rows[it.id]
	return e != nil && e.first == it.first
}

// confirm keeps what the events transaction changed: it committed.
func (s *behindSet) confirm() {
	s.undo, s.undoSeen, s.probe = nil, nil, ""
}

// rollback puts back what the events transaction changed: it did not
// commit.
func (s *behindSet) rollback() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		u := s.undo[i]
		if u.prev == nil {
			delete(s.rows, u.id)
			continue
		}
		if s.rows == nil {
			s.rows = map[string]*behindRow{}
		}
		if cur := s.rows[u.id]; cur == nil || cur.first != u.prev.first {
			// at the back: written within a window more
			s.queue = append(s.queue, queued{u.id, u.prev.first})
		}
		s.rows[u.id] = u.prev
	}
	s.confirm()
}

// due lists the waiting rows to write now: those whose window has passed
// (oldest first, at most limit), and the oldest beyond max.
func (s *behindSet) due(now time.Time, delay time.Duration, limit, max int) []string {
	var out []string
	for _, it := range s.queue {
		if len(out) >= limit {
			break
		}
		if !s.current(it) {
			continue
		}
		if now.Sub(s.rows[it.id].since) < delay && len(s.rows)-len(out) <= max {
			break
		}
		out = append(out, it.id)
	}
	return out
}

// writeDelay is how long a derived change may wait (0: none waits).
func (m *Module) writeDelay() time.Duration {
	if m.noDefer {
		return 0
	}
	return m.delay
}

// maxBehind bounds the waiting rows: as many as the row cache holds.
func maxBehind() int { return max(rowBudget()/cachedRowBytes, 1000) }

const (
	behindAddSQL = "INSERT OR IGNORE INTO profile_behind (profile) VALUES (?)"
	behindDelSQL = "DELETE FROM profile_behind WHERE profile=?"
)

// holdBack leaves p's change (w) waiting instead of writing it, when it
// may: p's row is stored, only derived columns changed, and its window is
// still open. It reports whether it did.
func (b *batch) holdBack(p *profile, w *rowWrite) (bool, error) {
	delay := b.m.writeDelay()
	if delay <= 0 || !b.inEvents || b.rows == nil || p.isNew || p.saved == nil || w.mask&^deferrableColumns != 0 {
		return false, nil
	}
	prev := b.m.behind.get(p.id)
	e := &behindRow{mask: w.mask, vals: w.vals, row: w.row, since: b.now}
	if prev != nil {
		if b.now.Sub(prev.since) >= delay {
			return false, nil
		}
		e.mask |= prev.mask
		e.since = prev.since
	} else {
		st, err := b.stmt(&b.sBehindAdd, behindAddSQL)
		if err != nil {
			return false, err
		}
		if _, err := st.Exec(p.id); err != nil {
			return false, err
		}
	}
	b.m.behind.set(p.id, e, true)
	b.m.heldBack.Add(1)
	return true, nil
}

// lockBehind takes cacheMu for a batch outside the events transaction
// (whose callers do not hold it); the events batch's caller holds it.
func (b *batch) lockBehind() func() {
	if b.inEvents {
		return func() {}
	}
	b.m.cacheMu.Lock()
	return b.m.cacheMu.Unlock
}

// waiting is id's waiting change, nil when none.
func (b *batch) waiting(id string) *behindRow {
	defer b.lockBehind()()
	return b.m.behind.get(id)
}

// wroteBehind records that id's row was just written whole (w; nil when
// the row is now a merge's pointer). In the events transaction nothing of
// it waits any more. A batch outside it cannot know whether its own
// transaction commits: the waiting change is renewed with what it wrote
// instead, and written again when its window ends.
func (b *batch) wroteBehind(id string, w *rowWrite) error {
	defer b.lockBehind()()
	e := b.m.behind.get(id)
	if e == nil {
		return nil
	}
	if !b.inEvents && w != nil {
		b.m.behind.set(id, &behindRow{mask: e.mask | w.mask&deferrableColumns, vals: w.vals, row: w.row, since: e.since}, false)
		return nil
	}
	return b.forgetWritten(id)
}

// forgetWritten forgets id's waiting change, just written (cacheMu held).
func (b *batch) forgetWritten(id string) error {
	st, err := b.stmt(&b.sBehindDel, behindDelSQL)
	if err != nil {
		return err
	}
	if _, err := st.Exec(id); err != nil {
		return err
	}
	b.m.behind.remove(id, b.inEvents && !b.unlogged)
	return nil
}

// writeWaiting writes the waiting change of each of ids in b's
// transaction and forgets it (logged when b is the events batch).
func (b *batch) writeWaiting(ids []string, forget bool) error {
	for _, id := range ids {
		e := b.m.behind.get(id)
		if e == nil {
			continue
		}
		if err := b.updateRow(id, e.vals, e.mask); err != nil {
			return fmt.Errorf("write profile %s: %w", id, err)
		}
		if !forget {
			continue
		}
		if err := b.forgetWritten(id); err != nil {
			return err
		}
	}
	return nil
}

// writeDue writes the waiting rows whose window has passed (the events
// batch does, after its own profiles).
func (b *batch) writeDue() error {
	if len(b.m.behind.rows) == 0 {
		return nil
	}
	return b.writeWaiting(b.m.behind.due(b.now, b.m.delay, dueBehindPerBatch, maxBehind()), true)
}

// dueBehindPerBatch bounds how many waiting rows one events batch writes
// besides its own, so that one batch after a pause does not take long.
const dueBehindPerBatch = 2000

// settle decides, at the start of a writer transaction, whether the last
// events transaction committed when its commit was never confirmed: its
// probe row is there or not. One that did not commit has its changes to
// the waiting rows put back, and the cache starts over.
func (m *Module) settle(tx core.App) {
	if !m.cache.unconfirmed {
		return
	}
	committed := false
	if m.behind.probe != "" {
		var one int
		err := tx.DB().NewQuery("SELECT 1 FROM events WHERE id={:id}").Bind(dbx.Params{"id": m.behind.probe}).Row(&one)
		committed = err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			m.log.Warn("could not tell whether the last events batch committed; its waiting profile changes are dropped", "error", err)
		}
	}
	if committed {
		// What the cache learnt from it is committed: it stays. Another
		// writer can get here before the events path confirms its own
		// commit, and dropping the cache then would cost a re-read.
		m.behind.confirm()
		m.cache.unconfirmed = false
	} else {
		m.behind.rollback()
		m.cache.reset()
	}
	m.writing = nil
}

// catchUp writes in tx the waiting changes of ids (every one when ids is
// nil), so that SQL over the profiles rows reads them. In the events
// transaction they are then forgotten, as its own writes. In another
// transaction they are forgotten only when forget is set, and the caller
// must call restore if that transaction did not commit; otherwise they
// stay waiting and are written once more when their window ends, which
// is harmless. The caller does not hold cacheMu.
func (m *Module) catchUp(tx core.App, ids []string, forget bool) (restore func(), err error) {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	return m.catchUpLocked(tx, ids, forget)
}

// catchUpLocked is catchUp for a caller that holds cacheMu.
func (m *Module) catchUpLocked(tx core.App, ids []string, forget bool) (restore func(), err error) {
	restore = func() {}
	if len(m.behind.rows) == 0 {
		return restore, nil
	}
	events := m.writing != nil && m.writing == tx
	if !events {
		m.settle(tx)
	}
	todo := m.waitingOf(ids)
	if len(todo) == 0 {
		return restore, nil
	}
	b := m.newBatch(tx, false)
	defer b.close()
	b.inEvents = true // cacheMu is held, as for the events batch
	if events {
		return restore, b.writeWaiting(todo, true) // logged
	}
	b.unlogged = true
	if !forget {
		return restore, b.writeWaiting(todo, false)
	}
	kept := make(map[string]*behindRow, len(todo))
	for _, id := range todo {
		kept[id] = m.behind.rows[id]
	}
	if err := b.writeWaiting(todo, true); err != nil {
		return restore, err
	}
	return func() {
		m.cacheMu.Lock()
		defer m.cacheMu.Unlock()
		for id, e := range kept {
			if m.behind.get(id) == nil {
				m.behind.set(id, e, false)
			}
		}
	}, nil
}

// waitingOf is ids with a waiting change (every waiting id for nil).
func (m *Module) waitingOf(ids []string) []string {
	var out []string
	if ids == nil {
		for id := range m.behind.rows {
			out = append(out, id)
		}
		return out
	}
	for _, id := range ids {
		if m.behind.rows[id] != nil {
			out = append(out, id)
		}
	}
	return out
}

// CatchUp has the waiting changes of ids (all for none) written: in app's
// transaction when app is one, else in a transaction of its own. Readers
// of profile rows in other modules call it through store.SyncProfiles
// before reading the columns events derive.
func (m *Module) CatchUp(app core.App, ids ...string) error {
	if ids != nil && len(ids) == 0 {
		return nil
	}
	// Nothing of theirs waits (the usual case, or a second call for the
	// same customer): no transaction, which would queue behind the events
	// writer for nothing.
	m.cacheMu.Lock()
	some := len(m.behind.rows) > 0 && (ids == nil || len(m.waitingOf(ids)) > 0)
	m.cacheMu.Unlock()
	if !some {
		return nil
	}
	if app.IsTransactional() {
		_, err := m.catchUp(app, ids, false)
		return err
	}
	return m.inOwnTx(app, ids)
}

// inOwnTx writes the waiting changes of ids in a transaction of its own.
func (m *Module) inOwnTx(app core.App, ids []string) error {
	var restore func()
	err := app.RunInTransaction(func(tx core.App) error {
		var err error
		restore, err = m.catchUp(tx, ids, true)
		return err
	})
	if err != nil && restore != nil {
		restore()
	}
	return err
}

// flushIdle writes the waiting rows whose window passed while no events
// batch came to write them.
func (m *Module) flushIdle() {
	m.cacheMu.Lock()
	ids := m.behind.due(m.now().UTC(), m.delay, dueBehindPerBatch, maxBehind())
	m.cacheMu.Unlock()
	if len(ids) == 0 {
		return
	}
	if err := m.inOwnTx(m.app, ids); err != nil {
		m.log.Error("write waiting profile rows", "error", err)
	}
}

// recoverBehind recomputes, at start, the rows a crash left waiting:
// their derived columns are worked out again from their events.
func (m *Module) recoverBehind(app core.App) error {
	var ids []string
	if err := app.DB().NewQuery("SELECT profile FROM profile_behind").Column(&ids); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	m.log.Warn("recomputing profiles whose rows were waiting for changes when the server stopped", "profiles", len(ids))
	for start := 0; start < len(ids); start += 200 {
		part := ids[start:min(start+200, len(ids))]
		err := app.RunInTransaction(func(tx core.App) error {
			b := m.newBatch(tx, false)
			defer b.close()
			for _, id := range part {
				if err := b.recompute(id); err != nil {
					return err
				}
			}
			if err := b.flush(); err != nil {
				return err
			}
			in, args := store.InList(part)
			_, err := store.Executor(tx).Exec("DELETE FROM profile_behind WHERE profile IN "+in, args...)
			return err
		})
		if err != nil {
			return fmt.Errorf("recompute waiting profiles: %w", err)
		}
	}
	return nil
}

// recompute works p's computed values out again from its stored events
// (traits, consent and identities are as stored: they never wait).
func (b *batch) recompute(id string) error {
	var created, into string
	err := b.tx.DB().NewQuery("SELECT created, merged_into FROM profiles WHERE id={:id}").Bind(dbx.Params{"id": id}).Row(&created, &into)
	if errors.Is(err, sql.ErrNoRows) || into != "" {
		return nil // erased or merged since
	}
	if err != nil {
		return err
	}
	p, err := b.load(id)
	if err != nil {
		return err
	}
	scratch := b.m.newBatch(b.tx, false) // rebuild's profile, apart from p
	defer scratch.close()
	r, err := scratch.rebuild(id, created, false)
	if err != nil {
		return err
	}
	p.comp = r.comp
	p.saved = nil // every column is written
	p.dirty, p.touched = true, true
	return nil
}

// waitingComputed is the computed JSON of those of ps whose row waits to
// be written (nil when none does); cacheMu is held.
func (m *Module) waitingComputed(ps []*profile) map[string]string {
	var out map[string]string
	for _, p := range ps {
		if e := m.behind.get(p.id); e != nil {
			if out == nil {
				out = map[string]string{}
			}
			out[p.id] = e.row.computed
		}
	}
	return out
}
