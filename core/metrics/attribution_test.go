package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/inbox"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/journeys"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/plugins/sdk"
)

// attrEnv is a running Omni with profiles, messaging, journeys, the inbox
// and metrics, the shop's base currency EUR and its zone UTC.
type attrEnv struct {
	t     *testing.T
	s     *omnitest.Server
	m     *Module
	owner http.Header
}

func attrStart(t *testing.T, messagingNow func() time.Time) *attrEnv {
	t.Helper()
	m := New(Options{})
	s := omnitest.Start(t, omnitest.Options{
		Configure: func(c *config.Config) { c.Profiles.BaseCurrency = "EUR"; c.Messaging.Timezone = "UTC" },
		Modules: func(*app.Omni) []app.Module {
			return []app.Module{profiles.New(profiles.Options{}), messaging.New(messaging.Options{Now: messagingNow}),
				journeys.New(journeys.Options{}), inbox.New(inbox.Options{}), m}
		},
	})
	return &attrEnv{t: t, s: s, m: m, owner: omnitest.Auth(s.Staff(t, "owner@omni-shop.dev", "owner"))}
}

func attrEvent(id, typ, source string, at time.Time, ids events.Identities, props map[string]any, ctx events.Context) *events.Event {
	return &events.Event{ID: id, Type: typ, Source: source, OccurredAt: at, ReceivedAt: at, Identities: ids, Properties: props, Context: ctx}
}

// publish puts events on the bus as a connector would and waits until
// each is stored (and so processed: processors run in its transaction).
func (e *attrEnv) publish(evs ...*events.Event) {
	e.t.Helper()
	for _, err := range ingest.Publish(context.Background(), e.s.Bus, evs) {
		if err != nil {
			e.t.Fatal(err)
		}
	}
	for _, ev := range evs {
		omnitest.Eventually(e.t, 20*time.Second, func() bool {
			var n int
			_ = e.s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE event_id = {:id}").Bind(dbx.Params{"id": ev.ID}).Row(&n)
			return n == 1
		}, "event %s stored", ev.ID)
	}
}

// report fetches the attribution report of day (UTC) under model.
func (e *attrEnv) report(day time.Time, model string) *Report {
	e.t.Helper()
	d := day.UTC().Format(dayLayout)
	q := url.Values{"from": {d}, "to": {d}, "model": {model}}
	code, body := e.s.Do(e.t, "GET", "/api/v1/metrics/attribution?"+q.Encode(), nil, e.owner)
	if code != 200 {
		e.t.Fatalf("attribution report: %d %s", code, body)
	}
	var r Report
	if err := json.Unmarshal(body, &r); err != nil {
		e.t.Fatal(err)
	}
	return &r
}

// table is a report table as label → credit.
func attrTable(t *testing.T, r *Report, name string) map[string]float64 {
	t.Helper()
	for _, tb := range r.Tables {
		if tb.Name == name {
			out := map[string]float64{}
			for _, row := range tb.Rows {
				out[row[0].(string)] = row[1].(float64)
			}
			return out
		}
	}
	t.Fatalf("no table %s in %+v", name, r.Tables)
	return nil
}

// attrWant compares credits to the cent; a row want leaves out must be
// 0 (a dimension on the path the model gives nothing, as first and last
// do to all touches but one).
func attrWant(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	ok := true
	for k, v := range want {
		if _, in := got[k]; !in || math.Abs(got[k]-v) >= 0.005 {
			ok = false
		}
	}
	for k, v := range got {
		if _, in := want[k]; !in && v != 0 {
			ok = false
		}
	}
	if !ok {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func attrNear(a, b float64) bool { return math.Abs(a-b) < 0.005 }

// seedPath seeds the path for lena@omni-shop.dev before an order
// of 120 EUR at t0: an email of the "Autumn sale" opened 6 days before,
// a WhatsApp reply by the agent Ana 3 days before (to Lena's question 5
// minutes earlier), a visit from the "scarf-restock" Instagram campaign 2
// hours before (two page views 5 minutes apart: one visit), and, outside
// the 7-day lookback, a click in the "Summer" email 8 days before.
// It returns Ana's staff id.
func (e *attrEnv) seedPath(t0 time.Time) string {
	t := e.t
	t.Helper()
	s := e.s
	lena := events.Identities{events.Email: "lena@omni-shop.dev"}
	wa := events.Identities{events.WhatsAppID: "447700900123"}
	e.publish(
		attrEvent("id-lena", events.Identify, "shopify", t0.Add(-10*24*time.Hour),
			events.Identities{events.Email: "lena@omni-shop.dev", events.WhatsAppID: "447700900123"}, nil, events.Context{}),
		attrEvent("click-summer", events.EmailClicked, "klaviyo", t0.Add(-8*24*time.Hour), lena,
			map[string]any{"campaign_name": "Summer", "klaviyo_message_id": "km-summer"}, events.Context{Channel: "email"}),
		attrEvent("open-autumn", events.EmailOpened, "klaviyo", t0.Add(-6*24*time.Hour), lena,
			map[string]any{"campaign_name": "Autumn sale", "klaviyo_message_id": "km-autumn"}, events.Context{Channel: "email"}),
		attrEvent("wamid.lena1", events.MessageReceived, "whatsapp", t0.Add(-3*24*time.Hour-5*time.Minute), wa,
			map[string]any{"text": "Is the blue scarf back?"}, events.Context{Channel: "whatsapp"}),
	)

	// Ana answers in the inbox; the gate queues the reply for a WhatsApp
	// connector, and the connector host records it sent.
	col, err := s.PB.FindCollectionByNameOrId("connectors")
	if err != nil {
		t.Fatal(err)
	}
	conn := core.NewRecord(col)
	conn.Set("name", "parked")
	conn.Set("kind", "external")
	conn.Set("enabled", true)
	conn.Set("capabilities", []string{"send:whatsapp"})
	if err := s.PB.Save(conn); err != nil {
		t.Fatal(err)
	}
	tok := s.Staff(t, "ana@omni-shop.dev", "agent")
	ana, err := s.PB.FindAuthRecordByEmail("staff", "ana@omni-shop.dev")
	if err != nil {
		t.Fatal(err)
	}
	ana.Set("name", "Ana Lopez")
	if err := s.PB.Save(ana); err != nil {
		t.Fatal(err)
	}
	var conv string
	omnitest.Eventually(t, 20*time.Second, func() bool {
		_ = s.PB.DB().NewQuery(`SELECT c.id FROM conversations c JOIN identities i ON i.profile = c.profile
			WHERE i.kind = 'wa_id' AND i.value = '447700900123'`).Row(&conv)
		return conv != ""
	}, "Lena's WhatsApp conversation")
	code, body := s.Do(t, "POST", "/api/v1/conversations/"+conv+"/messages", map[string]any{"text": "Yes! Back in stock today."}, omnitest.Auth(tok))
	var reply struct {
		ID string `json:"id"`
	}
	if code != 201 || json.Unmarshal(body, &reply) != nil || reply.ID == "" {
		t.Fatalf("agent reply: %d %s", code, body)
	}
	var outbound string
	omnitest.Eventually(t, 20*time.Second, func() bool {
		_ = s.PB.DB().NewQuery("SELECT outbound FROM messages WHERE id = {:id} AND status = 'queued'").Bind(dbx.Params{"id": reply.ID}).Row(&outbound)
		return outbound != "" && outbound != "null"
	}, "the reply queued by the gate")
	var out sdk.OutboundMessage
	if err := json.Unmarshal([]byte(outbound), &out); err != nil {
		t.Fatal(err)
	}
	e.publish(connectors.OutcomeEvent("parked", &out, &sdk.SendResult{ProviderMessageID: "wamid.reply1"}, nil, t0.Add(-3*24*time.Hour)))

	web := events.Context{Channel: "web", Campaign: &events.Campaign{Source: "instagram", Medium: "social", Name: "scarf-restock"}}
	e.publish(
		attrEvent("pv-1", events.PageViewed, "test", t0.Add(-2*time.Hour), lena, nil, web),
		attrEvent("pv-2", events.PageViewed, "test", t0.Add(-2*time.Hour+5*time.Minute), lena, nil, web),
		attrEvent("order-1001", events.OrderPlaced, "shopify", t0, lena,
			map[string]any{"order_id": "1001", "total": "120.00", "currency": "EUR"}, events.Context{Channel: "web"}),
	)
	return ana.Id
}

// TestAttributionFourTouchPath: the path under each model, with
// the lookback leaving the older click out.
func TestAttributionFourTouchPath(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-24 * time.Hour)
	replyAt := t0.Add(-3 * 24 * time.Hour)
	e := attrStart(t, func() time.Time { return replyAt })
	e.seedPath(t0)

	// Three touches reach the order (the click 8 days before is outside
	// the 7-day lookback; the second page view is the same visit):
	// email opened (t0−6d), Ana's WhatsApp reply (t0−3d), web visit (t0−2h).
	// time_decay weights, half-life 7 days = 168 h:
	//   email 2^(−144/168) = 0.552045, whatsapp 2^(−72/168) = 0.742997,
	//   web 2^(−2/168) = 0.991782; sum 2.286824;
	//   × 120 / sum → 28.968284, 38.988419, 52.043296.
	want := map[string]map[string]float64{
		"first":      {"email": 120},
		"last":       {"web": 120},
		"linear":     {"email": 40, "whatsapp": 40, "web": 40}, // 120 / 3
		"position":   {"email": 48, "whatsapp": 24, "web": 48}, // 40% / 20% / 40% of 120
		"time_decay": {"email": 28.968284, "whatsapp": 38.988419, "web": 52.043296},
	}
	for _, model := range attrModels {
		r := e.report(t0, model)
		attrWant(t, model+" by_channel", attrTable(t, r, "by_channel"), want[model])
		agent := want[model]["whatsapp"] // the only agent touch
		if r.Totals["attributed_revenue"] != 120 || r.Totals["orders"] != 1 || r.Totals["touches_per_order"] != 3 ||
			!attrNear(r.Totals["agent_assisted_revenue"], agent) || r.Currency != "EUR" {
			t.Errorf("%s totals = %v (currency %q), want 120 attributed, 1 order, 3 touches, %v agent-assisted", model, r.Totals, r.Currency, agent)
		}
		byAgent := map[string]float64{"(no agent)": 120 - agent}
		if agent > 0 {
			byAgent["Ana Lopez"] = agent
		}
		attrWant(t, model+" by_agent", attrTable(t, r, "by_agent"), byAgent)
		attrWant(t, model+" by_journey", attrTable(t, r, "by_journey"), map[string]float64{"(no journey)": 120})
		byCampaign := map[string]float64{"Autumn sale": want[model]["email"], "scarf-restock": want[model]["web"], "(no campaign)": agent}
		for k, v := range byCampaign {
			if v == 0 {
				delete(byCampaign, k)
			}
		}
		attrWant(t, model+" by_campaign", attrTable(t, r, "by_campaign"), byCampaign)
	}

	// The models table holds every model's credit per channel.
	r := e.report(t0, "linear")
	for _, tb := range r.Tables {
		if tb.Name != "models" {
			continue
		}
		got := map[string]string{}
		for _, row := range tb.Rows {
			got[row[0].(string)] = fmt.Sprint(row[1:])
		}
		if len(got) != 3 || got["email"] != "[120 0 40 48 28.968284]" || got["whatsapp"] != "[0 0 40 24 38.988419]" ||
			got["web"] != "[0 120 40 48 52.043296]" {
			t.Errorf("models table = %v", got)
		}
	}
	// The series: the day's bucket holds the credit by channel.
	if r.Series == nil || len(r.Series.X) != 24 {
		t.Fatalf("series = %+v (a one-day range is 24 hourly points)", r.Series)
	}
	var sum float64
	for _, v := range r.Series.Y["attributed_revenue"] {
		sum += v
	}
	if sum != 120 || r.Series.Y["whatsapp"][t0.Hour()] != 40 {
		t.Errorf("series y = %v", r.Series.Y)
	}

	code, body := e.s.Do(t, "GET", "/api/v1/metrics/attribution?model=u_shaped", nil, e.owner)
	omnitest.WantFieldError(t, code, body, 400, "model")
	code, body = e.s.Do(t, "GET", "/api/v1/metrics/attribution?by=product", nil, e.owner)
	omnitest.WantFieldError(t, code, body, 400, "by")
}

// TestAttributionFollowsLateTouchesMergesAndErasure: a touch stored after
// its order re-credits it; redelivered events and a second report of the
// order change nothing; a merge brings the visitor's touch into the path;
// an erasure takes the customer's credit out.
func TestAttributionFollowsLateTouchesMergesAndErasure(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-24 * time.Hour)
	e := attrStart(t, nil)
	mia := events.Identities{events.Email: "mia@omni-shop.dev"}
	visit := attrEvent("pv-mia", events.PageViewed, "test", t0.Add(-2*time.Hour), events.Identities{events.AnonymousID: "anon-mia"}, nil,
		events.Context{Channel: "web", Campaign: &events.Campaign{Source: "google", Medium: "cpc", Name: "spring-drop"}})
	order := attrEvent("order-2001", events.OrderPlaced, "shopify", t0, mia,
		map[string]any{"order_id": "2001", "total": 80, "currency": "EUR"}, events.Context{Channel: "web"})
	e.publish(visit, order)
	byChannel := func(model string) map[string]float64 { return attrTable(t, e.report(t0, model), "by_channel") }

	// The visit is an anonymous visitor's, not Mia's: no touch, direct.
	r := e.report(t0, "last")
	attrWant(t, "before any touch", attrTable(t, r, "by_channel"), map[string]float64{"direct": 80})
	if r.Totals["direct_revenue"] != 80 || r.Totals["touches_per_order"] != 0 {
		t.Errorf("totals = %v", r.Totals)
	}

	// An open 1 day before the order, stored after it.
	open := attrEvent("open-mia", events.EmailOpened, "klaviyo", t0.Add(-24*time.Hour), mia,
		map[string]any{"campaign_name": "Spring", "klaviyo_message_id": "km-spring"}, events.Context{Channel: "email"})
	e.publish(open)
	if got := byChannel("last"); len(got) != 1 || got["email"] != 80 {
		t.Errorf("after the late open by_channel = %v, want email 80 alone (direct gone)", got)
	}

	// Everything again, and the same order reported under another id.
	again := attrEvent("order-2001-update", events.OrderPlaced, "shopify", t0.Add(time.Minute), mia,
		map[string]any{"order_id": "2001", "total": 80, "currency": "EUR"}, events.Context{Channel: "web"})
	e.publish(visit, order, open, again)
	r = e.report(t0, "linear")
	attrWant(t, "after redelivery", attrTable(t, r, "by_channel"), map[string]float64{"email": 80})
	if r.Totals["orders"] != 1 || r.Totals["attributed_revenue"] != 80 {
		t.Errorf("after redelivery totals = %v, want 1 order of 80", r.Totals)
	}

	// Mia signs in on the browser that made the visit: the profiles merge,
	// and the visit (t0−2h) joins her path after the open (t0−24h).
	e.publish(attrEvent("signin-mia", events.Identify, "test", t0.Add(time.Hour),
		events.Identities{events.AnonymousID: "anon-mia", events.Email: "mia@omni-shop.dev"}, nil, events.Context{Channel: "web"}))
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return byChannel("last")["web"] == 80
	}, "the merged visit credited under last touch")
	attrWant(t, "first after the merge", byChannel("first"), map[string]float64{"email": 80})
	attrWant(t, "linear after the merge", byChannel("linear"), map[string]float64{"email": 40, "web": 40}) // 80 / 2
	if r := e.report(t0, "linear"); r.Totals["orders"] != 1 || r.Totals["touches_per_order"] != 2 {
		t.Errorf("after the merge totals = %v, want 1 order with 2 touches", r.Totals)
	}

	// Erasure: her events go, and her credit with them.
	var profile string
	if err := e.s.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind = 'email' AND value = 'mia@omni-shop.dev'").Row(&profile); err != nil {
		t.Fatal(err)
	}
	if code, body := e.s.Do(t, "DELETE", "/api/v1/profiles/"+profile, nil, e.owner); code != 200 {
		t.Fatalf("erase: %d %s", code, body)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool {
		r := e.report(t0, "linear")
		return r.Totals["orders"] == 0 && r.Totals["attributed_revenue"] == 0 && len(attrTable(t, r, "by_channel")) == 0
	}, "the erased customer's credit gone")
	var left int
	for _, c := range []string{TouchesCollection, CreditsCollection, AttributionDailyCollection} {
		var n int
		_ = e.s.PB.DB().NewQuery("SELECT COUNT(*) FROM " + c).Row(&n)
		left += n
	}
	if left != 0 {
		t.Errorf("%d attribution rows left after the erasure", left)
	}
}

// TestAttributionSettingsRecredit: a shorter half-life moves time-decay
// credit to the latest touch; a longer lookback takes in the older click.
func TestAttributionSettingsRecredit(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-24 * time.Hour)
	replyAt := t0.Add(-3 * 24 * time.Hour)
	e := attrStart(t, func() time.Time { return replyAt })
	e.seedPath(t0)
	set := func(v AttributionSettings) {
		t.Helper()
		if _, err := CheckAttributionSettings(v); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(v)
		e.m.settings.mu.Lock()
		e.m.settings.kv["attribution"] = raw
		e.m.settings.mu.Unlock()
		if err := e.m.attrib.recreditAll(context.Background(), e.s.PB, nil); err != nil {
			t.Fatal(err)
		}
	}

	// Half-life 3 days = 72 h: weights 2^(−144/72) = 0.25, 2^(−72/72) = 0.5,
	// 2^(−2/72) = 0.980930; sum 1.730930; × 120 / sum → 17.331723,
	// 34.663445, 68.004832 (with 7 days: 28.97, 38.99, 52.04).
	set(AttributionSettings{LookbackDays: 7, HalfLifeDays: 3})
	attrWant(t, "time_decay, half-life 3 days", attrTable(t, e.report(t0, "time_decay"), "by_channel"),
		map[string]float64{"email": 17.331723, "whatsapp": 34.663445, "web": 68.004832})
	attrWant(t, "linear is unmoved by the half-life", attrTable(t, e.report(t0, "linear"), "by_channel"),
		map[string]float64{"email": 40, "whatsapp": 40, "web": 40})

	// Lookback 9 days: the "Summer" click (t0−8d) counts; 4 touches, 30 each
	// under linear, two of them email.
	set(AttributionSettings{LookbackDays: 9, HalfLifeDays: 3})
	r := e.report(t0, "linear")
	attrWant(t, "linear, lookback 9 days", attrTable(t, r, "by_channel"), map[string]float64{"email": 60, "whatsapp": 30, "web": 30})
	attrWant(t, "first, lookback 9 days", attrTable(t, e.report(t0, "first"), "by_campaign"), map[string]float64{"Summer": 120})
	if r.Totals["touches_per_order"] != 4 || r.Totals["attributed_revenue"] != 120 {
		t.Errorf("totals = %v", r.Totals)
	}
	for _, bad := range []AttributionSettings{{LookbackDays: 0, HalfLifeDays: 7}, {LookbackDays: 7, HalfLifeDays: 91}} {
		if field, err := CheckAttributionSettings(bad); err == nil || field == "" {
			t.Errorf("CheckAttributionSettings(%+v) = %q, %v; want the field named", bad, field, err)
		}
	}
}

// TestAttributionJourneySends: a journey's SMS and its read are touches
// credited to the journey (by name); a transactional message is not a
// touch; the tables export as CSV.
func TestAttributionJourneySends(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-24 * time.Hour)
	e := attrStart(t, nil)
	db := e.s.PB.DB()
	noah := events.Identities{events.Email: "noah@omni-shop.dev", events.Phone: "+447700900456"}
	e.publish(attrEvent("id-noah", events.Identify, "shopify", t0.Add(-9*24*time.Hour), noah, nil, events.Context{}))
	var profile string
	if err := db.NewQuery("SELECT profile FROM identities WHERE kind = 'email' AND value = 'noah@omni-shop.dev'").Row(&profile); err != nil {
		t.Fatal(err)
	}
	// The journey, its run for Noah and the ledger's rows, as the journeys
	// engine and the send gate leave them.
	for _, q := range []string{
		`INSERT INTO journeys (id, name, status, version, graph, settings) VALUES ('jwinback', 'Win-back', 'live', 1, '{}', '{}')`,
		`INSERT INTO journey_runs (id, journey, version, profile, status) VALUES ('run-noah', 'jwinback', 1, {:p}, 'active')`,
		`INSERT INTO messages (id, profile, channel, kind, journey_run, status) VALUES ('msg-winback', {:p}, 'sms', 'marketing', 'run-noah', 'queued')`,
		`INSERT INTO messages (id, profile, channel, kind, status) VALUES ('msg-receipt', {:p}, 'sms', 'transactional', 'queued')`,
	} {
		if _, err := db.NewQuery(q).Bind(dbx.Params{"p": profile}).Execute(); err != nil {
			t.Fatalf("seed: %v\n%s", err, q)
		}
	}
	sms := events.Identities{events.Phone: "+447700900456"}
	e.publish(
		attrEvent("message.sent:msg-winback", events.MessageSent, "twilio", t0.Add(-48*time.Hour), sms,
			map[string]any{"message_id": "msg-winback"}, events.Context{Channel: "sms", JourneyRun: "run-noah"}),
		attrEvent("read-winback", events.MessageRead, "twilio", t0.Add(-47*time.Hour), sms,
			map[string]any{"outbound_id": "msg-winback", "message_id": "SM123"}, events.Context{Channel: "sms"}),
		attrEvent("message.sent:msg-receipt", events.MessageSent, "twilio", t0.Add(-24*time.Hour), sms,
			map[string]any{"message_id": "msg-receipt"}, events.Context{Channel: "sms"}),
		attrEvent("order-3001", events.OrderPlaced, "shopify", t0, events.Identities{events.Email: "noah@omni-shop.dev"},
			map[string]any{"order_id": "3001", "total_price": "90.00", "currency": "EUR"}, events.Context{Channel: "web"}),
	)
	// Two touches (the send, 48 h before; the read, 47 h before), both the
	// journey's on SMS: 90 to each of journey and channel under any model.
	r := e.report(t0, "position") // two touches: 50/50
	attrWant(t, "by_journey", attrTable(t, r, "by_journey"), map[string]float64{"Win-back": 90})
	attrWant(t, "by_channel", attrTable(t, r, "by_channel"), map[string]float64{"sms": 90})
	if r.Totals["touches_per_order"] != 2 || r.Totals["agent_assisted_revenue"] != 0 {
		t.Errorf("totals = %v, want 2 touches, no agent", r.Totals)
	}
	var kinds string
	_ = db.NewQuery("SELECT group_concat(kind, ',') FROM (SELECT kind FROM metrics_touches ORDER BY at)").Row(&kinds)
	if kinds != "sent,read" {
		t.Errorf("touches = %q, want sent,read (the receipt is no touch)", kinds)
	}
	d := t0.Format(dayLayout)
	code, body := e.s.Do(t, "GET", "/api/v1/metrics/attribution?format=csv&table=by_journey&from="+d+"&to="+d, nil, e.owner)
	if code != 200 || string(body) != "Journey,Credited revenue,Share,Orders touched\nWin-back,90,1,1\n" {
		t.Errorf("CSV: %d %q", code, body)
	}
}
