package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
	"github.com/pocketbase/pocketbase/tools/types"
	"github.com/spf13/cobra"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/datalock"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/internal/fastjson"
)

// rebuildChunk is how many events one transaction of a rebuild replays:
// short enough that the server's own batches wait little between them.
const rebuildChunk = 2000

// JobStatus is GET /api/v1/metrics/rebuild: the rebuild (or the re-rating
// after new exchange rates) running now or finished last.
type JobStatus struct {
	Running    bool   `json:"running"`
	Kind       string `json:"kind,omitempty"`  // rebuild | rerate | recredit
	Phase      string `json:"phase,omitempty"` // what Done and Total count: events | funnel customers | customers | orders
	Done       int    `json:"done"`
	Total      int    `json:"total"`
	StartedAt  string `json:"started_at,omitempty"`
	FinishedAt string `json:"finished_at,omitempty"`
	Error      string `json:"error,omitempty"`
	Summary    string `json:"summary,omitempty"`
}

// jobs runs one rebuild, re-rating or re-credit at a time, and lets
// Module.Stop cancel the running job and wait for it.
type jobs struct {
	run sync.Mutex // held while a job runs
	// apart is held while a job runs or the follower takes a chunk: a job
	// replays or re-derives what the follower would add (follow.go).
	apart  sync.Mutex
	mu     sync.Mutex
	status JobStatus

	ctx      context.Context // cancelled by stop
	cancel   context.CancelFunc
	stopping bool
	wg       sync.WaitGroup // job goroutines, running or waiting for run
}

// start counts a job goroutine in and returns its context; false once the
// module is stopping (start no job then).
func (j *jobs) start() (context.Context, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stopping {
		return nil, false
	}
	if j.ctx == nil {
		j.ctx, j.cancel = context.WithCancel(context.Background())
	}
	j.wg.Add(1)
	return j.ctx, true
}

// stop cancels the running job and waits for it (and for those waiting
// to run, which then do not) until ctx ends.
func (j *jobs) stop(ctx context.Context) {
	j.mu.Lock()
	j.stopping = true
	if j.cancel != nil {
		j.cancel()
	}
	j.mu.Unlock()
	done := make(chan struct{})
	go func() {
		j.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (j *jobs) get() JobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status
}

func (j *jobs) update(f func(*JobStatus)) {
	j.mu.Lock()
	f(&j.status)
	j.mu.Unlock()
}

// RebuildResult sums up a rebuild.
type RebuildResult struct {
	Events    int
	Facts     int
	Customers int
	Took      time.Duration
}

func (r RebuildResult) String() string {
	return fmt.Sprintf("metrics rebuilt from %s events in %s: %s order facts, %s buying customers",
		thousands(r.Events), r.Took.Round(time.Millisecond), thousands(r.Facts), thousands(r.Customers))
}

// rebuild empties every part and replays the events table through the
// same path stored batches take (each part's process, then the recompute
// of customers that merges, un-merges and erasures moved), in the order
// events were stored in, rebuildChunk events per
// transaction.
// progress is called after each chunk. Funnel entries are derived after
// the replay, a chunk of customers at a time (phase "funnel customers"):
// see funnelPart.holdForRebuild.
func (m *Module) rebuild(ctx context.Context, pb core.App, progress progressFunc) (RebuildResult, error) {
	started := time.Now()
	var res RebuildResult
	var total int
	if err := pb.DB().NewQuery("SELECT COUNT(*) FROM events").Row(&total); err != nil {
		return res, err
	}
	if err := pb.RunInTransaction(func(tx core.App) error {
		for _, pt := range m.parts() {
			if err := pt.reset(tx); err != nil {
				return err
			}
		}
		return m.funnels.holdForRebuild(tx)
	}); err != nil {
		return res, fmt.Errorf("reset: %w", err)
	}
	if err := m.funnels.held(pb); err != nil {
		return res, err
	}
	var after int64
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var n int
		err := pb.RunInTransaction(func(tx core.App) error {
			batch, last, err := readEvents(tx, after, rebuildChunk)
			if err != nil {
				return err
			}
			n, after = len(batch), last
			if n == 0 {
				// Replayed to the end: what the follower has queued is
				// in the replay (the follower waits while a job runs).
				_, err := tx.DB().NewQuery("DELETE FROM " + queueTable).Execute()
				return err
			}
			return m.processBatch(tx, batch)
		})
		if err != nil {
			return res, err
		}
		if n == 0 {
			break
		}
		res.Events += n
		if progress != nil {
			progress(phaseEvents, res.Events, max(total, res.Events))
		}
	}
	if err := m.funnels.rebuildEntries(ctx, pb, func(done, total int) {
		if progress != nil {
			progress(phaseFunnels, done, total)
		}
	}); err != nil {
		return res, err
	}
	_ = pb.DB().NewQuery("SELECT COUNT(*) FROM " + OrdersCollection).Row(&res.Facts)
	_ = pb.DB().NewQuery("SELECT COUNT(*) FROM " + CustomersCollection + " WHERE orders > 0").Row(&res.Customers)
	res.Took = time.Since(started)
	return res, nil
}

// progressFunc is told how far a job is: done of total in a phase.
type progressFunc func(phase string, done, total int)

// Phases of the jobs (JobStatus.Phase).
const (
	phaseEvents    = "events"
	phaseFunnels   = "funnel customers"
	phaseCustomers = "customers"
	phaseOrders    = "orders"
)

// eventRow is a row of the events table.
type eventRow struct {
	RowID      int64  `db:"rowid"`
	ID         string `db:"id"`
	EventID    string `db:"event_id"`
	Type       string `db:"type"`
	Name       string `db:"name"`
	Source     string `db:"source"`
	OccurredAt string `db:"occurred_at"`
	ReceivedAt string `db:"received_at"`
	Identities string `db:"identities"`
	Properties string `db:"properties"`
	Context    string `db:"context"`
	Profile    string `db:"profile"`
}

// readEvents reads up to n events stored after the row after, as the
// processors see them. SQLite's rowid follows the order rows were
// inserted in (record ids do only to the millisecond), so the first
// order.placed of an order is the one counted again.
func readEvents(tx core.App, after int64, n int) ([]*eventstore.Stored, int64, error) {
	var rows []eventRow
	err := tx.DB().NewQuery(`SELECT rowid, id, event_id, type, name, source, occurred_at, received_at, identities, properties, context, profile
		FROM events WHERE rowid > {:after} ORDER BY rowid LIMIT {:n}`).Bind(map[string]any{"after": after, "n": n}).All(&rows)
	if err != nil {
		return nil, after, err
	}
	if len(rows) > 0 {
		after = rows[len(rows)-1].RowID
	}
	return storedOf(rows), after, nil
}

// storedOf turns events rows into what the processors see.
func storedOf(rows []eventRow) []*eventstore.Stored {
	out := make([]*eventstore.Stored, 0, len(rows))
	for _, r := range rows {
		ev := &events.Event{ID: r.EventID, Type: r.Type, Name: r.Name, Source: r.Source}
		if t, err := types.ParseDateTime(r.OccurredAt); err == nil {
			ev.OccurredAt = t.Time()
		}
		if t, err := types.ParseDateTime(r.ReceivedAt); err == nil {
			ev.ReceivedAt = t.Time()
		}
		// A row that does not decode still replays with what it has.
		_ = fastjson.Unmarshal([]byte(r.Identities), &ev.Identities)
		_ = fastjson.Unmarshal([]byte(r.Properties), &ev.Properties)
		_ = fastjson.Unmarshal([]byte(r.Context), &ev.Context)
		out = append(out, &eventstore.Stored{RecordID: r.ID, Event: ev, Profile: r.Profile})
	}
	return out
}

// rerate applies new exchange rates: every fact that used the owner's
// rates (or had none) takes the rate in force now, and the customers with
// such facts are recomputed, in short transactions. A new base currency
// changes every rate, including those vendors reported against the old
// one: that is a rebuild.
func (m *Module) rerate(ctx context.Context, pb core.App, baseChanged bool, progress progressFunc) error {
	if baseChanged {
		_, err := m.rebuild(ctx, pb, progress)
		return err
	}
	base, rates := m.settings.currency(pb)
	var currencies []string
	if err := pb.DB().NewQuery("SELECT DISTINCT currency FROM " + OrdersCollection).Column(&currencies); err != nil {
		return err
	}
	for _, cur := range currencies {
		if cur == base {
			continue
		}
		rate, from := rates[cur], rateOwner
		if rate <= 0 {
			rate, from = 0, ""
		}
		err := pb.RunInTransaction(func(tx core.App) error {
			_, err := tx.DB().NewQuery(`UPDATE metrics_orders SET rate = {:r}, amount_base = round(amount * {:r}, 6), rate_from = {:f}
				WHERE currency = {:c} AND rate_from NOT IN ('vendor', 'base')`).Bind(map[string]any{"r": rate, "f": from, "c": cur}).Execute()
			return err
		})
		if err != nil {
			return err
		}
	}
	var profiles []string
	if err := pb.DB().NewQuery("SELECT DISTINCT profile FROM metrics_orders WHERE currency != {:b} AND rate_from NOT IN ('vendor', 'base')").
		Bind(map[string]any{"b": base}).Column(&profiles); err != nil {
		return err
	}
	const chunk = 500
	for i := 0; i < len(profiles); i += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		part := profiles[i:min(i+chunk, len(profiles))]
		if err := pb.RunInTransaction(func(tx core.App) error { return m.rollups.recomputeProfiles(tx, part, false) }); err != nil {
			return err
		}
		if progress != nil {
			progress(phaseCustomers, i+len(part), len(profiles))
		}
	}
	return nil
}

// runJob runs f as the one background job; the caller holds j.run and
// has counted the job in with j.start (ctx is its context).
func (m *Module) runJob(ctx context.Context, kind string, f func(ctx context.Context, progress progressFunc) (string, error)) {
	j := &m.rollups.jobs
	j.update(func(s *JobStatus) {
		*s = JobStatus{Running: true, Kind: kind, StartedAt: time.Now().UTC().Format(time.RFC3339Nano)}
	})
	go func() {
		defer j.wg.Done()
		defer j.run.Unlock()
		j.apart.Lock() // waits for a chunk the follower is taking
		defer j.apart.Unlock()
		last := time.Now()
		summary, err := f(ctx, func(phase string, done, total int) {
			j.update(func(s *JobStatus) { s.Phase, s.Done, s.Total = phase, done, total })
			if time.Since(last) > 5*time.Second || done == total {
				last = time.Now()
				m.log.Info("metrics: "+kind+" progress", "phase", phase, "done", done, "total", total)
			}
		})
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("stopped with the server; start it again (%w)", err)
		}
		j.update(func(s *JobStatus) {
			s.Running, s.FinishedAt, s.Summary = false, time.Now().UTC().Format(time.RFC3339Nano), summary
			if err != nil {
				s.Error = err.Error()
			}
		})
		if err != nil {
			m.log.Error("metrics: "+kind+" failed", "error", err)
		} else {
			m.log.Info("metrics: "+kind+" done", "summary", summary)
		}
	}()
}

// queueJob runs f once any running job has finished (not at all when the
// module stops first).
func (m *Module) queueJob(kind string, f func(ctx context.Context, progress progressFunc) (string, error)) {
	j := &m.rollups.jobs
	ctx, ok := j.start()
	if !ok {
		return
	}
	go func() {
		j.run.Lock()
		if ctx.Err() != nil {
			j.run.Unlock()
			j.wg.Done()
			return
		}
		m.runJob(ctx, kind, f)
	}()
}

// rerateInBackground re-rates after a currency setting changed, once any
// running job has finished.
func (m *Module) rerateInBackground(baseChanged bool) {
	m.queueJob("rerate", func(ctx context.Context, progress progressFunc) (string, error) {
		err := m.rerate(ctx, m.app, baseChanged, progress)
		return "exchange rates applied", err
	})
}

// recreditInBackground credits every order again after the owner changed
// the attribution setting (lookback, half-life, position shares), a chunk
// of orders per transaction.
func (m *Module) recreditInBackground() {
	m.queueJob("recredit", func(ctx context.Context, progress progressFunc) (string, error) {
		err := m.attrib.recreditAll(ctx, m.app, func(done, total int) { progress(phaseOrders, done, total) })
		return "attribution credited again", err
	})
}

// jobRoutes: POST /rebuild (owners) starts a rebuild in the background
// (409 while one runs); GET /rebuild tells how far it is.
func (m *Module) jobRoutes(g *router.RouterGroup[*core.RequestEvent]) {
	g.GET("/rebuild", func(e *core.RequestEvent) error {
		return e.JSON(http.StatusOK, m.rollups.jobs.get())
	})
	g.POST("/rebuild", func(e *core.RequestEvent) error {
		j := &m.rollups.jobs
		if !j.run.TryLock() {
			return api.Error(http.StatusConflict, "A rebuild of the metrics is running already; see GET /api/v1/metrics/rebuild.")
		}
		ctx, ok := j.start()
		if !ok {
			j.run.Unlock()
			return api.Error(http.StatusServiceUnavailable, "The server is stopping; rebuild the metrics after it starts again.")
		}
		m.runJob(ctx, "rebuild", func(ctx context.Context, progress progressFunc) (string, error) {
			res, err := m.rebuild(ctx, m.app, progress)
			if err == nil { // the finished job counts the events it replayed
				progress(phaseEvents, res.Events, res.Events)
			}
			return res.String(), err
		})
		return e.JSON(http.StatusAccepted, m.rollups.jobs.get())
	}).Bind(api.RequireOwner())
}

// attach readies a module for a command run beside no server (rebuild).
func (m *Module) attach(o *app.Omni) error {
	m.o, m.app, m.log = o, o.PB, o.Log.With("module", "metrics")
	m.enabled = o.Config.Metrics.Enabled
	if loc, err := time.LoadLocation(o.Config.Messaging.Timezone); err == nil {
		m.loc = loc
	}
	return m.settings.load(m.app)
}

func rebuildCmd(env *app.Env, opts Options) *cobra.Command {
	return &cobra.Command{
		Use:   "rebuild",
		Short: "Recompute every report's rollups from the events table (stop omni serve first)",
		Long: "Empties the metrics rollups and replays every stored event through them, in the order they were stored.\n" +
			"Run it after changing messaging.timezone (days are counted in the shop's zone) or to check the figures.\n" +
			"A running server does the same with POST /api/v1/metrics/rebuild (owners).",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &app.UsageError{Err: fmt.Errorf("metrics rebuild takes no arguments, got %q", strings.Join(args, " "))}
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := env.Config()
			if err != nil {
				return err
			}
			// The server's own batches would interleave with the replay;
			// it has POST /api/v1/metrics/rebuild for that.
			lock, err := datalock.Acquire(cfg.DataDir)
			if err != nil {
				var held *datalock.HeldError
				if errors.As(err, &held) {
					return fmt.Errorf("%w (a running server rebuilds with POST /api/v1/metrics/rebuild)", err)
				}
				return err
			}
			defer lock.Release()
			o, err := env.OpenApp()
			if err != nil {
				return err
			}
			defer o.PB.ResetBootstrapState()
			m := New(opts)
			if err := m.attach(o); err != nil {
				return err
			}
			bar := newProgress(env.Stderr)
			res, err := m.rebuild(c.Context(), o.PB, bar.show)
			bar.end()
			if err != nil {
				return fmt.Errorf("metrics rebuild: %w", err)
			}
			fmt.Fprintln(env.Stdout, res.String())
			return nil
		},
	}
}

// progress draws a bar on a terminal (redrawn in place) and plain lines
// about every 10% elsewhere (logs, CI).
type progress struct {
	w       io.Writer
	tty     bool
	started time.Time
	phase   string
	lastPct int
	drawn   bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, started: time.Now(), lastPct: -1}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// show draws one phase's progress; a new phase starts a new bar.
func (p *progress) show(phase string, done, total int) {
	if phase != p.phase {
		p.end()
		p.phase, p.started, p.lastPct, p.drawn = phase, time.Now(), -1, false
	}
	pct := 100
	if total > 0 {
		pct = done * 100 / total
	}
	rate := float64(done) / max(time.Since(p.started).Seconds(), 0.001)
	line := fmt.Sprintf("%3d%% %s/%s %s  %s/s", pct, thousands(done), thousands(total), phase, thousands(int(rate)))
	if p.tty {
		const width = 30
		fill := width * pct / 100
		fmt.Fprintf(p.w, "\r[%s%s] %s", strings.Repeat("#", fill), strings.Repeat(" ", width-fill), line)
		p.drawn = true
		return
	}
	if pct/10 > p.lastPct/10 || p.lastPct < 0 {
		p.lastPct = pct
		fmt.Fprintln(p.w, "metrics rebuild:", line)
	}
}

func (p *progress) end() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// thousands writes n with comma separators: 1,000,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
