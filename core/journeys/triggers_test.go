package journeys

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/profiles"
)

// tenv is a running Omni with profiles, messaging and journeys.
type tenv struct {
	*omnitest.Server
	m            *Module
	owner, agent string
}

func startEnv(t testing.TB, opts Options) *tenv {
	t.Helper()
	if opts.DateEvery == 0 {
		opts.DateEvery = time.Hour // date tests call enrolDated with their own clock
	}
	m := New(opts)
	s := omnitest.Start(t, omnitest.Options{Modules: func(*app.Omni) []app.Module {
		return []app.Module{profiles.New(profiles.Options{}), messaging.New(messaging.Options{}), m}
	}})
	e := &tenv{Server: s, m: m}
	if _, ok := t.(*testing.T); ok {
		e.owner = s.Staff(t, "owner@omni-shop.dev", "owner")
		e.agent = s.Staff(t, "agent@omni-shop.dev", "agent")
	}
	return e
}

// publishJourney stores a live journey at version 1 as the API would
// (journeys + journey_versions rows) and reloads the live set.
func (e *tenv) publishJourney(t testing.TB, name, graphJSON, settingsJSON string) string {
	t.Helper()
	jc, err := e.PB.FindCollectionByNameOrId(Collection)
	if err != nil {
		t.Fatal(err)
	}
	j := core.NewRecord(jc)
	j.Set("name", name)
	j.Set("status", StatusLive)
	j.Set("version", 1)
	j.Set("graph", graphJSON)
	if settingsJSON == "" {
		settingsJSON = "{}"
	}
	j.Set("settings", settingsJSON)
	if err := e.PB.Save(j); err != nil {
		t.Fatal(err)
	}
	vc, err := e.PB.FindCollectionByNameOrId(VersionsCollection)
	if err != nil {
		t.Fatal(err)
	}
	v := core.NewRecord(vc)
	v.Set("journey", j.Id)
	v.Set("version", 1)
	v.Set("graph", graphJSON)
	v.Set("settings", settingsJSON)
	if err := e.PB.Save(v); err != nil {
		t.Fatal(err)
	}
	if err := e.m.live.load(e.PB); err != nil {
		t.Fatal(err)
	}
	return j.Id
}

var evSeq atomic.Int64

// event builds an event of a customer known by email.
func event(typ, email string, props map[string]any) *events.Event {
	now := time.Now().UTC()
	return &events.Event{ID: fmt.Sprintf("jt-%d-%d", now.UnixNano(), evSeq.Add(1)), Type: typ, Source: "shopify",
		OccurredAt: now, ReceivedAt: now, Identities: events.Identities{events.Email: email}, Properties: props}
}

// send publishes events as a connector would and waits until the last is
// stored (and so processed: triggers run in the storing transaction).
func (e *tenv) send(t testing.TB, evs ...*events.Event) {
	t.Helper()
	norm := events.Normalizer{DefaultRegion: "US"}
	for _, ev := range evs {
		norm.Normalize(ev)
		if err := ev.Validate(time.Now()); err != nil {
			t.Fatalf("event %s: %v", ev.ID, err)
		}
	}
	for i, err := range ingest.Publish(context.Background(), e.Bus, evs) {
		if err != nil {
			t.Fatalf("publish %s: %v", evs[i].ID, err)
		}
	}
	e.WaitEvent(t, evs[len(evs)-1].ID)
}

func (e *tenv) count(t testing.TB, q string, p dbx.Params) int {
	t.Helper()
	var n int
	if err := e.PB.DB().NewQuery(q).Bind(p).Row(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// profile is the customer with this email.
func (e *tenv) profile(t testing.TB, email string) string {
	t.Helper()
	var id string
	if err := e.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind='email' AND value={:v}").
		Bind(dbx.Params{"v": email}).Row(&id); err != nil {
		t.Fatalf("profile of %s: %v", email, err)
	}
	return id
}

// runs lists a customer's runs of a journey, oldest first.
func (e *tenv) runs(t testing.TB, journey, profile string) []Run {
	t.Helper()
	var rs []Run
	if err := e.PB.DB().NewQuery("SELECT " + RunColumns + " FROM " + RunsCollection +
		" WHERE journey={:j} AND profile={:p} ORDER BY entered_at, id").Bind(dbx.Params{"j": journey, "p": profile}).All(&rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

func (e *tenv) steps(t testing.TB, run string) []struct {
	Node   string `db:"node"`
	Type   string `db:"type"`
	Exit   string `db:"exit"`
	Detail string `db:"detail"`
} {
	t.Helper()
	var out []struct {
		Node   string `db:"node"`
		Type   string `db:"type"`
		Exit   string `db:"exit"`
		Detail string `db:"detail"`
	}
	if err := e.PB.DB().NewQuery("SELECT node, type, exit, detail FROM " + StepsCollection + " WHERE run={:r} ORDER BY at, id").
		Bind(dbx.Params{"r": run}).All(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitDerived waits until a journey event of typ for run is stored,
// attributed to the customer (published by the relay after the commit).
func (e *tenv) waitDerived(t testing.TB, typ, run, profile string) {
	t.Helper()
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return e.count(t, "SELECT COUNT(*) FROM events WHERE type={:t} AND profile={:p} AND json_extract(properties,'$.run')={:r}",
			dbx.Params{"t": typ, "p": profile, "r": run}) == 1
	}, "%s of run %s on the customer's timeline", typ, run)
}

// forceWaiting puts a run where a wait_for_event step leaves it (what the
// engine does; it is built apart, so the test does not rely on it).
func (e *tenv) forceWaiting(t testing.TB, run, node, event string) {
	t.Helper()
	if _, err := e.PB.DB().NewQuery("UPDATE " + RunsCollection + " SET status='waiting', node={:n}, wait_event={:e}, due_at={:d} WHERE id={:id}").
		Bind(dbx.Params{"id": run, "n": node, "e": event, "d": fmtT(time.Now().Add(time.Hour))}).Execute(); err != nil {
		t.Fatal(err)
	}
}

const abandonedGraph = `{"trigger": {"event": "checkout.started", "where": {"property": "total", "op": "gt", "value": 50}},
 "goal": {"event": "order.placed", "within": "7d", "exit": true},
 "start": "w1",
 "nodes": {"w1": {"type": "wait_for_event", "event": "order.placed", "timeout": "1h", "match": ["checkout_id"],
                  "next": {"happened": "end", "timed_out": "end"}},
           "end": {"type": "exit"}}}`

func TestEventTriggerEnrolsOnceAndTheGoalEndsTheRun(t *testing.T) {
	e := startEnv(t, Options{})
	j := e.publishJourney(t, "Abandoned checkout", abandonedGraph, `{"reentry": "every_time"}`)

	// Below the where: nobody enters.
	e.send(t, event("checkout.started", "ann@omni-shop.dev", map[string]any{"total": 30, "checkout_id": "c0"}))
	ann := e.profile(t, "ann@omni-shop.dev")
	if rs := e.runs(t, j, ann); len(rs) != 0 {
		t.Fatalf("a 30 checkout enrolled: %+v", rs)
	}
	// Above it: one run, carrying the event.
	start := event("checkout.started", "ann@omni-shop.dev", map[string]any{"total": "80.00", "checkout_id": "c1"})
	e.send(t, start)
	rs := e.runs(t, j, ann)
	if len(rs) != 1 {
		t.Fatalf("runs after a qualifying checkout = %d", len(rs))
	}
	r := rs[0]
	rc := runContext(r.Context)
	if r.Version != 1 || r.TriggerEvent != start.ID || r.GoalUntil == "" || (r.Status != RunActive && r.Status != RunWaiting) ||
		rc.Source != "event" || rc.Event != "checkout.started" || rc.Properties["checkout_id"] != "c1" {
		t.Fatalf("run = %+v, context = %+v", r, rc)
	}
	e.waitDerived(t, "journey.entered", r.ID, ann)

	// Another checkout while inside: still one run (even with every_time).
	e.send(t, event("checkout.started", "ann@omni-shop.dev", map[string]any{"total": 90, "checkout_id": "c2"}))
	if rs := e.runs(t, j, ann); len(rs) != 1 {
		t.Fatalf("a second checkout while inside made %d runs", len(rs))
	}

	// The purchase is the goal: counted with its revenue, and it ends the run.
	order := event("order.placed", "ann@omni-shop.dev", map[string]any{"total": "129.50", "currency": "eur", "checkout_id": "c1"})
	e.send(t, order)
	r = e.runs(t, j, ann)[0]
	if r.Status != RunExited || r.ExitReason != "goal" || r.GoalEvent != order.ID || r.GoalValue != 129.5 || r.GoalCurrency != "EUR" || r.GoalAt == "" {
		t.Fatalf("after the order: %+v", r)
	}
	var goal, ended bool
	for _, s := range e.steps(t, r.ID) {
		var d map[string]any
		_ = json.Unmarshal([]byte(s.Detail), &d)
		switch {
		case s.Node == "_goal" && s.Type == "goal" && s.Exit == "reached" && d["event_id"] == order.ID && d["value"] == 129.5 && d["currency"] == "EUR":
			goal = true
		case s.Node == r.Node && s.Exit == "" && d["ended"] == "goal" && d["arrived_at"] != nil:
			ended = true
		}
	}
	if !goal || !ended {
		t.Fatalf("steps = %+v (goal %v, ended %v)", e.steps(t, r.ID), goal, ended)
	}
	e.waitDerived(t, "journey.exited", r.ID, ann)

	// A goal counts once per run, and also for a run that already ended
	// (and for a held-out one: that is what lift compares).
	e.send(t, event("checkout.started", "bob@omni-shop.dev", map[string]any{"total": 60, "checkout_id": "b1"}))
	bob := e.profile(t, "bob@omni-shop.dev")
	br := e.runs(t, j, bob)[0]
	if _, err := e.PB.DB().NewQuery("UPDATE " + RunsCollection + " SET holdout=1, status='completed', exit_reason='end', due_at='' WHERE id={:id}").
		Bind(dbx.Params{"id": br.ID}).Execute(); err != nil {
		t.Fatal(err)
	}
	e.send(t, event("order.placed", "bob@omni-shop.dev", map[string]any{"total": 60}),
		event("order.placed", "bob@omni-shop.dev", map[string]any{"total": 999}))
	br = e.runs(t, j, bob)[0]
	if br.GoalValue != 60 || br.Status != RunCompleted || br.ExitReason != "end" || !br.Holdout {
		t.Fatalf("held-out ended run after two orders: %+v", br)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM journey_steps WHERE run={:r} AND node='_goal'", dbx.Params{"r": br.ID}); n != 1 {
		t.Fatalf("goal steps = %d", n)
	}
}

func TestAutoRepliesOldEventsAndPausedJourneysEnrolNobody(t *testing.T) {
	e := startEnv(t, Options{})
	j := e.publishJourney(t, "Reply follow-up", `{"trigger": {"event": "message.received"}, "start": "end",
		"nodes": {"end": {"type": "exit"}}}`, "")

	auto := event("message.received", "cat@omni-shop.dev", map[string]any{"text": "I am away", "auto_reply": true})
	old := event("message.received", "cat@omni-shop.dev", map[string]any{"text": "imported"})
	old.OccurredAt = time.Now().Add(-72 * time.Hour)
	e.send(t, auto, old)
	cat := e.profile(t, "cat@omni-shop.dev")
	if rs := e.runs(t, j, cat); len(rs) != 0 {
		t.Fatalf("an automatic answer or an imported message enrolled: %+v", rs)
	}
	e.send(t, event("message.received", "cat@omni-shop.dev", map[string]any{"text": "hello"}))
	if rs := e.runs(t, j, cat); len(rs) != 1 {
		t.Fatalf("a real message made %d runs", len(rs))
	}

	// Paused: no new enrolments.
	if _, err := e.PB.DB().NewQuery("UPDATE journeys SET status='paused' WHERE id={:id}").Bind(dbx.Params{"id": j}).Execute(); err != nil {
		t.Fatal(err)
	}
	if err := e.m.live.load(e.PB); err != nil {
		t.Fatal(err)
	}
	e.send(t, event("message.received", "dan@omni-shop.dev", map[string]any{"text": "hello"}))
	if rs := e.runs(t, j, e.profile(t, "dan@omni-shop.dev")); len(rs) != 0 {
		t.Fatalf("a paused journey enrolled: %+v", rs)
	}
}

func TestAwaitedEventResumesOnlyTheMatchingRun(t *testing.T) {
	e := startEnv(t, Options{})
	j := e.publishJourney(t, "Abandoned checkout", strings.Replace(abandonedGraph, `"exit": true`, `"exit": false`, 1), "")
	e.send(t, event("checkout.started", "eve@omni-shop.dev", map[string]any{"total": 70, "checkout_id": "c1"}))
	eve := e.profile(t, "eve@omni-shop.dev")
	r := e.runs(t, j, eve)[0]
	e.forceWaiting(t, r.ID, "w1", "order.placed")
	if err := e.m.live.load(e.PB); err != nil { // as after any publish: the index covers what runs wait for
		t.Fatal(err)
	}

	// Another cart's order is not the awaited one (though it is the goal,
	// which has no condition here).
	other := event("order.placed", "eve@omni-shop.dev", map[string]any{"total": 10, "checkout_id": "c9"})
	e.send(t, other)
	if r = e.runs(t, j, eve)[0]; r.Status != RunWaiting {
		t.Fatalf("an order of another cart resumed the run: %+v", r)
	}
	order := event("order.placed", "eve@omni-shop.dev", map[string]any{"total": 70, "checkout_id": "c1"})
	e.send(t, order)
	r = e.runs(t, j, eve)[0]
	if r.GoalEvent != other.ID || r.GoalValue != 10 {
		t.Fatalf("goal = %q %v, want the first order's", r.GoalEvent, r.GoalValue)
	}
	// Resumed by the awaited order: either still marked so (context.resume)
	// or, once the engine has taken the exit, the w1 step row says so.
	omnitest.Eventually(t, 30*time.Second, func() bool {
		r = e.runs(t, j, eve)[0]
		if rc := runContext(r.Context); rc.Resume == "happened" {
			return rc.ResumeWith["event_id"] == order.ID && rc.ResumeWith["type"] == "order.placed"
		}
		var exit, detail string
		_ = e.PB.DB().NewQuery("SELECT exit, detail FROM "+StepsCollection+" WHERE run={:r} AND node='w1'").
			Bind(dbx.Params{"r": r.ID}).Row(&exit, &detail)
		return exit == "happened" && strings.Contains(detail, order.ID)
	}, "the awaited order to resume the run")
	if r.Status == RunWaiting && r.WaitEvent != "" {
		t.Fatalf("still waiting: %+v", r)
	}
}

// segment creates a segment as the owner and returns its id.
func (e *tenv) segment(t testing.TB, name, rule string) string {
	t.Helper()
	code, body := e.Do(t, "POST", "/api/collections/segments/records", `{"name":"`+name+`","rule":`+rule+`}`, omnitest.Auth(e.owner))
	if code != 200 {
		t.Fatalf("create segment: %d %s", code, body)
	}
	var rec struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &rec)
	return rec.ID
}

func identify(email string, traits map[string]any) *events.Event {
	traits["email"] = email
	return event("identify", email, map[string]any{"traits": traits})
}

func TestSegmentTriggersAndExitRules(t *testing.T) {
	e := startEnv(t, Options{})
	vip := e.segment(t, "VIP", `{"trait": "vip", "op": "eq", "value": true}`)
	seg := e.publishJourney(t, "VIP welcome", `{"trigger": {"segment": "`+vip+`"}, "exit_when": {"segment": "`+vip+`"},
		"start": "w", "nodes": {"w": {"type": "wait", "duration": "30d", "next": "end"}, "end": {"type": "exit"}}}`, "")
	left := e.publishJourney(t, "VIP goodbye", `{"trigger": {"segment": "`+vip+`", "on": "exit"}, "start": "end",
		"nodes": {"end": {"type": "exit"}}}`, "")
	unsub := e.publishJourney(t, "Checkout nudge", `{"trigger": {"event": "checkout.started"}, "exit_when": {"unsubscribed": true},
		"start": "w", "nodes": {"w": {"type": "wait", "duration": "30d", "next": "end"}, "end": {"type": "exit"}}}`, "")

	// Entering the segment (segment.entered, relayed and stored) enrols.
	e.send(t, identify("fay@omni-shop.dev", map[string]any{"vip": true}))
	fay := e.profile(t, "fay@omni-shop.dev")
	omnitest.Eventually(t, 30*time.Second, func() bool { return len(e.runs(t, seg, fay)) == 1 }, "a run on entering the segment")
	r := e.runs(t, seg, fay)[0]
	if rc := runContext(r.Context); rc.Source != "segment" || rc.Segment != vip || rc.Event != events.SegmentEntered {
		t.Fatalf("context = %+v", rc)
	}
	if len(e.runs(t, left, fay)) != 0 {
		t.Fatal("the on-exit journey enrolled on entering")
	}

	// Leaving it ends the run (exit rule) and enrols into the on-exit journey.
	e.send(t, identify("fay@omni-shop.dev", map[string]any{"vip": false}))
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.runs(t, seg, fay)[0].Status == RunExited }, "the run ended on leaving")
	if r = e.runs(t, seg, fay)[0]; r.ExitReason != "left_segment" {
		t.Fatalf("exit reason %q", r.ExitReason)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool { return len(e.runs(t, left, fay)) == 1 }, "a run on leaving the segment")

	// Unsubscribing ends the run of a journey that says so.
	e.send(t, event("checkout.started", "gus@omni-shop.dev", map[string]any{"total": 10}))
	gus := e.profile(t, "gus@omni-shop.dev")
	r = e.runs(t, unsub, gus)[0]
	e.send(t, event("consent.changed", "gus@omni-shop.dev", map[string]any{"channel": "email", "status": "subscribed"}))
	if r = e.runs(t, unsub, gus)[0]; r.Status == RunExited {
		t.Fatalf("subscribing ended the run: %+v", r)
	}
	stop := event("consent.changed", "gus@omni-shop.dev", map[string]any{"channel": "email", "status": "unsubscribed"})
	e.send(t, stop)
	r = e.runs(t, unsub, gus)[0]
	if r.Status != RunExited || r.ExitReason != "unsubscribed" {
		t.Fatalf("after unsubscribing: %+v", r)
	}
	found := false
	for _, s := range e.steps(t, r.ID) {
		found = found || (s.Exit == "" && strings.Contains(s.Detail, `"ended":"unsubscribed"`) && strings.Contains(s.Detail, stop.ID))
	}
	if !found {
		t.Fatalf("no step says why the run ended: %+v", e.steps(t, r.ID))
	}
	e.waitDerived(t, "journey.exited", r.ID, gus)
}

func TestDateTriggersEnrolOnTheLocalDayOnce(t *testing.T) {
	e := startEnv(t, Options{})
	bday := e.publishJourney(t, "Birthday", `{"trigger": {"date": {"property": "birthday", "yearly": true}}, "start": "end",
		"nodes": {"end": {"type": "exit"}}}`, `{"reentry": "every_time"}`)
	winback := e.publishJourney(t, "Win-back", `{"trigger": {"date": {"property": "last_order_at", "offset": "90d", "at": "08:00"}},
		"start": "end", "nodes": {"end": {"type": "exit"}}}`, `{"reentry": "every_time"}`)

	e.send(t,
		identify("ann@omni-shop.dev", map[string]any{"birthday": "1990-02-28"}),                                    // UTC (the shop's)
		identify("bob@omni-shop.dev", map[string]any{"birthday": "1992-02-29"}),                                    // Feb 29 → Feb 28 in 2026
		identify("cal@omni-shop.dev", map[string]any{"birthday": "1985-02-28", "timezone": "Pacific/Auckland"}),    // already Mar 1 there
		identify("dot@omni-shop.dev", map[string]any{"birthday": "1980-03-01", "timezone": "Pacific/Auckland"}),    // Mar 1, 05:00 there
		identify("eli@omni-shop.dev", map[string]any{"birthday": "1991-02-28", "timezone": "America/Los_Angeles"}), // 08:00 there
		identify("fox@omni-shop.dev", map[string]any{"birthday": "1991-06-01"}),
	)
	order := event("order.placed", "gil@omni-shop.dev", map[string]any{"total": 20})
	order.OccurredAt = time.Date(2025, 11, 30, 12, 0, 0, 0, time.UTC) // 90 days before 2026-02-28
	e.send(t, order)

	// A damaged row stops nobody else's birthday.
	if _, err := e.PB.DB().NewQuery("INSERT INTO profiles (id, traits, computed, created, updated) VALUES " +
		"('damagedprofile1', '{\"birthday\": \"1990-02-28\"', 'x', '', '')").Execute(); err != nil {
		t.Fatal(err)
	}

	t1 := time.Date(2026, 2, 28, 16, 0, 0, 0, time.UTC)
	n, err := e.m.enrolDated(t1)
	if err != nil {
		t.Fatal(err)
	}
	in := func(j, email string) int { return len(e.runs(t, j, e.profile(t, email))) }
	want := map[string]int{"ann": 1, "bob": 1, "cal": 0, "dot": 0, "eli": 0, "fox": 0}
	for who, w := range want {
		if got := in(bday, who+"@omni-shop.dev"); got != w {
			t.Errorf("%s: %d birthday runs at 16:00 UTC, want %d", who, got, w)
		}
	}
	if got := in(winback, "gil@omni-shop.dev"); got != 1 {
		t.Errorf("win-back runs 90 days after the last order = %d", got)
	}
	if n != 3 {
		t.Errorf("enrolDated started %d runs, want 3", n)
	}

	// Four hours later Auckland (Mar 1) and Los Angeles reach 09:00;
	// nobody enters twice for one date, even with re-entry every time.
	if n, err := e.m.enrolDated(t1.Add(4 * time.Hour)); err != nil || n != 2 {
		t.Fatalf("at 20:00 UTC: %d, %v (want dot and eli)", n, err)
	}
	for who, w := range map[string]int{"ann": 1, "bob": 1, "cal": 0, "dot": 1, "eli": 1, "fox": 0} {
		if got := in(bday, who+"@omni-shop.dev"); got != w {
			t.Errorf("%s: %d birthday runs at 20:00 UTC, want %d", who, got, w)
		}
	}
	if got := in(winback, "gil@omni-shop.dev"); got != 1 {
		t.Errorf("win-back entered twice for one date: %d", got)
	}
	r := e.runs(t, bday, e.profile(t, "dot@omni-shop.dev"))[0]
	if rc := runContext(r.Context); rc.Source != "date" || rc.Extra["date"] != "2026-03-01" {
		t.Errorf("dot's context = %+v", rc)
	}
}

// benchJourneys is a shop's 20 live journeys: abandoned checkouts at
// several thresholds (waiting for the order, converting on it), browse
// abandonment, post-purchase and birthdays.
func benchJourneys(tb testing.TB, e *tenv) {
	for i := 0; i < 8; i++ {
		e.publishJourney(tb, fmt.Sprintf("Abandoned %d", i), strings.Replace(abandonedGraph, "50", fmt.Sprint(20+10*i), 1), `{"reentry": "every_time"}`)
	}
	for i := 0; i < 4; i++ {
		e.publishJourney(tb, fmt.Sprintf("Browse %d", i), `{"trigger": {"event": "page.viewed", "where": {"property": "url", "op": "contains", "value": "/products/`+fmt.Sprint(i)+`"}},
			"exit_when": {"unsubscribed": true}, "goal": {"event": "order.placed", "within": "3d"},
			"start": "w", "nodes": {"w": {"type": "wait", "duration": "1h", "next": "end"}, "end": {"type": "exit"}}}`, `{"reentry": "cooldown", "cooldown": "1d"}`)
	}
	for i := 0; i < 4; i++ {
		e.publishJourney(tb, fmt.Sprintf("Thanks %d", i), `{"trigger": {"event": "order.placed", "where": {"property": "total", "op": "gte", "value": `+fmt.Sprint(10*i)+`}},
			"start": "w", "nodes": {"w": {"type": "wait", "duration": "2d", "next": "end"}, "end": {"type": "exit"}}}`, `{"reentry": "every_time"}`)
	}
	for i := 0; i < 4; i++ {
		e.publishJourney(tb, fmt.Sprintf("Birthday %d", i), `{"trigger": {"date": {"property": "birthday", "yearly": true}}, "start": "end",
			"nodes": {"end": {"type": "exit"}}}`, "")
	}
}

// shopTraffic is n events of 2,000 customers: mostly page views, some
// checkouts and orders of those checkouts, a few identifies.
func shopTraffic(round, n int) []*events.Event {
	evs := make([]*events.Event, n)
	now := time.Now().UTC()
	for i := range evs {
		k := round*n + i
		email := fmt.Sprintf("c%d@omni-shop.dev", k%2000)
		var typ string
		props := map[string]any{}
		switch r := k % 20; {
		case r < 14:
			typ, props["url"] = "page.viewed", fmt.Sprintf("https://shop.omni-shop.dev/products/%d", k%37)
		case r < 17:
			typ, props["total"], props["checkout_id"] = "checkout.started", 15+k%200, fmt.Sprintf("co-%d", k/20)
		case r < 19:
			typ, props["total"], props["currency"], props["checkout_id"] = "order.placed", 15+k%200, "EUR", fmt.Sprintf("co-%d", k/20-1)
		default:
			typ, props["traits"] = "identify", map[string]any{"email": email, "birthday": "1990-06-01"}
		}
		evs[i] = &events.Event{ID: fmt.Sprintf("bench-%d", k), Type: typ, Source: "shopify", OccurredAt: now, ReceivedAt: now,
			Identities: events.Identities{events.Email: email}, Properties: props}
	}
	return evs
}

// ingest publishes evs and returns how long until all are stored.
func (e *tenv) ingest(tb testing.TB, evs []*events.Event) time.Duration {
	start := time.Now()
	for i := 0; i < len(evs); i += 1000 {
		for _, err := range ingest.Publish(context.Background(), e.Bus, evs[i:min(i+1000, len(evs))]) {
			if err != nil {
				tb.Fatal(err)
			}
		}
	}
	// The stream is consumed in order: the last stored means all are (an
	// indexed lookup, so the polling costs the server nothing).
	last := evs[len(evs)-1].ID
	omnitest.Eventually(tb, 5*time.Minute, func() bool {
		return e.count(tb, "SELECT COUNT(*) FROM events WHERE event_id = {:id}", dbx.Params{"id": last}) == 1
	}, "event %s stored", last)
	return time.Since(start)
}

// BenchmarkIngestWith20Journeys measures ingest (bus → stored, profiles
// and journeys' processors included) with 20 live journeys against the
// same traffic into a server without journeys, in alternating rounds of
// the same run; "slowdown" is the ratio of the two times.
func BenchmarkIngestWith20Journeys(b *testing.B) {
	const n = 10_000
	base := startEnv(b, Options{})
	with := startEnv(b, Options{})
	benchJourneys(b, with)
	// Warm both: customers exist, caches are filled.
	base.ingest(b, shopTraffic(0, 2000))
	with.ingest(b, shopTraffic(0, 2000))
	var tBase, tWith time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		evs := shopTraffic(i+1, n)
		tBase += base.ingest(b, evs)
		tWith += with.ingest(b, shopTraffic(i+1, n))
	}
	b.StopTimer()
	var runs int
	_ = with.PB.DB().NewQuery("SELECT COUNT(*) FROM journey_runs").Row(&runs)
	b.ReportMetric(float64(b.N*n)/tBase.Seconds(), "events/s-baseline")
	b.ReportMetric(float64(b.N*n)/tWith.Seconds(), "events/s-20journeys")
	b.ReportMetric(tWith.Seconds()/tBase.Seconds(), "slowdown")
	b.ReportMetric(float64(runs), "runs")
}
