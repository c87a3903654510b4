package metrics_test

import (
	"fmt"
	"math/rand/v2"
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
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if code, body := s.Do(b, "GET", "/api/v1/metrics/sales?range=12m&compare=previous", nil, auth(s.owner)); code != 200 {
			b.Fatalf("%d %s", code, body)
		}
	}
}
