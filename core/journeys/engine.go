package journeys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/journeys/graph"
)

// engine walks due runs through their steps (see docs/journeys.md,
// "Steps" and "Guarantees"). One goroutine: it sleeps until woken (an
// enrolment, an awaited event), until the earliest due_at, or Options.Tick,
// then steps every due run in batches of Options.Batch, one transaction per
// batch. The timer index is journey_runs.due_at, written in the same
// transaction as the run's state, so timers survive restarts and fire late
// only by the downtime.
type engine struct {
	m     *Module
	hooks *webhooks
	quit  chan struct{}
	done  chan struct{}
	// publishTimeout bounds the publish of one send request.
	publishTimeout time.Duration
	// afterPublish, in tests, fails a step right after its send request is
	// on the bus (a crash between the publish and the commit).
	afterPublish func(sendID string) error
}

// maxHops bounds the steps one run takes in one batch. Validation refuses
// loops without a wait, so only a very long straight path reaches it; the
// run then simply continues in the next batch.
const maxHops = 64

// maxRunErrors is how many times a run whose step fails (a database error,
// the bus unavailable for a send) is retried before it ends as "failed".
const maxRunErrors = 8

func newEngine(m *Module) *engine {
	e := &engine{m: m, quit: make(chan struct{}), done: make(chan struct{}), publishTimeout: 10 * time.Second}
	e.hooks = newWebhooks(e)
	return e
}

func (e *engine) start() error {
	go e.loop()
	return nil
}

func (e *engine) stop(ctx context.Context) {
	select {
	case <-e.quit:
		return
	default:
	}
	close(e.quit)
	select {
	case <-e.done:
	case <-ctx.Done():
	}
	e.hooks.stop(ctx)
}

func (e *engine) loop() {
	defer close(e.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		n, err := e.runDue()
		if err != nil {
			e.m.log.Error("journeys: stepping due runs failed; retrying", "error", err)
		}
		select {
		case <-e.quit:
			return
		default:
		}
		if err == nil && n >= e.m.opts.Batch {
			continue // more are due
		}
		wait := e.m.opts.Tick
		if err != nil {
			wait = time.Second
		} else if next, ok := e.nextDue(); ok {
			if d := next.Sub(e.m.opts.Now()); d < wait {
				wait = d
			}
		}
		if wait < time.Millisecond {
			wait = time.Millisecond // due rows the last pass could not take (another clock): do not spin
		}
		timer.Reset(wait)
		select {
		case <-e.quit:
			return
		case <-e.m.wake:
			timer.Stop() // Go ≥ 1.23: Reset needs no drained channel
		case <-timer.C:
		}
	}
}

// pausedFilter excludes the runs of paused journeys: they hold where they
// are and move again once the journey is live.
func (e *engine) pausedFilter(p dbx.Params) string {
	var ids []string
	for _, c := range e.m.live.live() {
		if c.Status == StatusPaused {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	ph := make([]string, len(ids))
	for i, id := range ids {
		k := fmt.Sprintf("pj%d", i)
		p[k] = id
		ph[i] = "{:" + k + "}"
	}
	return " AND journey NOT IN (" + strings.Join(ph, ",") + ")"
}

// nextDue is the earliest timer of a run the engine may step.
func (e *engine) nextDue() (time.Time, bool) {
	p := dbx.Params{}
	var next string
	err := e.m.app.DB().NewQuery("SELECT COALESCE(MIN(due_at), '') FROM " + RunsCollection +
		" WHERE (status = 'active' OR status = 'waiting') AND due_at != ''" + e.pausedFilter(p)).Bind(p).Row(&next)
	if err != nil || next == "" {
		return time.Time{}, false
	}
	return parseT(next), true
}

// runDue steps one batch of due runs and returns how many it took.
func (e *engine) runDue() (int, error) {
	now := e.m.opts.Now().UTC()
	p := dbx.Params{"now": fmtT(now), "n": e.m.opts.Batch}
	q := "SELECT " + RunColumns + " FROM " + RunsCollection +
		" WHERE (status = 'active' OR status = 'waiting') AND due_at != '' AND due_at <= {:now}" + e.pausedFilter(p) +
		" ORDER BY due_at LIMIT {:n}"
	// A cheap look first, outside the write lock: most ticks find nothing.
	var due int
	if err := e.m.app.DB().NewQuery("SELECT COUNT(*) FROM (" + q + ")").Bind(p).Row(&due); err != nil || due == 0 {
		return 0, err
	}
	var runs []Run
	var b *batch
	// First without a savepoint per run (the common case: every step
	// works); if one fails, the whole batch is rolled back and stepped
	// again run by run in savepoints, so only the failing run is retried or
	// ended. A send published by the rolled back pass is published again
	// with the same id, which the gate dedupes.
	for _, careful := range []bool{false, true} {
		err := e.m.app.RunInTransaction(func(tx core.App) error {
			// Read inside the transaction: a run resumed or ended meanwhile
			// (an awaited event, a goal) is seen as it is now.
			runs = runs[:0]
			if err := tx.DB().NewQuery(q).Bind(p).All(&runs); err != nil {
				return err
			}
			b = newBatch(e, tx, now)
			b.careful = careful
			defer b.close()
			if err := b.findDuplicates(runs); err != nil {
				return err
			}
			for i := range runs {
				if err := b.stepRun(&runs[i]); err != nil {
					return err
				}
			}
			return stageJourneyEvents(tx, b.staged)
		})
		if errors.Is(err, errStepFailed) {
			continue
		}
		if err != nil || b == nil {
			return 0, err
		}
		break
	}
	if len(b.staged) > 0 && e.m.o != nil && e.m.o.Relay != nil {
		e.m.o.Relay.Kick()
	}
	// Webhook calls start only once the run is committed as waiting for
	// them: a rolled back batch calls nobody.
	for _, c := range b.hookCalls {
		e.hooks.dispatch(c)
	}
	return len(runs), nil
}

// batch is one transaction's worth of steps, with its prepared statements.
type batch struct {
	e   *engine
	tx  core.App
	now time.Time
	nw  string

	qSave, qRelease, qRollback *dbx.Query
	qUpdate, qStep             *dbx.Query
	qIdents                    *dbx.Query
	qMerged                    *dbx.Query           // prepared on first use
	rules                      map[string]*ruleStmt // branch rules, prepared on first use

	staged    []*events.Event
	hookCalls []hookCall
	// earlier maps a run to an earlier active run of the same journey and
	// customer (two after a merge): the later one ends as "merged".
	earlier map[string]string
	// careful: each run in its own savepoint (the second pass).
	careful bool
	// hasConversations: whether the inbox's table exists (looked up once).
	hasConversations *bool
}

func newBatch(e *engine, tx core.App, now time.Time) *batch {
	db := tx.DB()
	return &batch{e: e, tx: tx, now: now, nw: fmtT(now),
		qSave:     db.NewQuery("SAVEPOINT journey_run"),
		qRelease:  db.NewQuery("RELEASE journey_run"),
		qRollback: db.NewQuery("ROLLBACK TO journey_run"),
		qUpdate: db.NewQuery("UPDATE " + RunsCollection + ` SET node={:node}, status={:status}, exit_reason={:reason},
			context={:ctx}, due_at={:due}, wait_event={:we}, attempt={:attempt}, arm={:arm}, holdout={:holdout}, ended_at={:ended},
			updated={:now} WHERE id={:id}`).Prepare(),
		qStep: db.NewQuery("INSERT INTO " + StepsCollection + ` (id, run, journey, version, profile, node, type, exit, detail, at)
			VALUES ({:id}, {:run}, {:j}, {:v}, {:p}, {:node}, {:t}, {:exit}, {:d}, {:at})`).Prepare(),
		qIdents: db.NewQuery("SELECT kind, value FROM identities WHERE profile={:p} ORDER BY created, id").Prepare(),
		rules:   map[string]*ruleStmt{},
	}
}

func (b *batch) close() {
	for _, q := range []*dbx.Query{b.qSave, b.qRelease, b.qRollback, b.qUpdate, b.qStep, b.qIdents, b.qMerged} {
		if q != nil {
			_ = q.Close()
		}
	}
	for _, r := range b.rules {
		_ = r.q.Close()
	}
}

// findDuplicates fills b.earlier for the batch's runs in one query.
func (b *batch) findDuplicates(runs []Run) error {
	b.earlier = map[string]string{}
	p := dbx.Params{}
	ph := make([]string, len(runs))
	for i := range runs {
		k := "r" + strconv.Itoa(i)
		p[k], ph[i] = runs[i].ID, "{:"+k+"}"
	}
	var pairs []struct {
		Run     string `db:"run"`
		Earlier string `db:"earlier"`
	}
	// INDEXED BY: the planner would otherwise take the due-time partial
	// index (its condition is implied) and scan every waiting run.
	err := b.tx.DB().NewQuery(`SELECT r.id AS run, MIN(d.id) AS earlier FROM ` + RunsCollection + ` r
		JOIN ` + RunsCollection + ` d INDEXED BY idx_journey_runs_profile ON d.profile = r.profile AND d.journey = r.journey
		WHERE r.id IN (` + strings.Join(ph, ",") + `) AND d.id != r.id AND d.status IN ('active','waiting')
		AND (d.entered_at < r.entered_at OR (d.entered_at = r.entered_at AND d.id < r.id)) GROUP BY r.id`).Bind(p).All(&pairs)
	for _, x := range pairs {
		b.earlier[x.Run] = x.Earlier
	}
	return err
}

// runState is a run being stepped, in memory until it is written back.
type runState struct {
	*Run
	j   *compiled
	ctx RunContext
	// fresh: the run has just arrived at its node (rather than a timer
	// firing or an awaited event resuming it there).
	fresh  bool
	ended  string // the end reason once it ended
	events []*events.Event
	hooks  []hookCall
}

// outcome is what a step decided: leave by exit (with detail), or stay
// (waiting until due, or due again shortly when active).
type outcome struct {
	exit   string
	detail map[string]any
	stay   bool
	status string // when staying: waiting (default) or active
	due    time.Time
	wait   string // the awaited event type, for wait_for_event
	end    string // set by an exit step: the run ends here
}

func leave(exit string, detail map[string]any) outcome { return outcome{exit: exit, detail: detail} }

func stay(due time.Time) outcome { return outcome{stay: true, status: RunWaiting, due: due} }

// stepRun steps one run inside a savepoint: an error or a panic undoes
// that run's writes only, and the run is retried later or ended as
// failed; the batch goes on. Only an error writing that outcome (the
// database itself failing) aborts the batch.
func (b *batch) stepRun(r *Run) error {
	if !b.careful {
		st, err, _ := b.safeAdvance(r)
		if err != nil {
			return errStepFailed
		}
		b.staged = append(b.staged, st.events...)
		b.hookCalls = append(b.hookCalls, st.hooks...)
		return nil
	}
	if _, err := b.qSave.Execute(); err != nil {
		return err
	}
	// advance moves a copy: after a rollback, r is still what is stored.
	rc := *r
	st, err, panicked := b.safeAdvance(&rc)
	if err == nil {
		if _, err := b.qRelease.Execute(); err != nil {
			return err
		}
		b.staged = append(b.staged, st.events...)
		b.hookCalls = append(b.hookCalls, st.hooks...)
		return nil
	}
	if _, rerr := b.qRollback.Execute(); rerr != nil {
		return rerr
	}
	if err := b.failed(r, err, panicked); err != nil {
		return err
	}
	_, rerr := b.qRelease.Execute()
	return rerr
}

func (b *batch) safeAdvance(r *Run) (st *runState, err error, panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			err, panicked = fmt.Errorf("panic: %v", p), true
			b.e.m.log.Error("journeys: a step panicked", "run", r.ID, "node", r.Node,
				"panic", p, "stack", string(debug.Stack()))
		}
	}()
	st, err = b.advance(r)
	return st, err, false
}

// errStepFailed aborts a batch's fast pass: a step failed, so the batch is
// stepped again with a savepoint per run.
var errStepFailed = errors.New("a step failed")

// errFatal marks a run that cannot go on (its version or node is gone).
type errFatal struct{ msg string }

func (e errFatal) Error() string { return e.msg }

// failed handles a run whose step failed: retried with backoff a few
// times, then (or at once for a panic or a broken definition) ended with
// exit_reason "failed" and the error in its last step row.
func (b *batch) failed(r *Run, cause error, panicked bool) error {
	var ctx RunContext
	_ = json.Unmarshal([]byte(r.Context), &ctx)
	var fatal errFatal
	if !panicked && !errors.As(cause, &fatal) && ctx.Errors < maxRunErrors {
		ctx.Errors++
		b.e.m.log.Warn("journeys: a step failed; retrying the run", "run", r.ID, "node", r.Node, "error", cause, "try", ctx.Errors)
		c, _ := json.Marshal(ctx)
		due := b.now.Add(time.Duration(1<<min(ctx.Errors, 9)) * time.Second)
		_, err := b.qUpdate.Bind(dbx.Params{"id": r.ID, "node": r.Node, "status": r.Status, "reason": "", "ctx": string(c),
			"due": fmtT(due), "we": r.WaitEvent, "attempt": r.Attempt, "arm": r.Arm, "holdout": r.Holdout, "ended": "",
			"now": b.nw}).Execute()
		return err
	}
	b.e.m.log.Error("journeys: a run failed and ends", "run", r.ID, "journey", r.Journey, "node", r.Node, "error", cause)
	if err := b.writeStep(&runState{Run: r, ctx: ctx}, r.Node, "", "", map[string]any{"ended": "failed", "error": cause.Error()}); err != nil {
		return err
	}
	_, err := b.qUpdate.Bind(dbx.Params{"id": r.ID, "node": r.Node, "status": RunExited, "reason": "failed", "ctx": r.Context,
		"due": "", "we": "", "attempt": r.Attempt, "arm": r.Arm, "holdout": r.Holdout, "ended": b.nw, "now": b.nw}).Execute()
	if err == nil {
		b.staged = append(b.staged, b.exitedEvent(r, "failed", b.journeyName(r)))
	}
	return err
}

func (b *batch) journeyName(r *Run) string {
	if c, ok := b.e.m.live.get(r.Journey); ok {
		return c.Name
	}
	var name string
	_ = b.tx.DB().NewQuery("SELECT name FROM " + Collection + " WHERE id={:id}").Bind(dbx.Params{"id": r.Journey}).Row(&name)
	return name
}

// advance takes a run as far as it goes now: through every step that
// decides at once, until one waits or the run ends.
func (b *batch) advance(r *Run) (*runState, error) {
	st := &runState{Run: r}
	if r.Context != "" {
		if err := json.Unmarshal([]byte(r.Context), &st.ctx); err != nil {
			return nil, errFatal{"its context is not valid JSON: " + err.Error()}
		}
	}
	j, err := b.e.m.live.version(b.tx, r.Journey, r.Version)
	if err != nil {
		return nil, errFatal{fmt.Sprintf("version %d of the journey cannot be loaded: %v", r.Version, err)}
	}
	st.j = j
	if c, ok := b.e.m.live.get(r.Journey); ok {
		j2 := *j
		j2.Name = c.Name
		st.j = &j2
	}
	// A merge can bring two runs of one journey to one customer: the later
	// one ends.
	if kept, ok := b.earlier[r.ID]; ok {
		return st, b.end(st, "merged", map[string]any{"ended": "merged", "kept": kept})
	}
	// An active run has just arrived at its node (enrolled, moved on, or
	// retried), unless an awaited event resumed it; a waiting one is here
	// because its timer fired.
	st.fresh = r.Status == RunActive && st.ctx.Resume == ""
	if st.ctx.At == "" {
		st.ctx.At = b.nw
	}
	for hop := 0; hop < maxHops; hop++ {
		n := j.Graph.Nodes[r.Node]
		if n == nil {
			return nil, errFatal{fmt.Sprintf("step %q is not in version %d of the journey", r.Node, r.Version)}
		}
		o, err := b.step(st, r.Node, n)
		if err != nil {
			return nil, err
		}
		if o.end != "" {
			return st, b.end(st, o.end, map[string]any{"ended": o.end})
		}
		if o.stay {
			st.Status, st.WaitEvent = o.status, o.wait
			if st.Status == "" {
				st.Status = RunWaiting
			}
			st.DueAt = fmtT(o.due)
			return st, b.write(st)
		}
		if err := b.writeStep(st, r.Node, n.Type, o.exit, o.detail); err != nil {
			return nil, err
		}
		next := n.Next[o.exit]
		if next == "" {
			return st, b.end(st, "end", nil)
		}
		r.Node, r.Attempt = next, r.Attempt+1
		st.Status, st.WaitEvent, st.fresh = RunActive, "", true
		st.ctx.At, st.ctx.Resume, st.ctx.ResumeWith = b.nw, "", nil
		st.ctx.SendID, st.ctx.Held, st.ctx.Tries, st.ctx.Errors = "", false, 0, 0
	}
	st.Status, st.DueAt = RunActive, b.nw
	return st, b.write(st)
}

// write stores the run's state.
func (b *batch) write(st *runState) error {
	c, err := json.Marshal(st.ctx)
	if err != nil {
		return err
	}
	st.Context = string(c)
	_, err = b.qUpdate.Bind(dbx.Params{"id": st.ID, "node": st.Node, "status": st.Status, "reason": st.ExitReason,
		"ctx": st.Context, "due": st.DueAt, "we": st.WaitEvent, "attempt": st.Attempt, "arm": st.Arm, "holdout": st.Holdout,
		"ended": st.EndedAt, "now": b.nw}).Execute()
	return err
}

// end finishes the run: "end" (an exit step, or an exit leading nowhere)
// completes it; any other reason exits it. detail, when given, is the step
// row of the node it ends at (an exit step, or a run ended while there).
func (b *batch) end(st *runState, reason string, detail map[string]any) error {
	if detail != nil {
		typ := ""
		if n := st.j.Graph.Nodes[st.Node]; n != nil {
			typ = n.Type
		}
		if err := b.writeStep(st, st.Node, typ, "", detail); err != nil {
			return err
		}
	}
	st.Status, st.ExitReason, st.EndedAt, st.DueAt, st.WaitEvent = RunExited, reason, b.nw, "", ""
	if reason == "end" {
		st.Status = RunCompleted
	}
	if err := b.write(st); err != nil {
		return err
	}
	st.events = append(st.events, b.exitedEvent(st.Run, reason, st.j.Name))
	return nil
}

// writeStep appends one journey_steps row: the run leaves node by exit.
func (b *batch) writeStep(st *runState, node, typ, exit string, detail map[string]any) error {
	d := map[string]any{"arrived_at": st.ctx.At}
	for k, v := range detail {
		d[k] = v
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = b.qStep.Bind(dbx.Params{"id": newStepID(), "run": st.ID, "j": st.Journey, "v": st.Version, "p": st.Profile,
		"node": node, "t": typ, "exit": exit, "d": string(raw), "at": b.nw}).Execute()
	return err
}

// identities are the customer's strongest identity: an update step needs
// one to address its identify event to.
func (b *batch) identities(profile string) events.Identities {
	var rows []events.KindValue
	_ = b.qIdents.Bind(dbx.Params{"p": profile}).All(&rows)
	if s, ok := events.Strongest(rows); ok {
		return events.Identities{s.Kind: s.Value}
	}
	return events.Identities{}
}

// derived is an event the engine emits through the relay; the batch's
// events get their customers' identities when staged (stageJourneyEvents,
// one query for the batch).
func (b *batch) derived(id, typ, profile string, props map[string]any) *events.Event {
	props["profile_id"] = profile
	return &events.Event{ID: id, Type: typ, Source: "omni", OccurredAt: b.now, ReceivedAt: b.now,
		Identities: events.Identities{}, Properties: props}
}

// exitedEvent is journey.exited, built as the triggers build it.
func (b *batch) exitedEvent(r *Run, reason, name string) *events.Event {
	return journeyEvent("journey.exited", &compiled{ID: r.Journey, Name: name, Version: r.Version}, r.ID, r.Profile,
		map[string]any{"reason": reason}, b.now)
}

// step runs one node for a run at it.
func (b *batch) step(st *runState, id string, n *graph.Node) (outcome, error) {
	switch n.Type {
	case graph.Wait:
		return b.stepWait(st, n)
	case graph.WaitForEvent:
		return b.stepWaitForEvent(st, n)
	case graph.Branch:
		return b.stepBranch(st, n)
	case graph.Send:
		return b.stepSend(st, id, n)
	case graph.Split:
		return b.stepSplit(st, id, n), nil
	case graph.Holdout:
		return b.stepHoldout(st, id, n), nil
	case graph.Update:
		return b.stepUpdate(st, id, n)
	case graph.Webhook:
		return b.stepWebhook(st, id, n)
	case graph.Notify:
		return b.stepNotify(st, id, n), nil
	case graph.Exit:
		return outcome{end: "end"}, nil
	}
	return outcome{}, errFatal{fmt.Sprintf("step %q has an unknown type %q", id, n.Type)}
}
