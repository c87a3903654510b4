package metrics_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/metrics"
	"github.com/omni/omni/core/store"
)

// BenchmarkCustomersReport answers the customers report over a shop of
// 100k buying customers (two years of orders, about 230k order facts) and
// 100k visitors who never bought: CPU ms per report and wall p50/p99
// (with few iterations p99 is the slowest one).
//
//	go test ./core/metrics/ -run '^$' -bench CustomersReport -benchtime 50x
func BenchmarkCustomersReport(b *testing.B) {
	s := startCustShop(b, custNow)
	start := time.Now()
	orders := seedCustomersAtScale(b, s.PB, 100_000, 100_000)
	b.Logf("seeded 100k customers, %d orders, 200k profiles in %s", orders, time.Since(start).Round(time.Millisecond))
	// As the module's count at start would have (a running shop counts in
	// the background every stageTTL while reports are read: its CPU is
	// in the figures below when a run takes longer than that).
	start = time.Now()
	if err := s.metrics.CountStages(s.PB); err != nil {
		b.Fatal(err)
	}
	b.Logf("counted profiles by stage in %s", time.Since(start).Round(time.Millisecond))
	for _, query := range []string{"range=30d&compare=previous", "range=12m&compare=previous", "range=90d&bucket=week", "range=7d"} {
		b.Run(query, func(b *testing.B) {
			timedReportRuns(b, func() {
				code, body := s.Do(b, http.MethodGet, "/api/v1/metrics/customers?"+query, nil, omnitest.Auth(s.agent))
				if code != http.StatusOK {
					b.Fatalf("%d %s", code, body)
				}
			})
		})
	}
}

// seedCustomersAtScale writes n buying customers (metrics_orders, then the
// rollups derive metrics_customers and metrics_daily; and their profiles) and visitors who never bought, with
// prepared statements in one transaction.
func seedCustomersAtScale(b *testing.B, pb core.App, n, visitors int) int {
	b.Helper()
	rng := rand.New(rand.NewPCG(15, 21))
	channels := []string{"web", "web", "pos", "whatsapp", "sms"}
	orders := 0
	var buyers []string
	err := pb.RunInTransaction(func(tx core.App) error {
		db := tx.DB()
		insOrder := db.NewQuery(`INSERT INTO metrics_orders (id, event, profile, kind, channel, occurred_at, day, currency, amount, rate, amount_base, items, duplicate, prev_day, repeat_buyer)
			VALUES ({:id}, {:id}, {:p}, 'order', {:ch}, {:at}, {:day}, 'EUR', {:a}, 1, {:a}, '[]', 0, {:prev}, {:rep})`).Prepare()
		insProfile := db.NewQuery(`INSERT INTO profiles (id, merged_into, computed, lifecycle_stage, traits, consent)
			VALUES ({:id}, '', {:c}, {:l}, '{}', '{}')`).Prepare()
		defer insOrder.Close()
		defer insProfile.Close()
		for i := range n {
			id := fmt.Sprintf("c%07d", i)
			first := custNow.Add(-time.Duration(rng.Int64N(int64(730 * 24 * time.Hour))))
			count := 1
			switch r := rng.IntN(10); {
			case r >= 8:
				count = 3 + rng.IntN(4)
			case r >= 6:
				count = 2
			}
			ch := channels[rng.IntN(len(channels))]
			at, net, prev := first, 0.0, ""
			for k := range count {
				if k > 0 {
					at = at.Add(time.Duration(rng.Int64N(int64(custNow.Sub(at)))))
				}
				amount := float64(20 + rng.IntN(180))
				net += amount
				if _, err := insOrder.Bind(dbx.Params{"id": store.NewRecordID(), "p": id, "ch": ch, "at": store.FormatTime(at),
					"day": at.Format(time.DateOnly), "a": amount, "prev": prev, "rep": count > 1}).Execute(); err != nil {
					return err
				}
				prev = at.Format(time.DateOnly)
				orders++
			}
			buyers = append(buyers, id)
			stage, buying := "post_purchase", "first_purchase"
			switch {
			case custNow.Sub(at) > 90*24*time.Hour:
				buying = "at_risk"
			case count > 2:
				stage, buying = "loyal", "loyal"
			case count == 2:
				stage, buying = "loyal", "repeat"
			}
			if _, err := insProfile.Bind(dbx.Params{"id": id, "c": benchComputed(stage, buying, ch, count, net, at), "l": stage}).Execute(); err != nil {
				return err
			}
		}
		for i := range visitors {
			if _, err := insProfile.Bind(dbx.Params{"id": fmt.Sprintf("v%07d", i), "c": benchComputed("awareness", "new", "web", 0, 0, custNow), "l": "awareness"}).Execute(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// The rollups derive each buyer's row and daily rows from the facts
	// (what the upgrade migration 1765001000 does for a shop).
	start := time.Now()
	if err := metrics.RecomputeCustomers(pb, buyers...); err != nil {
		b.Fatal(err)
	}
	b.Logf("derived %d customers' rollups in %s", len(buyers), time.Since(start).Round(time.Millisecond))
	return orders
}

// benchComputed is a computed-traits document of the usual size.
func benchComputed(stage, buying, channel string, orders int, net float64, last time.Time) string {
	doc := map[string]any{
		"first_seen": "2025-01-02T10:00:00.000Z", "last_seen": last.UTC().Format("2006-01-02T15:04:05.000Z"),
		"orders_count": orders, "lifetime_value": map[string]float64{"EUR": net}, "orders_by_currency": map[string]int{"EUR": orders},
		"lifetime_value_base": net, "base_currency": "EUR", "last_order_at": last.UTC().Format("2006-01-02T15:04:05.000Z"),
		"channels": []string{channel}, "preferred_channel": channel, "active_days": []string{"2026-06-01", "2026-06-03"},
		"identified": true, "lifecycle_stage": stage, "buying_stage": buying, "engagement_level": "engaged",
	}
	out, _ := json.Marshal(doc)
	return string(out)
}
