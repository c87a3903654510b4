package metrics_test

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
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/journeys"
	"github.com/omni/omni/core/lift"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/metrics"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/store"
)

// startJourneys boots Omni with the modules whose tables the report reads
// (messaging's ledger, journeys') and metrics, in Paris with EUR as the
// base currency and 1 USD = 0.9 EUR, the clock after the test period.
func startJourneys(t testing.TB) (*omnitest.Server, http.Header) {
	t.Helper()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	s := omnitest.Start(t, omnitest.Options{
		Configure: func(c *config.Config) {
			c.Messaging.Timezone = "Europe/Paris"
			c.Profiles.BaseCurrency = "EUR"
			c.Profiles.ExchangeRates = "USD=0.9"
		},
		Modules: func(*app.Omni) []app.Module {
			return []app.Module{profiles.New(profiles.Options{}), messaging.New(messaging.Options{}), journeys.New(journeys.Options{}),
				metrics.New(metrics.Options{Now: func() time.Time { return now }})}
		}})
	return s, omnitest.Auth(s.Staff(t, "agent@omni-shop.dev", "agent"))
}

// jseed writes rows into the journeys' and messaging's tables as their
// modules leave them, so the report is checked against a hand count.
type jseed struct {
	t    *testing.T
	db   dbx.Builder
	base time.Time // 2026-11-10 09:00 UTC = 10:00 in Paris
}

func (d jseed) exec(sql string, p dbx.Params) {
	d.t.Helper()
	if _, err := d.db.NewQuery(sql).Bind(p).Execute(); err != nil {
		d.t.Fatalf("seed: %v\n%s", err, sql)
	}
}

// at is base + h hours as stored; "" for h == 0.
func (d jseed) at(h float64) string {
	if h == 0 {
		return ""
	}
	return store.FormatTime(d.base.Add(time.Duration(h * float64(time.Hour))))
}

func (d jseed) journey(id, name, graph string) {
	d.exec(`INSERT INTO journeys (id, name, status, version, graph, settings) VALUES ({:id}, {:n}, 'live', 1, {:g}, '{}')`,
		dbx.Params{"id": id, "n": name, "g": graph})
	d.exec(`INSERT INTO journey_versions (id, journey, version, graph, settings) VALUES ({:id}, {:j}, 1, {:g}, '{}')`,
		dbx.Params{"id": id + "v1", "j": id, "g": graph})
}

type jrun struct {
	id, journey, profile, status, reason string
	entered, ended, goal                 float64 // hours after base; 0: none
	value                                float64
	currency                             string
}

func (d jseed) run(r jrun) {
	d.exec(`INSERT INTO journey_runs (id, journey, version, profile, node, status, exit_reason, entered_at, ended_at,
		goal_until, goal_at, goal_value, goal_currency) VALUES ({:id}, {:j}, 1, {:p}, 'end', {:st}, {:r}, {:in}, {:end},
		{:gu}, {:ga}, {:gv}, {:gc})`, dbx.Params{"id": r.id, "j": r.journey, "p": r.profile, "st": r.status, "r": r.reason,
		"in": d.at(r.entered), "end": d.at(r.ended), "gu": d.at(r.entered + 7*24), "ga": d.at(r.goal), "gv": r.value, "gc": r.currency})
}

func (d jseed) step(run, journey, profile, node, typ, exit string, h float64, detail map[string]any) {
	b, _ := json.Marshal(detail)
	d.exec(`INSERT INTO journey_steps (id, run, journey, version, profile, node, type, exit, detail, at)
		VALUES ({:id}, {:run}, {:j}, 1, {:p}, {:node}, {:t}, {:exit}, {:d}, {:at})`, dbx.Params{
		"id": store.NewRecordID(), "run": run, "j": journey, "p": profile, "node": node, "t": typ, "exit": exit, "d": string(b), "at": d.at(h)})
}

func (d jseed) message(id, run, profile, channel, kind, status, reason string, h float64) {
	sent := ""
	if status != "queued" && status != "suppressed" {
		sent = d.at(h + 0.05)
	}
	d.exec(`INSERT INTO messages (id, profile, channel, kind, status, reason, journey_run, queued_at, sent_at, created)
		VALUES ({:id}, {:p}, {:c}, {:k}, {:st}, {:r}, {:run}, {:q}, {:s}, {:q})`, dbx.Params{
		"id": id, "p": profile, "c": channel, "k": kind, "st": status, "r": reason, "run": run, "q": d.at(h), "s": sent})
}

func (d jseed) event(typ, source, profile, channel string, h float64, props map[string]any) {
	b, _ := json.Marshal(props)
	id := store.NewRecordID()
	d.exec(`INSERT INTO events (id, event_id, type, source, channel, occurred_at, received_at, properties, profile, created)
		VALUES ({:id}, {:id}, {:t}, {:src}, {:c}, {:at}, {:at}, {:p}, {:prof}, {:at})`,
		dbx.Params{"id": id, "t": typ, "src": source, "c": channel, "at": d.at(h), "p": string(b), "prof": profile})
}

// winGraph: a holdout, an email, then a WhatsApp message.
const winGraph = `{"trigger": {"event": "checkout.started"}, "goal": {"event": "order.placed", "within": "7d"}, "start": "h1",
 "nodes": {
  "h1": {"type": "holdout", "percent": 10, "next": {"continue": "se"}},
  "se": {"type": "send", "name": "Email offer", "channels": ["email"], "template": "t1", "next": {"sent": "sw", "suppressed": "sw"}},
  "sw": {"type": "send", "name": "WhatsApp nudge", "channels": ["whatsapp"], "template": "t2", "next": {"sent": "end", "suppressed": "end"}},
  "end": {"type": "exit"}}}`

// seedShop is the shop every figure of TestJourneysReport is counted on.
// The period is 2026-11-10..16 in Paris; base is 2026-11-10 10:00 Paris.
func seedJourneyShop(d jseed) {
	const j = "jwin"
	d.journey(j, "Win-back", winGraph)
	// r1: treated; email m1 delivered, opened and clicked; WhatsApp m2
	// read and replied to an hour later; bought for 100 EUR.
	d.run(jrun{id: "r1", journey: j, profile: "p1", status: "completed", reason: "end", entered: 0.01, ended: 25, goal: 24, value: 100, currency: "EUR"})
	d.step("r1", j, "p1", "h1", "holdout", "continue", 0.5, nil)
	d.step("r1", j, "p1", "se", "send", "sent", 1, map[string]any{"message_id": "m1"})
	d.step("r1", j, "p1", "sw", "send", "sent", 4, map[string]any{"message_id": "m2"})
	d.message("m1", "r1", "p1", "email", "marketing", "delivered", "", 1)
	d.event("email.opened", "email", "p1", "email", 3, map[string]any{"outbound_id": "m1"})
	d.event("email.clicked", "email", "p1", "email", 3.5, map[string]any{"message_id": "m1"})
	d.message("m2", "r1", "p1", "whatsapp", "marketing", "read", "", 4)
	d.event("message.received", "whatsapp", "p1", "whatsapp", 5, nil)
	// r2: treated; email m3 refused (no consent); WhatsApp m4 delivered,
	// then STOP 2 hours later; bought for 50 USD = 45 EUR.
	d.run(jrun{id: "r2", journey: j, profile: "p2", status: "completed", reason: "end", entered: 0.01, ended: 31, goal: 30, value: 50, currency: "USD"})
	d.step("r2", j, "p2", "h1", "holdout", "continue", 0.5, nil)
	d.step("r2", j, "p2", "se", "send", "suppressed", 1, map[string]any{"message_id": "m3"})
	d.step("r2", j, "p2", "sw", "send", "sent", 4, map[string]any{"message_id": "m4"})
	d.message("m3", "r2", "p2", "email", "marketing", "suppressed", "no marketing consent on email (unsubscribed)", 1)
	d.message("m4", "r2", "p2", "whatsapp", "marketing", "delivered", "", 4)
	d.event("consent.changed", "whatsapp", "p2", "whatsapp", 6, map[string]any{"channel": "whatsapp", "status": "unsubscribed"})
	// r3: held out; bought for 80 EUR.
	d.run(jrun{id: "r3", journey: j, profile: "p3", status: "completed", reason: "end", entered: 0.01, ended: 0.5, goal: 20, value: 80, currency: "EUR"})
	d.step("r3", j, "p3", "h1", "holdout", "held_out", 0.5, nil)
	// r4: treated; email m5 failed; left by unsubscribing; no goal.
	d.run(jrun{id: "r4", journey: j, profile: "p4", status: "exited", reason: "unsubscribed", entered: 0.01, ended: 2})
	d.step("r4", j, "p4", "h1", "holdout", "continue", 0.5, nil)
	d.step("r4", j, "p4", "se", "send", "sent", 1, map[string]any{"message_id": "m5"})
	d.message("m5", "r4", "p4", "email", "marketing", "failed", "", 1)
	// r5: the previous period (Nov 5): bought for 20 EUR.
	d.run(jrun{id: "r5", journey: j, profile: "p7", status: "completed", reason: "end", entered: -5 * 24, ended: -4 * 24, goal: -4 * 24, value: 20, currency: "EUR"})
	d.step("r5", j, "p7", "h1", "holdout", "continue", -5*24+0.5, nil)

	// Outside journeys. m6: a campaign on Nov 12, unsubscribed from by
	// its link 5 days later (after the period, past the 3 days: the link
	// says which send it was).
	d.message("m6", "", "p5", "email", "marketing", "sent", "", 2*24)
	d.event("consent.changed", "customer", "p5", "", 7*24, map[string]any{"channel": "email", "status": "unsubscribed", "reason": "unsubscribe link"})
	// m7: an order confirmation at 23:30 UTC on Nov 12 = 00:30 on Nov 13 in Paris.
	d.message("m7", "", "p5", "email", "transactional", "delivered", "", 2*24+14.5)
	// m8: an agent's WhatsApp reply on Nov 14, read; the customer wrote
	// again 10 days later: not a reply to it.
	d.message("m8", "", "p6", "whatsapp", "conversation", "read", "", 4*24)
	d.event("message.received", "whatsapp", "p6", "whatsapp", 14*24, nil)
	// m9: the previous period (Nov 5), delivered.
	d.message("m9", "", "p7", "email", "marketing", "delivered", "", -5*24)
}

func getReport(t *testing.T, s *omnitest.Server, h http.Header, path string) metrics.Report {
	t.Helper()
	code, body := s.Do(t, "GET", path, nil, h)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var r metrics.Report
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return r
}

func wantEq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// tableRows returns a table's rows as maps by column key, keyed by the
// first column.
func journeyTableRows(t *testing.T, r metrics.Report, name string) map[string]map[string]any {
	t.Helper()
	for _, tb := range r.Tables {
		if tb.Name != name {
			continue
		}
		out := map[string]map[string]any{}
		for _, row := range tb.Rows {
			m := map[string]any{}
			for i, c := range tb.Columns {
				m[c.Key] = row[i]
			}
			out[fmt.Sprint(row[0])] = m
		}
		return out
	}
	t.Fatalf("no table %q", name)
	return nil
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestJourneysReport(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	s, agent := startJourneys(t)
	seedJourneyShop(jseed{t: t, db: s.PB.DB(), base: time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)})

	r := getReport(t, s, agent, "/api/v1/metrics/journeys?from=2026-11-10&to=2026-11-16&compare=previous")
	wantEq(t, "currency", r.Currency, "EUR")
	wantEq(t, "bucket", r.Bucket, "day")
	// In the period: m1 m2 m3 m4 m5 (journey), m6 m7 m8; m9 is before.
	want := map[string]float64{
		"sent":         6, // m1 m2 m4 m6 m7 m8 (m3 refused, m5 failed)
		"delivered":    5, // m1 m2(read) m4 m7 m8(read)
		"opened":       3, // m1 (email.opened), m2 and m8 (read)
		"clicked":      1, // m1
		"replied":      1, // m2: p1 wrote on WhatsApp an hour later; m8's came 10 days later
		"unsubscribed": 2, // m4 (STOP 2 h later), m6 (its link, 5 days later)
		"failed":       1, // m5
		"refused":      1, // m3
		"conversions":  3, // r1, r2, r3 reached the goal in the period; r5 before
		"revenue":      225,
	}
	for k, v := range want {
		wantEq(t, "totals."+k, r.Totals[k], v)
	}
	for k, v := range map[string]float64{"delivery_rate": 5.0 / 6, "open_rate": 3.0 / 6, "click_rate": 1.0 / 6, "reply_rate": 1.0 / 6} {
		if !near(r.Totals[k], v) {
			t.Errorf("totals.%s = %v, want %v", k, r.Totals[k], v)
		}
	}
	// Previous period Nov 3..9: m9 delivered; r5's goal of 20 EUR.
	wantEq(t, "previous.sent", r.Previous["sent"], 1.0)
	wantEq(t, "previous.delivered", r.Previous["delivered"], 1.0)
	wantEq(t, "previous.conversions", r.Previous["conversions"], 1.0)
	wantEq(t, "previous.revenue", r.Previous["revenue"], 20.0)

	// Series by day in Paris, Nov 10..16: m1 m2 m4 on the 10th, m6 on
	// the 12th, m7 on the 13th (00:30 Paris), m8 on the 14th.
	wantEq(t, "series.x[0]", r.Series.X[0], time.Date(2026, 11, 10, 0, 0, 0, 0, mustZone(t, "Europe/Paris")).Unix())
	wantEq(t, "series sent", r.Series.Y["sent"], []float64{3, 0, 1, 1, 1, 0, 0})
	wantEq(t, "series delivered", r.Series.Y["delivered"], []float64{3, 0, 0, 1, 1, 0, 0})
	wantEq(t, "series opened", r.Series.Y["opened"], []float64{2, 0, 0, 0, 1, 0, 0})
	wantEq(t, "series clicked", r.Series.Y["clicked"], []float64{1, 0, 0, 0, 0, 0, 0})
	wantEq(t, "series previous sent", r.Series.Previous["sent"], []float64{0, 0, 1, 0, 0, 0, 0}) // m9 on Nov 5

	ch := journeyTableRows(t, r, "by_channel")
	// email: m1 m6 m7 sent, m1 m7 delivered, m1 opened and clicked, m6
	// unsubscribed, m5 failed, m3 refused for consent.
	wantRow(t, "by_channel email", ch["email"], map[string]any{"sent": 3.0, "delivered": 2.0, "opened": 1.0, "clicked": 1.0, "replied": 0.0,
		"unsubscribed": 1.0, "failed": 1.0, "refused": 1.0, "top_refusal": "consent"})
	// whatsapp: m2 m4 m8 sent and delivered, m2 m8 read, m2 replied, m4 unsubscribed.
	wantRow(t, "by_channel whatsapp", ch["whatsapp"], map[string]any{"sent": 3.0, "delivered": 3.0, "opened": 2.0, "clicked": 0.0,
		"replied": 1.0, "unsubscribed": 1.0, "failed": 0.0, "refused": 0.0, "top_refusal": ""})

	kinds := journeyTableRows(t, r, "by_kind")
	wantRow(t, "by_kind journey", kinds["journey"], map[string]any{"sent": 3.0, "delivered": 3.0, "opened": 2.0, "clicked": 1.0,
		"replied": 1.0, "unsubscribed": 1.0, "failed": 1.0, "refused": 1.0})
	wantRow(t, "by_kind marketing", kinds["marketing"], map[string]any{"sent": 1.0, "delivered": 0.0, "unsubscribed": 1.0})
	wantRow(t, "by_kind transactional", kinds["transactional"], map[string]any{"sent": 1.0, "delivered": 1.0, "opened": 0.0})
	wantRow(t, "by_kind conversation", kinds["conversation"], map[string]any{"sent": 1.0, "delivered": 1.0, "opened": 1.0, "replied": 0.0})

	// Win-back: r1..r4 entered, r1 r2 r3 completed in the period, 3 of 4
	// converted for 100 + 50×0.9 + 80 = 225 EUR. Holdout: 3 treated, 1
	// held out: far below the minimum.
	js := journeyTableRows(t, r, "by_journey")
	wantRow(t, "by_journey jwin", js["jwin"], map[string]any{"journey": "Win-back", "entered": 4.0, "completed": 3.0, "conversions": 3.0,
		"conversion_rate": 0.75, "revenue": 225.0, "holdout_lift": nil, "lift_verdict": lift.NotEnoughData})
	if _, ok := journeyTableRows(t, r, "by_journey")["jwin"]; !ok || len(js) != 1 {
		t.Errorf("by_journey = %v, want Win-back alone", js)
	}
	for _, tb := range r.Tables {
		if tb.Name == "by_node" {
			t.Error("by_node without journey=")
		}
	}

	// One journey: its messages only, and its steps.
	r = getReport(t, s, agent, "/api/v1/metrics/journeys?from=2026-11-10&to=2026-11-16&journey=jwin")
	for k, v := range map[string]float64{"sent": 3, "delivered": 3, "opened": 2, "clicked": 1, "replied": 1, "unsubscribed": 1,
		"failed": 1, "refused": 1, "conversions": 3, "revenue": 225} {
		wantEq(t, "jwin totals."+k, r.Totals[k], v)
	}
	nodes := r.Tables[len(r.Tables)-1]
	wantEq(t, "by_node name", nodes.Name, "by_node")
	var order []any
	for _, row := range nodes.Rows {
		order = append(order, row[0])
	}
	wantEq(t, "by_node order", order, []any{"h1", "se", "sw", "end"})
	n := journeyTableRows(t, r, "by_node")
	// h1: r1..r4 passed it in the period; r1 r2 r3 converted after it.
	wantRow(t, "h1", n["h1"], map[string]any{"type": "holdout", "reached": 4.0, "sent": 0.0, "conversions": 3.0, "revenue": 225.0})
	// se: r1 (m1 delivered, opened, clicked), r2 (m3 refused), r4 (m5 failed).
	wantRow(t, "se", n["se"], map[string]any{"label": "Email offer", "reached": 3.0, "sent": 1.0, "delivered": 1.0, "opened": 1.0,
		"clicked": 1.0, "conversions": 2.0, "revenue": 145.0})
	// sw: r1 (m2 read), r2 (m4 delivered).
	wantRow(t, "sw", n["sw"], map[string]any{"label": "WhatsApp nudge", "type": "send", "reached": 2.0, "sent": 2.0, "delivered": 2.0,
		"opened": 1.0, "clicked": 0.0, "conversions": 2.0, "revenue": 145.0})
	wantRow(t, "end", n["end"], map[string]any{"reached": 0.0, "conversions": 0.0})

	// A channel: WhatsApp only.
	r = getReport(t, s, agent, "/api/v1/metrics/journeys?from=2026-11-10&to=2026-11-16&channel=whatsapp")
	wantEq(t, "whatsapp sent", r.Totals["sent"], 3.0)
	wantEq(t, "whatsapp replied", r.Totals["replied"], 1.0)
	wantEq(t, "whatsapp refused", r.Totals["refused"], 0.0)

	// CSV of a table.
	code, body := s.Do(t, "GET", "/api/v1/metrics/journeys?from=2026-11-10&to=2026-11-16&format=csv&table=by_channel", nil, agent)
	if code != http.StatusOK || !strings.HasPrefix(string(body), "Channel,Sent,Delivered,Read / opened,Clicked,Replied") ||
		!strings.Contains(string(body), "\nemail,3,2,1,1,0,1,1,1,consent,") {
		t.Errorf("csv: %d %s", code, body)
	}

	// Bad parameters name the field.
	code, body = s.Do(t, "GET", "/api/v1/metrics/journeys?channel=fax", nil, agent)
	omnitest.WantFieldError(t, code, body, http.StatusBadRequest, "channel")
	code, body = s.Do(t, "GET", "/api/v1/metrics/journeys?journey=nope", nil, agent)
	omnitest.WantFieldError(t, code, body, http.StatusBadRequest, "journey")
	// Staff only.
	code, body = s.Do(t, "GET", "/api/v1/metrics/journeys", nil, nil)
	if code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Errorf("anonymous: %d %s", code, body)
	}
}

func wantRow(t *testing.T, what string, row map[string]any, want map[string]any) {
	t.Helper()
	if row == nil {
		t.Errorf("%s: no row", what)
		return
	}
	for k, v := range want {
		if !reflect.DeepEqual(row[k], v) {
			t.Errorf("%s.%s = %#v, want %#v", what, k, row[k], v)
		}
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// With enough customers on both sides the journey's row carries the
// holdout lift computed by core/lift from the groups counted here.
func TestJourneysReportHoldoutLift(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	s, agent := startJourneys(t)
	d := jseed{t: t, base: time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)}
	err := s.PB.RunInTransaction(func(tx core.App) error {
		d.db = tx.DB()
		d.journey("jbig", "Big", winGraph)
		// 120 treated, 36 of them bought for 10 EUR; 100 held out, 10
		// bought for 10 EUR.
		for i := range 220 {
			held := i >= 120
			conv := (!held && i < 36) || (held && i < 130)
			r := jrun{id: fmt.Sprintf("b%03d", i), journey: "jbig", profile: fmt.Sprintf("q%03d", i), status: "completed", reason: "end", entered: 1, ended: 2}
			if conv {
				r.goal, r.value, r.currency = 10, 10, "EUR"
			}
			d.run(r)
			exit := "continue"
			if held {
				exit = "held_out"
			}
			d.step(r.id, "jbig", r.profile, "h1", "holdout", exit, 1.5, nil)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := getReport(t, s, agent, "/api/v1/metrics/journeys?from=2026-11-10&to=2026-11-16")
	// Treated: 120 customers, 36 conversions, 360 EUR, Σrev² = 36×100;
	// held out: 100, 10, 100 EUR, Σrev² = 10×100.
	c := lift.Compare(lift.Group{Customers: 120, Conversions: 36, Revenue: 360, RevenueSq: 3600},
		lift.Group{Customers: 100, Conversions: 10, Revenue: 100, RevenueSq: 1000}, "customers in the journey", "held-out customers")
	if !c.Enough {
		t.Fatal("the seeded groups should pass the minimum")
	}
	row := journeyTableRows(t, r, "by_journey")["jbig"]
	wantRow(t, "jbig", row, map[string]any{"entered": 220.0, "conversions": 46.0, "revenue": 460.0,
		"holdout_lift": c.Conversion.Estimate, "lift_low": c.Conversion.Low, "lift_high": c.Conversion.High,
		"lift_confidence": c.Conversion.ProbabilityBetter, "lift_verdict": c.Verdict})
	// The posterior means: (36+1)/(120+2) − (10+1)/(100+2).
	if est, _ := row["holdout_lift"].(float64); !near(est, 37.0/122-11.0/102) {
		t.Errorf("holdout_lift = %v, want %v", row["holdout_lift"], 37.0/122-11.0/102)
	}
	if !strings.Contains(c.Verdict, "customers in the journey convert better") {
		t.Errorf("verdict %q: the treated convert at 30%%, the held out at 10%%", c.Verdict)
	}
}
