package journeys

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/journeys/graph"
)

// triggerMaxAge bounds how old an event may be and still enrol: a
// connector importing last year's orders must not send a thank-you for
// each of them. Goals and awaited events are judged by their own windows.
const triggerMaxAge = 24 * time.Hour

// triggerIndex is what the events transaction needs to know about the
// journeys, rebuilt whenever the live set loads, so that an event no
// journey cares about costs a few map lookups.
type triggerIndex struct {
	onEvent   map[string][]*compiled // event type → live journeys it enrols into
	onSegment map[string][]*compiled // segment id → live journeys entered on entering or leaving it
	dated     []*compiled            // live journeys with a date trigger
	// Over every version a run may still be on (the current ones and any
	// with active runs when the index was built):
	waits        map[string]bool // event types a wait_for_event step awaits
	goals        map[string]bool // goal event types
	exitSegments map[string]bool // segments whose leaving ends a run
	exitUnsub    bool            // some run ends when its customer unsubscribes
}

// triggerState is the module's part for triggers: the index, and whether
// the last events transaction staged journey events for the relay.
type triggerState struct {
	index  atomic.Pointer[triggerIndex]
	staged atomic.Bool
}

func (m *Module) triggerIndex() *triggerIndex {
	if ix := m.triggers.index.Load(); ix != nil {
		return ix
	}
	return &triggerIndex{}
}

// indexTriggers rebuilds the trigger index from the live set; liveSet.load
// calls it after each (re)load.
func (m *Module) indexTriggers(app core.App) error {
	ix := &triggerIndex{onEvent: map[string][]*compiled{}, onSegment: map[string][]*compiled{},
		waits: map[string]bool{}, goals: map[string]bool{}, exitSegments: map[string]bool{}}
	versions := map[versionKey]*compiled{}
	for _, c := range m.live.live() {
		versions[versionKey{c.ID, c.Version}] = c
		if c.Status != StatusLive {
			continue // paused: no new enrolments
		}
		t := c.Graph.Trigger
		switch {
		case t.Event != "":
			ix.onEvent[t.Event] = append(ix.onEvent[t.Event], c)
		case t.Segment != "":
			ix.onSegment[t.Segment] = append(ix.onSegment[t.Segment], c)
		case t.Date != nil:
			ix.dated = append(ix.dated, c)
		}
	}
	// Older versions still carry runs that wait, convert and exit by their
	// own graph.
	var rows []struct {
		Journey string `db:"journey"`
		Version int    `db:"version"`
	}
	if err := app.DB().NewQuery("SELECT DISTINCT journey, version FROM " + RunsCollection +
		" WHERE status = 'active' OR status = 'waiting'").All(&rows); err != nil {
		return fmt.Errorf("versions with runs: %w", err)
	}
	for _, r := range rows {
		k := versionKey{r.Journey, r.Version}
		if versions[k] != nil {
			continue
		}
		c, err := m.live.version(app, r.Journey, r.Version)
		if err != nil {
			m.logger().Warn("journey version with runs cannot be read; its runs will not resume or convert", "journey", r.Journey, "version", r.Version, "error", err)
			continue
		}
		versions[k] = c
	}
	for _, c := range versions {
		g := c.Graph
		for _, n := range g.Nodes {
			if n != nil && n.Type == graph.WaitForEvent && n.Event != "" {
				ix.waits[n.Event] = true
			}
		}
		if g.Goal != nil && g.Goal.Event != "" {
			ix.goals[g.Goal.Event] = true
		}
		if e := g.ExitOn; e != nil {
			if e.Segment != "" {
				ix.exitSegments[e.Segment] = true
			}
			ix.exitUnsub = ix.exitUnsub || e.Unsubscribed
		}
	}
	m.triggers.index.Store(ix)
	return nil
}

// logger works before Init too (liveSet.load may run from tests early).
func (m *Module) logger() interface {
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
} {
	if m.log != nil {
		return m.log
	}
	return nopLog{}
}

type nopLog struct{}

func (nopLog) Warn(string, ...any)  {}
func (nopLog) Error(string, ...any) {}

// kickRelayIfStaged asks the relay to publish after a batch whose
// transaction staged journey.entered / journey.exited events.
func (m *Module) kickRelayIfStaged() {
	if m.triggers.staged.Swap(false) && m.o != nil && m.o.Relay != nil {
		m.o.Relay.Kick()
	}
}

// triggerProcessor enrols customers on event and segment triggers, records
// goals, applies exit rules and resumes runs waiting for an event, in the
// transaction that stores each batch of events (after profiles, which
// resolves each event's customer).
type triggerProcessor struct{ m *Module }

func (p triggerProcessor) ProcessBatch(tx core.App, batch []*eventstore.Stored) error {
	ix := p.m.triggerIndex()
	t := &trigTx{m: p.m, tx: tx, ix: ix, now: p.m.opts.Now()}
	defer t.close()
	var todo []*eventstore.Stored
	var enrolling, converting []string
	for _, s := range batch {
		if s.Profile == "" || !ix.cares(s.Event) {
			continue
		}
		todo = append(todo, s)
		if ix.mayEnrol(s.Event) {
			enrolling = append(enrolling, s.Profile)
		}
		if ix.goals[s.Event.Type] || ix.waits[s.Event.Type] {
			converting = append(converting, s.Profile)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	if err := t.loadRuns(enrolling); err != nil {
		return fmt.Errorf("journeys: runs of the batch's customers: %w", err)
	}
	if err := t.loadOpen(converting); err != nil {
		return fmt.Errorf("journeys: open runs of the batch's customers: %w", err)
	}
	for _, s := range todo {
		if err := t.event(s); err != nil {
			return err
		}
	}
	return t.flush()
}

// mayEnrol: some live journey is triggered by ev's type (or segment).
func (ix *triggerIndex) mayEnrol(ev *events.Event) bool {
	if ix.onEvent[ev.Type] != nil {
		return true
	}
	if ev.Type == events.SegmentEntered || ev.Type == events.SegmentExited {
		seg, _ := ev.Properties["segment_id"].(string)
		return ix.onSegment[seg] != nil
	}
	return false
}

// cares is the fast path: whether any journey may act on ev.
func (ix *triggerIndex) cares(ev *events.Event) bool {
	typ := ev.Type
	if strings.HasPrefix(typ, "journey.") || ev.Properties["auto_reply"] == true {
		return false // Omni's own journey events never loop; automatic answers are nobody's action
	}
	if ix.onEvent[typ] != nil || ix.waits[typ] || ix.goals[typ] {
		return true
	}
	switch typ {
	case events.SegmentEntered, events.SegmentExited:
		seg, _ := ev.Properties["segment_id"].(string)
		return ix.onSegment[seg] != nil || (typ == events.SegmentExited && ix.exitSegments[seg])
	case events.ConsentChanged:
		return ix.exitUnsub
	}
	return false
}

// trigTx is one batch's work in the events transaction.
type trigTx struct {
	m      *Module
	tx     core.App
	ix     *triggerIndex
	now    time.Time
	staged []*events.Event
	// last holds, per customer and journey, what the re-entry rules look
	// at, read for the whole batch in a few queries and kept up to date as
	// the batch starts and ends runs: most events of a busy customer are
	// refused ("already in this journey") without a query.
	last map[string]*lastRun
	ins  *runInserter
	// open holds, per customer, the runs a goal or an awaited event may
	// act on (goal window not yet used, or waiting for an event), read for
	// the batch at once and kept up to date as the batch changes them.
	open map[string][]*Run
}

// distinct lists the distinct values of ids, as query arguments.
func distinct(ids []string) []any {
	seen := map[string]bool{}
	var out []any
	for _, p := range ids {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// loadOpen reads the open runs of the customers whose events may be a
// goal or awaited.
func (t *trigTx) loadOpen(profiles []string) error {
	t.open = map[string][]*Run{}
	ids := distinct(profiles)
	for len(ids) > 0 {
		n := min(len(ids), 500)
		var runs []*Run
		in, err := json.Marshal(ids[:n]) // one parameter (see loadRuns)
		if err != nil {
			return err
		}
		if err := t.tx.DB().Select(strings.Split(RunColumns, ", ")...).From(RunsCollection).
			Where(dbx.NewExp("profile IN (SELECT value FROM json_each({:ids}))", dbx.Params{"ids": string(in)})).
			AndWhere(dbx.NewExp("(goal_at = '' AND goal_until != '') OR (status = 'waiting' AND wait_event != '')")).
			All(&runs); err != nil {
			return err
		}
		for _, r := range runs {
			t.open[r.Profile] = append(t.open[r.Profile], r)
		}
		ids = ids[n:]
	}
	return nil
}

// ended notes in the batch's view that a run is over.
func (t *trigTx) ended(profile, run string) {
	for _, r := range t.open[profile] {
		if r.ID == run {
			r.Status, r.WaitEvent = RunExited, ""
		}
	}
}

func lastKey(profile, journey string) string { return profile + "\x00" + journey }

// loadRuns reads the runs of the customers the batch may enrol.
func (t *trigTx) loadRuns(profiles []string) error {
	t.last = map[string]*lastRun{}
	ids := distinct(profiles)
	for len(ids) > 0 {
		n := min(len(ids), 500)
		var rows []struct {
			Profile   string `db:"profile"`
			Journey   string `db:"journey"`
			Status    string `db:"status"`
			EnteredAt string `db:"entered_at"`
		}
		// The ids go as one JSON array: the SQLite driver binds each of
		// 500 parameters by a search over all of them.
		in, err := json.Marshal(ids[:n])
		if err != nil {
			return err
		}
		if err := t.tx.DB().NewQuery("SELECT profile, journey, status, entered_at FROM " + RunsCollection +
			" WHERE profile IN (SELECT value FROM json_each({:ids}))").Bind(dbx.Params{"ids": string(in)}).All(&rows); err != nil {
			return err
		}
		for _, r := range rows {
			k := lastKey(r.Profile, r.Journey)
			l := t.last[k]
			if l == nil {
				l = &lastRun{}
				t.last[k] = l
			}
			l.Active = l.Active || r.Status == RunActive || r.Status == RunWaiting
			if r.EnteredAt > l.EnteredAt {
				l.EnteredAt = r.EnteredAt
			}
		}
		ids = ids[n:]
	}
	return nil
}

func (t *trigTx) close() {
	if t.ins != nil {
		t.ins.close()
	}
}

// event acts on one stored event. Only database errors are returned (the
// batch is retried, then the event parked); a journey that cannot judge
// the event is logged and skipped.
func (t *trigTx) event(s *eventstore.Stored) (err error) {
	defer func() {
		if r := recover(); r != nil {
			t.m.logger().Error("journeys: event skipped by triggers after a fault", "event_id", s.Event.ID, "type", s.Event.Type, "fault", fmt.Sprint(r))
			err = nil
		}
	}()
	ev, profile := s.Event, s.Profile
	typ := ev.Type
	// Goals first: a purchase that is both the goal and the awaited event
	// ends the run by its goal ("stop as soon as they buy").
	if t.ix.goals[typ] {
		if err := t.goals(ev, profile); err != nil {
			return fmt.Errorf("journeys: goals: %w", err)
		}
	}
	if err := t.exitRules(ev, profile); err != nil {
		return fmt.Errorf("journeys: exit rules: %w", err)
	}
	if t.ix.waits[typ] {
		if err := t.resumeWaiting(ev, profile); err != nil {
			return fmt.Errorf("journeys: awaited event: %w", err)
		}
	}
	if err := t.enrolOn(ev, profile); err != nil {
		return fmt.Errorf("journeys: triggers: %w", err)
	}
	return nil
}

// enrolOn starts runs of the live journeys ev triggers.
func (t *trigTx) enrolOn(ev *events.Event, profile string) error {
	var candidates []*compiled
	rc := RunContext{Event: ev.Type, EventID: ev.ID, Properties: ev.Properties, Source: "event"}
	switch ev.Type {
	case events.SegmentEntered, events.SegmentExited:
		seg, _ := ev.Properties["segment_id"].(string)
		on := "enter"
		if ev.Type == events.SegmentExited {
			on = "exit"
		}
		for _, c := range t.ix.onSegment[seg] {
			want := c.Graph.Trigger.On
			if want == "" {
				want = "enter"
			}
			if want == on {
				candidates = append(candidates, c)
			}
		}
		rc.Source, rc.Segment = "segment", seg
	default:
		if t.now.Sub(ev.OccurredAt) > triggerMaxAge {
			return nil
		}
		for _, c := range t.ix.onEvent[ev.Type] {
			if c.Graph.Trigger.Where.Match(ev.Properties) {
				candidates = append(candidates, c)
			}
		}
	}
	at := ev.OccurredAt
	if at.IsZero() || at.After(t.now) {
		at = t.now // a client clock ahead of ours
	}
	var ctx []byte
	for _, c := range candidates {
		k := lastKey(profile, c.ID)
		if refuseEnrolment(c, t.last[k], at) != nil {
			continue
		}
		if ctx == nil {
			var err error
			if ctx, err = json.Marshal(rc); err != nil {
				t.m.logger().Warn("journeys: event properties cannot be kept; not enrolled", "event_id", ev.ID, "error", err)
				return nil
			}
		}
		if t.ins == nil {
			var err error
			if t.ins, err = newRunInserter(t.tx); err != nil {
				return err
			}
		}
		id, err := t.ins.insert(c, profile, string(ctx), ev.ID, at)
		if err != nil {
			return err
		}
		t.last[k] = &lastRun{Active: true, EnteredAt: fmtT(at)}
		if c.GoalWithin > 0 && t.open != nil {
			t.open[profile] = append(t.open[profile], &Run{ID: id, Journey: c.ID, Version: c.Version, Profile: profile,
				Node: c.Graph.Start, Status: RunActive, Context: string(ctx), TriggerEvent: ev.ID, EnteredAt: fmtT(at),
				GoalUntil: fmtT(at.Add(c.GoalWithin))})
		}
		t.stage(journeyEvent("journey.entered", c, id, profile, map[string]any{"source": rc.Source}, at))
	}
	return nil
}

// resumeWaiting moves on the customer's runs waiting for ev's type whose
// step's where and match hold.
func (t *trigTx) resumeWaiting(ev *events.Event, profile string) error {
	for _, r := range t.open[profile] {
		if r.Status != RunWaiting || r.WaitEvent != ev.Type {
			continue
		}
		c, err := t.m.live.version(t.tx, r.Journey, r.Version)
		if err != nil {
			t.m.logger().Warn("journeys: run's version cannot be read", "run", r.ID, "error", err)
			continue
		}
		n := c.Graph.Nodes[r.Node]
		if n == nil || n.Type != graph.WaitForEvent || n.Event != ev.Type || !n.Where.Match(ev.Properties) {
			continue
		}
		if !sameContext(n.Match, ev.Properties, runContext(r.Context).Properties) {
			continue
		}
		if _, err := resume(t.tx, r.ID, "happened", map[string]any{"event_id": ev.ID, "type": ev.Type}, t.now); err != nil {
			return err
		}
		r.Status, r.WaitEvent = RunActive, ""
	}
	return nil
}

// sameContext: each listed property is present and equal on the awaited
// event and the event that started the run (the same checkout id).
func sameContext(props []string, evProps, runProps map[string]any) bool {
	for _, p := range props {
		a, ok := graph.Lookup(evProps, p)
		if !ok || a == nil {
			return false
		}
		b, ok := graph.Lookup(runProps, p)
		if !ok || b == nil {
			return false
		}
		if x, ok := graph.Number(a); ok {
			if y, ok := graph.Number(b); ok && x == y {
				continue
			}
		}
		if fmt.Sprint(a) != fmt.Sprint(b) {
			return false
		}
	}
	return true
}

// exitRules ends runs whose journey says to stop when the customer leaves
// a segment or unsubscribes.
func (t *trigTx) exitRules(ev *events.Event, profile string) error {
	var reason, seg string
	switch ev.Type {
	case events.SegmentExited:
		seg, _ = ev.Properties["segment_id"].(string)
		if !t.ix.exitSegments[seg] {
			return nil
		}
		reason = "left_segment"
	case events.ConsentChanged:
		st, _ := ev.Properties["status"].(string)
		if !t.ix.exitUnsub || strings.ToLower(strings.TrimSpace(st)) != "unsubscribed" {
			return nil
		}
		reason = "unsubscribed"
	default:
		return nil
	}
	var runs []Run
	err := t.tx.DB().NewQuery("SELECT " + RunColumns + " FROM " + RunsCollection +
		" WHERE profile = {:p} AND (status = 'active' OR status = 'waiting')").
		Bind(dbx.Params{"p": profile}).All(&runs)
	if err != nil {
		return err
	}
	for _, r := range runs {
		c, err := t.m.live.version(t.tx, r.Journey, r.Version)
		if err != nil {
			t.m.logger().Warn("journeys: run's version cannot be read", "run", r.ID, "error", err)
			continue
		}
		e := c.Graph.ExitOn
		if e == nil || (reason == "left_segment" && e.Segment != seg) || (reason == "unsubscribed" && !e.Unsubscribed) {
			continue
		}
		if err := t.end(c, r, reason, map[string]any{"event_id": ev.ID}); err != nil {
			return err
		}
	}
	return nil
}

// end ends a run early at its current node: the run row, the step row the
// contract asks for (exit "", detail.ended) and journey.exited.
func (t *trigTx) end(c *compiled, r Run, reason string, extra map[string]any) error {
	stage, err := endEarly(t.tx, c, r, reason, extra, t.now)
	if err != nil || stage == nil {
		return err
	}
	t.ended(r.Profile, r.ID)
	if l := t.last[lastKey(r.Profile, r.Journey)]; l != nil {
		l.Active = false // it may enter again later in the batch, by its re-entry rule
	}
	t.stage(stage)
	return nil
}

// endEarly ends r for reason while it is at a node, records the step and
// returns the journey.exited event to stage (nil if the run had already
// ended).
func endEarly(tx core.App, c *compiled, r Run, reason string, extra map[string]any, now time.Time) (*events.Event, error) {
	ok, err := endRun(tx, r.ID, reason, now)
	if err != nil || !ok {
		return nil, err
	}
	// Not counting the "_goal" row: a goal that ends the run was recorded
	// just before, and the run arrived at its node earlier.
	arrived := arrivedAt(tx, r)
	typ := ""
	if n := c.Graph.Nodes[r.Node]; n != nil {
		typ = n.Type
	}
	detail := map[string]any{"ended": reason, "arrived_at": arrived}
	for k, v := range extra {
		detail[k] = v
	}
	if err := recordStep(tx, Step{Run: r.ID, Journey: r.Journey, Version: r.Version, Profile: r.Profile, Node: r.Node,
		Type: typ, Exit: "", Detail: detail, At: now}); err != nil {
		return nil, err
	}
	return journeyEvent("journey.exited", c, r.ID, r.Profile, map[string]any{"reason": reason}, now), nil
}

func (t *trigTx) stage(ev *events.Event) { t.staged = append(t.staged, ev) }

// flush stages the batch's journey events through the relay, with each
// customer's strongest identity, in the events transaction.
func (t *trigTx) flush() error {
	if len(t.staged) == 0 {
		return nil
	}
	if err := stageJourneyEvents(t.tx, t.staged); err != nil {
		return fmt.Errorf("journeys: stage events: %w", err)
	}
	t.m.triggers.staged.Store(true)
	return nil
}

// scheduler enrols customers on date triggers (birthdays, N days after the
// last order) once per date, when their local time passes the trigger's
// hour.
type scheduler struct {
	m    *Module
	quit chan struct{}
	done chan struct{}
}

func newScheduler(m *Module) *scheduler { return &scheduler{m: m} }

func (s *scheduler) start() {
	s.quit, s.done = make(chan struct{}), make(chan struct{})
	go s.loop()
}

func (s *scheduler) stop(ctx context.Context) {
	if s.quit == nil {
		return
	}
	close(s.quit)
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}

func (s *scheduler) loop() {
	defer close(s.done)
	t := time.NewTicker(s.m.opts.DateEvery)
	defer t.Stop()
	for {
		n, err := s.m.enrolDated(s.m.opts.Now())
		if err != nil {
			s.m.logger().Error("journeys: date triggers", "error", err)
		}
		if n > 0 {
			s.m.kick()
		}
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
	}
}

// enrolDated enrols, for each live journey with a date trigger, the
// customers whose day it is; it returns how many runs started.
func (m *Module) enrolDated(now time.Time) (int, error) {
	total := 0
	for _, c := range m.triggerIndex().dated {
		n, err := m.enrolDatedJourney(c, now)
		total += n
		if err != nil {
			return total, fmt.Errorf("journey %s: %w", c.ID, err)
		}
	}
	return total, nil
}

// datedCandidate is a customer whose date trait falls on a day that is
// today somewhere on Earth.
type datedCandidate struct {
	ID   string `db:"id"`
	TZ   string `db:"tz"`
	Date string `db:"d"`
}

func (m *Module) enrolDatedJourney(c *compiled, now time.Time) (int, error) {
	dt := c.Graph.Trigger.Date
	offsetDays := 0
	if dt.Offset != "" {
		d, _ := graph.ParseDuration(strings.TrimPrefix(dt.Offset, "-"))
		offsetDays = int(d / graph.Day)
		if strings.HasPrefix(dt.Offset, "-") {
			offsetDays = -offsetDays
		}
	}
	atH, atM := 9, 0
	if dt.At != "" {
		fmt.Sscanf(dt.At, "%d:%d", &atH, &atM)
	}
	// Local dates run from UTC-12 to UTC+14: today is one of three dates.
	// The date the trait must hold is that minus the offset.
	var want []any
	utc := now.UTC()
	for _, k := range []int{-1, 0, 1} {
		target := time.Date(utc.Year(), utc.Month(), utc.Day()+k-offsetDays, 0, 0, 0, 0, time.UTC)
		if dt.Yearly {
			want = append(want, target.Format("01-02"))
			if target.Month() == time.February && target.Day() == 28 && !leap(target.Year()) {
				want = append(want, "02-29")
			}
		} else {
			want = append(want, target.Format("2006-01-02"))
		}
	}
	tPath, cPath := "$."+strings.TrimPrefix(dt.Property, "traits."), "$."+dt.Property
	match := "substr(d, 1, 10)"
	if dt.Yearly {
		match = "substr(d, 6, 5)"
	}
	params := dbx.Params{"tp": tPath, "cp": cPath}
	holes := make([]string, len(want))
	for i, w := range want {
		k := fmt.Sprintf("w%d", i)
		params[k], holes[i] = w, "{:"+k+"}"
	}
	// One pass over profiles in SQL; the time zones are judged in Go over
	// the few whose date is near.
	var cands []datedCandidate
	// Only valid JSON is read: one damaged row must not stop every birthday.
	traits := "CASE WHEN json_valid(p.traits) THEN p.traits END"
	computed := "CASE WHEN json_valid(p.computed) THEN p.computed END"
	err := m.app.DB().NewQuery("SELECT id, tz, d FROM (SELECT p.id, COALESCE(json_extract(" + traits + ", '$.timezone'), " +
		"json_extract(" + traits + ", '$.time_zone'), json_extract(" + traits + ", '$.tz'), '') AS tz, " +
		"CAST(COALESCE(json_extract(" + traits + ", {:tp}), json_extract(" + computed + ", {:cp}), '') AS TEXT) AS d " +
		"FROM profiles p WHERE p.merged_into = '') WHERE " + match + " IN (" + strings.Join(holes, ", ") + ")").
		Bind(params).All(&cands)
	if err != nil {
		return 0, err
	}
	if len(cands) == 0 {
		return 0, nil
	}
	shop := m.shopTZ()
	started := 0
	err = m.app.RunInTransaction(func(tx core.App) error {
		var staged []*events.Event
		for _, cand := range cands {
			loc := shop
			if cand.TZ != "" {
				if l, err := time.LoadLocation(cand.TZ); err == nil {
					loc = l
				}
			}
			local := now.In(loc)
			if local.Hour()*60+local.Minute() < atH*60+atM {
				continue
			}
			today := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, time.UTC)
			if !dateMatches(cand.Date, today.AddDate(0, 0, -offsetDays), dt.Yearly) {
				continue
			}
			day := today.Format("2006-01-02")
			var last string
			err := tx.DB().NewQuery("SELECT COALESCE(json_extract(context, '$.extra.date'), '') FROM " + RunsCollection +
				" WHERE profile = {:p} AND journey = {:j} ORDER BY entered_at DESC LIMIT 1").
				Bind(dbx.Params{"p": cand.ID, "j": c.ID}).Row(&last)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if last == day {
				continue // never twice for the same date
			}
			rc := RunContext{Source: "date", Extra: map[string]any{"date": day, "property": dt.Property, "value": cand.Date}}
			id, err := enrol(tx, Enrolment{Journey: c, Profile: cand.ID, Context: rc, At: now})
			if err == ErrActiveRun || err == ErrReentry {
				continue
			}
			if err != nil {
				return err
			}
			started++
			staged = append(staged, journeyEvent("journey.entered", c, id, cand.ID, map[string]any{"source": "date"}, now))
		}
		return stageJourneyEvents(tx, staged)
	})
	if err != nil {
		return 0, err
	}
	if started > 0 && m.o != nil && m.o.Relay != nil {
		m.o.Relay.Kick()
	}
	return started, nil
}

// dateMatches: the trait's date (its first 10 characters, YYYY-MM-DD) is
// target, or for yearly triggers its month and day are (Feb 29 falls on
// Feb 28 in other years).
func dateMatches(trait string, target time.Time, yearly bool) bool {
	if len(trait) < 10 {
		return false
	}
	if !yearly {
		return trait[:10] == target.Format("2006-01-02")
	}
	md := trait[5:10]
	if md == target.Format("01-02") {
		return true
	}
	return md == "02-29" && target.Month() == time.February && target.Day() == 28 && !leap(target.Year())
}

func leap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// shopTZ is the shop's time zone (messaging.timezone), for customers
// without one.
func (m *Module) shopTZ() *time.Location {
	if m.o != nil && m.o.Config != nil {
		if loc, err := time.LoadLocation(m.o.Config.Messaging.Timezone); err == nil {
			return loc
		}
	}
	return time.UTC
}
