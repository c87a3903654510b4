package connectors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/plugins/sdk"
)

// Backfill states on the connector record.
const (
	BackfillIdle      = "idle"
	BackfillRequested = "requested"
	BackfillRunning   = "running"
	BackfillDone      = "done"
	BackfillFailed    = "failed"
)

type backfills struct {
	m       *Module
	mu      sync.Mutex
	cancels map[string]context.CancelFunc
	// stopped is set by stopAll: a plugin that comes up during shutdown
	// (onRunning) or a sync must not start a backfill nobody would stop.
	stopped bool
	wg      sync.WaitGroup
}

func newBackfills(m *Module) *backfills {
	return &backfills{m: m, cancels: map[string]context.CancelFunc{}}
}

func (b *backfills) running(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cancels[name] != nil
}

// start runs the backfill recorded on the connector's record, resuming at
// its cursor; it is a no-op when one is already running.
func (b *backfills) start(name string) {
	b.mu.Lock()
	if b.stopped || b.cancels[name] != nil {
		b.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancels[name] = cancel
	// Added under mu, so stopAll's Wait (after it set stopped under mu)
	// never races an Add.
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		defer func() {
			b.mu.Lock()
			delete(b.cancels, name)
			b.mu.Unlock()
			cancel()
		}()
		b.run(ctx, name)
	}()
}

func (b *backfills) stopAll() {
	b.mu.Lock()
	b.stopped = true
	for _, c := range b.cancels {
		c()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *backfills) run(ctx context.Context, name string) {
	m := b.m
	i := m.instance(name)
	rec, err := m.app.FindFirstRecordByData(Collection, "name", name)
	if i == nil || err != nil {
		return
	}
	since, err := time.Parse(time.RFC3339, rec.GetString("backfill_since"))
	if err != nil {
		_ = updateFields(m.app, name, map[string]any{"backfill_state": BackfillFailed, "backfill_error": "backfill_since is not a time: " + rec.GetString("backfill_since")})
		return
	}
	conn, err := i.ready()
	if err != nil {
		return // picked up again once the connector runs
	}
	cursor := rec.GetString("backfill_cursor")
	_ = updateFields(m.app, name, map[string]any{"backfill_state": BackfillRunning, "backfill_error": "", "backfill_updated": types.NowDateTime().String()})
	i.log.Info("backfill started", "since", since.Format(time.RFC3339), "resume_cursor", cursor != "")
	err = conn.Backfill(ctx, &sdk.BackfillRequest{Since: since, Cursor: cursor}, &backfillSink{m: m, name: name})
	switch {
	case ctx.Err() != nil:
		// Server stopping: stays "running" and resumes at the cursor.
	case err != nil:
		msg := i.red.redact(err.Error())
		i.log.Warn("backfill failed", "error", msg)
		_ = updateFields(m.app, name, map[string]any{"backfill_state": BackfillFailed, "backfill_error": msg, "backfill_updated": types.NowDateTime().String()})
	default:
		i.log.Info("backfill done")
		_ = updateFields(m.app, name, map[string]any{"backfill_state": BackfillDone, "backfill_cursor": "", "backfill_updated": types.NowDateTime().String()})
	}
}

// backfillSink stores each batch on the bus, then records the cursor and
// progress, so a restart resumes after the last stored batch.
type backfillSink struct {
	m    *Module
	name string
}

func (s *backfillSink) Batch(ctx context.Context, evs []sdk.Event, cursor string, p sdk.Progress) error {
	if len(evs) > 0 {
		out, err := s.m.convert(s.name, evs)
		if err != nil {
			return fmt.Errorf("invalid backfill event: %w", err)
		}
		for _, err := range ingest.Publish(ctx, s.m.o.Bus, out) {
			if err != nil {
				return err
			}
		}
	}
	return updateFields(s.m.app, s.name, map[string]any{
		"backfill_cursor": cursor, "backfill_done": p.Done, "backfill_total": p.Total,
		"backfill_updated": types.NowDateTime().String(),
	})
}
