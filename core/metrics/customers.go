package metrics

import (
	"fmt"
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
// for who bought in a period, and the profiles' computed stages for the
// stage counts. Everything is aggregated in SQL over indexed columns
// (migration 1765000100), so the report stays fast with 100k customers.

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

	cur, err := customerTotals(db, q)
	if err != nil {
		return nil, err
	}
	for k, v := range cur {
		r.Totals[k] = v
	}
	now, err := m.profileStages(app)
	if err != nil {
		return nil, err
	}
	stages := now.buying
	// Churn risk is the profiles' stage now: the stage is not kept as of a
	// past day, so it has no previous value.
	r.Totals["churn_risk"] = stages["at_risk"]
	if q.Compare {
		prev, err := customerTotals(db, q.Previous())
		if err != nil {
			return nil, err
		}
		r.Previous = prev
	}

	if r.Series, err = customerSeries(db, q); err != nil {
		return nil, err
	}
	if q.Compare {
		ps, err := customerSeries(db, q.Previous())
		if err != nil {
			return nil, err
		}
		r.Series.Previous = map[string][]float64{}
		for k, v := range ps.Y {
			r.Series.Previous[k] = fitLen(v, len(r.Series.X))
		}
	}

	cohorts, byMonth, err := cohortTables(db, q)
	if err != nil {
		return nil, err
	}
	byChannel, err := ltvByChannel(db, q)
	if err != nil {
		return nil, err
	}
	moves, err := stageMoves(db, q, cur["new_customers"])
	if err != nil {
		return nil, err
	}
	r.Tables = append(r.Tables, cohorts, byMonth, byChannel, stageTable(stages, moves), lifecycleTable(now.lifecycle))
	if r.Currency == "" {
		r.Notes = append(r.Notes, "No base currency is set yet, so lifetime values are 0: set one in the report settings.")
	}
	return r, nil
}

// customerTotals are the figures of one period (q's range); every figure
// but churn_risk also exists for the previous period.
func customerTotals(db dbx.Builder, q Query) (map[string]float64, error) {
	p := dbx.Params{"start": store.FormatTime(q.Start), "end": store.FormatTime(q.End), "from": q.From, "to": q.To}
	var all struct {
		N      float64 `db:"n"`
		LTV    float64 `db:"ltv"`
		Orders float64 `db:"orders"`
		Repeat float64 `db:"repeat"`
	}
	// Buyers as of the range end; their values are lifetime to date.
	if err := db.NewQuery(`SELECT COUNT(*) AS n, COALESCE(AVG(net_base), 0) AS ltv, COALESCE(AVG(orders), 0) AS orders,
		COALESCE(SUM(orders >= 2), 0) AS repeat FROM ` + CustomersCollection + `
		WHERE first_order_at != '' AND first_order_at < {:end}`).Bind(p).One(&all); err != nil {
		return nil, fmt.Errorf("customers totals: %w", err)
	}
	var nw struct {
		N   float64 `db:"n"`
		LTV float64 `db:"ltv"`
	}
	if err := db.NewQuery(`SELECT COUNT(*) AS n, COALESCE(AVG(net_base), 0) AS ltv FROM ` + CustomersCollection + `
		WHERE first_order_at >= {:start} AND first_order_at < {:end}`).Bind(p).One(&nw); err != nil {
		return nil, fmt.Errorf("new customers: %w", err)
	}
	// Every new customer bought in the range (their first order), so the
	// others who bought in it are the returning ones.
	var buyers float64
	if err := db.NewQuery("SELECT COUNT(DISTINCT profile) FROM " + OrdersCollection + " WHERE " + orderFacts +
		" AND day >= {:from} AND day <= {:to}").Bind(p).Row(&buyers); err != nil {
		return nil, fmt.Errorf("buyers: %w", err)
	}
	returning := max(0, buyers-nw.N)
	t := map[string]float64{
		"customers":           all.N,
		"new_customers":       nw.N,
		"returning_customers": returning,
		"ltv":                 all.LTV,
		"ltv_new":             nw.LTV,
		"orders_per_customer": all.Orders,
		"repeat_rate":         0,
	}
	if all.N > 0 {
		t["repeat_rate"] = all.Repeat / all.N
	}
	return t, nil
}

// customerSeries has new and returning customers per bucket: buyers of a
// bucket are new when their first order is in it, else returning.
func customerSeries(db dbx.Builder, q Query) (*Series, error) {
	buckets := q.Buckets()
	s := &Series{X: make([]int64, len(buckets)), Y: map[string][]float64{}}
	for i, b := range buckets {
		s.X[i] = b.Unix()
	}
	newC, buyers := make([]float64, len(buckets)), make([]float64, len(buckets))
	p := dbx.Params{"start": store.FormatTime(q.Start), "end": store.FormatTime(q.End), "from": q.From, "to": q.To}

	var firsts []string
	if err := db.NewQuery("SELECT first_order_at FROM " + CustomersCollection +
		" WHERE first_order_at >= {:start} AND first_order_at < {:end}").Bind(p).Column(&firsts); err != nil {
		return nil, fmt.Errorf("new customers by bucket: %w", err)
	}
	for _, f := range firsts {
		if t, err := time.Parse(dbTime, f); err == nil {
			if i := bucketIndex(buckets, t); i >= 0 {
				newC[i]++
			}
		}
	}

	if q.Bucket == "hour" {
		// Hours need each order's time (ranges of at most 31 days: few rows).
		var rows []struct {
			At      string `db:"occurred_at"`
			Profile string `db:"profile"`
		}
		if err := db.NewQuery("SELECT occurred_at, profile FROM " + OrdersCollection + " WHERE " + orderFacts +
			" AND occurred_at >= {:start} AND occurred_at < {:end}").Bind(p).All(&rows); err != nil {
			return nil, fmt.Errorf("buyers by hour: %w", err)
		}
		seen := map[string]bool{}
		for _, r := range rows {
			t, err := time.Parse(dbTime, r.At)
			if err != nil {
				continue
			}
			if i := bucketIndex(buckets, t); i >= 0 && !seen[fmt.Sprint(i, " ", r.Profile)] {
				seen[fmt.Sprint(i, " ", r.Profile)] = true
				buyers[i]++
			}
		}
	} else {
		// Days, weeks and months are whole days of the shop's zone, which
		// metrics_orders.day already is: SQLite counts each bucket's
		// distinct buyers over its days (the bounds are days we format).
		var bounds strings.Builder
		for i, b := range buckets {
			if i > 0 {
				bounds.WriteString(", ")
			}
			hi := q.End
			if i+1 < len(buckets) {
				hi = buckets[i+1]
			}
			fmt.Fprintf(&bounds, "(%d, '%s', '%s')", i, b.Format(dayLayout), hi.Format(dayLayout))
		}
		var rows []struct {
			I int     `db:"i"`
			N float64 `db:"n"`
		}
		if err := db.NewQuery("WITH b(i, lo, hi) AS (VALUES " + bounds.String() + ") SELECT b.i AS i, COUNT(DISTINCT o.profile) AS n FROM b JOIN " +
			OrdersCollection + " o ON o.kind = 'order' AND o.day >= b.lo AND o.day < b.hi WHERE o.duplicate = 0 AND o.profile != '' GROUP BY b.i").
			All(&rows); err != nil {
			return nil, fmt.Errorf("buyers by %s: %w", q.Bucket, err)
		}
		for _, r := range rows {
			if r.I >= 0 && r.I < len(buyers) {
				buyers[r.I] = r.N
			}
		}
	}
	ret := make([]float64, len(buckets))
	for i := range buckets {
		ret[i] = max(0, buyers[i]-newC[i])
	}
	s.Y["new_customers"], s.Y["returning_customers"] = newC, ret
	return s, nil
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
	p := dbx.Params{"lo": months[0], "hi": months[len(months)-1]}
	var sizes []struct {
		Month  string  `db:"first_month"`
		N      float64 `db:"n"`
		LTV    float64 `db:"ltv"`
		Orders float64 `db:"orders"`
	}
	if err := db.NewQuery(`SELECT first_month, COUNT(*) AS n, COALESCE(AVG(net_base), 0) AS ltv, COALESCE(AVG(orders), 0) AS orders
		FROM ` + CustomersCollection + ` WHERE first_month >= {:lo} AND first_month <= {:hi} GROUP BY first_month ORDER BY first_month`).
		Bind(p).All(&sizes); err != nil {
		return Table{}, Table{}, fmt.Errorf("cohorts: %w", err)
	}
	var back []struct {
		Month  string  `db:"first_month"`
		Offset int     `db:"k"`
		N      float64 `db:"n"`
	}
	if err := db.NewQuery(`SELECT c.first_month, CAST(j.value AS INTEGER) AS k, COUNT(*) AS n
		FROM ` + CustomersCollection + ` c, json_each(CASE WHEN json_valid(c.months) THEN c.months ELSE '[]' END) j
		WHERE c.first_month >= {:lo} AND c.first_month <= {:hi} AND j.value BETWEEN 1 AND ` + fmt.Sprint(cohortMonths) + `
		GROUP BY c.first_month, k`).Bind(p).All(&back); err != nil {
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

// ltvByChannel: buyers by the channel of their first order, as of the
// range end, and those of them acquired in the range.
func ltvByChannel(db dbx.Builder, q Query) (Table, error) {
	var rows []struct {
		Channel string  `db:"first_channel"`
		N       float64 `db:"n"`
		LTV     float64 `db:"ltv"`
		Orders  float64 `db:"orders"`
		New     float64 `db:"new_n"`
		NewLTV  float64 `db:"new_ltv"`
	}
	if err := db.NewQuery(`SELECT first_channel, COUNT(*) AS n, COALESCE(AVG(net_base), 0) AS ltv, COALESCE(AVG(orders), 0) AS orders,
		COALESCE(SUM(first_order_at >= {:start}), 0) AS new_n,
		COALESCE(AVG(CASE WHEN first_order_at >= {:start} THEN net_base END), 0) AS new_ltv
		FROM ` + CustomersCollection + ` WHERE first_order_at != '' AND first_order_at < {:end}
		GROUP BY first_channel ORDER BY n DESC, first_channel`).
		Bind(dbx.Params{"start": store.FormatTime(q.Start), "end": store.FormatTime(q.End)}).All(&rows); err != nil {
		return Table{}, fmt.Errorf("ltv by channel: %w", err)
	}
	t := Table{Name: "ltv_by_channel", Title: "Lifetime value by first channel", Columns: []Column{
		{Key: "channel", Label: "First channel", Type: TypeText}, {Key: "customers", Label: "Customers", Type: TypeNumber},
		{Key: "ltv", Label: "Lifetime value", Type: TypeMoney}, {Key: "orders_per_customer", Label: "Orders per customer", Type: TypeNumber},
		{Key: "new_customers", Label: "New in period", Type: TypeNumber}, {Key: "ltv_new", Label: "Lifetime value (new)", Type: TypeMoney}}}
	for _, r := range rows {
		ch := r.Channel
		if ch == "" {
			ch = "unknown"
		}
		t.Rows = append(t.Rows, []any{ch, r.N, r.LTV, r.Orders, r.New, r.NewLTV})
	}
	return t, nil
}

// stageMoves counts the customers who moved into a buying stage during
// the range. Profiles keep no history of stages, so the moves are read
// from the order facts where they tell cheaply: first_purchase (their
// first order), repeat (their second), at_risk (90 days without an order
// ended in the range and they are at risk now).
func stageMoves(db dbx.Builder, q Query, newCustomers float64) (map[string]float64, error) {
	p := dbx.Params{"start": store.FormatTime(q.Start), "end": store.FormatTime(q.End), "from": q.From, "to": q.To}
	// A customer became a repeat buyer in the range when their second order
	// is in it: only those who ordered in it can have.
	var repeat float64
	if err := db.NewQuery(`SELECT COUNT(*) FROM ` + CustomersCollection + ` c
		WHERE c.first_order_at < {:end} AND c.orders >= 2
		AND c.profile IN (SELECT profile FROM ` + OrdersCollection + ` WHERE ` + orderFacts + ` AND day >= {:from} AND day <= {:to})
		AND (SELECT o.occurred_at FROM ` + OrdersCollection + ` o WHERE o.profile = c.profile AND o.kind = 'order' AND o.duplicate = 0
			AND o.occurred_at > c.first_order_at ORDER BY o.occurred_at LIMIT 1) >= {:start}
		AND (SELECT o.occurred_at FROM ` + OrdersCollection + ` o WHERE o.profile = c.profile AND o.kind = 'order' AND o.duplicate = 0
			AND o.occurred_at > c.first_order_at ORDER BY o.occurred_at LIMIT 1) < {:end}`).Bind(p).Row(&repeat); err != nil {
		return nil, fmt.Errorf("moves into repeat: %w", err)
	}
	// At risk: the 90th day without an order fell in the range (and is
	// past), and the profile is at risk now.
	riskEnd := q.End
	if q.Now.Before(riskEnd) {
		riskEnd = q.Now
	}
	p["rlo"] = store.FormatTime(q.Start.Add(-atRiskAfter))
	p["rhi"] = store.FormatTime(riskEnd.Add(-atRiskAfter))
	var atRisk float64
	if err := db.NewQuery(`SELECT COUNT(*) FROM ` + CustomersCollection + ` c JOIN profiles p ON p.id = c.profile
		WHERE c.last_order_at >= {:rlo} AND c.last_order_at < {:rhi}
		AND json_extract(p.computed, '$.buying_stage') = 'at_risk'`).Bind(p).Row(&atRisk); err != nil {
		return nil, fmt.Errorf("moves into at risk: %w", err)
	}
	return map[string]float64{"first_purchase": newCustomers, "repeat": repeat, "at_risk": atRisk}, nil
}

// stageTable lists every buying stage (0 when nobody is in it), then any
// stage this version does not know, in the profiles' order.
func stageTable(now, moves map[string]float64) Table {
	t := Table{Name: "buying_stages", Title: "Buying stages", Columns: []Column{
		{Key: "stage", Label: "Stage", Type: TypeText}, {Key: "customers", Label: "Customers now", Type: TypeNumber},
		{Key: "moved_in", Label: "Moved in during the period", Type: TypeNumber}}}
	for _, s := range orderedKeys(buyingStages, now) {
		var moved any
		if v, ok := moves[s]; ok {
			moved = v
		}
		t.Rows = append(t.Rows, []any{s, now[s], moved})
	}
	return t
}

func lifecycleTable(now map[string]float64) Table {
	t := Table{Name: "lifecycle", Title: "Lifecycle stages", Columns: []Column{
		{Key: "stage", Label: "Stage", Type: TypeText}, {Key: "profiles", Label: "Profiles now", Type: TypeNumber}}}
	for _, s := range orderedKeys(lifecycleStages, now) {
		t.Rows = append(t.Rows, []any{s, now[s]})
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

// stageCounts are the profiles' stages now: how many profiles are in each
// buying stage and each lifecycle stage.
type stageCounts struct {
	at        time.Time
	buying    map[string]float64
	lifecycle map[string]float64
}

// stageCache holds each module's last stageCounts (a *stageEntry by
// *Module). Counting reads every profile's computed traits, which takes
// longer than a report may with 100k customers; stages change slowly, so
// a report reads counts at most stageTTL old and a stale read refreshes
// them in the background.
var stageCache sync.Map

const stageTTL = 30 * time.Second

type stageEntry struct {
	mu         sync.Mutex
	counts     *stageCounts
	refreshing bool
}

func (m *Module) profileStages(app core.App) (*stageCounts, error) {
	v, _ := stageCache.LoadOrStore(m, &stageEntry{})
	e := v.(*stageEntry)
	e.mu.Lock()
	c := e.counts
	if c == nil { // the first report counts while it waits
		e.mu.Unlock()
		c, err := countStages(app)
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		e.counts = c
		e.mu.Unlock()
		return c, nil
	}
	if time.Since(c.at) > stageTTL && !e.refreshing {
		e.refreshing = true
		go func() {
			fresh, err := countStages(app)
			e.mu.Lock()
			defer e.mu.Unlock()
			e.refreshing = false
			if err != nil {
				m.log.Warn("counting profiles by stage", "error", err)
				return
			}
			e.counts = fresh
		}()
	}
	e.mu.Unlock()
	return c, nil
}

// countStages counts the profiles (not merged away) by buying and
// lifecycle stage, in one pass.
func countStages(app core.App) (*stageCounts, error) {
	var rows []struct {
		Buying    string  `db:"buying"`
		Lifecycle string  `db:"lifecycle"`
		N         float64 `db:"n"`
	}
	if err := app.DB().NewQuery(`SELECT COALESCE(json_extract(computed, '$.buying_stage'), '') AS buying, lifecycle_stage AS lifecycle,
		COUNT(*) AS n FROM profiles WHERE merged_into = '' GROUP BY buying, lifecycle`).All(&rows); err != nil {
		return nil, fmt.Errorf("profiles by stage: %w", err)
	}
	c := &stageCounts{at: time.Now(), buying: map[string]float64{}, lifecycle: map[string]float64{}}
	for _, r := range rows {
		c.buying[r.Buying] += r.N
		c.lifecycle[r.Lifecycle] += r.N
	}
	return c, nil
}
