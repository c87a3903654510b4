package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/metrics"
	"github.com/omni/omni/core/profiles"
)

type funnelEnv struct {
	*omnitest.Server
	owner, agent string
}

func startFunnels(t *testing.T) *funnelEnv {
	t.Helper()
	s := omnitest.Start(t, omnitest.Options{
		Modules: func(o *app.Omni) []app.Module {
			return []app.Module{profiles.New(profiles.Options{}), messaging.New(messaging.Options{}), metrics.New(metrics.Options{})}
		},
		Configure: func(c *config.Config) {
			c.Messaging.Timezone = "UTC"
			c.Profiles.BaseCurrency = "EUR"
		},
	})
	return &funnelEnv{Server: s, owner: s.Staff(t, "owner@omni-shop.dev", "owner"), agent: s.Staff(t, "agent@omni-shop.dev", "agent")}
}

var fseq atomic.Int64

// fev builds an event of customer who (an email, or "anon:ID").
func fev(typ, who, channel, path string, at time.Time, props map[string]any) *events.Event {
	ids := events.Identities{events.Email: who}
	if a, ok := strings.CutPrefix(who, "anon:"); ok {
		ids = events.Identities{events.AnonymousID: a}
	}
	e := &events.Event{ID: fmt.Sprintf("f-%d", fseq.Add(1)), Type: typ, Source: "test", OccurredAt: at,
		Identities: ids, Properties: props, Context: events.Context{Channel: channel}}
	if path != "" {
		e.Context.Page = &events.Page{Path: path}
	}
	return e
}

// publish sends events as a connector would and waits until the last is
// stored (earlier ones of the batch are stored in the same or an earlier
// transaction; a redelivered one is dropped).
func (e *funnelEnv) publish(t *testing.T, evs ...*events.Event) {
	t.Helper()
	now := time.Now()
	norm := events.Normalizer{DefaultRegion: "US"}
	for _, ev := range evs {
		ev.ReceivedAt = now
		norm.Normalize(ev)
		if err := ev.Validate(now); err != nil {
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

func (e *funnelEnv) profileOf(t *testing.T, email string) string {
	t.Helper()
	var p string
	if err := e.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind = 'email' AND value = {:v}").Bind(dbx.Params{"v": email}).Row(&p); err != nil {
		t.Fatalf("profile of %s: %v", email, err)
	}
	return p
}

func (e *funnelEnv) report(t *testing.T, query string) *metrics.Report {
	t.Helper()
	code, body := e.Do(t, "GET", "/api/v1/metrics/funnel?"+query, nil, omnitest.Auth(e.agent))
	if code != 200 {
		t.Fatalf("GET funnel?%s: %d %s", query, code, body)
	}
	var r metrics.Report
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func (e *funnelEnv) waitReady(t *testing.T, id string) {
	t.Helper()
	omnitest.Eventually(t, 60*time.Second, func() bool {
		code, body := e.Do(t, "GET", "/api/v1/metrics/funnels/"+id, nil, omnitest.Auth(e.agent))
		var f metrics.Funnel
		return code == 200 && json.Unmarshal(body, &f) == nil && f.State == "ready"
	}, "funnel %s backfilled", id)
}

func table(t *testing.T, r *metrics.Report, name string) [][]any {
	t.Helper()
	for _, tb := range r.Tables {
		if tb.Name == name {
			return tb.Rows
		}
	}
	t.Fatalf("report has no table %s: %+v", name, r.Tables)
	return nil
}

// rowsText renders rows compactly for comparison ("web 4 3 2 0.5").
func rowsText(rows [][]any) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		parts := make([]string, len(r))
		for j, v := range r {
			if f, ok := v.(float64); ok {
				parts[j] = fmt.Sprint(math.Round(f*1000) / 1000)
			} else {
				parts[j] = fmt.Sprint(v)
			}
		}
		out[i] = strings.Join(parts, " ")
	}
	return out
}

func wantFunnelTotals(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if math.Abs(got[k]-v) > 1e-9 {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

func wantFunnelRows(t *testing.T, name string, got [][]any, want ...string) {
	t.Helper()
	g := rowsText(got)
	if strings.Join(g, " | ") != strings.Join(want, " | ") {
		t.Errorf("table %s:\n got  %q\n want %q", name, g, want)
	}
}

// A 3-step funnel (a product page, checkout, order; 7 days) and five
// customers, D is 20 days ago at 10:00 UTC, times in hours after D:
//
//	c1 web: /about -1h, /products/shoe 0h, checkout 24h, order 30h   → converts in 30h
//	c2 web: /products 0h, checkout 48h, order 216h (9 days)          → reaches checkout only
//	c3 app: /products 0h, order 24h (skips checkout)                 → first step only
//	c4 web: /products 0h; /products 192h (window over: a new entry),
//	        checkout 200h, order 220h                                → 2 entries, the second converts in 28h
//	c5 app: /products 24h, checkout 25h, order 27h                   → converts in 3h
//	c6 web: checkout 50h and again 51h (same token), no order        → not in the funnel
//
// Entries 6 (c1 c2 c3 c4 c4 c5); checkout reached by c1 c2 c4b c5 = 4;
// converted c1 c4b c5 = 3; rate 3/6 = 0.5; median of 10800, 100800,
// 108000 s = 100800. By channel: web c1 c2 c4a c4b → 4, 3 (c1 c2 c4b),
// 2 (c1 c4b), 2/4; app c3 c5 → 2, 1, 1, 1/2.
// c1 c2 c3 and c4's first view are stored before the funnel is created
// (backfilled), the rest after (kept as events arrive).
func TestFunnelAndCartAbandonment(t *testing.T) {
	e := startFunnels(t)
	D := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -20).Add(10 * time.Hour)
	at := func(h float64) time.Time { return D.Add(time.Duration(h * float64(time.Hour))) }
	order := func(who, ch string, h, total float64) *events.Event {
		return fev(events.OrderPlaced, who, ch, "", at(h), map[string]any{"order_id": who, "total": total, "currency": "EUR"})
	}
	checkout := func(who, ch string, h float64, token string) *events.Event {
		return fev(events.CheckoutStarted, who, ch, "", at(h), map[string]any{"checkout_token": token})
	}
	view := func(who, ch, path string, h float64) *events.Event {
		return fev(events.PageViewed, who, ch, path, at(h), nil)
	}
	c := func(n int) string { return fmt.Sprintf("c%d@omni-shop.dev", n) }

	before := []*events.Event{
		view(c(1), "web", "/about", -1), view(c(1), "web", "/products/shoe", 0), checkout(c(1), "web", 24, "t1"), order(c(1), "web", 30, 50),
		view(c(2), "web", "/products", 0), checkout(c(2), "web", 48, "t2"), order(c(2), "web", 216, 60),
		view(c(3), "app", "/products", 0), order(c(3), "app", 24, 70),
		view(c(4), "web", "/products", 0),
		checkout(c(6), "web", 50, "t6"), checkout(c(6), "web", 51, "t6"),
	}
	e.publish(t, before...)

	// The default funnel is there from the start.
	var list struct {
		Items       []metrics.Funnel `json:"items"`
		Abandonment struct {
			AbandonHours float64 `json:"abandon_hours"`
		} `json:"abandonment"`
	}
	code, body := e.Do(t, "GET", "/api/v1/metrics/funnels", nil, omnitest.Auth(e.agent))
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list.Items) != 1 || list.Items[0].Name != "Browse to buy" ||
		len(list.Items[0].Steps) != 3 || list.Items[0].WindowDays != 7 || list.Abandonment.AbandonHours != 24 {
		t.Fatalf("GET funnels: %d %s", code, body)
	}
	def := list.Items[0].ID

	code, body = e.Do(t, "POST", "/api/v1/metrics/funnels", map[string]any{"name": "Product to order", "window_days": 7, "steps": []map[string]any{
		{"event": "page.viewed", "path": "/products", "label": "Product page"}, {"event": "checkout.started"}, {"event": "order.placed"}}}, omnitest.Auth(e.owner))
	var fn metrics.Funnel
	if code != 201 || json.Unmarshal(body, &fn) != nil || fn.ID == "" || fn.Steps[1].Label != "checkout.started" {
		t.Fatalf("POST funnel: %d %s", code, body)
	}
	e.waitReady(t, fn.ID)
	e.waitReady(t, def)

	// Journey messages (sent before the orders that follow them arrive):
	// c4's between its checkout and order (a recovery); c1's before its
	// checkout and c6's without an order recover nothing.
	msgs, err := e.PB.FindCollectionByNameOrId("messages")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		who string
		h   float64
	}{{c(4), 205}, {c(1), 20}, {c(6), 52}} {
		if _, err := e.PB.DB().Insert(msgs.Name, dbx.Params{"id": fmt.Sprintf("msgfunnel%06.0f", m.h), "profile": e.profileOf(t, m.who), "channel": "email",
			"journey_run": "run-" + m.who, "status": "sent", "created": at(m.h).Format("2006-01-02 15:04:05.000Z")}).Execute(); err != nil {
			t.Fatal(err)
		}
	}
	e.publish(t, view(c(4), "web", "/products", 192), checkout(c(4), "web", 200, "t4"), order(c(4), "web", 220, 80),
		view(c(5), "app", "/products/hat", 24), checkout(c(5), "app", 25, "t5"), order(c(5), "app", 27, 90))

	// A segment of c1 and c5.
	if _, err := e.PB.DB().Insert("segments", dbx.Params{"id": "segfunnelvip001", "name": "VIP"}).Execute(); err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{c(1), c(5)} {
		if _, err := e.PB.DB().Insert("segment_members", dbx.Params{"id": "sm" + who[:2] + "funnel00000", "segment": "segfunnelvip001", "profile": e.profileOf(t, who)}).Execute(); err != nil {
			t.Fatal(err)
		}
	}

	rng := "from=" + D.Format("2006-01-02") + "&to=" + D.AddDate(0, 0, 13).Format("2006-01-02")
	check := func(t *testing.T) {
		r := e.report(t, "funnel="+fn.ID+"&"+rng+"&by=channel&compare=previous")
		wantFunnelTotals(t, r.Totals, map[string]float64{"entered": 6, "converted": 3, "conversion_rate": 0.5, "median_time_to_convert": 100800})
		wantFunnelTotals(t, r.Previous, map[string]float64{"entered": 0, "converted": 0, "conversion_rate": 0})
		// step, label, customers, from previous, from first, dropped off
		wantFunnelRows(t, "steps", table(t, r, "steps"),
			"1 Product page 6 1 1 0", "2 checkout.started 4 0.667 0.667 2", "3 order.placed 3 0.75 0.5 1")
		wantFunnelRows(t, "by_channel", table(t, r, "by_channel"), "app 2 1 1 0.5", "web 4 3 2 0.5")
		// Entered per day: D: c1 c2 c3 c4a = 4; D+1: c5; D+8: c4b.
		// Converted by entry day: D: c1; D+1: c5; D+8: c4b.
		if len(r.Series.X) != 14 || r.Series.Y["entered"][0] != 4 || r.Series.Y["entered"][1] != 1 || r.Series.Y["entered"][8] != 1 ||
			r.Series.Y["converted"][0] != 1 || r.Series.Y["converted"][1] != 1 || r.Series.Y["converted"][8] != 1 || len(r.Series.Previous["entered"]) != 14 {
			t.Errorf("series: %+v", r.Series)
		}

		// Members c1 (1 1 1) and c5 (1 1 1); everyone else c2 c3 c4a c4b:
		// 4 entered, 2 at checkout (c2 c4b), 1 converted (c4b).
		seg := e.report(t, "funnel="+fn.ID+"&"+rng+"&by=segment:segfunnelvip001")
		wantFunnelRows(t, "by_segment", table(t, seg, "by_segment"), "Members 2 2 2 1", "Everyone else 4 2 1 0.25")

		// One day: the median of that day's conversions only. D+1: c5, 24h → 27h = 10800;
		// D+8: c4b, 192h → 220h = 100800.
		for day, want := range map[int]float64{1: 10800, 8: 100800} {
			d := D.AddDate(0, 0, day).Format("2006-01-02")
			one := e.report(t, "funnel="+fn.ID+"&from="+d+"&to="+d+"&bucket=day")
			wantFunnelTotals(t, one.Totals, map[string]float64{"entered": 1, "converted": 1, "median_time_to_convert": want})
		}

		// The default funnel (any page): c1 enters at -1h instead, the
		// same six entries and three conversions; median of 10800,
		// 100800, 111600 = 100800.
		d := e.report(t, rng)
		wantFunnelTotals(t, d.Totals, map[string]float64{"entered": 6, "converted": 3, "median_time_to_convert": 100800})

		// Checkouts: c1 (24h, order 6h later), c2 (48h, next order 168h
		// later), c4 (200h, 20h), c5 (25h, 2h), c6 (50h, twice, no order):
		// 5 started, completed c1 c4 c5 = 3, abandoned c2 c6 = 2 (every
		// window is over), rate 2/5 = 0.4; recovered: c4 (a journey
		// message at 205h), 80 EUR. Web: 4 started, 2, 2, 0.5, 1, 80;
		// app: c5 only. Started per day: D+1 c1 c5, D+2 c2 c6, D+8 c4.
		a := e.report(t, "funnel=abandonment&"+rng)
		wantFunnelTotals(t, a.Totals, map[string]float64{"checkouts_started": 5, "checkouts_completed": 3, "checkouts_abandoned": 2,
			"checkouts_pending": 0, "abandonment_rate": 0.4, "recovered_orders": 1, "recovered_revenue": 80, "abandon_hours": 24})
		wantFunnelRows(t, "abandonment", table(t, a, "abandonment"), "app 1 1 0 0 0 0", "web 4 2 2 0.5 1 80")
		if a.Currency != "EUR" || a.Series.Y["started"][0] != 0 || a.Series.Y["started"][1] != 2 || a.Series.Y["started"][2] != 2 ||
			a.Series.Y["started"][8] != 1 || a.Series.Y["recovered"][8] != 1 {
			t.Errorf("abandonment currency/series: %s %+v", a.Currency, a.Series)
		}
	}
	t.Run("figures", check)
	e.wantDailyCounts(t)

	// Redelivering every event changes nothing.
	again := append(append([]*events.Event{}, before...), fev(events.Identify, c(9), "web", "", at(300), nil))
	e.publish(t, again...)
	t.Run("after redelivery", check)
	e.wantDailyCounts(t)

	// A rebuild (reset, then every event again) gives the same figures
	// and per-day counts.
	var job metrics.JobStatus
	_, body = e.Do(t, "GET", "/api/v1/metrics/rebuild", nil, omnitest.Auth(e.owner))
	_ = json.Unmarshal(body, &job)
	if code, body := e.Do(t, "POST", "/api/v1/metrics/rebuild", nil, omnitest.Auth(e.owner)); code >= 300 {
		t.Fatalf("POST rebuild: %d %s", code, body)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool {
		var st metrics.JobStatus
		_, body := e.Do(t, "GET", "/api/v1/metrics/rebuild", nil, omnitest.Auth(e.owner))
		return json.Unmarshal(body, &st) == nil && !st.Running && st.FinishedAt != "" && st.FinishedAt != job.FinishedAt && st.Error == ""
	}, "the rebuild to finish")
	t.Run("after a rebuild", check)
	e.wantDailyCounts(t)

	// A shorter abandonment window counts the checkouts again: within 4h
	// only c5 (2h) is completed; c1 (6h), c2, c4 (20h) and c6 are
	// abandoned, 4/5 = 0.8, and c4 is no longer a recovery. Web: 4
	// started, 0 completed, 4 abandoned, rate 1; app: c5.
	putAbandonHours := func(h float64) {
		t.Helper()
		if code, body := e.Do(t, "PUT", "/api/v1/metrics/settings/funnels", map[string]any{"abandon_hours": h}, omnitest.Auth(e.owner)); code != 200 {
			t.Fatalf("PUT funnels settings: %d %s", code, body)
		}
	}
	putAbandonHours(4)
	a := e.report(t, "funnel=abandonment&"+rng)
	wantFunnelTotals(t, a.Totals, map[string]float64{"checkouts_started": 5, "checkouts_completed": 1, "checkouts_abandoned": 4,
		"checkouts_pending": 0, "abandonment_rate": 0.8, "recovered_orders": 0, "recovered_revenue": 0, "abandon_hours": 4})
	wantFunnelRows(t, "abandonment", table(t, a, "abandonment"), "app 1 1 0 0 0 0", "web 4 0 4 1 0 0")
	e.wantDailyCounts(t)
	putAbandonHours(24)
	t.Run("window back to 24h", check)

	// CSV of a table.
	code, body = e.Do(t, "GET", "/api/v1/metrics/funnel?funnel="+fn.ID+"&"+rng+"&format=csv&table=steps", nil, omnitest.Auth(e.agent))
	if code != 200 || !strings.HasPrefix(string(body), "Step,Label,Customers") {
		t.Errorf("CSV: %d %s", code, body)
	}
}

// Two partial paths of one person, on a device (view, checkout) and by
// email (the order), become one conversion when an identify links them:
// the merge recomputes both customers. D+0h view, 1h checkout, 2h order,
// 3h identify: one entry, converted in 2h = 7200 s; the checkout is
// completed (order 1h later). Then a checkout delivered after the order
// that follows it.
func TestFunnelMergeJoinsPaths(t *testing.T) {
	e := startFunnels(t)
	D := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -5).Add(10 * time.Hour)
	at := func(h float64) time.Time { return D.Add(time.Duration(h * float64(time.Hour))) }
	rng := "from=" + D.Format("2006-01-02") + "&to=" + D.Format("2006-01-02")
	var def string
	code, body := e.Do(t, "GET", "/api/v1/metrics/funnels", nil, omnitest.Auth(e.agent))
	var list struct{ Items []metrics.Funnel }
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list.Items) == 0 {
		t.Fatalf("funnels: %d %s", code, body)
	}
	def = list.Items[0].ID
	e.waitReady(t, def)

	e.publish(t, fev(events.PageViewed, "anon:dev-7", "web", "/", at(0), nil),
		fev(events.CheckoutStarted, "anon:dev-7", "web", "", at(1), map[string]any{"checkout_token": "t7"}),
		fev(events.OrderPlaced, "c7@omni-shop.dev", "web", "", at(2), map[string]any{"order_id": "7", "total": 30, "currency": "EUR"}))
	r := e.report(t, "funnel="+def+"&"+rng)
	// Before: the device's entry stops at checkout; the order is another
	// customer's. The checkout's window is over with no order: abandoned.
	wantFunnelTotals(t, r.Totals, map[string]float64{"entered": 1, "converted": 0})
	wantFunnelTotals(t, e.report(t, "funnel=abandonment&"+rng).Totals, map[string]float64{"checkouts_completed": 0, "checkouts_abandoned": 1})

	e.publish(t, &events.Event{ID: "f-merge-7", Type: events.Identify, Source: "test", OccurredAt: at(3),
		Identities: events.Identities{events.AnonymousID: "dev-7", events.Email: "c7@omni-shop.dev"}})
	omnitest.Eventually(t, 60*time.Second, func() bool {
		return e.report(t, "funnel="+def+"&"+rng).Totals["converted"] == 1
	}, "the merge to join the paths")
	wantFunnelTotals(t, e.report(t, "funnel="+def+"&"+rng).Totals, map[string]float64{"entered": 1, "converted": 1, "median_time_to_convert": 7200})
	wantFunnelTotals(t, e.report(t, "funnel=abandonment&"+rng).Totals, map[string]float64{"checkouts_started": 1, "checkouts_completed": 1, "checkouts_abandoned": 0})
	var n int
	_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM metrics_funnel_entries WHERE funnel = {:f}").Bind(dbx.Params{"f": def}).Row(&n)
	if n != 1 {
		t.Errorf("%d entries after the merge, want 1 (the loser's is gone)", n)
	}

	// A late delivery: c8 views a page at 0h and orders at 2h; its
	// checkout at 1h arrives last. Derived again, c8 converts in 2h:
	// 2 entries, 2 conversions, median of 7200 and 7200.
	e.publish(t, fev(events.PageViewed, "c8@omni-shop.dev", "web", "/", at(0), nil),
		fev(events.OrderPlaced, "c8@omni-shop.dev", "web", "", at(2), map[string]any{"order_id": "8", "total": 20, "currency": "EUR"}))
	e.publish(t, fev(events.CheckoutStarted, "c8@omni-shop.dev", "web", "", at(1), map[string]any{"checkout_token": "t8"}))
	wantFunnelTotals(t, e.report(t, "funnel="+def+"&"+rng).Totals, map[string]float64{"entered": 2, "converted": 2, "median_time_to_convert": 7200})
	wantFunnelTotals(t, e.report(t, "funnel=abandonment&"+rng).Totals, map[string]float64{"checkouts_started": 2, "checkouts_completed": 2})
	// The same from the per-day counts (a daily point reads them).
	wantFunnelTotals(t, e.report(t, "funnel="+def+"&"+rng+"&bucket=day").Totals, map[string]float64{"entered": 2, "converted": 2, "median_time_to_convert": 7200})
	wantFunnelTotals(t, e.report(t, "funnel=abandonment&"+rng+"&bucket=day").Totals, map[string]float64{"checkouts_started": 2, "checkouts_completed": 2})
	e.wantDailyCounts(t)
}

// wantDailyCounts checks the per-day counts the triggers keep against
// the entries and checkouts they count.
func (e *funnelEnv) wantDailyCounts(t *testing.T) {
	t.Helper()
	list := func(q string) string {
		var s string
		if err := e.PB.DB().NewQuery("SELECT COALESCE(group_concat(x, '; '), '') FROM (" + q + " ORDER BY x)").Row(&s); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return s
	}
	for _, c := range []struct{ kept, counted string }{
		{"SELECT funnel || ' ' || day || ' ' || channel || ' ' || reached || ' ' || n AS x FROM metrics_funnel_daily",
			"SELECT funnel || ' ' || day || ' ' || channel || ' ' || reached || ' ' || COUNT(*) AS x FROM metrics_funnel_entries GROUP BY funnel, day, channel, reached"},
		{"SELECT day || ' ' || channel || ' ' || started || ' ' || completed AS x FROM metrics_checkout_daily WHERE day != ''",
			"SELECT day || ' ' || channel || ' ' || COUNT(*) || ' ' || SUM(order_after >= 0 AND order_after < (SELECT window FROM metrics_checkout_daily WHERE day = '')) AS x FROM metrics_checkouts GROUP BY day, channel"},
	} {
		kept, counted := list(c.kept), list(c.counted)
		if kept == "" || kept != counted {
			t.Errorf("per-day counts %q, counted from the rows %q", kept, counted)
		}
	}
}

func TestFunnelDefinitionsAreChecked(t *testing.T) {
	e := startFunnels(t)
	good := func() map[string]any {
		return map[string]any{"name": "Sign-up", "window_days": 3, "steps": []map[string]any{{"event": "track", "name": "Signed Up"}, {"event": "order.placed"}}}
	}
	bad := []struct {
		field string
		edit  func(b map[string]any)
	}{
		{"name", func(b map[string]any) { b["name"] = "  " }},
		{"steps", func(b map[string]any) { b["steps"] = []map[string]any{{"event": "order.placed"}} }},
		{"steps", func(b map[string]any) { delete(b, "steps") }},
		{"steps", func(b map[string]any) {
			s := []map[string]any{}
			for range 9 {
				s = append(s, map[string]any{"event": "page.viewed"})
			}
			b["steps"] = s
		}},
		{"steps.0.event", func(b map[string]any) { b["steps"] = []map[string]any{{"event": ""}, {"event": "order.placed"}} }},
		{"steps.1.event", func(b map[string]any) {
			b["steps"] = []map[string]any{{"event": "page.viewed"}, {"event": "Order Placed"}}
		}},
		{"steps.1.path", func(b map[string]any) {
			b["steps"] = []map[string]any{{"event": "page.viewed"}, {"event": "order.placed", "path": "/x"}}
		}},
		{"window_days", func(b map[string]any) { b["window_days"] = 0 }},
		{"window_days", func(b map[string]any) { b["window_days"] = 91 }},
		{"colour", func(b map[string]any) { b["colour"] = "red" }},
	}
	for _, c := range bad {
		b := good()
		c.edit(b)
		code, body := e.Do(t, "POST", "/api/v1/metrics/funnels", b, omnitest.Auth(e.owner))
		var apiErr struct {
			Message string                    `json:"message"`
			Data    map[string]map[string]any `json:"data"`
		}
		_ = json.Unmarshal(body, &apiErr)
		if code != 400 || (c.field != "colour" && apiErr.Data[c.field] == nil) || !strings.HasPrefix(apiErr.Message, c.field) {
			t.Errorf("%s: %d %s", c.field, code, body)
		}
	}
	if code, body := e.Do(t, "POST", "/api/v1/metrics/funnels", good(), omnitest.Auth(e.agent)); code != 403 {
		t.Errorf("agent POST: %d %s", code, body)
	}
	code, body := e.Do(t, "POST", "/api/v1/metrics/funnels", good(), omnitest.Auth(e.owner))
	var fn metrics.Funnel
	if code != 201 || json.Unmarshal(body, &fn) != nil || fn.WindowDays != 3 || fn.Steps[0].Label != "track Signed Up" {
		t.Fatalf("POST good: %d %s", code, body)
	}
	code, body = e.Do(t, "PUT", "/api/v1/metrics/funnels/"+fn.ID, map[string]any{"window_days": 14}, omnitest.Auth(e.owner))
	if code != 200 || !strings.Contains(string(body), `"window_days":14`) || !strings.Contains(string(body), "Signed Up") {
		t.Errorf("PUT: %d %s", code, body)
	}
	if code, body := e.Do(t, "GET", "/api/v1/metrics/funnel?funnel=nope", nil, omnitest.Auth(e.agent)); code != 400 || !strings.Contains(string(body), "funnel") {
		t.Errorf("unknown funnel: %d %s", code, body)
	}
	if code, body := e.Do(t, "GET", "/api/v1/metrics/funnel?by=colour", nil, omnitest.Auth(e.agent)); code != 400 || !strings.Contains(string(body), `"by"`) {
		t.Errorf("bad by: %d %s", code, body)
	}
	if code, _ := e.Do(t, "DELETE", "/api/v1/metrics/funnels/"+fn.ID, nil, omnitest.Auth(e.agent)); code != 403 {
		t.Errorf("agent DELETE: %d", code)
	}
	if code, _ := e.Do(t, "DELETE", "/api/v1/metrics/funnels/"+fn.ID, nil, omnitest.Auth(e.owner)); code != 204 {
		t.Errorf("DELETE: %d", code)
	}
	if code, _ := e.Do(t, "GET", "/api/v1/metrics/funnels/"+fn.ID+"?"+url.Values{}.Encode(), nil, omnitest.Auth(e.agent)); code != 404 {
		t.Errorf("GET deleted: %d", code)
	}
}
