package journeys_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/journeys"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/store"
)

// startStats boots Omni with profiles, messaging and journeys, and
// returns it with an owner's and an agent's auth headers.
func startStats(t *testing.T) (*omnitest.Server, http.Header, http.Header) {
	t.Helper()
	s := omnitest.Start(t, omnitest.Options{Modules: func(*app.Omni) []app.Module {
		return []app.Module{profiles.New(profiles.Options{}), messaging.New(messaging.Options{}), journeys.New(journeys.Options{})}
	}})
	owner := omnitest.Auth(s.Staff(t, "owner@omni-shop.dev", "owner"))
	agent := omnitest.Auth(s.Staff(t, "agent@omni-shop.dev", "agent"))
	return s, owner, agent
}

// seeder writes journey records straight into the tables, as the engine
// would leave them, so the results are checked against a hand count
// without depending on the engine.
type seeder struct {
	t    *testing.T
	s    *omnitest.Server
	base time.Time
}

func (d seeder) exec(sql string, p dbx.Params) {
	d.t.Helper()
	if _, err := d.s.PB.DB().NewQuery(sql).Bind(p).Execute(); err != nil {
		d.t.Fatalf("seed: %v\n%s", err, sql)
	}
}

// at is the base time plus h hours, as stored.
func (d seeder) at(h float64) string {
	if h == 0 {
		return ""
	}
	return store.FormatTime(d.base.Add(time.Duration(h * float64(time.Hour))))
}

func (d seeder) journey(id string, version int, graph string) {
	d.exec(`INSERT INTO journeys (id, name, status, version, graph, settings) VALUES ({:id}, {:id}, 'live', {:v}, {:g}, '{}')`,
		dbx.Params{"id": id, "v": version, "g": graph})
	for v := 1; v <= version; v++ {
		d.exec(`INSERT INTO journey_versions (id, journey, version, graph, settings) VALUES ({:id}, {:j}, {:v}, {:g}, '{}')`,
			dbx.Params{"id": fmt.Sprintf("%s-v%d", id, v), "j": id, "v": v, "g": graph})
	}
}

type seedRun struct {
	id, journey, profile, node, status, reason string
	version                                    int
	holdout                                    bool
	goalAt, goalUntil                          float64 // hours after base; 0: none
	value                                      float64
	currency                                   string
}

func (d seeder) run(r seedRun) {
	if r.version == 0 {
		r.version = 1
	}
	d.exec(`INSERT INTO journey_runs (id, journey, version, profile, node, status, exit_reason, holdout, entered_at,
		goal_until, goal_at, goal_value, goal_currency) VALUES ({:id}, {:j}, {:v}, {:p}, {:node}, {:st}, {:r}, {:h}, {:in},
		{:gu}, {:ga}, {:gv}, {:gc})`, dbx.Params{"id": r.id, "j": r.journey, "v": r.version, "p": r.profile, "node": r.node,
		"st": r.status, "r": r.reason, "h": r.holdout, "in": d.at(0.01), "gu": d.at(r.goalUntil), "ga": d.at(r.goalAt),
		"gv": r.value, "gc": r.currency})
}

// step records a run leaving node by exit, with detail.
func (d seeder) step(run, journey string, version int, node, typ, exit string, detail map[string]any) {
	b, _ := json.Marshal(detail)
	var profile string
	_ = d.s.PB.DB().NewQuery("SELECT profile FROM journey_runs WHERE id={:r}").Bind(dbx.Params{"r": run}).Row(&profile)
	d.exec(`INSERT INTO journey_steps (id, run, journey, version, profile, node, type, exit, detail, at)
		VALUES ({:id}, {:run}, {:j}, {:v}, {:p}, {:node}, {:t}, {:exit}, {:d}, {:at})`, dbx.Params{
		"id": store.NewRecordID(), "run": run, "j": journey, "v": version, "p": profile, "node": node, "t": typ,
		"exit": exit, "d": string(b), "at": d.at(1)})
}

func (d seeder) message(id, run, profile, channel, status, reason string, sentH float64) {
	delivered, read := "", ""
	if status == "delivered" || status == "read" {
		delivered = d.at(sentH + 0.1)
	}
	if status == "read" {
		read = d.at(sentH + 0.2)
	}
	d.exec(`INSERT INTO messages (id, profile, channel, kind, status, reason, journey_run, queued_at, sent_at, delivered_at,
		read_at, created) VALUES ({:id}, {:p}, {:c}, 'marketing', {:st}, {:r}, {:run}, {:q}, {:s}, {:dl}, {:rd}, {:q})`, dbx.Params{
		"id": id, "p": profile, "c": channel, "st": status, "r": reason, "run": run, "q": d.at(sentH),
		"s": map[bool]string{true: d.at(sentH + 0.05)}[status != "queued" && status != "suppressed"], "dl": delivered, "rd": read})
}

// engaged records on a message when it was first opened and clicked (0:
// not), as the messaging ledger does from email.opened and email.clicked.
func (d seeder) engaged(id string, openedH, clickedH float64) {
	d.exec(`UPDATE messages SET opened_at={:o}, clicked_at={:c} WHERE id={:id}`, dbx.Params{"id": id, "o": d.at(openedH), "c": d.at(clickedH)})
}

func (d seeder) event(typ, profile, channel string, h float64, props map[string]any) {
	b, _ := json.Marshal(props)
	id := store.NewRecordID()
	d.exec(`INSERT INTO events (id, event_id, type, source, channel, occurred_at, received_at, properties, profile, created)
		VALUES ({:id}, {:id}, {:t}, 'test', {:c}, {:at}, {:at}, {:p}, {:prof}, {:at})`,
		dbx.Params{"id": id, "t": typ, "c": channel, "at": d.at(h), "p": string(b), "prof": profile})
}

const statsGraph = `{"trigger": {"event": "checkout.started"}, "goal": {"event": "order.placed", "within": "7d", "exit": true},
 "start": "w1", "nodes": {
  "w1": {"type": "wait_for_event", "event": "order.placed", "timeout": "1h", "next": {"happened": "end", "timed_out": "h1"}},
  "h1": {"type": "holdout", "percent": 10, "next": {"continue": "ab"}},
  "ab": {"type": "split", "arms": [{"name": "A", "weight": 1}, {"name": "B", "weight": 1}], "next": {"A": "sa", "B": "sb"}},
  "sa": {"type": "send", "channels": ["email"], "template": "t1", "next": {"sent": "end", "suppressed": "end"}},
  "sb": {"type": "send", "channels": ["whatsapp"], "template": "t2", "next": {"sent": "end", "suppressed": "end"}},
  "end": {"type": "exit"}}}`

// seedStatsJourney is the journey whose every figure the test counts by
// hand (see the comments on each run).
func seedStatsJourney(d seeder) {
	const j = "jstats"
	d.journey(j, 2, statsGraph)
	// r1: timed out, treated, arm A, email delivered, opened and clicked;
	// bought for 50 EUR within the window.
	d.run(seedRun{id: "r1", journey: j, profile: "p1", node: "end", status: "completed", reason: "end", goalAt: 20, goalUntil: 168, value: 50, currency: "EUR"})
	d.step("r1", j, 1, "w1", "wait_for_event", "timed_out", nil)
	d.step("r1", j, 1, "h1", "holdout", "continue", map[string]any{"held_out": false})
	d.step("r1", j, 1, "ab", "split", "A", map[string]any{"arm": "A"})
	d.step("r1", j, 1, "sa", "send", "sent", map[string]any{"message_id": "m1", "channel": "email"})
	d.message("m1", "r1", "p1", "email", "delivered", "", 2)
	d.engaged("m1", 3, 3.5)                                 // as the ledger records email.opened and email.clicked
	d.event("message.received", "p1", "email", 2+8*24, nil) // 8 days later: not a reply
	// r2: treated, arm B, WhatsApp read and replied to an hour later; no goal.
	d.run(seedRun{id: "r2", journey: j, profile: "p2", node: "end", status: "completed", reason: "end", goalUntil: 168})
	d.step("r2", j, 1, "w1", "wait_for_event", "timed_out", nil)
	d.step("r2", j, 1, "h1", "holdout", "continue", nil)
	d.step("r2", j, 1, "ab", "split", "B", map[string]any{"arm": "B"})
	d.step("r2", j, 1, "sb", "send", "sent", map[string]any{"message_id": "m2", "channel": "whatsapp"})
	d.message("m2", "r2", "p2", "whatsapp", "read", "", 2)
	d.event("message.received", "p2", "whatsapp", 3, nil)
	// r3: held out; bought for 30 EUR.
	d.run(seedRun{id: "r3", journey: j, profile: "p3", node: "h1", status: "completed", reason: "end", holdout: true, goalAt: 30, goalUntil: 168, value: 30, currency: "EUR"})
	d.step("r3", j, 1, "w1", "wait_for_event", "timed_out", nil)
	d.step("r3", j, 1, "h1", "holdout", "held_out", map[string]any{"held_out": true})
	// r4: bought for 20 EUR while waiting: exited by goal at w1.
	d.run(seedRun{id: "r4", journey: j, profile: "p4", node: "w1", status: "exited", reason: "goal", goalAt: 0.5, goalUntil: 168, value: 20, currency: "EUR"})
	d.step("r4", j, 1, "w1", "wait_for_event", "", map[string]any{"ended": "goal"})
	// r5: treated, arm A, email suppressed for want of consent.
	d.run(seedRun{id: "r5", journey: j, profile: "p5", node: "end", status: "completed", reason: "end", goalUntil: 168})
	d.step("r5", j, 1, "w1", "wait_for_event", "timed_out", nil)
	d.step("r5", j, 1, "h1", "holdout", "continue", nil)
	d.step("r5", j, 1, "ab", "split", "A", map[string]any{"arm": "A"})
	d.step("r5", j, 1, "sa", "send", "suppressed", map[string]any{"message_id": "m5", "channel": "email"})
	d.message("m5", "r5", "p5", "email", "suppressed", "no marketing consent on email (unsubscribed)", 2)
	// r6: waiting at w1.
	d.run(seedRun{id: "r6", journey: j, profile: "p6", node: "w1", status: "waiting", goalUntil: 168})
	// r7: treated, arm B, at sb awaiting the outcome of a queued WhatsApp.
	d.run(seedRun{id: "r7", journey: j, profile: "p7", node: "sb", status: "waiting", goalUntil: 168})
	d.step("r7", j, 1, "w1", "wait_for_event", "timed_out", nil)
	d.step("r7", j, 1, "h1", "holdout", "continue", nil)
	d.step("r7", j, 1, "ab", "split", "B", map[string]any{"arm": "B"})
	d.message("m7", "r7", "p7", "whatsapp", "queued", "", 2)
	// r8: version 2, waiting at w1.
	d.run(seedRun{id: "r8", journey: j, version: 2, profile: "p8", node: "w1", status: "waiting", goalUntil: 168})
	// r9: bought for 10 USD right away; r10 bought after the window.
	d.run(seedRun{id: "r9", journey: j, profile: "p9", node: "end", status: "completed", reason: "end", goalAt: 0.2, goalUntil: 168, value: 10, currency: "USD"})
	d.step("r9", j, 1, "w1", "wait_for_event", "happened", map[string]any{"event_id": "e9"})
	d.run(seedRun{id: "r10", journey: j, profile: "p10", node: "end", status: "completed", reason: "end", goalAt: 200, goalUntil: 168, value: 99, currency: "EUR"})
	d.step("r10", j, 1, "w1", "wait_for_event", "happened", nil)

	// Another journey's run and message are not counted.
	d.journey("jother", 1, statsGraph)
	d.run(seedRun{id: "o1", journey: "jother", profile: "p1", node: "sa", status: "waiting", goalAt: 1, goalUntil: 168, value: 5, currency: "EUR"})
	d.step("o1", "jother", 1, "w1", "wait_for_event", "timed_out", nil)
	d.message("mo", "o1", "p1", "email", "delivered", "", 2)
}

func getStats(t *testing.T, s *omnitest.Server, h http.Header, path string) (map[string]any, journeys.Stats) {
	t.Helper()
	code, body := s.Do(t, "GET", path, nil, h)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var raw map[string]any
	var st journeys.Stats
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return raw, st
}

func wantEq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func TestStatsMatchHandCount(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	s, _, agent := startStats(t)
	seedStatsJourney(seeder{t: t, s: s, base: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)})

	raw, st := getStats(t, s, agent, "/api/v1/journeys/jstats/stats")
	for _, k := range []string{"journey", "nodes", "arms", "holdout"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("no %q in the answer", k)
		}
	}

	j := st.Journey
	wantEq(t, "entered", j.Entered, 10)
	wantEq(t, "active", j.Active, 3)       // r6, r7, r8
	wantEq(t, "completed", j.Completed, 6) // r1, r2, r3, r5, r9, r10
	wantEq(t, "exited", j.Exited, map[string]int{"goal": 1})
	wantEq(t, "sends", j.Sends, 3) // m1, m2, m7 (m5 was suppressed)
	wantEq(t, "engagement", j.Engagement, journeys.Engagement{Delivered: 2, Opened: 2, Clicked: 1, Replied: 1})
	wantEq(t, "conversions", j.Conversions, 4) // r1, r3, r4, r9; r10 came after the window
	wantEq(t, "currency", j.Currency, "EUR")
	wantEq(t, "revenue", j.Revenue, 100.0)
	wantEq(t, "revenue by currency", j.RevenueByCurrency, map[string]float64{"EUR": 100, "USD": 10})

	type nodeWant struct {
		entered, active int
		exits, ended    map[string]int
		suppressed      map[string]int
		sends           map[string]int
		eng             journeys.Engagement
	}
	none := map[string]int{}
	for id, w := range map[string]nodeWant{
		"w1":  {10, 2, map[string]int{"timed_out": 5, "happened": 2}, map[string]int{"goal": 1}, none, none, journeys.Engagement{}},
		"h1":  {5, 0, map[string]int{"continue": 4, "held_out": 1}, none, none, none, journeys.Engagement{}},
		"ab":  {4, 0, map[string]int{"A": 2, "B": 2}, none, none, none, journeys.Engagement{}},
		"sa":  {2, 0, map[string]int{"sent": 1, "suppressed": 1}, none, map[string]int{"consent": 1}, map[string]int{"email": 1}, journeys.Engagement{Delivered: 1, Opened: 1, Clicked: 1}},
		"sb":  {2, 1, map[string]int{"sent": 1}, none, none, map[string]int{"whatsapp": 2}, journeys.Engagement{Delivered: 1, Opened: 1, Replied: 1}},
		"end": {0, 0, none, none, none, none, journeys.Engagement{}},
	} {
		n := st.Nodes[id]
		if n == nil {
			t.Errorf("no node %s", id)
			continue
		}
		got := nodeWant{n.Entered, n.Active, n.Exits, n.Ended, n.Suppressed, n.Sends, n.Engagement}
		wantEq(t, "node "+id, got, w)
	}
	wantEq(t, "node count", len(st.Nodes), 6)

	ab := st.Arms["ab"]
	if len(st.Arms) != 1 || len(ab) != 2 {
		t.Fatalf("arms %+v", st.Arms)
	}
	a, b := ab["A"], ab["B"]
	wantEq(t, "arm A", []any{a.Entered, a.Active, a.Conversions, a.Revenue, a.Sends, a.Engagement},
		[]any{2, 0, 1, 50.0, 1, journeys.Engagement{Delivered: 1, Opened: 1, Clicked: 1}})
	wantEq(t, "arm B", []any{b.Entered, b.Active, b.Conversions, b.Revenue, b.Sends, b.Engagement},
		[]any{2, 1, 0, 0.0, 2, journeys.Engagement{Delivered: 1, Opened: 1, Replied: 1}})
	// Two customers an arm: no lift, only each arm's rate with its wide
	// interval (Beta(2,2): mean 1/2; Beta(1,3): mean 1/4).
	wantEq(t, "arm verdicts", []any{a.Verdict, b.Verdict, a.Lift == nil, b.Lift == nil}, []any{"not enough data yet", "not enough data yet", true, true})
	if a.ConversionRate == nil || b.ConversionRate == nil || a.ConversionRate.Estimate != 0.5 || b.ConversionRate.Estimate != 0.25 {
		t.Errorf("arm rates %+v %+v", a.ConversionRate, b.ConversionRate)
	}

	h := st.Holdout
	wantEq(t, "held out", []any{h.HeldOut.Customers, h.HeldOut.Conversions, h.HeldOut.Revenue, h.HeldOut.Sends}, []any{1, 1, 30.0, 0})
	wantEq(t, "treated", []any{h.Treated.Customers, h.Treated.Conversions, h.Treated.Revenue, h.Treated.Sends, h.Treated.Engagement},
		[]any{4, 1, 50.0, 3, journeys.Engagement{Delivered: 2, Opened: 2, Clicked: 1, Replied: 1}})
	// Beta(2,1) and Beta(2,4): posterior means 2/3 and 1/3.
	if h.HeldOut.ConversionRate == nil || math.Abs(h.HeldOut.ConversionRate.Estimate-2.0/3) > 1e-9 ||
		h.Treated.ConversionRate == nil || math.Abs(h.Treated.ConversionRate.Estimate-1.0/3) > 1e-9 {
		t.Errorf("conversion rates %+v %+v", h.HeldOut.ConversionRate, h.Treated.ConversionRate)
	}
	wantEq(t, "holdout", []any{h.Lift == nil, h.Verdict}, []any{true, "not enough data yet"})

	// One version: only r8, waiting at w1.
	_, v2 := getStats(t, s, agent, "/api/v1/journeys/jstats/stats?version=2")
	wantEq(t, "v2 journey", []any{v2.Journey.Entered, v2.Journey.Active, v2.Journey.Conversions, v2.Journey.Sends}, []any{1, 1, 0, 0})
	wantEq(t, "v2 w1", []int{v2.Nodes["w1"].Entered, v2.Nodes["w1"].Active}, []int{1, 1})
	wantEq(t, "v2 sa", v2.Nodes["sa"].Entered, 0)
	wantEq(t, "v2 holdout", []any{v2.Holdout.Lift == nil, v2.Holdout.Verdict}, []any{true, "not enough data yet"})
}

// With enough customers on both sides the verdict names the better
// group: 200 held out of whom 20 bought, 400 treated of whom 80 bought;
// of the treated, arm A's 200 bought 60 times and arm B's 200, 20 times.
func TestStatsHoldoutVerdictWithEnoughData(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	s, _, agent := startStats(t)
	d := seeder{t: t, s: s, base: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)}
	d.journey("jbig", 1, statsGraph)
	for i := range 600 {
		held := i < 200
		bought := (held && i < 20) || (!held && (i < 260 || (i >= 400 && i < 420)))
		r := seedRun{id: fmt.Sprintf("b%d", i), journey: "jbig", profile: fmt.Sprintf("bp%d", i), node: "end",
			status: "completed", reason: "end", holdout: held, goalUntil: 168}
		if bought {
			r.goalAt, r.value, r.currency = 5, 40, "EUR"
		}
		d.run(r)
		exit := "continue"
		if held {
			exit = "held_out"
		}
		d.step(r.id, "jbig", 1, "h1", "holdout", exit, nil)
		if !held {
			arm := map[bool]string{true: "A", false: "B"}[i < 400]
			d.step(r.id, "jbig", 1, "ab", "split", arm, map[string]any{"arm": arm})
		}
	}
	_, st := getStats(t, s, agent, "/api/v1/journeys/jbig/stats")
	h := st.Holdout
	wantEq(t, "groups", []int{h.HeldOut.Customers, h.HeldOut.Conversions, h.Treated.Customers, h.Treated.Conversions}, []int{200, 20, 400, 80})
	// Posterior means 81/402 − 21/202 = 0.0975; P(better) over 99%.
	if h.Lift == nil || math.Abs(h.Lift.Conversion.Estimate-(81.0/402-21.0/202)) > 1e-9 || h.Lift.Conversion.ProbabilityBetter < 0.99 {
		t.Fatalf("lift %+v", h.Lift)
	}
	if !strings.HasPrefix(h.Verdict, "treated customers convert better (99% likely)") {
		t.Errorf("verdict %q", h.Verdict)
	}
	// Revenue per customer 80·40/400 = 8 against 20·40/200 = 4.
	wantEq(t, "revenue per customer", h.Lift.RevenuePerCustomer.Estimate, 4.0)

	a, b := st.Arms["ab"]["A"], st.Arms["ab"]["B"]
	wantEq(t, "arms", []int{a.Entered, a.Conversions, b.Entered, b.Conversions}, []int{200, 60, 200, 20})
	if a.Lift == nil || math.Abs(a.Lift.Conversion.Estimate-(61.0/202-21.0/202)) > 1e-9 {
		t.Fatalf("arm A lift %+v", a.Lift)
	}
	if !strings.HasPrefix(a.Verdict, "customers in arm A convert better (over 99% likely)") ||
		!strings.HasPrefix(b.Verdict, "customers in the other arms convert better (over 99% likely)") {
		t.Errorf("arm verdicts %q, %q", a.Verdict, b.Verdict)
	}
}

func TestStatsAccessAndErrors(t *testing.T) {
	s, owner, agent := startStats(t)
	d := seeder{t: t, s: s, base: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)}
	d.journey("jempty", 1, statsGraph)

	code, body := s.Do(t, "GET", "/api/v1/journeys/jempty/stats", nil, nil)
	omnitest.WantError(t, code, body, http.StatusUnauthorized)

	for _, h := range []http.Header{owner, agent} {
		_, st := getStats(t, s, h, "/api/v1/journeys/jempty/stats")
		wantEq(t, "empty journey", []any{st.Journey.Entered, len(st.Nodes), st.Holdout.Lift == nil, st.Holdout.Verdict},
			[]any{0, 6, true, "not enough data yet"})
	}

	code, body = s.Do(t, "GET", "/api/v1/journeys/nope/stats", nil, agent)
	omnitest.WantError(t, code, body, http.StatusNotFound)
	code, body = s.Do(t, "GET", "/api/v1/journeys/jempty/stats?version=abc", nil, agent)
	omnitest.WantFieldError(t, code, body, http.StatusBadRequest, "version")
	code, body = s.Do(t, "GET", "/api/v1/journeys/jempty/stats?version=7", nil, agent)
	omnitest.WantFieldError(t, code, body, http.StatusBadRequest, "version")
}

func TestSuppressionReason(t *testing.T) {
	for reason, want := range map[string]string{
		"no marketing consent on email (unsubscribed)":                                                                                     "consent",
		"whatsapp: no marketing consent on whatsapp (not subscribed); email: frequency cap: 3 in 7d":                                       "frequency_cap",
		"quiet hours: held until 08:00 CET in the customer's time zone":                                                                    "quiet_hours",
		"outside the WhatsApp 24-hour window: the customer has not written in the last 24 hours, so only an approved template can be sent": "whatsapp_window",
		"ana@omni-shop.dev is undeliverable (hard bounce)":                                                                                 "undeliverable",
		"the customer has no email address":                                                                                                "no_address",
		"no sms channel is connected: enable a connector that sends sms on the Connectors page":                                            "no_connector",
		"consent": "consent",
		"":        "other",
	} {
		wantEq(t, reason, journeys.SuppressionReason(reason, "suppressed"), want)
	}
	wantEq(t, "failed", journeys.SuppressionReason("550 mailbox unavailable", "failed"), "failed")
}

// benchRuns is the size of BenchmarkStats100kRuns.
const benchRuns = 100000

// BenchmarkStats100kRuns times the results of a journey with 100,000
// runs, about 290,000 step rows, 50,000 sends and 20,000 opens (on the
// ledger, as messaging records them) and replies.
func BenchmarkStats100kRuns(b *testing.B) {
	s := omnitest.Start(b, omnitest.Options{Modules: func(*app.Omni) []app.Module {
		return []app.Module{profiles.New(profiles.Options{}), messaging.New(messaging.Options{}), journeys.New(journeys.Options{})}
	}})
	agent := omnitest.Auth(s.Staff(b, "agent@omni-shop.dev", "agent"))
	db := s.PB.DB()
	for _, q := range []string{
		`INSERT INTO journeys (id, name, status, version, graph, settings) VALUES ('jb', 'jb', 'live', 1, '` + statsGraph + `', '{}')`,
		`INSERT INTO journey_versions (id, journey, version, graph, settings) VALUES ('jb1', 'jb', 1, '` + statsGraph + `', '{}')`,
		`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < ` + fmt.Sprint(benchRuns-1) + `)
		INSERT INTO journey_runs (id, journey, version, profile, node, status, exit_reason, holdout, entered_at, goal_until, goal_at, goal_value, goal_currency)
		SELECT 'run' || i, 'jb', 1, 'p' || i, CASE WHEN i % 10 = 0 THEN 'w1' ELSE 'end' END, CASE WHEN i % 10 = 0 THEN 'waiting' ELSE 'completed' END,
		CASE WHEN i % 10 = 0 THEN '' ELSE 'end' END, i % 10 = 1, '2026-11-01 10:00:00.000Z', '2026-11-08 10:00:00.000Z',
		CASE WHEN i % 7 = 0 THEN '2026-11-02 10:00:00.000Z' ELSE '' END, CASE WHEN i % 7 = 0 THEN 40 ELSE 0 END, CASE WHEN i % 7 = 0 THEN 'EUR' ELSE '' END FROM n`,
		`INSERT INTO journey_steps (id, run, journey, version, profile, node, type, exit, detail, at)
		SELECT 'w' || id, id, 'jb', 1, profile, 'w1', 'wait_for_event', 'timed_out', '{}', entered_at FROM journey_runs WHERE journey = 'jb' AND status = 'completed'`,
		`INSERT INTO journey_steps (id, run, journey, version, profile, node, type, exit, detail, at)
		SELECT 'h' || id, id, 'jb', 1, profile, 'h1', 'holdout', CASE WHEN holdout THEN 'held_out' ELSE 'continue' END, '{}', entered_at FROM journey_runs WHERE journey = 'jb' AND status = 'completed'`,
		`INSERT INTO journey_steps (id, run, journey, version, profile, node, type, exit, detail, at)
		SELECT 's' || id, id, 'jb', 1, profile, 'ab', 'split', CASE WHEN rowid % 2 THEN 'A' ELSE 'B' END, json_object('arm', CASE WHEN rowid % 2 THEN 'A' ELSE 'B' END), entered_at
		FROM journey_runs WHERE journey = 'jb' AND status = 'completed' AND NOT holdout`,
		`INSERT INTO messages (id, profile, channel, kind, status, journey_run, queued_at, sent_at, created)
		SELECT 'm' || id, profile, 'email', 'marketing', 'delivered', id, entered_at, entered_at, entered_at FROM journey_runs WHERE journey = 'jb' AND rowid % 2 = 0`,
		`INSERT INTO journey_steps (id, run, journey, version, profile, node, type, exit, detail, at)
		SELECT 'x' || journey_run, journey_run, 'jb', 1, profile, 'sa', 'send', 'sent', json_object('message_id', id, 'channel', 'email'), created FROM messages WHERE id LIKE 'mrun%'`,
		`UPDATE messages SET opened_at = '2026-11-01 12:00:00.000Z' WHERE id LIKE 'mrun%' AND rowid % 5 = 0`,
		`INSERT INTO events (id, event_id, type, source, channel, occurred_at, received_at, properties, profile, created)
		SELECT 'er' || id, 'er' || id, 'message.received', 'test', 'email', '2026-11-01 13:00:00.000Z', '2026-11-01 13:00:00.000Z', '{}', profile, '2026-11-01 13:00:00.000Z'
		FROM messages WHERE id LIKE 'mrun%' AND rowid % 5 = 1`,
	} {
		if _, err := db.NewQuery(q).Execute(); err != nil {
			b.Fatalf("seed: %v\n%s", err, q)
		}
	}
	get := func(b *testing.B) {
		code, body := s.Do(b, "GET", "/api/v1/journeys/jb/stats", nil, agent)
		if code != http.StatusOK {
			b.Fatalf("%d %s", code, body)
		}
		var st journeys.Stats
		if err := json.Unmarshal(body, &st); err != nil || st.Journey.Entered != benchRuns || st.Journey.Sends != benchRuns/2 {
			b.Fatalf("entered %d, sends %d: %v", st.Journey.Entered, st.Journey.Sends, err)
		}
	}
	// computed: each request finds other text for the version's graph (a
	// trailing space), so nothing kept answers it; kept: the results one
	// computation left are served again (stats_cache.go).
	b.Run("computed", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			if _, err := db.NewQuery(`UPDATE journey_versions SET graph = graph || ' ' WHERE id = 'jb1'`).Execute(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			get(b)
		}
	})
	b.Run("kept", func(b *testing.B) {
		get(b)
		for b.Loop() {
			get(b)
		}
	})
}
