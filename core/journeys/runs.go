package journeys

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/journeys/graph"
	"github.com/omni/omni/core/store"
)

// dbTime is how PocketBase stores dates; due_at compares as text.
const dbTime = "2006-01-02 15:04:05.000Z"

func fmtT(t time.Time) string { return t.UTC().Format(dbTime) }

func parseT(s string) time.Time {
	t, _ := time.Parse(dbTime, s)
	return t
}

// compiled is one version of a journey, parsed once.
type compiled struct {
	ID       string
	Name     string
	Status   string // the journey's status now
	Version  int
	Graph    *graph.Graph
	Settings *graph.Settings
	// GoalWithin is the goal window (0: no goal).
	GoalWithin time.Duration
}

type versionKey struct {
	journey string
	version int
}

// liveSet caches the journeys that are live or paused, at their latest
// version (what triggers enrol into), and every version a run is on
// (loaded on demand: a version never changes once published).
type liveSet struct {
	mu       sync.RWMutex
	current  map[string]*compiled // journey id → latest published version, live or paused
	versions map[versionKey]*compiled
	// loaded are told after each load (indexes derived from the live
	// journeys, such as the triggers').
	loaded []func(app core.App) error
}

// onLoad adds f to what runs after each load; register before the first.
func (l *liveSet) onLoad(f func(app core.App) error) { l.loaded = append(l.loaded, f) }

func newLiveSet() *liveSet {
	return &liveSet{current: map[string]*compiled{}, versions: map[versionKey]*compiled{}}
}

// load (re)reads the live and paused journeys; call it after a publish,
// pause, resume or archive.
func (l *liveSet) load(app core.App) error {
	var rows []struct {
		ID      string `db:"id"`
		Name    string `db:"name"`
		Status  string `db:"status"`
		Version int    `db:"version"`
	}
	err := app.DB().NewQuery("SELECT id, name, status, version FROM " + Collection +
		" WHERE status IN ('live','paused') AND version > 0").All(&rows)
	if err != nil {
		return err
	}
	cur := map[string]*compiled{}
	for _, r := range rows {
		c, err := l.version(app, r.ID, r.Version)
		if err != nil {
			return fmt.Errorf("journey %s version %d: %w", r.ID, r.Version, err)
		}
		cc := *c
		cc.Name, cc.Status = r.Name, r.Status
		cur[r.ID] = &cc
	}
	l.mu.Lock()
	l.current = cur
	l.mu.Unlock()
	for _, f := range l.loaded {
		if err := f(app); err != nil {
			return err
		}
	}
	return nil
}

// live lists the journeys at their latest version, live or paused.
func (l *liveSet) live() []*compiled {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]*compiled, 0, len(l.current))
	for _, c := range l.current {
		out = append(out, c)
	}
	return out
}

// get is one journey's latest version, if live or paused.
func (l *liveSet) get(id string) (*compiled, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	c, ok := l.current[id]
	return c, ok
}

// version reads a published version (cached forever: versions are
// immutable).
func (l *liveSet) version(app core.App, journey string, v int) (*compiled, error) {
	k := versionKey{journey, v}
	l.mu.RLock()
	c, ok := l.versions[k]
	l.mu.RUnlock()
	if ok {
		return c, nil
	}
	var row struct {
		Graph    string `db:"graph"`
		Settings string `db:"settings"`
	}
	err := app.DB().NewQuery("SELECT graph, settings FROM " + VersionsCollection + " WHERE journey={:j} AND version={:v}").
		Bind(dbx.Params{"j": journey, "v": v}).One(&row)
	if err != nil {
		return nil, err
	}
	c, err = compile(journey, v, []byte(row.Graph), []byte(row.Settings))
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.versions[k] = c
	l.mu.Unlock()
	return c, nil
}

// compile parses a stored graph and settings.
func compile(journey string, v int, rawGraph, rawSettings []byte) (*compiled, error) {
	g, err := graph.Parse(rawGraph)
	if err != nil {
		return nil, err
	}
	s, ps := graph.ParseSettings(rawSettings)
	if ps != nil {
		return nil, ps
	}
	c := &compiled{ID: journey, Version: v, Graph: g, Settings: s}
	if g.Goal != nil {
		c.GoalWithin, _ = graph.ParseDuration(g.Goal.Within)
	}
	return c, nil
}

// Run is a journey_runs row.
type Run struct {
	ID           string  `db:"id" json:"id"`
	Journey      string  `db:"journey" json:"journey"`
	Version      int     `db:"version" json:"version"`
	Profile      string  `db:"profile" json:"profile"`
	Node         string  `db:"node" json:"node"`
	Status       string  `db:"status" json:"status"`
	ExitReason   string  `db:"exit_reason" json:"exit_reason"`
	Context      string  `db:"context" json:"-"`
	DueAt        string  `db:"due_at" json:"due_at"`
	WaitEvent    string  `db:"wait_event" json:"wait_event"`
	Attempt      int     `db:"attempt" json:"attempt"`
	Arm          string  `db:"arm" json:"arm"`
	Holdout      bool    `db:"holdout" json:"holdout"`
	TriggerEvent string  `db:"trigger_event" json:"trigger_event"`
	EnteredAt    string  `db:"entered_at" json:"entered_at"`
	EndedAt      string  `db:"ended_at" json:"ended_at"`
	GoalUntil    string  `db:"goal_until" json:"goal_until"`
	GoalAt       string  `db:"goal_at" json:"goal_at"`
	GoalEvent    string  `db:"goal_event" json:"goal_event"`
	GoalValue    float64 `db:"goal_value" json:"goal_value"`
	GoalCurrency string  `db:"goal_currency" json:"goal_currency"`
}

// RunColumns selects a Run.
const RunColumns = "id, journey, version, profile, node, status, exit_reason, context, due_at, wait_event, attempt, arm, holdout, " +
	"trigger_event, entered_at, ended_at, goal_until, goal_at, goal_event, goal_value, goal_currency"

// RunContext is what a run carries: the event that started it (its type,
// id and properties, for templates, branches and wait_for_event matching)
// and what the engine notes along the way.
type RunContext struct {
	Event      string            `json:"event,omitempty"`       // type of the triggering event
	EventID    string            `json:"event_id,omitempty"`    // its Omni id
	Properties map[string]any    `json:"properties,omitempty"`  // its properties
	Source     string            `json:"source,omitempty"`      // manual, segment, date, event
	Segment    string            `json:"segment,omitempty"`     // for segment triggers
	Resume     string            `json:"resume,omitempty"`      // the exit a waiting step resumes by (set by resume)
	ResumeWith map[string]any    `json:"resume_with,omitempty"` // what resumed it (the awaited event's id and type)
	Arms       map[string]string `json:"arms,omitempty"`        // split node → arm taken
	// Kept by the engine for the step the run is at.
	At     string         `json:"at,omitempty"`      // when it arrived there
	SendID string         `json:"send_id,omitempty"` // a send step's request id (= ledger row id)
	Held   bool           `json:"held,omitempty"`    // a send held while a conversation was open
	Tries  int            `json:"tries,omitempty"`   // a webhook's failed calls; a send's looks at the ledger
	Errors int            `json:"errors,omitempty"`  // failed attempts at the step (retried, then "failed")
	Extra  map[string]any `json:"extra,omitempty"`
}

// Enrolment is a customer entering a journey.
type Enrolment struct {
	Journey *compiled
	Profile string
	Context RunContext
	At      time.Time
}

// Reasons an enrolment is refused.
var (
	ErrActiveRun = errors.New("already in this journey")
	ErrReentry   = errors.New("has been in this journey before (re-entry rule)")
)

// enrol starts a run at the journey's first step, due at once, unless the
// customer has an active run of it (a customer is never in one journey
// twice at a time) or the re-entry setting refuses. It runs in the caller's
// transaction: the events transaction for triggers, its own for the API.
func enrol(tx core.App, e Enrolment) (string, error) {
	j := e.Journey
	var last struct {
		Status    string `db:"status"`
		EnteredAt string `db:"entered_at"`
	}
	err := tx.DB().NewQuery("SELECT status, entered_at FROM " + RunsCollection +
		" WHERE profile={:p} AND journey={:j} ORDER BY (status IN ('active','waiting')) DESC, entered_at DESC LIMIT 1").
		Bind(dbx.Params{"p": e.Profile, "j": j.ID}).One(&last)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return "", err
	default:
		lr := &lastRun{Active: last.Status == RunActive || last.Status == RunWaiting, EnteredAt: last.EnteredAt}
		if err := refuseEnrolment(j, lr, e.At); err != nil {
			return "", err
		}
	}
	ctx, err := json.Marshal(e.Context)
	if err != nil {
		return "", err
	}
	id := store.NewRecordID()
	now := fmtT(e.At)
	goalUntil := ""
	if j.GoalWithin > 0 {
		goalUntil = fmtT(e.At.Add(j.GoalWithin))
	}
	_, err = tx.DB().NewQuery("INSERT INTO " + RunsCollection + ` (id, journey, version, profile, node, status, exit_reason, context,
		due_at, wait_event, attempt, arm, holdout, trigger_event, entered_at, ended_at, goal_until, goal_at, goal_event, goal_value,
		goal_currency, created, updated) VALUES ({:id}, {:j}, {:v}, {:p}, {:node}, 'active', '', {:ctx}, {:now}, '', 0, '', 0, {:ev},
		{:now}, '', {:gu}, '', '', 0, '', {:now}, {:now})`).Bind(dbx.Params{
		"id": id, "j": j.ID, "v": j.Version, "p": e.Profile, "node": j.Graph.Start, "ctx": string(ctx),
		"now": now, "ev": e.Context.EventID, "gu": goalUntil,
	}).Execute()
	if err != nil {
		return "", err
	}
	return id, nil
}

// resume moves a waiting run on by exit (a wait_for_event's "happened"),
// due now; with is noted in its context. It does nothing to a run that is
// not waiting (already resumed, timed out or ended).
func resume(tx core.App, runID, exit string, with map[string]any, at time.Time) (bool, error) {
	w, _ := json.Marshal(with)
	res, err := tx.DB().NewQuery("UPDATE " + RunsCollection + ` SET status='active', due_at={:at}, wait_event='',
		context=json_set(json_set(CASE WHEN json_valid(context) THEN context ELSE '{}' END, '$.resume', {:exit}), '$.resume_with', json({:w})),
		updated={:at} WHERE id={:id} AND status='waiting'`).
		Bind(dbx.Params{"id": runID, "exit": exit, "w": string(w), "at": fmtT(at)}).Execute()
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// endRun ends an active or waiting run for reason (goal, left_segment,
// unsubscribed, manual, archived, merged, end, failed).
func endRun(tx core.App, runID, reason string, at time.Time) (bool, error) {
	status := RunExited
	if reason == "end" {
		status = RunCompleted
	}
	res, err := tx.DB().NewQuery("UPDATE " + RunsCollection + ` SET status={:s}, exit_reason={:r}, ended_at={:at}, due_at='',
		wait_event='', updated={:at} WHERE id={:id} AND status IN ('active','waiting')`).
		Bind(dbx.Params{"id": runID, "s": status, "r": reason, "at": fmtT(at)}).Execute()
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Step is a journey_steps row: a step a run took (exit "" while waiting).
type Step struct {
	Run     string
	Journey string
	Version int
	Profile string
	Node    string
	Type    string
	Exit    string
	Detail  map[string]any
	At      time.Time
}

// recordStep appends to the run's history.
func recordStep(tx core.App, s Step) error {
	detail := "{}"
	if len(s.Detail) > 0 {
		b, err := json.Marshal(s.Detail)
		if err != nil {
			return err
		}
		detail = string(b)
	}
	_, err := tx.DB().NewQuery("INSERT INTO " + StepsCollection + ` (id, run, journey, version, profile, node, type, exit, detail, at)
		VALUES ({:id}, {:run}, {:j}, {:v}, {:p}, {:node}, {:t}, {:exit}, {:d}, {:at})`).Bind(dbx.Params{
		"id": store.NewRecordID(), "run": s.Run, "j": s.Journey, "v": s.Version, "p": s.Profile, "node": s.Node,
		"t": s.Type, "exit": s.Exit, "d": detail, "at": fmtT(s.At),
	}).Execute()
	return err
}
