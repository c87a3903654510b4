package metrics_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/metrics"
)

// A monthly chart reads its whole past months from the month rows; its
// totals and tables are those the daily rows give (a weekly chart of the
// same range reads only those), and stay so after orders, refunds and a
// repeat buyer land in a month already worked out.
func TestSalesMonthRowsAddUpAsTheDays(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	s := startShop(t, "")
	prev := s.job(t)
	s.putSetting(t, "currency", map[string]any{"base": "EUR"})
	s.waitJob(t, prev)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	month := func(back, day int) time.Time {
		return time.Date(today.Year(), today.Month()-time.Month(back), day, 10, 0, 0, 0, time.UTC)
	}
	s.publish(t,
		order(events.OrderPlaced, "shopify", "ann@omni-shop.dev", month(8, 3), events.ChannelWeb, map[string]any{"order_id": "m1", "total": 10.125, "currency": "EUR",
			"line_items": []any{map[string]any{"sku": "MUG", "quantity": 1, "price": 10.125}}}),
		order(events.OrderPlaced, "shopify", "bob@omni-shop.dev", month(5, 12), events.ChannelPOS, map[string]any{"order_id": "m2", "total": 20.5, "currency": "EUR"}),
		order(events.OrderPlaced, "shopify", "ann@omni-shop.dev", month(3, 20), events.ChannelWeb, map[string]any{"order_id": "m3", "total": 33.333, "currency": "EUR"}),
		order(events.OrderPlaced, "shopify", "cleo@omni-shop.dev", today.Add(-time.Hour), events.ChannelWeb, map[string]any{"order_id": "m4", "total": 5, "currency": "EUR"}),
	)
	from := today.AddDate(0, 0, -299).Format("2006-01-02")
	same := func(what string) {
		t.Helper()
		monthly := s.sales(t, "from="+from+"&compare=previous")
		weekly := s.sales(t, "from="+from+"&compare=previous&bucket=week")
		if monthly.Bucket != "month" || weekly.Bucket != "week" {
			t.Fatalf("buckets %s, %s", monthly.Bucket, weekly.Bucket)
		}
		if !reflect.DeepEqual(monthly.Totals, weekly.Totals) || !reflect.DeepEqual(monthly.Previous, weekly.Previous) {
			t.Errorf("%s: totals by months %v, by days %v", what, monthly.Totals, weekly.Totals)
		}
		if !reflect.DeepEqual(monthly.Tables, weekly.Tables) {
			t.Errorf("%s: tables by months %v, by days %v", what, monthly.Tables, weekly.Tables)
		}
		if monthly.Totals["orders"] == 0 {
			t.Fatalf("%s: no orders", what)
		}
	}
	same("first")
	if n := s.count(t, "SELECT COUNT(*) FROM "+metrics.SalesMonthsCollection, nil); n == 0 {
		t.Fatal("no month rows")
	}
	before := s.sales(t, "from="+from).Totals
	// A repeat order of bob's and a refund of ann's, in months worked out.
	s.publish(t,
		order(events.OrderPlaced, "shopify", "bob@omni-shop.dev", month(5, 14), events.ChannelWeb, map[string]any{"order_id": "m5", "total": 7, "currency": "EUR"}),
		order(events.OrderRefunded, "shopify", "ann@omni-shop.dev", month(3, 21), "", map[string]any{"refund_id": "r1", "order_id": "m3", "total": 3.333, "currency": "EUR"}),
	)
	same("after")
	after := s.sales(t, "from="+from).Totals
	wantTotals(t, "after", after, map[string]float64{"orders": before["orders"] + 1, "refunds": before["refunds"] + 3.33,
		"customers": before["customers"], "repeat_purchase_rate": 0.6667})
}
