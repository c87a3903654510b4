package inbox

import (
	"sync/atomic"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/relay"
)

// inboundBatch is what the inbound processor keeps while it works through
// one batch of the events transaction. Filing a customer message runs the
// same few statements every time, and SQLite parsing them cost more than
// running them: they are prepared once per batch. The events the batch's
// parts stage (conversation.opened, hand-offs, …) go to the relay together
// at the end of the batch, in the order staged, instead of one identity
// look-up and one insert per event.
type inboundBatch struct {
	tx     core.App
	stmts  map[string]*dbx.Query
	staged []*events.Event
}

// batchState is the batch being processed, if any (only the events writer
// sets it; every other caller's tx differs, so it works as before).
type batchState struct{ cur atomic.Pointer[inboundBatch] }

func (s *batchState) begin(tx core.App) *inboundBatch {
	b := &inboundBatch{tx: tx, stmts: map[string]*dbx.Query{}}
	s.cur.Store(b)
	return b
}

// of is the batch running in tx, or nil.
func (s *batchState) of(tx core.App) *inboundBatch {
	if b := s.cur.Load(); b != nil && b.tx == tx {
		return b
	}
	return nil
}

// end stages what the batch collected (when ok) and closes its statements.
func (s *batchState) end(b *inboundBatch, ok bool) (staged bool, err error) {
	s.cur.CompareAndSwap(b, nil)
	for _, q := range b.stmts {
		_ = q.Close()
	}
	if !ok || len(b.staged) == 0 {
		return false, nil
	}
	return true, relay.StageForProfiles(b.tx, b.staged)
}

// query is sql on tx: prepared once per batch on the events path, a
// one-off query elsewhere. Bind every parameter on every use.
func (m *Module) query(tx core.App, sql string) *dbx.Query {
	b := m.batch.of(tx)
	if b == nil {
		return tx.DB().NewQuery(sql)
	}
	q := b.stmts[sql]
	if q == nil {
		q = tx.DB().NewQuery(sql).Prepare()
		if q.LastError != nil {
			// Reported by the query's first use; not kept.
			return q
		}
		b.stmts[sql] = q
	}
	return q
}
