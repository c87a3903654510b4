package metrics_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/omni/omni/core/store"
)

// BenchmarkSalesReport12m answers sales?range=12m&compare=previous over
// rollups the size of a shop with 100,000 customers and 200,000 orders in
// a year (rows written directly: this times the report, not ingest).
func BenchmarkSalesReport12m(b *testing.B) {
	s := startShopB(b)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	err := s.PB.RunInTransaction(func(tx coreApp) error {
		ex := store.Executor(tx)
		ord, err := ex.Prepare(`INSERT INTO metrics_orders (id, event, profile, kind, order_key, channel, occurred_at, day, currency, amount, rate, amount_base, items, duplicate, "returning", repeat_buyer, created)
			VALUES (?, ?, ?, 'order', ?, ?, ?, ?, 'EUR', 20, 1, 20, '[]', 0, ?, ?, '')`)
		if err != nil {
			return err
		}
		cust, err := ex.Prepare(`INSERT INTO metrics_customers (id, profile, orders, net_base, months, contrib, updated) VALUES (?, ?, ?, 0, '[]', '[]', '')`)
		if err != nil {
			return err
		}
		daily, err := ex.Prepare(`INSERT INTO metrics_daily (id, day, metric, dim, currency, value, count) VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		orders := map[int]int{}
		for i := 0; i < 200000; i++ {
			c := rand.IntN(100000)
			orders[c]++
			at := today.AddDate(0, 0, -rand.IntN(730))
			if _, err := ord.Exec(store.NewRecordID(), fmt.Sprintf("e%d", i), fmt.Sprintf("p%d", c), fmt.Sprintf("k%d", i),
				[]string{"web", "pos", "whatsapp", "email"}[i%4], store.FormatTime(at), at.Format("2006-01-02"), orders[c] > 1, c%3 == 0); err != nil {
				return err
			}
		}
		for c, n := range orders {
			if _, err := cust.Exec(store.NewRecordID(), fmt.Sprintf("p%d", c), n); err != nil {
				return err
			}
		}
		for d := 0; d < 730; d++ {
			day := today.AddDate(0, 0, -d).Format("2006-01-02")
			rows := [][]any{{"orders", "", "EUR"}, {"orders", "", ""}, {"refunds", "", ""}, {"orders_new", "", ""}, {"orders_returning", "", ""},
				{"refunds_new", "", ""}, {"cancelled", "", ""}, {"unconverted", "JPY", ""}}
			for _, ch := range []string{"web", "pos", "whatsapp", "email"} {
				rows = append(rows, []any{"channel_orders", ch, ""}, []any{"channel_refunds", ch, ""}, []any{"customers_new", ch, ""})
			}
			for p := 0; p < 200; p++ {
				rows = append(rows, []any{"product_sales", fmt.Sprintf("SKU-%d", p), ""})
			}
			for _, r := range rows {
				if _, err := daily.Exec(store.NewRecordID(), day, r[0], r[1], r[2], 270.5, 14); err != nil {
					return err
				}
			}
		}
		// Each order's previous order day, as the rollups keep it.
		_, err = ex.Exec(`UPDATE metrics_orders SET prev_day = p.prev FROM (SELECT id, COALESCE(LAG(day) OVER (PARTITION BY profile ORDER BY occurred_at, id), '') AS prev
			FROM metrics_orders) p WHERE p.id = metrics_orders.id`)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, query := range []string{"range=12m&compare=previous", "range=90d&compare=previous", "range=30d&compare=previous"} {
		b.Run(query, func(b *testing.B) {
			timedReportRuns(b, func() {
				if code, body := s.Do(b, "GET", "/api/v1/metrics/sales?"+query, nil, auth(s.owner)); code != 200 {
					b.Fatalf("%d %s", code, body)
				}
			})
		})
	}
}

// timedReportRuns runs one report per iteration and reports the CPU time
// of the whole process per report (on a shared machine the wall time is
// mostly waiting for a core) and the wall p50/p99.
func timedReportRuns(b *testing.B, run func()) {
	var took []time.Duration
	cpu0 := cpuTime()
	for b.Loop() {
		t0 := time.Now()
		run()
		took = append(took, time.Since(t0))
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[min(len(took)-1, len(took)*99/100)].Microseconds())/1000, "p99-ms")
}
