package metrics

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/store"
)

// abandonmentID is the funnel parameter of the cart abandonment report.
const abandonmentID = "abandonment"

// funnelReport is GET /api/v1/metrics/funnel?funnel=ID (default: the
// first funnel; funnel=abandonment: cart abandonment) &by=channel|
// segment:ID. Entries count in the period they were entered in.
func (m *Module) funnelReport(app core.App, q Query) (*Report, error) {
	f := m.funnels
	if err := f.ensureLoaded(app); err != nil {
		return nil, err
	}
	id := q.Params["funnel"]
	if id == abandonmentID {
		return f.abandonmentReport(app, q)
	}
	list := f.list()
	var fn *Funnel
	for i := range list {
		if id == "" || list[i].ID == id {
			fn = &list[i]
			break
		}
	}
	if fn == nil {
		if id == "" {
			r := newReport("funnel", q)
			r.Notes = append(r.Notes, "There is no funnel yet: an owner creates one on the Funnels page.")
			return r, nil
		}
		return nil, api.BadRequest("funnel", fmt.Sprintf("there is no funnel %q (see GET /api/v1/metrics/funnels, or use abandonment)", id))
	}
	group, groupArgs, err := funnelGroup(app, q.By)
	if err != nil {
		return nil, err
	}

	r := newReport("funnel", q)
	last := len(fn.Steps) - 1
	cur, err := f.funnelCounts(app, fn, q, group, groupArgs)
	if err != nil {
		return nil, err
	}
	all := cur.total(len(fn.Steps))
	if err := f.funnelTotals(app, fn, q, all, r.Totals); err != nil {
		return nil, err
	}
	r.Series = &Series{Y: map[string][]float64{}}
	buckets := q.Buckets()
	for _, b := range buckets {
		r.Series.X = append(r.Series.X, b.Unix())
	}
	r.Series.Y["entered"], r.Series.Y["converted"] = cur.entered, cur.converted
	if q.Compare {
		p := q.Previous()
		prev, err := f.funnelCounts(app, fn, p, "''", nil)
		if err != nil {
			return nil, err
		}
		if err := f.funnelTotals(app, fn, p, prev.total(len(fn.Steps)), r.Previous); err != nil {
			return nil, err
		}
		r.Series.Previous = map[string][]float64{"entered": prev.entered, "converted": prev.converted}
	}

	steps := Table{Name: "steps", Title: fn.Name + ": steps", Columns: []Column{
		{Key: "step", Label: "Step", Type: TypeNumber}, {Key: "label", Label: "Label", Type: TypeText},
		{Key: "customers", Label: "Customers", Type: TypeNumber}, {Key: "from_previous", Label: "From previous step", Type: TypePercent},
		{Key: "from_first", Label: "From first step", Type: TypePercent}, {Key: "drop_off", Label: "Dropped off", Type: TypeNumber},
	}, Rows: [][]any{}}
	for k, s := range fn.Steps {
		fromPrev, drop := 1.0, 0
		if k > 0 {
			fromPrev, drop = countRatio(all[k], all[k-1]), all[k-1]-all[k]
		}
		steps.Rows = append(steps.Rows, []any{k + 1, s.Label, all[k], fromPrev, countRatio(all[k], all[0]), drop})
	}
	r.Tables = append(r.Tables, steps)

	if q.By != "" {
		name, title, col := "by_channel", "By channel", "Channel"
		if group != "channel" {
			name, title, col = "by_segment", "Segment members and everyone else", "Customers"
		}
		t := Table{Name: name, Title: title, Columns: []Column{{Key: "group", Label: col, Type: TypeText}}, Rows: [][]any{}}
		for k, s := range fn.Steps {
			t.Columns = append(t.Columns, Column{Key: fmt.Sprintf("step_%d", k+1), Label: s.Label, Type: TypeNumber})
		}
		t.Columns = append(t.Columns, Column{Key: "conversion_rate", Label: "Conversion", Type: TypePercent})
		for _, g := range cur.groups {
			counts := cur.steps(g, len(fn.Steps))
			label := g
			switch {
			case group != "channel":
				label = map[string]string{"members": "Members", "others": "Everyone else"}[g]
			case g == "":
				label = "(unknown)"
			}
			row := []any{label}
			for _, n := range counts {
				row = append(row, n)
			}
			t.Rows = append(t.Rows, append(row, countRatio(counts[last], counts[0])))
		}
		r.Tables = append(r.Tables, t)
	}
	if fn.State != stateReady {
		r.Notes = append(r.Notes, "This funnel is backfilling: it is being worked out from past events, and its figures grow until that is done.")
	}
	return r, nil
}

// funnelGroup turns by= into a SQL grouping of entries.
func funnelGroup(app core.App, by string) (string, dbx.Params, error) {
	switch {
	case by == "":
		return "''", nil, nil
	case by == "channel":
		return "channel", nil, nil
	case strings.HasPrefix(by, "segment:"):
		seg := strings.TrimPrefix(by, "segment:")
		var n int
		if err := app.DB().NewQuery("SELECT COUNT(*) FROM segments WHERE id = {:s}").Bind(dbx.Params{"s": seg}).Row(&n); err != nil || n == 0 {
			return "", nil, api.BadRequest("by", fmt.Sprintf("there is no segment %q", seg))
		}
		// One lookup in the members' (segment, profile) index per entry.
		return "CASE WHEN EXISTS (SELECT 1 FROM segment_members sm WHERE sm.segment = {:seg} AND sm.profile = " + FunnelEntriesCollection + ".profile) THEN 'members' ELSE 'others' END",
			dbx.Params{"seg": seg}, nil
	}
	return "", nil, api.BadRequest("by", fmt.Sprintf("expected channel or segment:ID, got %q", by))
}

// stepCounts holds, per group, how many entries stopped at each step.
type stepCounts struct {
	groups []string
	at     map[string]map[int]int // group → highest step reached → entries
	// entered and converted per bucket of the query.
	entered, converted []float64
}

// steps returns how many entries of group g reached each step.
func (c *stepCounts) steps(g string, n int) []int {
	out := make([]int, n)
	for r, cnt := range c.at[g] {
		for k := 0; k <= r && k < n; k++ {
			out[k] += cnt
		}
	}
	return out
}

func (c *stepCounts) total(n int) []int {
	out := make([]int, n)
	for _, g := range c.groups {
		for k, v := range c.steps(g, n) {
			out[k] += v
		}
	}
	return out
}

// funnelCounts reads the entries of q's range grouped by bucket, group
// and step reached: one pass over the covering index gives the steps, the
// breakdown and the series.
func (f *funnelPart) funnelCounts(app core.App, fn *Funnel, q Query, group string, args dbx.Params) (*stepCounts, error) {
	var rows []struct {
		Bucket  string `db:"b"`
		Grp     string `db:"grp"`
		Reached int    `db:"reached"`
		N       int    `db:"n"`
	}
	p := dbx.Params{"f": fn.ID, "s": store.FormatTime(q.Start), "e": store.FormatTime(q.End)}
	for k, v := range args {
		p[k] = v
	}
	sql := "SELECT " + bucketSQL(q, "entered_at") + " AS b, " + group + " AS grp, reached, COUNT(*) AS n FROM " + FunnelEntriesCollection +
		" WHERE funnel = {:f} AND entered_at >= {:s} AND entered_at < {:e} GROUP BY b, grp, reached ORDER BY grp"
	if from, to, ok := f.dailyDays(q); ok && (group == "''" || group == "channel") {
		// Whole days, overall or by channel: the per-day counts. A segment
		// split reads the entries (its membership is today's).
		p["fd"], p["td"] = from, to
		sql = "SELECT day AS b, " + group + " AS grp, reached, SUM(n) AS n FROM " + FunnelDailyCollection +
			" WHERE funnel = {:f} AND day >= {:fd} AND day < {:td} GROUP BY b, grp, reached HAVING SUM(n) != 0 ORDER BY grp"
	}
	err := app.DB().NewQuery(sql).Bind(p).All(&rows)
	if err != nil {
		return nil, err
	}
	idx := funnelBuckets(q)
	last := len(fn.Steps) - 1
	c := &stepCounts{at: map[string]map[int]int{}, entered: make([]float64, len(idx)), converted: make([]float64, len(idx))}
	for _, r := range rows {
		if c.at[r.Grp] == nil {
			c.groups = append(c.groups, r.Grp)
			c.at[r.Grp] = map[int]int{}
		}
		c.at[r.Grp][r.Reached] += r.N
		if i, ok := bucketOfKey(q, idx, r.Bucket); ok {
			c.entered[i] += float64(r.N)
			if r.Reached == last {
				c.converted[i] += float64(r.N)
			}
		}
	}
	return c, nil
}

// bucketSQL is the column rows are grouped by for q's buckets: the day in
// the shop's zone (kept on each row), or the UTC hour for hourly points.
func bucketSQL(q Query, timeCol string) string {
	if q.Bucket == "hour" {
		return "substr(" + timeCol + ", 1, 13)"
	}
	return "day"
}

// bucketOfKey places a bucketSQL value in its bucket of q.
func bucketOfKey(q Query, idx map[int64]int, key string) (int, bool) {
	if q.Bucket == "hour" {
		return hourBucket(q, idx, key)
	}
	d, err := time.ParseInLocation(dayLayout, key, q.Loc)
	if err != nil {
		return 0, false
	}
	i, ok := idx[q.BucketOf(d).Unix()]
	return i, ok
}

// funnelTotals: entered, converted, conversion_rate and the median time
// from the first step to the last of the converted entries.
func (f *funnelPart) funnelTotals(app core.App, fn *Funnel, q Query, all []int, out map[string]float64) error {
	last := len(fn.Steps) - 1
	entered, converted := all[0], all[last]
	out["entered"], out["converted"] = float64(entered), float64(converted)
	out["conversion_rate"] = countRatio(converted, entered)
	out["median_time_to_convert"] = 0
	if converted == 0 {
		return nil
	}
	// Exact: a walk of the funnel's converted entries in time-to-convert
	// order, counting those entered in the range, all in one index. It
	// costs half the funnel's conversions of all time whatever the range
	// (cheaper, measured, than reading a month's conversions out to sort).
	var mid []float64
	err := app.DB().NewQuery("SELECT convert_secs FROM " + FunnelEntriesCollection + " INDEXED BY idx_metrics_funnel_entries_convert" +
		" WHERE funnel = {:f} AND entered_at >= {:s} AND entered_at < {:e} AND reached = {:last} ORDER BY convert_secs LIMIT 2 OFFSET {:off}").
		Bind(dbx.Params{"f": fn.ID, "s": store.FormatTime(q.Start), "e": store.FormatTime(q.End), "last": last, "off": (converted - 1) / 2}).Column(&mid)
	if err != nil {
		return err
	}
	if len(mid) == 0 {
		return nil
	}
	out["median_time_to_convert"] = mid[0]
	if converted%2 == 0 && len(mid) == 2 {
		out["median_time_to_convert"] = (mid[0] + mid[1]) / 2
	}
	return nil
}

// bucketIndex maps each bucket start of q to its position.
func funnelBuckets(q Query) map[int64]int {
	idx := map[int64]int{}
	for i, b := range q.Buckets() {
		idx[b.Unix()] = i
	}
	return idx
}

// hourBucket places a UTC hour ("2006-01-02 15", the first 13 characters
// of a stored date) in its hourly bucket of q (a zone whose offset is not
// whole hours shifts points by that half hour).
func hourBucket(q Query, idx map[int64]int, hour string) (int, bool) {
	t, err := time.Parse("2006-01-02 15", hour)
	if err != nil {
		return 0, false
	}
	i, ok := idx[q.BucketOf(t).Unix()]
	return i, ok
}

func countRatio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// abandonment is one period's cart abandonment figures.
type abandonment struct {
	started, completed, abandoned, recovered map[string]int // by channel
	revenue                                  map[string]float64
	series                                   map[string][]float64 // started, abandoned, recovered per bucket
	unconverted                              int
}

// abandonmentReport: checkouts started in the range (one per checkout
// token), completed by an order of the same customer within the
// abandonment window (setting funnels.abandon_hours, default 24),
// abandoned once the window has passed without one, and recovered when a
// journey message reached the customer between the checkout and the
// order that completed it.
func (f *funnelPart) abandonmentReport(app core.App, q Query) (*Report, error) {
	if q.By != "" && q.By != "channel" {
		return nil, api.BadRequest("by", fmt.Sprintf("the abandonment report is by channel only, got %q", q.By))
	}
	hours := f.abandonHours()
	r := newReport("funnel", q)
	cur, err := f.abandonment(app, q, hours)
	if err != nil {
		return nil, err
	}
	base, _ := f.m.settings.currency(app)
	r.Currency = base
	cur.totals(r.Totals, hours)
	r.Series = &Series{Y: cur.series}
	for _, b := range q.Buckets() {
		r.Series.X = append(r.Series.X, b.Unix())
	}
	if q.Compare {
		prev, err := f.abandonment(app, q.Previous(), hours)
		if err != nil {
			return nil, err
		}
		prev.totals(r.Previous, hours)
		r.Series.Previous = prev.series
	}
	t := Table{Name: "abandonment", Title: "Cart abandonment by channel", Columns: []Column{
		{Key: "channel", Label: "Channel", Type: TypeText}, {Key: "started", Label: "Checkouts", Type: TypeNumber},
		{Key: "completed", Label: "Completed", Type: TypeNumber}, {Key: "abandoned", Label: "Abandoned", Type: TypeNumber},
		{Key: "abandonment_rate", Label: "Abandonment rate", Type: TypePercent}, {Key: "recovered", Label: "Recovered by journeys", Type: TypeNumber},
		{Key: "recovered_revenue", Label: "Recovered revenue", Type: TypeMoney},
	}, Rows: [][]any{}}
	for _, ch := range sortedKeys(intsToFloats(cur.started)) {
		label := ch
		if label == "" {
			label = "(unknown)"
		}
		t.Rows = append(t.Rows, []any{label, cur.started[ch], cur.completed[ch], cur.abandoned[ch],
			countRatio(cur.abandoned[ch], cur.completed[ch]+cur.abandoned[ch]), cur.recovered[ch], cur.revenue[ch]})
	}
	r.Tables = append(r.Tables, t)
	h := strconv.FormatFloat(hours, 'f', -1, 64)
	r.Notes = append(r.Notes, "A checkout is completed by an order of the same customer within "+h+" hours; checkouts younger than that are pending, neither completed nor abandoned.")
	if cur.unconverted > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d recovered orders have no exchange rate to %s and are not in recovered_revenue.", cur.unconverted, base))
	}
	return r, nil
}

func intsToFloats(m map[string]int) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = float64(v)
	}
	return out
}

func sum[V int | float64](m map[string]V) V {
	var s V
	for _, v := range m {
		s += v
	}
	return s
}

func (a *abandonment) totals(out map[string]float64, hours float64) {
	started, completed, abandoned := sum(a.started), sum(a.completed), sum(a.abandoned)
	out["checkouts_started"] = float64(started)
	out["checkouts_completed"] = float64(completed)
	out["checkouts_abandoned"] = float64(abandoned)
	out["checkouts_pending"] = float64(started - completed - abandoned)
	out["abandonment_rate"] = countRatio(abandoned, completed+abandoned)
	out["recovered_orders"] = float64(sum(a.recovered))
	out["recovered_revenue"] = sum(a.revenue)
	out["abandon_hours"] = hours
}

// completedSQL is true for a checkout whose next order came within the
// window ({:window} seconds).
const completedSQL = "(order_after >= 0 AND order_after < {:window})"

func (f *funnelPart) abandonment(app core.App, q Query, hours float64) (*abandonment, error) {
	completed := completedSQL
	p := dbx.Params{"s": store.FormatTime(q.Start), "e": store.FormatTime(q.End), "window": hours * 3600,
		"cutoff": store.FormatTime(q.Now.Add(-time.Duration(hours * float64(time.Hour))))}
	type dayCounts struct {
		Hour      string `db:"h"`
		Channel   string `db:"channel"`
		Started   int    `db:"started"`
		Completed int    `db:"completed"`
		Abandoned int    `db:"abandoned"`
	}
	var rows []dayCounts
	// Days that ended before the cutoff come from the per-day counts
	// (every checkout of them is either completed or abandoned); the
	// days since (the window's last day or so) from the checkouts.
	recentFrom := q.Start
	if from, to, ok := f.dailyDays(q); ok {
		if err := f.checkoutWindow(app, hours); err != nil {
			return nil, err
		}
		c := q.Now.Add(-time.Duration(hours * float64(time.Hour))).In(q.Loc)
		split := time.Date(c.Year(), c.Month(), c.Day(), 0, 0, 0, 0, q.Loc)
		if split.After(q.End) {
			split = q.End
		}
		if split.After(q.Start) {
			recentFrom = split
			if sd := split.Format(dayLayout); sd < to {
				to = sd
			}
			err := app.DB().NewQuery("SELECT day AS h, channel, started, completed, started - completed AS abandoned FROM " + CheckoutDailyCollection +
				" WHERE day >= {:fd} AND day < {:td} AND started != 0").Bind(dbx.Params{"fd": from, "td": to}).All(&rows)
			if err != nil {
				return nil, err
			}
		}
	}
	if recentFrom.Before(q.End) {
		var recent []dayCounts
		p["rs"] = store.FormatTime(recentFrom)
		err := app.DB().NewQuery("SELECT " + bucketSQL(q, "started_at") + " AS h, channel, COUNT(*) AS started, SUM(" + completed + ") AS completed, " +
			"SUM(NOT " + completed + " AND started_at < {:cutoff}) AS abandoned FROM " + CheckoutsCollection +
			" WHERE started_at >= {:rs} AND started_at < {:e} GROUP BY h, channel").Bind(p).All(&recent)
		if err != nil {
			return nil, err
		}
		rows = append(rows, recent...)
	}
	idx := funnelBuckets(q)
	a := &abandonment{started: map[string]int{}, completed: map[string]int{}, abandoned: map[string]int{},
		recovered: map[string]int{}, revenue: map[string]float64{},
		series: map[string][]float64{"started": make([]float64, len(idx)), "abandoned": make([]float64, len(idx)), "recovered": make([]float64, len(idx))}}
	for _, r := range rows {
		a.started[r.Channel] += r.Started
		a.completed[r.Channel] += r.Completed
		a.abandoned[r.Channel] += r.Abandoned
		if i, ok := bucketOfKey(q, idx, r.Hour); ok {
			a.series["started"][i] += float64(r.Started)
			a.series["abandoned"][i] += float64(r.Abandoned)
		}
	}

	// Recovered: completed checkouts with a journey's message sent to the
	// customer between the checkout and the order. One order recovers
	// once, however many checkouts it completed.
	var rec []struct {
		Hour     string  `db:"h"`
		Channel  string  `db:"channel"`
		Order    string  `db:"order_event"`
		Total    float64 `db:"order_total"`
		Currency string  `db:"order_currency"`
		Base     float64 `db:"amount_base"`
	}
	err := app.DB().NewQuery("SELECT " + bucketSQL(q, "started_at") + " AS h, channel, order_event, order_total, order_currency, " +
		"COALESCE((SELECT o.amount_base FROM " + OrdersCollection + " o WHERE o.event = order_event), 0) AS amount_base FROM " + CheckoutsCollection +
		" WHERE started_at >= {:s} AND started_at < {:e} AND recovered_run != '' AND " + completed + " ORDER BY started_at").Bind(p).All(&rec)
	if err != nil {
		return nil, err
	}
	base, rates := f.m.settings.currency(app)
	seen := map[string]bool{}
	for _, r := range rec {
		if seen[r.Order] {
			continue
		}
		seen[r.Order] = true
		a.recovered[r.Channel]++
		if i, ok := bucketOfKey(q, idx, r.Hour); ok {
			a.series["recovered"][i]++
		}
		switch {
		case r.Base > 0:
			a.revenue[r.Channel] += r.Base
		case r.Currency == "" || strings.EqualFold(r.Currency, base):
			a.revenue[r.Channel] += r.Total
		case rates[r.Currency] > 0:
			a.revenue[r.Channel] += r.Total * rates[r.Currency]
		default:
			a.unconverted++
		}
	}
	return a, nil
}
