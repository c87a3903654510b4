package metrics_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/pocketbase/pocketbase/tools/types"
)

// seedShop stores the hand-computed shop of TestSalesByHand and returns
// the query of its range (d0..d2) and d0.
//
//	day   customer  event                                   EUR
//	d-2   dan       order D1 40 EUR web                     40   (previous period)
//	d0    ann       order 1001 100 EUR web, MUG 2×30, TEE 40 100  new
//	d1    ann       order 1002 50 USD pos, Cap 50           45   returning (USD 0.9, set after)
//	d1    bob       order sq-1 5000 JPY pos                  –   new, no rate (unconverted)
//	d1    dan       order D2 60 EUR web                     60   returning
//	d2    ann       refund of 1001: 10 USD, MUG 1           9    of a new order, channel web
//	d2    bob       order sq-2 80 GBP whatsapp, rate 1.2    96   returning (vendor's rate)
//	d2    cleo      order 1003 30 EUR web, then cancelled   30   new
//	d2    ann       order 1002 again (a duplicate)           –   counts nowhere
func seedShop(t *testing.T, s *shop) (query string, d0 time.Time) {
	t.Helper()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	d0 = today.AddDate(0, 0, -6).Add(10 * time.Hour)
	d := func(n int) time.Time { return d0.AddDate(0, 0, n) }
	prev := s.job(t)
	s.putSetting(t, "currency", map[string]any{"base": "eur"})
	s.waitJob(t, prev) // a new base currency rebuilds (nothing yet)
	s.publish(t,
		order(events.OrderPlaced, "shopify", "dan@omni-shop.dev", d(-2), events.ChannelWeb, map[string]any{"order_id": "d1", "total": 40, "currency": "EUR"}),
		order(events.OrderPlaced, "shopify", "ann@omni-shop.dev", d(0), events.ChannelWeb, map[string]any{"order_id": "1001", "total": "100.00", "currency": "EUR",
			"line_items": []any{map[string]any{"sku": "MUG", "quantity": 2, "price": 30}, map[string]any{"sku": "TEE", "quantity": 1, "price": 40}}}),
		order(events.OrderPlaced, "shopify", "ann@omni-shop.dev", d(1), events.ChannelPOS, map[string]any{"order_id": "1002", "total": 50, "currency": "usd",
			"line_items": []any{map[string]any{"title": "Cap", "quantity": 1, "price": 50}}}),
		order(events.OrderPlaced, "square", "bob@omni-shop.dev", d(1), events.ChannelPOS, map[string]any{"order_id": "sq-1", "total": 5000, "currency": "JPY"}),
		order(events.OrderPlaced, "shopify", "dan@omni-shop.dev", d(1).Add(time.Hour), events.ChannelWeb, map[string]any{"order_id": "d2", "amount": 60, "currency": "EUR"}),
		order(events.OrderRefunded, "shopify", "ann@omni-shop.dev", d(2), "", map[string]any{"refund_id": "r1", "order_id": "1001", "total": 10, "currency": "USD",
			"line_items": []any{map[string]any{"sku": "MUG", "quantity": 1, "subtotal": 10}}}),
		order(events.OrderPlaced, "square", "bob@omni-shop.dev", d(2), events.ChannelWhatsApp, map[string]any{"order_id": "sq-2", "total": 80, "currency": "GBP", "exchange_rate": 1.2}),
		order(events.OrderPlaced, "shopify", "cleo@omni-shop.dev", d(2).Add(time.Hour), events.ChannelWeb, map[string]any{"order_id": "1003", "total": 30, "currency": "EUR"}),
		order(events.OrderCancelled, "shopify", "cleo@omni-shop.dev", d(2).Add(2*time.Hour), events.ChannelWeb, map[string]any{"order_id": "1003"}),
		order(events.OrderPlaced, "shopify", "ann@omni-shop.dev", d(2).Add(3*time.Hour), events.ChannelPOS, map[string]any{"order_id": "1002", "total": 50, "currency": "USD"}),
	)
	// The USD rate comes after the orders: the facts are re-rated.
	prev = s.job(t)
	s.putSetting(t, "currency", map[string]any{"base": "EUR", "rates": map[string]any{"USD": 0.9}})
	if st := s.waitJob(t, prev); st.Kind != "rerate" {
		t.Fatalf("a new rate started %+v, want a rerate", st)
	}
	return fmt.Sprintf("from=%s&to=%s", d(0).Format("2006-01-02"), d(2).Format("2006-01-02")), d0
}

// TestSalesByHand: orders in four currencies (one without a rate, one
// with the vendor's rate, one re-rated when the owner sets a rate), a
// refund in another currency than its order, a duplicate order and a
// cancellation, against the previous period.
func TestSalesByHand(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	s := startShop(t, "")
	query, d0 := seedShop(t, s)
	r := s.sales(t, query+"&compare=previous")
	if r.Currency != "EUR" || r.Bucket != "day" {
		t.Fatalf("currency %q bucket %q", r.Currency, r.Bucket)
	}
	wantTotals(t, "sales", r.Totals, map[string]float64{
		"gross_revenue": 331, // 100 + 45 (50 USD × 0.9) + 60 + 96 (80 GBP × 1.2) + 30; JPY has no rate
		"refunds":       9,   // 10 USD × 0.9
		"net_revenue":   322, // 331 − 9
		"orders":        5,   // converted orders: 1001, 1002, d2, sq-2, 1003 (the duplicate 1002 counts nowhere)
		"aov":           64.4,
		"refunds_count": 1,
		"cancelled":     1,
		"customers":     4, // ann, bob, dan, cleo
		"new_customers": 3, // ann (d0), bob (d1, in JPY), cleo (d2); dan's first order was at d−2
		// dan
		"returning_customers":  1,
		"new_orders":           2,    // 1001, 1003 (sq-1 has no rate)
		"returning_orders":     3,    // 1002, d2, sq-2
		"new_revenue":          121,  // 100 + 30 − 9 (the refund of 1001, a new customer's order)
		"returning_revenue":    201,  // 45 + 60 + 96
		"returning_share":      0.6,  // 3 / 5
		"repeat_purchase_rate": 0.75, // ann, bob and dan have 2 orders ever, cleo 1: 3 / 4
		"unconverted":          1,    // sq-1
	})
	wantTotals(t, "previous", r.Previous, map[string]float64{"gross_revenue": 40, "net_revenue": 40, "orders": 1, "aov": 40, "customers": 1, "new_customers": 1})
	if r.Compare == nil || r.Compare.From != d0.AddDate(0, 0, -3).Format("2006-01-02") {
		t.Errorf("compare = %+v", r.Compare)
	}
	// The series: one point a day.
	want := map[string][]float64{
		"gross_revenue": {100, 105, 126}, // d1: 45 + 60; d2: 96 + 30
		"refunds":       {0, 0, 9},
		"net_revenue":   {100, 105, 117},
		"orders":        {1, 2, 2},
		"aov":           {100, 52.5, 58.5},
	}
	for k, v := range want {
		if !reflect.DeepEqual(r.Series.Y[k], v) {
			t.Errorf("series %s = %v, want %v", k, r.Series.Y[k], v)
		}
	}
	if p := r.Series.Previous["gross_revenue"]; !reflect.DeepEqual(p, []float64{0, 40, 0}) {
		t.Errorf("previous gross series = %v, want [0 40 0] (dan at d−2)", p)
	}
	if len(r.Series.X) != 3 || r.Series.X[0] != d0.Truncate(24*time.Hour).Unix() {
		t.Errorf("x = %v", r.Series.X)
	}
	// Each currency in its own money, all orders.
	if got := fmt.Sprint(tableRows(t, r, "by_currency")); got != "[[EUR 3 190 0 190] [GBP 1 80 0 80] [JPY 1 5000 0 5000] [USD 1 50 10 40]]" {
		t.Errorf("by_currency = %s", got)
	}
	// web: 100 + 60 + 30 − 9 = 181 of 322; pos: 45; whatsapp: 96.
	if got := fmt.Sprint(tableRows(t, r, "by_channel")); got != "[[web 3 181 0.5621] [whatsapp 1 96 0.2981] [pos 1 45 0.1398]]" {
		t.Errorf("by_channel = %s", got)
	}
	// MUG: 2 × 30 sold − 1 refunded (10 USD × 0.9) = 1, 51; Cap 50 USD × 0.9 = 45; TEE 40.
	if got := fmt.Sprint(tableRows(t, r, "top_products")); got != "[[MUG 1 51] [Cap 1 45] [TEE 1 40]]" {
		t.Errorf("top_products = %s", got)
	}
	if got := fmt.Sprint(tableRows(t, r, "new_vs_returning")); got != "[[new 3 2 121 60.5] [returning 1 3 201 67]]" {
		t.Errorf("new_vs_returning = %s", got)
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "1 orders and refunds in JPY (5000 JPY)") {
		t.Errorf("notes = %q", r.Notes)
	}
	// by=channel splits the net revenue series.
	rc := s.sales(t, query+"&by=channel")
	if got := rc.Series.Y["net_revenue:web"]; !reflect.DeepEqual(got, []float64{100, 60, 21}) { // d2: 30 − 9
		t.Errorf("net_revenue:web = %v", got)
	}
	// Hourly points from the facts: d2 10:00 sq-2 96 and the refund 9, 11:00 1003 30.
	rh := s.sales(t, "from="+d0.AddDate(0, 0, 2).Format("2006-01-02")+"&to="+d0.AddDate(0, 0, 2).Format("2006-01-02"))
	if rh.Bucket != "hour" || len(rh.Series.X) != 24 || rh.Series.Y["net_revenue"][10] != 87 || rh.Series.Y["gross_revenue"][11] != 30 {
		t.Errorf("hourly: bucket %s, net %v gross %v", rh.Bucket, rh.Series.Y["net_revenue"], rh.Series.Y["gross_revenue"])
	}
	// CSV of a table.
	code, csv := s.Do(t, "GET", "/api/v1/metrics/sales?"+query+"&format=csv&table=top_products", nil, auth(s.agent))
	if code != 200 || !strings.HasPrefix(string(csv), "Product,Quantity,Revenue\nMUG,1,51\n") {
		t.Errorf("csv: %d %s", code, csv)
	}
	// Bad params name the field; guests are refused.
	code, body := s.Do(t, "GET", "/api/v1/metrics/sales?by=planet", nil, auth(s.owner))
	if code != 400 || !strings.Contains(string(body), `"by"`) {
		t.Errorf("by=planet: %d %s", code, body)
	}
	if code, _ := s.Do(t, "GET", "/api/v1/metrics/sales", nil, nil); code != 401 && code != 403 {
		t.Errorf("guest: %d", code)
	}

	// Redelivery of every event twice changes nothing.
	before, report := s.daily(t), string(s.get(t, "/api/v1/metrics/sales?"+query+"&compare=previous", nil))
	var rows []struct {
		EventID    string `db:"event_id"`
		Type       string `db:"type"`
		Source     string `db:"source"`
		OccurredAt string `db:"occurred_at"`
		Identities string `db:"identities"`
		Properties string `db:"properties"`
		Context    string `db:"context"`
	}
	if err := s.PB.DB().NewQuery("SELECT event_id, type, source, occurred_at, identities, properties, context FROM events WHERE type LIKE 'order.%' ORDER BY id").All(&rows); err != nil {
		t.Fatal(err)
	}
	var all []*events.Event
	for i := 0; i < 2; i++ { // the same events, as stored, twice
		for _, row := range rows {
			ev := &events.Event{ID: row.EventID, Type: row.Type, Source: row.Source}
			at, err := types.ParseDateTime(row.OccurredAt)
			if err != nil || json.Unmarshal([]byte(row.Identities), &ev.Identities) != nil ||
				json.Unmarshal([]byte(row.Properties), &ev.Properties) != nil || json.Unmarshal([]byte(row.Context), &ev.Context) != nil {
				t.Fatalf("decode stored %s: %v", row.EventID, err)
			}
			ev.OccurredAt = at.Time()
			all = append(all, ev)
		}
	}
	if len(all) != 20 {
		t.Fatalf("%d order events to redeliver, want 2 × 10", len(all))
	}
	marker := order(events.Identify, "shopify", "zed@omni-shop.dev", d0, "", nil)
	s.publish(t, append(all, marker)...)
	if after := s.daily(t); after != before {
		t.Errorf("redelivery changed metrics_daily:\n%s\nwant\n%s", after, before)
	}
	if again := string(s.get(t, "/api/v1/metrics/sales?"+query+"&compare=previous", nil)); again != report {
		t.Errorf("redelivery changed the report:\n%s\nwant\n%s", again, report)
	}

	// A rebuild from the events table gives the same rows.
	if code, body := s.Do(t, "POST", "/api/v1/metrics/rebuild", nil, auth(s.agent)); code != 403 {
		t.Errorf("agent rebuild: %d %s", code, body)
	}
	prev := s.job(t)
	if code, body := s.Do(t, "POST", "/api/v1/metrics/rebuild", nil, auth(s.owner)); code != 202 {
		t.Fatalf("rebuild: %d %s", code, body)
	}
	st := s.waitJob(t, prev)
	if st.Kind != "rebuild" || st.Done != st.Total || st.Total < 11 {
		t.Errorf("rebuild status %+v", st)
	}
	if after := s.daily(t); after != before {
		t.Errorf("rebuild gave other metrics_daily:\n%s\nwant\n%s", after, before)
	}
}

// TestMergeUnmergeErase: two profiles each with one order become one
// customer with a new and a returning order when an identify joins them;
// the un-merge puts the figures back; erasing a customer takes their
// revenue out.
func TestMergeUnmergeErase(t *testing.T) {
	s := startShop(t, "")
	prev := s.job(t)
	s.putSetting(t, "currency", map[string]any{"base": "EUR"})
	s.waitJob(t, prev)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	d0 := today.AddDate(0, 0, -3).Add(9 * time.Hour)
	query := "from=" + d0.Format("2006-01-02") + "&to=" + today.Format("2006-01-02")
	const phone = "+447700900123"
	byPhone := order(events.OrderPlaced, "square", "", d0.AddDate(0, 0, 1), events.ChannelPOS, map[string]any{"order_id": "sq-9", "total": 30, "currency": "EUR"})
	byPhone.Identities = events.Identities{events.Phone: phone}
	s.publish(t,
		order(events.OrderPlaced, "shopify", "eve@omni-shop.dev", d0, events.ChannelWeb, map[string]any{"order_id": "2001", "total": 20, "currency": "EUR"}),
		byPhone)
	eve := s.profileOf(t, events.Email, "eve@omni-shop.dev")
	// Two customers, each new: 20 + 30.
	separate := map[string]float64{"customers": 2, "new_customers": 2, "orders": 2, "new_orders": 2, "returning_orders": 0,
		"new_revenue": 50, "returning_revenue": 0, "net_revenue": 50, "repeat_purchase_rate": 0}
	wantTotals(t, "separate", s.sales(t, query).Totals, separate)
	before := s.daily(t)

	join := order(events.Identify, "shopify", "eve@omni-shop.dev", d0.AddDate(0, 0, 2), "", nil)
	join.Identities[events.Phone] = phone
	s.publish(t, join)
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return s.count(t, "SELECT COUNT(*) FROM events WHERE type = 'profile.merged'", nil) == 1
	}, "profile.merged stored")
	survivor := s.profileOf(t, events.Email, "eve@omni-shop.dev")
	// One customer: 2001 (d0) is new, sq-9 (d1) returning.
	wantTotals(t, "merged", s.sales(t, query).Totals, map[string]float64{"customers": 1, "new_customers": 1, "orders": 2,
		"new_orders": 1, "returning_orders": 1, "new_revenue": 20, "returning_revenue": 30, "net_revenue": 50, "repeat_purchase_rate": 1})
	if n := s.count(t, "SELECT COUNT(*) FROM metrics_customers WHERE profile = {:p} AND orders = 2", map[string]any{"p": survivor}); n != 1 {
		t.Errorf("metrics_customers of the survivor: %d rows with 2 orders", n)
	}
	wantFastRollupsTrue(t, s, "merged")

	var merges struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	s.get(t, "/api/v1/profiles/"+survivor+"/merges", &merges)
	if len(merges.Items) != 1 {
		t.Fatalf("merges: %+v", merges)
	}
	if code, body := s.Do(t, "POST", "/api/v1/profiles/"+survivor+"/merges/"+merges.Items[0].ID+"/undo", nil, auth(s.owner)); code != 200 {
		t.Fatalf("undo: %d %s", code, body)
	}
	s.waitStored(t, "unmerge:"+merges.Items[0].ID)
	wantTotals(t, "un-merged", s.sales(t, query).Totals, separate)
	wantFastRollupsTrue(t, s, "un-merged")
	if after := s.daily(t); after != before {
		t.Errorf("after the un-merge metrics_daily is\n%s\nwant\n%s", after, before)
	}

	// Erase eve: her 20 leaves every figure.
	eve = s.profileOf(t, events.Email, "eve@omni-shop.dev")
	if code, body := s.Do(t, "DELETE", "/api/v1/profiles/"+eve, nil, auth(s.owner)); code != 200 {
		t.Fatalf("erase: %d %s", code, body)
	}
	// profile.erased is not kept in the events table (it carries the
	// erased identities); the batch that stores it recomputes eve.
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return s.count(t, "SELECT COUNT(*) FROM metrics_customers WHERE profile = {:p}", map[string]any{"p": eve}) == 0
	}, "the erased customer's rollups to go")
	wantTotals(t, "erased", s.sales(t, query).Totals, map[string]float64{"customers": 1, "new_customers": 1, "orders": 1,
		"new_orders": 1, "new_revenue": 30, "net_revenue": 30, "gross_revenue": 30})
	if n := s.count(t, "SELECT COUNT(*) FROM metrics_daily WHERE dim = 'web'", nil); n != 0 {
		t.Errorf("%d metrics_daily rows of the erased customer's web order remain", n)
	}
	wantFastRollupsTrue(t, s, "erased")
}

func (s *shop) profileOf(t *testing.T, kind, value string) string {
	t.Helper()
	var pid string
	_ = s.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind={:k} AND value={:v}").Bind(map[string]any{"k": kind, "v": value}).Row(&pid)
	if pid == "" {
		t.Fatalf("no profile for %s %s", kind, value)
	}
	return pid
}
