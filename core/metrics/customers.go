package metrics

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/store"
)

// The customers report: who buys, what they are worth, whether they come
// back. It reads the rollups' per-customer rows (metrics_customers: first
// order, cohort month, first channel, lifetime orders and net revenue,
// the month offsets with an order), their order facts (metrics_orders)
// for who bought in a period (counted from each order's prev_day), and
// the profiles' computed stages for the stage counts and the at-risk set
// (kept 30 seconds: counting reads every profile). The rest is aggregated
// in SQL over covering indexes (migrations 1765000100 and 1765000500)
// when the report is asked for.

// Buying stages in the order a customer moves through them (the profiles
// module derives them; see docs/profiles.md).
var buyingStages = []string{"new", "browsing", "first_purchase", "repeat", "loyal", "at_risk"}

// Lifecycle stages (profiles.lifecycle_stage), in order.
var lifecycleStages = []string{"awareness", "consideration", "purchase", "post_purchase", "loyal"}

const (
	// cohortMonths is how many retention offsets a cohort row shows (m1..m12)
	// and how many cohorts a short range still shows.
	cohortMonths = 12
	// atRiskAfter mirrors the profiles module's buying-stage rule: at risk
	// after 90 days without an order.
	atRiskAfter = 90 * 24 * time.Hour
)

// orderFacts selects the counted orders of known customers (metrics_orders
// rows a second report of the same order, refunds and cancellations are
// not).
const orderFacts = "kind = 'order' AND duplicate = 0 AND profile != ''"

func (m *Module) customersReport(app core.App, q Query) (*Report, error) {
	r := newReport("customers", q)
	r.Currency, _ = m.settings.currency(app)
	db := app.DB()

	prevQ := q.Previous()
	groups, err := buyerGroups(db, q, prevQ)
	if err != nil {
		return nil, err
	}
	series, buyers, err := customerSeries(db, q)
	if err != nil {
		return nil, err
	}
	r.Series = series
	r.Totals = groups.totals(false, buyers)
	now := m.profileStages(app)
	// Churn risk is the profiles' stage now: the stage is not kept as of a
	// past day, so it has no previous value.
	r.Totals["churn_risk"] = now.buying["at_risk"]
	if q.Compare {
		ps, prevBuyers, err := customerSeries(db, prevQ)
		if err != nil {
			return nil, err
		}
		r.Previous = groups.totals(true, prevBuyers)
		r.Series.Previous = map[string][]float64{}
		for k, v := range ps.Y {
			r.Series.Previous[k] = fitLen(v, len(r.Series.X))
		}
	}

	cohorts, byMonth, err := cohortTables(db, q)
	if err != nil {
		return nil, err
	}
	moves := stageMoves(q, r.Totals["new_customers"], now)
	r.Tables = append(r.Tables, cohorts, byMonth, groups.channelTable(), stageTable(now, moves), lifecycleTable(now))
	if note := now.note(q.Loc); note != "" {
		r.Notes = append(r.Notes, note)
	}
	if r.Currency == "" {
		r.Notes = append(r.Notes, "No base currency is set yet, so lifetime values are 0: set one in the report settings.")
	}
	return r, nil
}

// Where a buyer's first order falls, for buyerGroups.
const (
	beforePrevious = iota // before the previous period (or before the range without compare)
	inPrevious            // in the previous period
	inRange               // in the range (later ones are not read)
)

// buyerStats sums buyers' lifetime figures.
type buyerStats struct {
	N      float64 `db:"n"`
	Net    float64 `db:"net"`
	Orders float64 `db:"orders"`
	Repeat float64 `db:"repeat"` // with two orders or more
}

func (b *buyerStats) add(o buyerStats) {
	b.N, b.Net, b.Orders, b.Repeat = b.N+o.N, b.Net+o.Net, b.Orders+o.Orders, b.Repeat+o.Repeat
}

// buyerGroups sums the buyers by first channel and by where their first
// order falls, from their customers_first rows in metrics_daily: the
// totals of both periods and the channel table.
type buyerGroupSet struct {
	channels []string                 // by number of buyers up to the range end, most first
	by       map[string][3]buyerStats // channel → segment
}

func buyerGroups(db dbx.Builder, q, prev Query) (*buyerGroupSet, error) {
	pfrom := q.From
	if q.Compare {
		pfrom = prev.From
	}
	// Days are the shop's, as the range's are: a first order before the
	// range's first day is before the range.
	rows, err := firstOrderRows(db, q.To, []string{pfrom, q.From})
	if err != nil {
		return nil, fmt.Errorf("buyers by first channel: %w", err)
	}
	g := &buyerGroupSet{by: map[string][3]buyerStats{}}
	for _, r := range rows {
		v := g.by[r.Channel]
		if r.Metric == "customers_first" {
			v[r.Seg].N, v[r.Seg].Net = v[r.Seg].N+r.Count, v[r.Seg].Net+r.Value
		} else {
			v[r.Seg].Orders, v[r.Seg].Repeat = v[r.Seg].Orders+r.Value, v[r.Seg].Repeat+r.Count
		}
		g.by[r.Channel] = v
	}
	upToEnd := func(ch string) float64 { v := g.by[ch]; return v[0].N + v[1].N + v[2].N }
	for ch := range g.by {
		g.channels = append(g.channels, ch)
	}
	sort.Slice(g.channels, func(i, j int) bool {
		a, b := g.channels[i], g.channels[j]
		if upToEnd(a) != upToEnd(b) {
			return upToEnd(a) > upToEnd(b)
		}
		return a < b
	})
	return g, nil
}

// firstOrderRow is a sum of customers_first or customers_first_orders rows
// (Metric without "_month") of one first channel in one segment.
type firstOrderRow struct {
	Metric  string  `db:"metric"`
	Channel string  `db:"dim"`
	Day     string  `db:"day"`
	Value   float64 `db:"value"`
	Count   float64 `db:"count"`
	Seg     int     `db:"-"` // how many of the bounds are on or before Day
}

// firstOrderRows reads the buyers' first-order rows of the days up to to,
// split at bounds (ascending days, each the first of a segment): the
// months no bound or to cuts from the monthly rows, the others' days from
// the daily rows (two years are some 50 rows a channel, not 730).
func firstOrderRows(db dbx.Builder, to string, bounds []string) ([]firstOrderRow, error) {
	cut := map[string]bool{} // months read by day
	for _, b := range bounds {
		if !strings.HasSuffix(b, "-01") {
			cut[month(b)] = true
		}
	}
	if t, err := time.Parse(dayLayout, to); err == nil && t.AddDate(0, 0, 1).Day() != 1 {
		cut[month(to)] = true
	}
	var rows []firstOrderRow
	if err := db.NewQuery(`SELECT substr(metric, 1, length(metric) - 6) AS metric, dim, day, value, count FROM ` + DailyCollection + `
		WHERE metric IN ('customers_first_month', 'customers_first_orders_month') AND day <= {:to}`).
		Bind(dbx.Params{"to": to}).All(&rows); err != nil {
		return nil, err
	}
	rows = slices.DeleteFunc(rows, func(r firstOrderRow) bool { return cut[month(r.Day)] })
	days := db.NewQuery(`SELECT metric, dim, day, value, count FROM ` + DailyCollection + `
		WHERE metric IN ('customers_first', 'customers_first_orders') AND day >= {:lo} AND day <= {:hi}`).Prepare()
	defer days.Close()
	for mo := range cut {
		var more []firstOrderRow
		if err := days.Bind(dbx.Params{"lo": mo + "-01", "hi": min(mo+"-31", to)}).All(&more); err != nil {
			return nil, err
		}
		rows = append(rows, more...)
	}
	for i := range rows {
		for _, b := range bounds {
			if b <= rows[i].Day {
				rows[i].Seg++
			}
		}
	}
	return rows, nil
}

// sum adds the given segments over every channel (or one channel).
func (g *buyerGroupSet) sum(channel string, segs ...int) buyerStats {
	var out buyerStats
	for ch, v := range g.by {
		if channel != "" && ch != channel {
			continue
		}
		for _, s := range segs {
			out.add(v[s])
		}
	}
	return out
}

func per(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// totals of the range, or of the previous period. buyers is how many
// distinct customers ordered in that period: every new customer did
// (their first order), so the others are the returning ones.
func (g *buyerGroupSet) totals(previous bool, buyers float64) map[string]float64 {
	all, nw := g.sum("", beforePrevious, inPrevious, inRange), g.sum("", inRange)
	if previous {
		all, nw = g.sum("", beforePrevious, inPrevious), g.sum("", inPrevious)
	}
	return map[string]float64{
		"customers":           all.N,
		"new_customers":       nw.N,
		"returning_customers": max(0, buyers-nw.N),
		"ltv":                 per(all.Net, all.N),
		"ltv_new":             per(nw.Net, nw.N),
		"orders_per_customer": per(all.Orders, all.N),
		"repeat_rate":         per(all.Repeat, all.N),
	}
}

// channelTable: buyers by the channel of their first order, as of the
// range end, and those of them acquired in the range.
func (g *buyerGroupSet) channelTable() Table {
	t := Table{Name: "ltv_by_channel", Title: "Lifetime value by first channel", Columns: []Column{
		{Key: "channel", Label: "First channel", Type: TypeText}, {Key: "customers", Label: "Customers", Type: TypeNumber},
		{Key: "ltv", Label: "Lifetime value", Type: TypeMoney}, {Key: "orders_per_customer", Label: "Orders per customer", Type: TypeNumber},
		{Key: "new_customers", Label: "New in period", Type: TypeNumber}, {Key: "ltv_new", Label: "Lifetime value (new)", Type: TypeMoney}}}
	for _, ch := range g.channels {
		all, nw := g.sum(ch, beforePrevious, inPrevious, inRange), g.sum(ch, inRange)
		if all.N == 0 {
			continue
		}
		name := ch
		if name == "" {
			name = "unknown"
		}
		t.Rows = append(t.Rows, []any{name, all.N, per(all.Net, all.N), per(all.Orders, all.N), nw.N, per(nw.Net, nw.N)})
	}
	return t
}

// customerSeries has new and returning customers per bucket (buyers of a
// bucket are new when their first order is in it, else returning) and how
// many distinct customers bought in the whole range.
func customerSeries(db dbx.Builder, q Query) (*Series, float64, error) {
	buckets := q.Buckets()
	s := &Series{X: make([]int64, len(buckets)), Y: map[string][]float64{}}
	for i, b := range buckets {
		s.X[i] = b.Unix()
	}
	newC, buyers := make([]float64, len(buckets)), make([]float64, len(buckets))
	p := dbx.Params{"start": store.FormatTime(q.Start), "end": store.FormatTime(q.End), "from": q.From, "to": q.To}

	if q.Bucket == "hour" {
		// Hours need the first order's time: few buyers start in a short range.
		var firsts []string
		if err := db.NewQuery("SELECT first_order_at FROM " + CustomersCollection +
			" WHERE first_order_at >= {:start} AND first_order_at < {:end}").Bind(p).Column(&firsts); err != nil {
			return nil, 0, fmt.Errorf("new customers by bucket: %w", err)
		}
		for _, f := range firsts {
			if t, err := time.Parse(dbTime, f); err == nil {
				if i := bucketIndex(buckets, t); i >= 0 {
					newC[i]++
				}
			}
		}
	} else {
		// Other buckets are whole days: the customers_first rows by day.
		var days []struct {
			Day string  `db:"day"`
			N   float64 `db:"n"`
		}
		if err := db.NewQuery("SELECT day, TOTAL(count) AS n FROM " + DailyCollection +
			" WHERE metric = 'customers_first' AND day >= {:from} AND day <= {:to} GROUP BY day").Bind(p).All(&days); err != nil {
			return nil, 0, fmt.Errorf("new customers by bucket: %w", err)
		}
		for _, d := range days {
			if t, err := time.ParseInLocation(dayLayout, d.Day, q.Loc); err == nil {
				if i := bucketIndex(buckets, t); i >= 0 {
					newC[i] += d.N
				}
			}
		}
	}

	var distinct float64
	if q.Bucket == "hour" {
		var err error
		if distinct, err = hourlyBuyers(db, q, buckets, buyers); err != nil {
			return nil, 0, err
		}
	} else {
		// Buckets are whole days of the shop's zone, which
		// metrics_orders.day is: a customer bought in a bucket when one of
		// their orders in it follows an order before it (or none), so each
		// bucket is one count over idx_metrics_orders_prev. A whole
		// calendar month is its new customers plus the earlier cohorts'
		// buyers in it (their customers_cohort rows), without the scan.
		var returning map[string]float64
		count := db.NewQuery(`SELECT COUNT(*) FROM ` + OrdersCollection + ` INDEXED BY idx_metrics_orders_prev
			WHERE kind = 'order' AND duplicate = 0 AND day >= {:lo} AND day <= {:hi} AND prev_day < {:lo} AND profile != ''`).Prepare()
		defer count.Close()
		for i, b := range buckets {
			end := q.End
			if i+1 < len(buckets) {
				end = buckets[i+1]
			}
			lo, hi := b.In(q.Loc).Format(dayLayout), end.In(q.Loc).AddDate(0, 0, -1).Format(dayLayout)
			if strings.HasSuffix(lo, "-01") && month(lo) == month(hi) && month(end.In(q.Loc).Format(dayLayout)) != month(hi) {
				if returning == nil {
					var err error
					if returning, err = cohortBuyersByMonth(db); err != nil {
						return nil, 0, err
					}
				}
				buyers[i] = newC[i] + returning[month(lo)]
				continue
			}
			if err := count.Bind(dbx.Params{"lo": lo, "hi": hi}).Row(&buyers[i]); err != nil {
				return nil, 0, fmt.Errorf("buyers by %s: %w", q.Bucket, err)
			}
		}
		var err error
		if distinct, _, err = countBuyers(db, q.From, q.To); err != nil {
			return nil, 0, fmt.Errorf("buyers in range: %w", err)
		}
	}
	ret := make([]float64, len(buckets))
	for i := range buckets {
		ret[i] = max(0, buyers[i]-newC[i])
	}
	s.Y["new_customers"], s.Y["returning_customers"] = newC, ret
	return s, distinct, nil
}

// cohortBuyersByMonth counts, per calendar month (YYYY-MM), the customers
// whose first order was in an earlier month and who ordered in it: every
// cohort's customers_cohort rows, each offset put on its month.
func cohortBuyersByMonth(db dbx.Builder) (map[string]float64, error) {
	var rows []struct {
		Cohort string  `db:"cohort"`
		Offset int     `db:"k"`
		N      float64 `db:"n"`
	}
	if err := db.NewQuery(`SELECT day AS cohort, CAST(dim AS INTEGER) AS k, count AS n FROM ` + DailyCollection +
		` WHERE metric = 'customers_cohort'`).All(&rows); err != nil {
		return nil, fmt.Errorf("buyers by month: %w", err)
	}
	out := map[string]float64{}
	for _, r := range rows {
		if t, err := time.Parse(dayLayout, r.Cohort); err == nil && r.Offset >= 1 {
			out[t.AddDate(0, r.Offset, 0).Format("2006-01")] += r.N
		}
	}
	return out, nil
}

// hourlyBuyers counts the customers who bought in each hour bucket and in
// the whole range from each order's time (hour ranges are short).
func hourlyBuyers(db dbx.Builder, q Query, buckets []time.Time, buyers []float64) (float64, error) {
	var rows []struct {
		At      string `db:"at"`
		Profile string `db:"profile"`
	}
	p := dbx.Params{"start": store.FormatTime(q.Start), "end": store.FormatTime(q.End)}
	if err := db.NewQuery("SELECT occurred_at AS at, profile FROM " + OrdersCollection + " WHERE " + orderFacts +
		" AND occurred_at >= {:start} AND occurred_at < {:end} ORDER BY occurred_at").Bind(p).All(&rows); err != nil {
		return 0, fmt.Errorf("buyers by hour: %w", err)
	}
	seen := map[string]int{} // customer → the last bucket counted (+1)
	var distinct float64
	for _, r := range rows {
		t, err := time.Parse(dbTime, r.At)
		if err != nil {
			continue
		}
		i := bucketIndex(buckets, t)
		if i < 0 {
			continue
		}
		last, ok := seen[r.Profile]
		if !ok {
			distinct++
		}
		// Rows come by time, so a customer's buckets come in order.
		if last != i+1 {
			buyers[i]++
			seen[r.Profile] = i + 1
		}
	}
	return distinct, nil
}

// bucketIndex is the bucket t falls in (the last one starting at or
// before it), -1 outside.
func bucketIndex(buckets []time.Time, t time.Time) int {
	i := sort.Search(len(buckets), func(i int) bool { return buckets[i].After(t) }) - 1
	return i
}

// dbTime is PocketBase's date column layout.
const dbTime = "2006-01-02 15:04:05.000Z"

// fitLen cuts or pads v to n values (a previous period of months may have
// a different number of buckets).
func fitLen(v []float64, n int) []float64 {
	out := make([]float64, n)
	copy(out, v)
	return out
}

// cohortMonthsOf lists the cohorts shown for q: the months of the range,
// or the last cohortMonths months ending with the range's last month when
// the range is shorter.
func cohortMonthsOf(q Query) []string {
	last := q.End.AddDate(0, 0, -1)
	hi := time.Date(last.Year(), last.Month(), 1, 0, 0, 0, 0, time.UTC)
	lo := time.Date(q.Start.Year(), q.Start.Month(), 1, 0, 0, 0, 0, time.UTC)
	if early := hi.AddDate(0, -(cohortMonths - 1), 0); early.Before(lo) {
		lo = early
	}
	var out []string
	for t := lo; !t.After(hi); t = t.AddDate(0, 1, 0) {
		out = append(out, t.Format("2006-01"))
	}
	return out
}

// cohortTables builds the retention grid and LTV by acquisition month over
// the same cohorts.
func cohortTables(db dbx.Builder, q Query) (Table, Table, error) {
	months := cohortMonthsOf(q)
	// A cohort's rows: its buyers' customers_first and customers_first_orders
	// rows summed by month, its customers_cohort rows, all on the 1st.
	lo := months[0] + "-01"
	hi := months[len(months)-1] + "-31"
	p := dbx.Params{"lo": lo, "hi": hi}
	var sums []struct {
		Month  string  `db:"first_month"`
		Metric string  `db:"metric"`
		Value  float64 `db:"value"`
		Count  float64 `db:"count"`
	}
	if err := db.NewQuery(`SELECT substr(day, 1, 7) AS first_month, substr(metric, 1, length(metric) - 6) AS metric,
		TOTAL(value) AS value, TOTAL(count) AS count FROM ` + DailyCollection + `
		WHERE metric IN ('customers_first_month', 'customers_first_orders_month') AND day >= {:lo} AND day <= {:hi}
		GROUP BY metric, first_month`).Bind(p).All(&sums); err != nil {
		return Table{}, Table{}, fmt.Errorf("cohorts: %w", err)
	}
	type cohortSize struct {
		Month          string
		N, LTV, Orders float64
	}
	byCohort := map[string]*cohortSize{}
	for _, r := range sums {
		c := byCohort[r.Month]
		if c == nil {
			c = &cohortSize{Month: r.Month}
			byCohort[r.Month] = c
		}
		if r.Metric == "customers_first" {
			c.N, c.LTV = r.Count, r.Value // the net until divided below
		} else {
			c.Orders = r.Value
		}
	}
	var sizes []cohortSize
	for _, c := range byCohort {
		if c.N > 0 {
			c.LTV, c.Orders = c.LTV/c.N, c.Orders/c.N
			sizes = append(sizes, *c)
		}
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i].Month < sizes[j].Month })
	var back []struct {
		Month  string  `db:"first_month"`
		Offset int     `db:"k"`
		N      float64 `db:"n"`
	}
	if err := db.NewQuery(`SELECT substr(day, 1, 7) AS first_month, CAST(dim AS INTEGER) AS k, TOTAL(count) AS n
		FROM ` + DailyCollection + ` WHERE metric = 'customers_cohort' AND day >= {:lo} AND day <= {:hi}
		AND CAST(dim AS INTEGER) BETWEEN 1 AND ` + fmt.Sprint(cohortMonths) + ` GROUP BY first_month, k`).Bind(p).All(&back); err != nil {
		return Table{}, Table{}, fmt.Errorf("cohort retention: %w", err)
	}
	again := map[string]map[int]float64{}
	for _, b := range back {
		if again[b.Month] == nil {
			again[b.Month] = map[int]float64{}
		}
		again[b.Month][b.Offset] = b.N
	}

	// An offset is shown once its month has begun (the month in progress
	// counts what it has so far); later ones are null, not 0.
	now := q.Now.In(q.Loc).Format("2006-01")
	cohorts := Table{Name: "cohorts", Title: "Retention by first-order month",
		Columns: []Column{{Key: "cohort", Label: "First order", Type: TypeDate}, {Key: "customers", Label: "Customers", Type: TypeNumber}}}
	for k := 1; k <= cohortMonths; k++ {
		cohorts.Columns = append(cohorts.Columns, Column{Key: fmt.Sprintf("m%d", k), Label: fmt.Sprintf("Month %d", k), Type: TypePercent})
	}
	byMonth := Table{Name: "ltv_by_month", Title: "Lifetime value by first-order month", Columns: []Column{
		{Key: "month", Label: "First order", Type: TypeDate}, {Key: "customers", Label: "Customers", Type: TypeNumber},
		{Key: "ltv", Label: "Lifetime value", Type: TypeMoney}, {Key: "orders_per_customer", Label: "Orders per customer", Type: TypeNumber}}}
	for _, c := range sizes {
		row := []any{c.Month, c.N}
		elapsed := monthsBetween(c.Month, now)
		for k := 1; k <= cohortMonths; k++ {
			if k > elapsed || c.N == 0 {
				row = append(row, nil)
				continue
			}
			row = append(row, again[c.Month][k]/c.N)
		}
		cohorts.Rows = append(cohorts.Rows, row)
		byMonth.Rows = append(byMonth.Rows, []any{c.Month, c.N, c.LTV, c.Orders})
	}
	return cohorts, byMonth, nil
}

// stageMoves counts the customers who moved into a buying stage during
// the range. Profiles keep no history of stages, so the moves are read from
// the order facts where they tell cheaply: first_purchase (their first
// order), at_risk (90 days without an order ended in the range and they
// are at risk as of the stage counts beside it).
func stageMoves(q Query, newCustomers float64, now *stageCounts) map[string]float64 {
	// At risk: the 90th day without an order fell in the range (and is
	// past), and the profile is at risk now.
	riskEnd := q.End
	if q.Now.Before(riskEnd) {
		riskEnd = q.Now
	}
	lo, hi := store.FormatTime(q.Start.Add(-atRiskAfter)), store.FormatTime(riskEnd.Add(-atRiskAfter))
	n := 0
	if hi > lo {
		n = sort.SearchStrings(now.atRiskLastOrders, hi) - sort.SearchStrings(now.atRiskLastOrders, lo)
	}
	return map[string]float64{"first_purchase": newCustomers, "at_risk": float64(n)}
}

// stageTable lists every buying stage (0 when nobody is in it), then any
// stage this version does not know, in the profiles' order.
// Until the first count is done the "now" cells are empty (null).
func stageTable(now *stageCounts, moves map[string]float64) Table {
	t := Table{Name: "buying_stages", Title: "Buying stages", Columns: []Column{
		{Key: "stage", Label: "Stage", Type: TypeText}, {Key: "customers", Label: "Customers now", Type: TypeNumber},
		{Key: "moved_in", Label: "Moved in during the period", Type: TypeNumber}}}
	for _, s := range orderedKeys(buyingStages, now.buying) {
		var moved any
		if v, ok := moves[s]; ok {
			moved = v
		}
		t.Rows = append(t.Rows, []any{s, now.cell(now.buying, s), moved})
	}
	return t
}

func lifecycleTable(now *stageCounts) Table {
	t := Table{Name: "lifecycle", Title: "Lifecycle stages", Columns: []Column{
		{Key: "stage", Label: "Stage", Type: TypeText}, {Key: "profiles", Label: "Profiles now", Type: TypeNumber}}}
	for _, s := range orderedKeys(lifecycleStages, now.lifecycle) {
		t.Rows = append(t.Rows, []any{s, now.cell(now.lifecycle, s)})
	}
	return t
}

// orderedKeys is known in order, then the other keys of m (not ""), sorted.
func orderedKeys(known []string, m map[string]float64) []string {
	out := append([]string(nil), known...)
	isKnown := map[string]bool{}
	for _, k := range known {
		isKnown[k] = true
	}
	for _, k := range sortedKeys(m) {
		if k != "" && !isKnown[k] {
			out = append(out, k)
		}
	}
	return out
}

// stageCounts are the profiles' stages as last counted: how many profiles
// are in each buying stage and each lifecycle stage.
type stageCounts struct {
	at        time.Time // when the count began; zero: never counted yet
	buying    map[string]float64
	lifecycle map[string]float64
	// atRiskLastOrders are the last orders (metrics_customers.last_order_at,
	// sorted) of the buyers at risk: moves into at risk are counted from them.
	atRiskLastOrders []string
}

// profiles is how many profiles were counted.
func (c *stageCounts) profiles() float64 {
	n := 0.0
	for _, v := range c.buying {
		n += v
	}
	return n
}

// cell is a count for a table: null until the first count is done.
func (c *stageCounts) cell(m map[string]float64, k string) any {
	if c.at.IsZero() {
		return nil
	}
	return m[k]
}

// note says how old the counts are when a report shows counts older than
// a refresh period (or none yet).
func (c *stageCounts) note(loc *time.Location) string {
	switch {
	case c.at.IsZero():
		return "The profiles are still being counted by stage (a few seconds after a start): the stage figures are empty until then."
	case time.Since(c.at) > staleNoteAfter:
		return "Stage counts are as of " + c.at.In(loc).Format("2006-01-02 15:04") + "; newer ones are being counted."
	}
	return ""
}

// stageCache holds each module's last stageCounts (a *stageEntry by
// *Module). Counting reads every profile's computed traits, which takes
// longer than a report may with 100k customers, so it never runs while a
// report waits: the module counts in the background when it starts, and a
// report that finds the counts older than stageTTL has them counted again
// in the background (stages change slowly). A report shows the last counts.
// A small shop (under smallShopProfiles at the last count: a count takes
// milliseconds) is counted while the report waits, so its stages are
// always current.
var stageCache sync.Map

// A count takes seconds of CPU with 200k profiles: at most one a minute
// while reports are read; a report says how old counts are past 5 minutes
// (after a quiet spell, until the count it started is done).
const (
	stageTTL          = time.Minute
	staleNoteAfter    = 5 * time.Minute
	smallShopProfiles = 20000
)

type stageEntry struct {
	mu         sync.Mutex
	counts     *stageCounts
	refreshing bool
}

func (m *Module) stageEntry() *stageEntry {
	v, _ := stageCache.LoadOrStore(m, &stageEntry{})
	return v.(*stageEntry)
}

// profileStages returns the last counts (empty ones before the first count
// is done) and starts a count in the background when they are stale.
func (m *Module) profileStages(app core.App) *stageCounts {
	e := m.stageEntry()
	e.mu.Lock()
	c := e.counts
	cheap := c != nil && c.profiles() < smallShopProfiles
	stale := c == nil || time.Since(c.at) > stageTTL
	e.mu.Unlock()
	if cheap {
		if err := m.recountStages(app); err == nil {
			e.mu.Lock()
			c = e.counts
			e.mu.Unlock()
		}
		return c
	}
	if stale {
		m.countStagesInBackground(app)
	}
	if c == nil {
		return &stageCounts{buying: map[string]float64{}, lifecycle: map[string]float64{}}
	}
	return c
}

// countStagesInBackground counts unless a count is running already.
func (m *Module) countStagesInBackground(app core.App) {
	e := m.stageEntry()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.refreshing {
		return
	}
	e.refreshing = true
	go func() {
		err := m.recountStages(app)
		e.mu.Lock()
		e.refreshing = false
		e.mu.Unlock()
		if err != nil {
			m.log.Warn("counting profiles by stage", "error", err)
		}
	}()
}

// recountStages counts now and keeps the counts unless newer ones are kept
// already (a count that began later).
func (m *Module) recountStages(app core.App) error {
	c, err := countStages(app)
	if err != nil {
		return err
	}
	e := m.stageEntry()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts == nil || !c.at.Before(e.counts.at) {
		e.counts = c
	}
	return nil
}

// countStages counts the profiles (not merged away) by buying and
// lifecycle stage, in one pass, and reads the at-risk buyers' last orders.
func countStages(app core.App) (*stageCounts, error) {
	c := &stageCounts{at: time.Now(), buying: map[string]float64{}, lifecycle: map[string]float64{}}
	_ = store.SyncProfiles(app) // stages as they stand; else as last written
	var rows []struct {
		Buying    string  `db:"buying"`
		Lifecycle string  `db:"lifecycle"`
		N         float64 `db:"n"`
		AtRisk    string  `db:"at_risk"` // the ids of the at-risk profiles, comma-separated
	}
	if err := app.DB().NewQuery(`SELECT buying, lifecycle, COUNT(*) AS n, COALESCE(group_concat(iif(buying = 'at_risk', id, NULL)), '') AS at_risk
		FROM (SELECT id, COALESCE(json_extract(computed, '$.buying_stage'), '') AS buying, lifecycle_stage AS lifecycle
			FROM profiles WHERE merged_into = '') GROUP BY buying, lifecycle`).All(&rows); err != nil {
		return nil, fmt.Errorf("profiles by stage: %w", err)
	}
	atRisk := map[string]bool{}
	for _, r := range rows {
		c.buying[r.Buying] += r.N
		c.lifecycle[r.Lifecycle] += r.N
		if r.AtRisk != "" {
			for _, id := range strings.Split(r.AtRisk, ",") {
				atRisk[id] = true
			}
		}
	}
	if len(atRisk) == 0 {
		return c, nil
	}
	var last []struct {
		Profile string `db:"profile"`
		At      string `db:"last_order_at"`
	}
	if err := app.DB().NewQuery("SELECT profile, last_order_at FROM " + CustomersCollection + " WHERE last_order_at != ''").All(&last); err != nil {
		return nil, fmt.Errorf("last orders of the customers at risk: %w", err)
	}
	for _, l := range last {
		if atRisk[l.Profile] {
			c.atRiskLastOrders = append(c.atRiskLastOrders, l.At)
		}
	}
	sort.Strings(c.atRiskLastOrders)
	return c, nil
}
