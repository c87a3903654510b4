package metrics

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/api"
)

// salesSeriesKeys are the lines of the sales chart.
var salesSeriesKeys = []string{"net_revenue", "gross_revenue", "refunds", "orders", "aov"}

// salesMetrics are the metrics_daily rows the sales totals and series read.
var salesMetrics = []any{"orders", "refunds", "cancelled", "orders_new", "orders_returning", "refunds_new", "refunds_returning",
	"channel_orders", "channel_refunds", "customers_new", "unconverted"}

// salesReport: revenue net of refunds in the base currency, orders, AOV,
// new and returning customers, by currency, channel and product. Read
// from metrics_daily (hourly points from metrics_orders, whose ranges are
// at most 31 days).
func (m *Module) salesReport(app core.App, q Query) (*Report, error) {
	switch q.By {
	case "", "channel":
	default:
		return nil, api.BadRequest("by", fmt.Sprintf("the sales report splits by channel only, got %q", q.By))
	}
	base, _ := m.settings.currency(app)
	r := newReport("sales", q)
	r.Currency = base
	cur, err := readSales(app, q)
	if err != nil {
		return nil, err
	}
	r.Totals = cur.totals
	r.Series = &Series{X: make([]int64, len(cur.buckets)), Y: cur.series}
	for i, b := range cur.buckets {
		r.Series.X[i] = b.Unix()
	}
	if q.Compare {
		prev, err := readSales(app, q.Previous())
		if err != nil {
			return nil, err
		}
		r.Previous = prev.totals
		r.Series.Previous = map[string][]float64{}
		for k, v := range prev.series {
			aligned := make([]float64, len(cur.buckets))
			copy(aligned, v)
			r.Series.Previous[k] = aligned
		}
	}
	// Products only for this period: the tables have no previous column.
	if err := cur.readProducts(app); err != nil {
		return nil, err
	}
	r.Tables = cur.tables(base)
	r.Notes = cur.notes(base)
	return r, nil
}

// salesPeriod is what one period's rows add up to.
type salesPeriod struct {
	q       Query
	buckets []time.Time
	totals  map[string]float64
	series  map[string][]float64
	// sums by metric, dim, currency over the whole period: [value, count]
	sums map[dkey][2]float64
	// product rows: key → value, quantity (sales, refunds)
	products map[string]*[4]float64
}

func (p *salesPeriod) sum(metric, dim, currency string) (value, count float64) {
	v := p.sums[dkey{metric: metric, dim: dim, currency: currency}]
	return v[0], v[1]
}

// salesRow is a metrics_daily row (or a month's sum, on its 1st day).
type salesRow struct {
	Day      string  `db:"day"`
	Metric   string  `db:"metric"`
	Dim      string  `db:"dim"`
	Currency string  `db:"currency"`
	Value    float64 `db:"value"`
	Count    float64 `db:"count"`
}

// readSales adds up one period.
func readSales(app core.App, q Query) (*salesPeriod, error) {
	p := &salesPeriod{q: q, buckets: q.Buckets(), totals: map[string]float64{}, series: map[string][]float64{},
		sums: map[dkey][2]float64{}, products: map[string]*[4]float64{}}
	n := len(p.buckets)
	index := make(map[int64]int, n)
	for i, b := range p.buckets {
		index[b.Unix()] = i
	}
	gross, refunds, orders := make([]float64, n), make([]float64, n), make([]float64, n)
	byChannel := map[string][]float64{} // channel → net per bucket
	addChannel := func(ch string, i int, v float64) {
		if ch == "" {
			ch = "unknown"
		}
		if byChannel[ch] == nil {
			byChannel[ch] = make([]float64, n)
		}
		byChannel[ch][i] = round6(byChannel[ch][i] + v)
	}
	bucketOfDay := map[string]int{}
	dayBucket := func(day string) (int, bool) {
		if i, ok := bucketOfDay[day]; ok {
			return i, i >= 0
		}
		i := -1
		if t, err := time.ParseInLocation(dayLayout, day, q.Loc); err == nil {
			if j, ok := index[q.BucketOf(t).Unix()]; ok {
				i = j
			}
		}
		bucketOfDay[day] = i
		return i, i >= 0
	}

	// Whole past months of a monthly chart from their month rows
	// (sales_months.go), the other days from the daily rows.
	var lo, hi, after string
	if q.Bucket == "month" {
		lo, hi, after = cachedMonths(q)
	}
	var rows []salesRow
	sel := app.DB().Select("day", "metric", "dim", "currency", "value", "count").From(DailyCollection).
		Where(dbx.In("metric", salesMetrics...)).AndWhere(dbx.Between("day", q.From, q.To))
	if lo != "" {
		sel = sel.AndWhere(dbx.NewExp("NOT (day >= {:lo} AND day < {:after})", dbx.Params{"lo": lo, "after": after}))
	}
	if err := sel.All(&rows); err != nil {
		return nil, err
	}
	var months []*salesMonth
	if lo != "" {
		var err error
		if months, err = salesMonths(app, lo, hi); err != nil {
			return nil, err
		}
		for _, m := range months {
			for _, r := range m.sums {
				rows = append(rows, salesRow{m.month + "-01", r.Metric, r.Dim, r.Currency, r.Value, r.Count})
			}
		}
	}
	hourly := q.Bucket == "hour"
	for _, r := range rows {
		k := dkey{metric: r.Metric, dim: r.Dim, currency: r.Currency}
		s := p.sums[k]
		p.sums[k] = [2]float64{round6(s[0] + r.Value), s[1] + r.Count}
		if hourly || r.Currency != "" {
			continue
		}
		i, ok := dayBucket(r.Day)
		if !ok {
			continue
		}
		switch r.Metric {
		case "orders":
			gross[i] = round6(gross[i] + r.Value)
			orders[i] += r.Count
		case "refunds":
			refunds[i] = round6(refunds[i] + r.Value)
		case "channel_orders":
			addChannel(r.Dim, i, r.Value)
		case "channel_refunds":
			addChannel(r.Dim, i, -r.Value)
		}
	}
	if hourly {
		if err := hourlySales(app, q, index, gross, refunds, orders, addChannel); err != nil {
			return nil, err
		}
	}

	t := p.totals
	t["gross_revenue"], t["orders"] = p.sum("orders", "", "")
	t["refunds"], t["refunds_count"] = p.sum("refunds", "", "")
	t["net_revenue"] = t["gross_revenue"] - t["refunds"]
	t["aov"] = ratio(t["net_revenue"], t["orders"])
	_, t["cancelled"] = p.sum("cancelled", "", "")
	newOrdersV, newOrders := p.sum("orders_new", "", "")
	retOrdersV, retOrders := p.sum("orders_returning", "", "")
	newRefunds, _ := p.sum("refunds_new", "", "")
	retRefunds, _ := p.sum("refunds_returning", "", "")
	t["new_revenue"], t["returning_revenue"] = newOrdersV-newRefunds, retOrdersV-retRefunds
	t["new_orders"], t["returning_orders"] = newOrders, retOrders
	t["returning_share"] = ratio(retOrders, newOrders+retOrders)
	for k, v := range p.sums {
		switch k.metric {
		case "customers_new":
			t["new_customers"] += v[1]
		case "unconverted":
			t["unconverted"] += v[1]
		}
	}
	buyers, repeat, err := buyersIn(app, q, lo, after, months)
	if err != nil {
		return nil, err
	}
	t["customers"] = buyers
	t["returning_customers"] = math.Max(0, buyers-t["new_customers"])
	t["repeat_purchase_rate"] = ratio(repeat, buyers)
	for k, v := range t {
		t[k] = roundFigure(k, v)
	}

	net, aov := make([]float64, n), make([]float64, n)
	for i := range n {
		net[i] = round2(gross[i] - refunds[i])
		aov[i] = round2(ratio(gross[i]-refunds[i], orders[i]))
		gross[i], refunds[i] = round2(gross[i]), round2(refunds[i])
	}
	p.series["net_revenue"], p.series["gross_revenue"], p.series["refunds"], p.series["orders"], p.series["aov"] = net, gross, refunds, orders, aov
	if q.By == "channel" {
		for ch, v := range byChannel {
			for i := range v {
				v[i] = round2(v[i])
			}
			p.series["net_revenue:"+ch] = v
		}
	}
	return p, nil
}

// hourlySales fills hourly buckets from the order facts.
func hourlySales(app core.App, q Query, index map[int64]int, gross, refunds, orders []float64, addChannel func(string, int, float64)) error {
	var facts []struct {
		Kind       string  `db:"kind"`
		OccurredAt string  `db:"occurred_at"`
		AmountBase float64 `db:"amount_base"`
		Channel    string  `db:"channel"`
	}
	err := app.DB().Select("kind", "occurred_at", "amount_base", "channel").From(OrdersCollection).
		Where(dbx.Between("day", q.From, q.To)).AndWhere(dbx.In("kind", kindOrder, kindRefund)).
		AndWhere(dbx.HashExp{"duplicate": false}).AndWhere(dbx.NewExp("rate > 0")).All(&facts)
	if err != nil {
		return err
	}
	for _, f := range facts {
		at, err := types.ParseDateTime(f.OccurredAt)
		if err != nil {
			continue
		}
		i, ok := index[q.BucketOf(at.Time()).Unix()]
		if !ok {
			continue
		}
		if f.Kind == kindOrder {
			gross[i] = round6(gross[i] + f.AmountBase)
			orders[i]++
			addChannel(f.Channel, i, f.AmountBase)
		} else {
			refunds[i] = round6(refunds[i] + f.AmountBase)
			addChannel(f.Channel, i, -f.AmountBase)
		}
	}
	return nil
}

// buyersIn counts the distinct customers with an order in q, and those of
// them with two orders or more ever. A customer's first order in the range
// is the one whose previous order (prev_day) is before it, so each buyer
// is counted once, from idx_metrics_orders_prev alone, without grouping;
// the orders of the whole months from lo to the day before after are
// counted from the month rows.
func buyersIn(app core.App, q Query, lo, after string, months []*salesMonth) (buyers, repeat float64, err error) {
	if lo == "" {
		return countBuyers(app.DB(), q.From, q.To)
	}
	dayBefore := func(day string) string {
		t, _ := time.Parse(dayLayout, day)
		return t.AddDate(0, 0, -1).Format(dayLayout)
	}
	for _, part := range [][2]string{{q.From, dayBefore(lo)}, {after, q.To}} {
		if part[0] > part[1] {
			continue
		}
		b, r, err := countBuyersIn(app.DB(), q.From, part[0], part[1])
		if err != nil {
			return 0, 0, err
		}
		buyers, repeat = buyers+b, repeat+r
	}
	for _, m := range months {
		b, r := m.buyersBefore(q.From)
		buyers, repeat = buyers+b, repeat+r
	}
	return buyers, repeat, nil
}

// countBuyers: distinct customers with a counted order from day from to
// day to (inclusive), and how many of them have two orders or more.
func countBuyers(db dbx.Builder, from, to string) (buyers, repeat float64, err error) {
	var row struct {
		Buyers float64 `db:"buyers"`
		Repeat float64 `db:"repeat"`
	}
	err = db.NewQuery(`SELECT COUNT(*) AS buyers, TOTAL(repeat_buyer) AS repeat FROM metrics_orders INDEXED BY idx_metrics_orders_prev
		WHERE kind = 'order' AND duplicate = 0 AND day >= {:from} AND day <= {:to} AND prev_day < {:from} AND profile != ''`).
		Bind(dbx.Params{"from": from, "to": to}).One(&row)
	return row.Buyers, row.Repeat, err
}

// readProducts sums the product rows of the period: the whole months in
// it from the monthly rows, the days before and after them from the daily
// rows (a year is some 12 × products rows instead of 365 × products).
func (p *salesPeriod) readProducts(app core.App) error {
	var rows []struct {
		Metric string  `db:"metric"`
		Dim    string  `db:"dim"`
		Value  float64 `db:"value"`
		Count  float64 `db:"count"`
	}
	lo, hi, after := wholeMonths(p.q.From, p.q.To)
	params := dbx.Params{"from": p.q.From, "to": p.q.To, "lo": lo, "hi": hi, "after": after}
	sql := `SELECT metric, dim, SUM(value) AS value, SUM(count) AS count FROM metrics_daily
		WHERE metric IN ('product_sales', 'product_refunds') AND day >= {:from} AND day <= {:to} GROUP BY metric, dim`
	if lo != "" {
		sql = `SELECT metric, dim, SUM(value) AS value, SUM(count) AS count FROM (
			SELECT metric, dim, value, count FROM metrics_daily WHERE metric IN ('product_sales', 'product_refunds')
				AND ((day >= {:from} AND day < {:lo}) OR (day >= {:after} AND day <= {:to}))
			UNION ALL SELECT substr(metric, 1, length(metric) - 6), dim, value, count FROM metrics_daily
				WHERE metric IN ('product_sales_month', 'product_refunds_month') AND day >= {:lo} AND day <= {:hi})
			GROUP BY metric, dim`
	}
	if err := app.DB().NewQuery(sql).Bind(params).All(&rows); err != nil {
		return err
	}
	for _, r := range rows {
		v := p.products[r.Dim]
		if v == nil {
			v = &[4]float64{}
			p.products[r.Dim] = v
		}
		if r.Metric == "product_sales" {
			v[0], v[1] = r.Value, r.Count
		} else {
			v[2], v[3] = r.Value, r.Count
		}
	}
	return nil
}

// wholeMonths names the calendar months lying wholly between days from
// and to by the 1st of the first (lo) and of the last (hi), and the day
// after the last one (after); "" when there is none. The monthly rows of
// lo…hi sum exactly the days from lo to the day before after.
func wholeMonths(from, to string) (lo, hi, after string) {
	f, err1 := time.Parse(dayLayout, from)
	t, err2 := time.Parse(dayLayout, to)
	if err1 != nil || err2 != nil {
		return "", "", ""
	}
	first := time.Date(f.Year(), f.Month(), 1, 0, 0, 0, 0, time.UTC)
	if !first.Equal(f) {
		first = first.AddDate(0, 1, 0)
	}
	last := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC) // the month of to…
	if !t.AddDate(0, 0, 1).Equal(last.AddDate(0, 1, 0)) {
		last = last.AddDate(0, -1, 0) // …only when to is its last day
	}
	if last.Before(first) {
		return "", "", ""
	}
	return first.Format(dayLayout), last.Format(dayLayout), last.AddDate(0, 1, 0).Format(dayLayout)
}

// topProducts is how many rows top_products has.
const topProducts = 20

func (p *salesPeriod) tables(base string) []Table {
	t := p.totals
	// By currency: each currency's own amounts (all orders, converted or not).
	byCur := Table{Name: "by_currency", Title: "By currency (in each currency)", Columns: []Column{
		{"currency", "Currency", TypeText}, {"orders", "Orders", TypeNumber}, {"gross", "Gross", TypeMoney},
		{"refunds", "Refunds", TypeMoney}, {"net", "Net", TypeMoney}}, Rows: [][]any{}}
	curs := map[string]bool{}
	for k := range p.sums {
		if k.currency != "" && (k.metric == "orders" || k.metric == "refunds") {
			curs[k.currency] = true
		}
	}
	for _, c := range sortedSet(curs) {
		g, n := p.sum("orders", "", c)
		rf, _ := p.sum("refunds", "", c)
		byCur.Rows = append(byCur.Rows, []any{c, n, round2(g), round2(rf), round2(g - rf)})
	}
	sort.SliceStable(byCur.Rows, func(i, j int) bool { return byCur.Rows[i][1].(float64) > byCur.Rows[j][1].(float64) })

	byCh := Table{Name: "by_channel", Title: "By channel", Columns: []Column{
		{"channel", "Channel", TypeText}, {"orders", "Orders", TypeNumber}, {"net", "Net revenue", TypeMoney},
		{"share", "Share of net revenue", TypePercent}}, Rows: [][]any{}}
	chans := map[string]bool{}
	for k := range p.sums {
		if k.metric == "channel_orders" || k.metric == "channel_refunds" {
			chans[k.dim] = true
		}
	}
	for _, ch := range sortedSet(chans) {
		ov, on := p.sum("channel_orders", ch, "")
		rv, _ := p.sum("channel_refunds", ch, "")
		name := ch
		if name == "" {
			name = "unknown"
		}
		byCh.Rows = append(byCh.Rows, []any{name, on, round2(ov - rv), round4(ratio(ov-rv, t["net_revenue"]))})
	}
	sort.SliceStable(byCh.Rows, func(i, j int) bool { return byCh.Rows[i][2].(float64) > byCh.Rows[j][2].(float64) })

	prods := Table{Name: "top_products", Title: "Top products (net of refunds)", Columns: []Column{
		{"product", "Product", TypeText}, {"quantity", "Quantity", TypeNumber}, {"revenue", "Revenue", TypeMoney}}, Rows: [][]any{}}
	for key, v := range p.products {
		prods.Rows = append(prods.Rows, []any{key, round6(v[1] - v[3]), round2(v[0] - v[2])})
	}
	sort.Slice(prods.Rows, func(i, j int) bool {
		a, b := prods.Rows[i][2].(float64), prods.Rows[j][2].(float64)
		if a != b {
			return a > b
		}
		return prods.Rows[i][0].(string) < prods.Rows[j][0].(string)
	})
	if len(prods.Rows) > topProducts {
		prods.Rows = prods.Rows[:topProducts]
	}

	nvr := Table{Name: "new_vs_returning", Title: "New and returning customers", Columns: []Column{
		{"segment", "Customers", TypeText}, {"customers", "How many", TypeNumber}, {"orders", "Orders", TypeNumber},
		{"revenue", "Net revenue", TypeMoney}, {"aov", "AOV", TypeMoney}}, Rows: [][]any{
		{"new", t["new_customers"], t["new_orders"], t["new_revenue"], round2(ratio(t["new_revenue"], t["new_orders"]))},
		{"returning", t["returning_customers"], t["returning_orders"], t["returning_revenue"], round2(ratio(t["returning_revenue"], t["returning_orders"]))},
	}}
	return []Table{byCh, byCur, prods, nvr}
}

// notes say what the revenue figures leave out.
func (p *salesPeriod) notes(base string) []string {
	var out []string
	if base == "" {
		out = append(out, "No base currency is known yet: set one in the metrics settings (or profiles.base_currency in omni.yaml); until then only the by-currency table has money.")
	}
	type unc struct {
		n      float64
		amount float64
	}
	byCur := map[string]*unc{}
	for k, v := range p.sums {
		if k.metric == "unconverted" {
			u := byCur[k.dim]
			if u == nil {
				u = &unc{}
				byCur[k.dim] = u
			}
			u.n += v[1]
			u.amount += v[0]
		}
	}
	set := map[string]bool{}
	for c := range byCur {
		set[c] = true
	}
	for _, c := range sortedSet(set) {
		u := byCur[c]
		name := c
		if name == "" {
			name = "no currency"
		}
		out = append(out, fmt.Sprintf("%s orders and refunds in %s (%s %s) have no exchange rate to %s and are not in the revenue figures: set a rate in the metrics settings.",
			thousands(int(u.n)), name, trimFloat(round2(u.amount)), c, base))
	}
	return out
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
func round4(v float64) float64 { return math.Round(v*10000) / 10000 }

// roundFigure rounds money to cents and shares to 4 places.
func roundFigure(key string, v float64) float64 {
	if strings.HasSuffix(key, "_share") || strings.HasSuffix(key, "_rate") {
		return round4(v)
	}
	return round2(v)
}

func trimFloat(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}
