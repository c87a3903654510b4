package metrics_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// wantFastRollupsTrue checks what the sales and customers reports read
// instead of grouping facts (migration 1765000500) against the facts and
// daily rows themselves: every counted order's prev_day is the day of the
// customer's previous counted order, the distinct buyers of every range of
// days counted from prev_day equal those grouped by customer, and each
// monthly product row is the sum of its month's daily rows.
func wantFastRollupsTrue(t *testing.T, s *shop, what string) {
	t.Helper()
	db := s.PB.DB()
	if n := s.count(t, `SELECT COUNT(*) FROM metrics_orders o JOIN (SELECT id, COALESCE(LAG(day) OVER (PARTITION BY profile ORDER BY occurred_at, id), '') AS prev
		FROM metrics_orders WHERE kind = 'order' AND duplicate = 0) p ON p.id = o.id WHERE o.prev_day != p.prev`, nil); n != 0 {
		t.Errorf("%s: %d order facts with a wrong prev_day", what, n)
	}
	if n := s.count(t, `SELECT COUNT(*) FROM metrics_orders WHERE (kind != 'order' OR duplicate = 1) AND prev_day != ''`, nil); n != 0 {
		t.Errorf("%s: %d facts other than counted orders have a prev_day", what, n)
	}
	var days []string
	if err := db.NewQuery("SELECT DISTINCT day FROM metrics_orders ORDER BY day").Column(&days); err != nil {
		t.Fatal(err)
	}
	for i, from := range days {
		for _, to := range days[i:] {
			var grouped, counted [2]float64
			p := map[string]any{"from": from, "to": to}
			_ = db.NewQuery(`SELECT COUNT(*), TOTAL(rep) FROM (SELECT profile, MAX(repeat_buyer) AS rep FROM metrics_orders
				WHERE kind = 'order' AND duplicate = 0 AND profile != '' AND day >= {:from} AND day <= {:to} GROUP BY profile)`).Bind(p).Row(&grouped[0], &grouped[1])
			_ = db.NewQuery(`SELECT COUNT(*), TOTAL(repeat_buyer) FROM metrics_orders WHERE kind = 'order' AND duplicate = 0 AND profile != ''
				AND day >= {:from} AND day <= {:to} AND prev_day < {:from}`).Bind(p).Row(&counted[0], &counted[1])
			if grouped != counted {
				t.Errorf("%s: buyers %s…%s counted from prev_day %v, grouped by customer %v", what, from, to, counted, grouped)
			}
		}
	}
	monthly := func(q string) map[string]string {
		var rows []struct {
			Key   string  `db:"k"`
			Value float64 `db:"v"`
			Count float64 `db:"c"`
		}
		if err := db.NewQuery(q).All(&rows); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, r := range rows {
			out[r.Key] = fmt.Sprintf("%.6f %v", r.Value, r.Count)
		}
		return out
	}
	fromDays := monthly(`SELECT metric || '_month ' || substr(day, 1, 7) || '-01 ' || dim || ' ' || currency AS k, SUM(value) AS v, SUM(count) AS c
		FROM metrics_daily WHERE metric IN ('product_sales', 'product_refunds') GROUP BY k`)
	months := monthly(`SELECT metric || ' ' || day || ' ' || dim || ' ' || currency AS k, value AS v, count AS c
		FROM metrics_daily WHERE metric IN ('product_sales_month', 'product_refunds_month')`)
	if !reflect.DeepEqual(fromDays, months) {
		t.Errorf("%s: monthly product rows %v, want the sums of the daily rows %v", what, months, fromDays)
	}
}

// TestFastRollupsTrue: the shop of TestSalesByHand (a re-rating, a
// refund, a duplicate, a cancellation), then the same after a rebuild;
// and its top products over a range of whole months (read from the
// monthly rows) are those of its three days (read from the daily rows).
func TestFastRollupsTrue(t *testing.T) {
	s := startShop(t, "")
	query, d0 := seedShop(t, s)
	wantFastRollupsTrue(t, s, "ingested")
	if n := s.count(t, "SELECT COUNT(*) FROM metrics_daily WHERE metric = 'product_sales_month'", nil); n == 0 {
		t.Fatal("no monthly product rows")
	}

	days := tableRows(t, s.sales(t, query), "top_products")
	last := time.Date(d0.Year(), d0.Month()+3, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -1) // the months of d0…d2 whole
	wide := fmt.Sprintf("from=%s&to=%s", d0.AddDate(-1, 0, 0).Format("2006-01-02"), last.Format("2006-01-02"))
	if months := tableRows(t, s.sales(t, wide), "top_products"); !reflect.DeepEqual(months, days) {
		t.Errorf("top products over whole months %v, over the days %v", months, days)
	}

	prev := s.job(t)
	if code, body := s.Do(t, "POST", "/api/v1/metrics/rebuild", nil, auth(s.owner)); code != 202 {
		t.Fatalf("rebuild: %d %s", code, body)
	}
	s.waitJob(t, prev)
	wantFastRollupsTrue(t, s, "rebuilt")
}
