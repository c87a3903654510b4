package backtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/omni/omni/core/journeys/graph"
)

// abandonedCheckout is the journey: checkout.started (over 50) →
// wait up to 1h for the order of that checkout → WhatsApp, else email →
// wait 24h for an order → a code by email → exit; the goal is an order
// (with a total) within 7 days, and it ends the run.
const abandonedCheckout = `{
 "trigger": {"event": "checkout.started", "where": {"property": "total", "op": "gt", "value": 50}},
 "goal": {"event": "order.placed", "where": {"property": "total", "op": "gt", "value": 0}, "within": "7d", "exit": true},
 "start": "w1",
 "nodes": {
  "w1": {"type": "wait_for_event", "event": "order.placed", "match": ["checkout_id"], "timeout": "1h",
         "next": {"happened": "end", "timed_out": "s1"}},
  "s1": {"type": "send", "channels": ["whatsapp", "email"], "template": "cart", "next": {"sent": "w2", "suppressed": "w2"}},
  "w2": {"type": "wait_for_event", "event": "order.placed", "timeout": "24h", "next": {"happened": "end", "timed_out": "s2"}},
  "s2": {"type": "send", "channels": ["email"], "template": "code10", "next": {"sent": "end", "suppressed": "end"}},
  "end": {"type": "exit"}}}`

// lookups answers from tables written in the test.
type lookups struct {
	customers map[string]*Customer
	templates map[string]Template
	branch    func(rule json.RawMessage, profile string, at time.Time) (bool, error)
}

func (l lookups) Customer(id string) (*Customer, error) { return l.customers[id], nil }
func (l lookups) Template(ref string) (Template, bool) {
	t, ok := l.templates[ref]
	return t, ok
}
func (l lookups) Branch(rule json.RawMessage, profile string, at time.Time) (bool, error) {
	if l.branch == nil {
		return false, errors.New("no branch expected")
	}
	return l.branch(rule, profile, at)
}

func events(evs []Event) iter.Seq2[Event, error] {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
	return func(yield func(Event, error) bool) {
		for _, e := range evs {
			if !yield(e, nil) {
				return
			}
		}
	}
}

func at(day, hour, minute int) time.Time {
	return time.Date(2026, 11, day, hour, minute, 0, 0, time.UTC)
}

func ev(id, typ, profile string, t time.Time, props map[string]any) Event {
	return Event{ID: id, Type: typ, Profile: profile, At: t, Props: props}
}

func mustGraph(t *testing.T, raw string) *graph.Graph {
	t.Helper()
	g, err := graph.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if ps := g.Validate(); ps != nil {
		t.Fatalf("graph problems: %v", ps)
	}
	return g
}

func sub(chs ...string) map[string]string {
	m := map[string]string{}
	for _, c := range chs {
		m[c] = "subscribed"
	}
	return m
}

var gateRules = Rules{
	Caps:      []Cap{{Count: 2, Period: 24 * time.Hour}, {Count: 3, Period: 7 * 24 * time.Hour}},
	QuietFrom: 21 * 60, QuietTo: 8 * 60, ShopTZ: time.UTC,
	Connected: map[string]bool{"email": true, "whatsapp": true},
}

// TestAbandonedCheckoutHistoryMatchesTheHandCount replays a hand-built week
// through the abandoned-checkout journey and compares every node and edge
// with a count done by hand. Shop time zone UTC, quiet hours 21:00-08:00,
// caps 2/24h and 3/7d, re-entry every_time, window Nov 2 – Nov 9.
func TestAbandonedCheckoutHistoryMatchesTheHandCount(t *testing.T) {
	g := mustGraph(t, abandonedCheckout)
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	customers := map[string]*Customer{
		"ann":  {Email: "ann@omni-shop.dev", Consent: sub("email")},
		"ben":  {Email: "ben@omni-shop.dev", Phone: "+4470000002", WhatsApp: "4470000002", Consent: sub("email", "whatsapp")},
		"cara": {Email: "cara@omni-shop.dev", Phone: "+4470000003", WhatsApp: "4470000003", Consent: sub("email")},
		"dan":  {Email: "dan@omni-shop.dev", Consent: sub("email")},
		"eve":  {Email: "eve@omni-shop.dev", Consent: sub("email")},
		"finn": {Email: "finn@omni-shop.dev", Consent: sub("email"), Location: ny},
		"hana": {Phone: "+4470000008", WhatsApp: "4470000008", Consent: sub("whatsapp")},
		"ivy":  {Email: "ivy@omni-shop.dev", Consent: sub("email")},
		"jo":   {Email: "jo@omni-shop.dev", Consent: sub("email")},
		"kim":  {Email: "kim@omni-shop.dev", Consent: sub("email")},
	}
	co := func(id string, total float64) map[string]any {
		return map[string]any{"checkout_id": id, "total": total}
	}
	order := func(id string, total float64) map[string]any {
		return map[string]any{"checkout_id": id, "total": total, "currency": "EUR"}
	}
	history := []Event{
		// ann: orders 30 minutes after her checkout, inside the 1h wait:
		// the goal (not the wait's "happened") ends her run at w1. Goal 80.
		ev("a1", "checkout.started", "ann", at(2, 10, 0), co("c1", 80)),
		ev("a2", "order.placed", "ann", at(2, 10, 30), order("c1", 80)),
		// ben: wrote on WhatsApp at 09:00 (window open), consents to
		// WhatsApp: s1 by WhatsApp at 12:00; w2 times out; s2 by email
		// (one send in 24h, under the cap). His order on Nov 5 is within
		// 7 days of entering: the goal counts for a completed run too. Goal 120.
		{ID: "b0", Type: "message.received", Profile: "ben", Channel: "whatsapp", At: at(2, 9, 0)},
		ev("b1", "checkout.started", "ben", at(2, 11, 0), co("c2", 120)),
		ev("b2", "order.placed", "ben", at(5, 10, 0), order("c2", 120)),
		// cara: no WhatsApp consent, so s1 falls back to email; s2 email.
		ev("c1", "checkout.started", "cara", at(3, 9, 0), co("c3", 55)),
		// dan: unsubscribes from email at 10:30, before s1 at 11:00; no
		// phone. s1: whatsapp no address, email no consent → suppressed
		// (the last channel's reason: consent); s2 likewise consent.
		ev("d1", "checkout.started", "dan", at(3, 10, 0), co("c4", 65)),
		ev("d2", "consent.changed", "dan", at(3, 10, 30), map[string]any{"channel": "email", "status": "unsubscribed"}),
		// eve (re-entry every_time): run 1 sends s1 (Nov 2 09:00) and s2
		// (Nov 3 09:00). Run 2 enters Nov 3 12:00; her checkout at 12:30 is
		// skipped (already inside); s1 at 13:00 is her 3rd send in 7 days
		// (allowed: under 3 before it); s2 at Nov 4 13:00 would be the 4th:
		// the 3/7d cap suppresses it.
		ev("e1", "checkout.started", "eve", at(2, 8, 0), co("c5a", 90)),
		ev("e2", "checkout.started", "eve", at(3, 12, 0), co("c5b", 90)),
		ev("e3", "checkout.started", "eve", at(3, 12, 30), co("c5c", 90)),
		// finn (New York, UTC-5): s1 at Nov 5 02:00Z is 21:00 his time,
		// s2 at Nov 6 02:00Z too: both held for quiet hours, then sent.
		ev("f1", "checkout.started", "finn", at(5, 1, 0), co("c6", 70)),
		// hana: a WhatsApp message 12.5h before the window opens keeps the
		// 24-hour window open for s1 at Nov 2 09:30; no email: s2 is
		// suppressed for no address.
		{ID: "h0", Type: "message.received", Profile: "hana", Channel: "whatsapp", At: time.Date(2026, 11, 1, 20, 0, 0, 0, time.UTC)},
		ev("h1", "checkout.started", "hana", at(2, 8, 30), co("c8", 75)),
		// ivy: a free order (total 0) of her checkout: not the goal (total
		// > 0), but the order w1 awaits: "happened" → end.
		ev("i1", "checkout.started", "ivy", at(6, 10, 0), co("c9", 60)),
		ev("i2", "order.placed", "ivy", at(6, 10, 20), order("c9", 0)),
		// jo: a 30 checkout does not trigger (total > 50).
		ev("j1", "checkout.started", "jo", at(6, 14, 0), co("c10", 30)),
		// kim: s1 at 21:00 UTC is held (shop zone); w2 would time out
		// after the window: still waiting at w2 when it closes.
		ev("k1", "checkout.started", "kim", at(8, 20, 0), co("c11", 99)),
		// lee: at the window's end exactly: not replayed.
		ev("l1", "checkout.started", "lee", at(9, 0, 0), co("c12", 99)),
		// an event of nobody (not resolved to a customer) is skipped.
		ev("x1", "checkout.started", "", at(4, 12, 0), co("c13", 99)),
	}
	settings := &graph.Settings{Reentry: "every_time"}
	settings.Defaults()
	var progress []Progress
	res, err := Run(context.Background(), Input{Graph: g, Settings: settings, From: at(2, 0, 0), To: at(9, 0, 0),
		Events:   events(history),
		Lookups:  lookups{customers: customers, templates: map[string]Template{"cart": {Kind: "marketing"}, "code10": {}}},
		Rules:    gateRules,
		Progress: func(p Progress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}

	type node struct {
		entered, active          int
		exits, ended, suppressed map[string]int
		wouldSend, held          map[string]int
	}
	want := map[string]node{
		// w1: 10 runs (ann, ben, cara, dan, eve ×2, finn, hana, ivy, kim);
		// 8 time out; ivy's order happened; ann ends by the goal.
		"w1": {entered: 10, exits: map[string]int{"timed_out": 8, "happened": 1}, ended: map[string]int{"goal": 1}},
		// s1: WhatsApp for ben and hana; email for cara, eve ×2, finn, kim
		// (finn and kim held for quiet hours); dan suppressed (consent).
		"s1": {entered: 8, exits: map[string]int{"sent": 7, "suppressed": 1}, suppressed: map[string]int{"consent": 1},
			wouldSend: map[string]int{"whatsapp": 2, "email": 5}, held: map[string]int{"quiet_hours": 2}},
		// w2: all 8 from s1; kim is still waiting at the end.
		"w2": {entered: 8, active: 1, exits: map[string]int{"timed_out": 7}},
		// s2: email for ben, cara, eve's run 1, finn (held); suppressed:
		// dan (consent), eve's run 2 (frequency cap), hana (no address).
		"s2": {entered: 7, exits: map[string]int{"sent": 4, "suppressed": 3},
			suppressed: map[string]int{"consent": 1, "frequency_cap": 1, "no_address": 1},
			wouldSend:  map[string]int{"email": 4}, held: map[string]int{"quiet_hours": 1}},
		// end: the 7 runs through s2 and ivy's.
		"end": {entered: 8},
	}
	norm := func(m map[string]int) map[string]int {
		if len(m) == 0 {
			return nil
		}
		return m
	}
	for id, w := range want {
		n := res.Nodes[id]
		got := node{n.Entered, n.Active, norm(n.Exits), norm(n.Ended), norm(n.Suppressed), norm(n.WouldSend), norm(n.Held)}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("node %s:\n got %+v\nwant %+v", id, got, w)
		}
	}
	wantEdges := map[string]int{"w1.timed_out": 8, "w1.happened": 1, "s1.sent": 7, "s1.suppressed": 1, "w2.timed_out": 7,
		"s2.sent": 4, "s2.suppressed": 3}
	if !reflect.DeepEqual(res.Edges, wantEdges) {
		t.Errorf("edges: got %v, want %v", res.Edges, wantEdges)
	}
	if res.Entered != 10 || res.Active != 1 || !reflect.DeepEqual(res.Ended, map[string]int{"end": 8, "goal": 1}) ||
		!reflect.DeepEqual(res.Skipped, map[string]int{SkipActive: 1}) {
		t.Errorf("runs: entered %d active %d ended %v skipped %v", res.Entered, res.Active, res.Ended, res.Skipped)
	}
	if res.Goal.Reached != 2 || res.Goal.Revenue != 200 || res.Goal.Currency != "EUR" {
		t.Errorf("goal: %+v", res.Goal)
	}
	// 18 events in the window (hana's earlier message and lee's at the
	// end are outside) from 10 customers (the nobody event has none).
	if res.Simulated.Events != 18 || res.Simulated.Customers != 10 {
		t.Errorf("simulated: %+v", res.Simulated)
	}
	if len(progress) == 0 || progress[len(progress)-1].Fraction != 1 {
		t.Errorf("progress should end at 1: %v", progress)
	}
}

// TestSplitsAndHoldoutsDecideAsTheEngine: the arm and the holdout side are
// graph.Bucket of the simulated run id and the node, as the engine's are.
func TestSplitsAndHoldoutsDecideAsTheEngine(t *testing.T) {
	g := mustGraph(t, `{"trigger": {"event": "signed_up"}, "start": "h",
	 "goal": {"event": "order.placed", "within": "30d"},
	 "nodes": {"h": {"type": "holdout", "percent": 20, "next": {"continue": "ab"}},
	  "ab": {"type": "split", "arms": [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}]}}}`)
	var history []Event
	want := map[string]int{}
	wantHeld := 0
	for i := range 200 {
		p := fmt.Sprintf("p%03d", i)
		history = append(history, ev("s"+p, "signed_up", p, at(2, 10, 0).Add(time.Duration(i)*time.Minute), nil))
		run := "backtest-" + p + "-1"
		if graph.Bucket(run, "h") < 20 {
			wantHeld++
			continue
		}
		want[graph.PickArm([]graph.Arm{{Name: "a", Weight: 1}, {Name: "b", Weight: 3}}, graph.Bucket(run, "ab"))]++
	}
	// p000 buys: credited to whatever side and arm it took.
	history = append(history, ev("o", "order.placed", "p000", at(3, 10, 0), map[string]any{"total": 10.0, "currency": "EUR"}))
	res, err := Run(context.Background(), Input{Graph: g, From: at(2, 0, 0), To: at(9, 0, 0), Events: events(history),
		Lookups: lookups{}, Rules: gateRules})
	if err != nil {
		t.Fatal(err)
	}
	if res.Nodes["h"].Exits["held_out"] != wantHeld || res.Nodes["ab"].Exits["a"] != want["a"] || res.Nodes["ab"].Exits["b"] != want["b"] {
		t.Fatalf("held out %d (want %d), arms %v (want %v)", res.Nodes["h"].Exits["held_out"], wantHeld, res.Nodes["ab"].Exits, want)
	}
	if wantHeld == 0 || want["a"] == 0 || want["b"] == 0 {
		t.Fatalf("the sample should reach every side: %d %v", wantHeld, want)
	}
	if res.Holdout["held_out"].Entered != wantHeld || res.Holdout["treated"].Entered != 200-wantHeld ||
		res.Holdout["held_out"].Reached+res.Holdout["treated"].Reached != 1 {
		t.Fatalf("holdout groups: %+v %+v", res.Holdout["held_out"], res.Holdout["treated"])
	}
}

// TestGateRefusals: a WhatsApp message outside the 24-hour window, a
// channel without a connector, an undeliverable address, and a
// transactional send that needs no consent.
func TestGateRefusals(t *testing.T) {
	cases := []struct {
		channel, kind string
		cust          Customer
		lastWA        time.Duration // before the send; 0: never wrote
		want          string        // "" : would send
	}{
		{"whatsapp", "marketing", Customer{WhatsApp: "44700", Consent: sub("whatsapp")}, 0, WhatsAppWindow},
		{"whatsapp", "marketing", Customer{WhatsApp: "44700", Consent: sub("whatsapp")}, 25 * time.Hour, WhatsAppWindow},
		{"whatsapp", "marketing", Customer{WhatsApp: "44700", Consent: sub("whatsapp")}, 23 * time.Hour, ""},
		{"sms", "marketing", Customer{Phone: "+44700", Consent: sub("sms")}, 0, NoConnector},
		{"email", "marketing", Customer{Email: "bounced@omni-shop.dev", Consent: sub("email")}, 0, Undeliverable},
		{"email", "marketing", Customer{Email: "new@omni-shop.dev"}, 0, Consent},
		{"email", "transactional", Customer{Email: "new@omni-shop.dev"}, 0, ""},
	}
	for i, c := range cases {
		g := mustGraph(t, fmt.Sprintf(`{"trigger": {"event": "x.happened"}, "start": "s",
		 "nodes": {"s": {"type": "send", "channels": [%q], "template": "t", "kind": %q}}}`, c.channel, c.kind))
		sendAt := at(3, 12, 0)
		history := []Event{ev("x", "x.happened", "p", sendAt, nil)}
		if c.lastWA > 0 {
			history = append(history, Event{ID: "m", Type: "message.received", Channel: "whatsapp", Profile: "p", At: sendAt.Add(-c.lastWA)})
		}
		rules := gateRules
		rules.Undeliverable = map[string]bool{"email\x00bounced@omni-shop.dev": true}
		cust := c.cust
		res, err := Run(context.Background(), Input{Graph: g, From: at(2, 0, 0), To: at(9, 0, 0), Events: events(history),
			Lookups: lookups{customers: map[string]*Customer{"p": &cust}}, Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		n := res.Nodes["s"]
		switch {
		case c.want == "" && n.WouldSend[c.channel] != 1:
			t.Errorf("case %d: want a send, got %+v", i, n)
		case c.want != "" && n.Suppressed[c.want] != 1:
			t.Errorf("case %d: want suppressed %s, got %+v", i, c.want, n.Suppressed)
		}
	}
}

// TestSegmentTriggerExitRuleAndDates: a segment trigger enrols on the
// stored segment.entered, the exit rule ends the run on segment.exited, and
// date entries enrol at their moment.
func TestSegmentTriggerExitRuleAndDates(t *testing.T) {
	g := mustGraph(t, `{"trigger": {"segment": "vip"}, "exit_when": {"segment": "vip"}, "start": "w",
	 "nodes": {"w": {"type": "wait", "duration": "2d", "next": "b"},
	  "b": {"type": "branch", "rule": {"trait": "orders_count", "op": "gte", "value": 2}, "next": {"yes": "u", "no": "n"}},
	  "u": {"type": "update", "add_tags": ["loyal"]}, "n": {"type": "notify", "message": "call them"}}}`)
	seg := func(typ, p string, t time.Time, id string) Event {
		return ev(typ+p+id, typ, p, t, map[string]any{"segment_id": id})
	}
	history := []Event{
		seg("segment.entered", "stay", at(2, 10, 0), "vip"),  // waits 2 days, branch yes (asked at Nov 4 10:00)
		seg("segment.entered", "leave", at(2, 11, 0), "vip"), // leaves the segment the next day: exits at w
		seg("segment.exited", "leave", at(3, 11, 0), "vip"),
		seg("segment.entered", "other", at(2, 12, 0), "newsletter"), // another segment: nothing
		seg("segment.entered", "low", at(5, 9, 0), "vip"),           // branch no
	}
	var asked []string
	l := lookups{branch: func(rule json.RawMessage, profile string, when time.Time) (bool, error) {
		asked = append(asked, profile+"@"+when.Format("2T15"))
		return profile == "stay", nil
	}}
	res, err := Run(context.Background(), Input{Graph: g, From: at(2, 0, 0), To: at(9, 0, 0), Events: events(history), Lookups: l,
		Rules: gateRules})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entered != 3 || res.Nodes["w"].Ended["left_segment"] != 1 || res.Edges["b.yes"] != 1 || res.Edges["b.no"] != 1 ||
		!reflect.DeepEqual(asked, []string{"stay@4T10", "low@7T09"}) {
		t.Fatalf("entered %d, nodes %+v, edges %v, asked %v", res.Entered, res.Nodes["w"], res.Edges, asked)
	}

	// Dates: the API turns date traits into entries; the simulation enrols
	// at each (once per customer by default).
	g = mustGraph(t, `{"trigger": {"date": {"property": "birthday", "yearly": true}}, "start": "e", "nodes": {"e": {"type": "exit"}}}`)
	res, err = Run(context.Background(), Input{Graph: g, From: at(2, 0, 0), To: at(9, 0, 0), Lookups: l, Rules: gateRules,
		Entries: []Entry{{"a", at(3, 9, 0)}, {"b", at(4, 9, 0)}, {"a", at(5, 9, 0)}, {"c", at(10, 9, 0)}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entered != 2 || res.Skipped[SkipReentry] != 1 || res.Nodes["e"].Entered != 2 {
		t.Fatalf("date entries: %+v", res)
	}
}

func TestManualJourneysCannotBeBacktested(t *testing.T) {
	g := mustGraph(t, `{"trigger": {"manual": true}, "start": "e", "nodes": {"e": {"type": "exit"}}}`)
	if _, err := Run(context.Background(), Input{Graph: g, From: at(2, 0, 0), To: at(9, 0, 0)}); !errors.Is(err, ErrManual) {
		t.Fatalf("got %v", err)
	}
}

// TestDateEntries: a yearly birthday at 09:00 in the customer's zone, and
// 90 days after the last order.
func TestDateEntries(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	from, to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	bday, ok := ParseDate("1990-07-14", london)
	if !ok {
		t.Fatal("a day should parse")
	}
	got := DateEntries(&graph.DateTrigger{Property: "birthday", Yearly: true}, "p", bday, london, from, to)
	if len(got) != 1 || !got[0].At.Equal(time.Date(2026, 7, 14, 8, 0, 0, 0, time.UTC)) { // 09:00 BST
		t.Fatalf("birthday: %v", got)
	}
	last, _ := ParseDate("2026-03-02T15:04:05Z", london)
	got = DateEntries(&graph.DateTrigger{Property: "last_order_at", Offset: "90d", At: "10:30"}, "p", last, london, from, to)
	if len(got) != 1 || !got[0].At.Equal(time.Date(2026, 5, 31, 9, 30, 0, 0, time.UTC)) {
		t.Fatalf("90 days after: %v", got)
	}
	if got := DateEntries(&graph.DateTrigger{Property: "x", Offset: "-7d"}, "p", last, london, from, from.AddDate(0, 1, 0)); len(got) != 0 {
		t.Fatalf("outside the window: %v", got)
	}
}
