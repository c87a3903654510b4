package connectors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/deadletter"
	"github.com/omni/omni/core/events"
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

// BackfillDeadConsumer is the consumer name under which backfills park the
// events they skip in events_dead (core/deadletter).
const BackfillDeadConsumer = "backfill"

// backfillPrefix starts the subject of a parked backfill event; the
// connector's name follows. There is no such bus subject: backfilled events
// are parked before they reach the bus.
const backfillPrefix = "omni.backfill."

func backfillSubject(connector string) string { return backfillPrefix + connector }

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
		skipped, _ := backfillSkips(m.app, name)
		i.log.Info("backfill done", "skipped", skipped)
		_ = updateFields(m.app, name, map[string]any{"backfill_state": BackfillDone, "backfill_cursor": "", "backfill_updated": types.NowDateTime().String()})
	}
}

// backfillSink stores each batch on the bus, then records the cursor and
// progress, so a restart resumes after the last stored batch.
type backfillSink struct {
	m    *Module
	name string
}

// An invalid event is skipped: parked in events_dead (the event, the error
// naming the field) and counted, and the import carries on. Failing the
// batch instead would fail the backfill, and every resume would stop at
// the same event, so the import could never finish.
func (s *backfillSink) Batch(ctx context.Context, evs []sdk.Event, cursor string, p sdk.Progress) error {
	if len(evs) > 0 {
		now := time.Now().UTC()
		out := make([]*events.Event, 0, len(evs))
		for idx, e := range evs {
			ev, err := s.m.convertOne(s.name, e, now)
			if err != nil {
				if err := s.skip(e, fmt.Errorf("event %d of a batch (%s): %w", idx, e.ID, err)); err != nil {
					return err
				}
				continue
			}
			out = append(out, ev)
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

// skip parks an invalid backfilled event. When it cannot be parked (the
// database refuses writes) the backfill fails rather than lose the event
// unrecorded; it resumes at the last stored batch.
func (s *backfillSink) skip(e sdk.Event, cause error) error {
	data, err := json.Marshal(e)
	if err != nil {
		data, _ = json.Marshal(map[string]string{"id": e.ID, "type": e.Type, "unencodable": err.Error()})
	}
	f := deadletter.Failure{Consumer: BackfillDeadConsumer, EventID: backfillDeadID(s.name, e.ID, data),
		Subject: backfillSubject(s.name), Type: truncate(e.Type, 200), Data: data, Err: cause}
	if err := deadletter.Park(s.m.app, f); err != nil {
		return fmt.Errorf("could not set aside an invalid event: %w", err)
	}
	s.m.log.Warn("backfill: skipped an invalid event; parked in events_dead", "connector", s.name, "event_id", f.EventID, "error", cause)
	return nil
}

// backfillDeadID is the event's own id, which is stable, so meeting the
// same event again (a resumed or repeated backfill) updates its row; an
// event without a usable id is named by its content.
func backfillDeadID(connector, id string, data []byte) string {
	if id != "" && len(id) <= events.MaxIDLength {
		return id
	}
	sum := sha256.Sum256(data)
	return connector + ":sha256:" + hex.EncodeToString(sum[:16])
}

// backfillSkips returns how many of a connector's backfilled events are
// parked (skipped and not yet deleted or re-imported), and the newest
// one's error.
func backfillSkips(a core.App, connector string) (int64, string) {
	where := dbx.HashExp{"consumer": BackfillDeadConsumer, "subject": backfillSubject(connector)}
	var n int64
	if err := a.DB().Select("COUNT(*)").From(deadletter.Collection).Where(where).Row(&n); err != nil || n == 0 {
		return 0, ""
	}
	var last string
	_ = a.DB().Select("error").From(deadletter.Collection).Where(where).OrderBy("last_failed DESC", "id DESC").Limit(1).Row(&last)
	return n, last
}

// redrive answers retries of parked backfill events (asked for by the CLI,
// the admin or the API). A retry cannot fetch the event again from the
// vendor, so it validates the stored event again: one that passes now (say
// a time that was too far in the future) is imported and its row removed;
// one that still fails gets its retry marked failed with the same reason,
// rather than waiting as "retry requested" for ever.
func (b *backfills) redrive() {
	app := b.m.app
	rows, err := deadletter.Requested(app, BackfillDeadConsumer, 100)
	if err != nil {
		b.m.log.Error("backfill: reading skipped events to retry", "error", err)
		return
	}
	for _, row := range rows {
		name := strings.TrimPrefix(row.Subject, backfillPrefix)
		if !strings.HasPrefix(row.Subject, backfillPrefix) || !validName(name) {
			_ = deadletter.RetryFailed(app, row.ID, fmt.Errorf("cannot retry: subject %q does not name a connector's backfill", row.Subject))
			continue
		}
		var e sdk.Event
		if err := json.Unmarshal([]byte(row.Data), &e); err != nil {
			_ = deadletter.RetryFailed(app, row.ID, fmt.Errorf("cannot retry: the stored event does not decode: %w", err))
			continue
		}
		ev, err := b.m.convertOne(name, e, time.Now().UTC())
		if err != nil {
			err = fmt.Errorf("still invalid, not imported: %w (fix the event at the vendor and run the backfill again, or delete this row)", err)
			if err := deadletter.RetryFailed(app, row.ID, err); err != nil {
				b.m.log.Error("backfill: recording a failed retry", "event_id", row.EventID, "error", err)
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
		errs := ingest.Publish(ctx, b.m.o.Bus, []*events.Event{ev})
		cancel()
		if errs[0] != nil {
			_ = deadletter.RetryFailed(app, row.ID, fmt.Errorf("could not store the event: %w", errs[0]))
			continue
		}
		if err := deadletter.Resolve(app, row.ID); err != nil {
			b.m.log.Error("backfill: clearing an imported skipped event", "event_id", row.EventID, "error", err)
		}
		b.m.log.Info("backfill: skipped event imported on retry", "connector", name, "event_id", row.EventID)
	}
}
