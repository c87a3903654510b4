package metrics

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/store"
)

// attrTotals is the sums of one period under one model.
type attrTotals struct {
	all   attrSum
	byDim map[string]map[string]attrSum // breakdown → dim → sums
}

type attrSum struct {
	Credit                       float64
	Orders, Touches, Unconverted int
}

// attributionReport: GET /api/v1/metrics/attribution?model=…&by=…
// Totals attributed_revenue, orders, touches_per_order,
// agent_assisted_revenue, direct_revenue; tables by_channel, by_campaign,
// by_journey, by_agent (each summing to attributed_revenue) and models
// (every model's credit per channel); the series is attributed revenue per
// bucket, one line per value of by (default channel).
func (m *Module) attributionReport(app core.App, q Query) (*Report, error) {
	model := q.Params["model"]
	if model == "" {
		model = "linear"
	}
	if !slices.Contains(attrModels, model) {
		return nil, api.BadRequest("model", fmt.Sprintf("expected one of %s, got %q", strings.Join(attrModels, ", "), model))
	}
	by := q.By
	if by == "" {
		by = "channel"
	}
	if !slices.Contains(attrBreakdowns, by) {
		return nil, api.BadRequest("by", fmt.Sprintf("expected one of %s, got %q", strings.Join(attrBreakdowns, ", "), by))
	}
	r := newReport("attribution", q)
	r.Currency, _ = m.settings.currency(app)
	cur, err := attrSums(app, model, q)
	if err != nil {
		return nil, err
	}
	attrFillTotals(r.Totals, cur)
	if q.Compare {
		prev, err := attrSums(app, model, q.Previous())
		if err != nil {
			return nil, err
		}
		attrFillTotals(r.Previous, prev)
	}
	if r.Series, err = attrSeries(app, model, by, q); err != nil {
		return nil, err
	}
	names, err := attrNames(app, cur)
	if err != nil {
		return nil, err
	}
	titles := map[string]string{"channel": "Credit by channel", "campaign": "Credit by campaign", "journey": "Credit by journey",
		"agent": "Credit by agent (replies in the inbox)"}
	labels := map[string]string{"channel": "Channel", "campaign": "Campaign", "journey": "Journey", "agent": "Agent"}
	for _, b := range attrBreakdowns {
		t := Table{Name: "by_" + b, Title: titles[b], Columns: []Column{{Key: b, Label: labels[b], Type: TypeText},
			{Key: "credit", Label: "Credited revenue", Type: TypeMoney}, {Key: "share", Label: "Share", Type: TypePercent},
			{Key: "orders", Label: "Orders touched", Type: TypeNumber}}, Rows: [][]any{}}
		for _, d := range attrSortedDims(cur.byDim[b]) {
			s := cur.byDim[b][d]
			share := 0.0
			if cur.all.Credit > 0 {
				share = s.Credit / cur.all.Credit
			}
			t.Rows = append(t.Rows, []any{attrLabel(b, d, names), attrRound(s.Credit), share, s.Orders})
		}
		r.Tables = append(r.Tables, t)
	}
	models, err := attrModelsTable(app, q)
	if err != nil {
		return nil, err
	}
	r.Tables = append(r.Tables, models)
	r.Notes = append(r.Notes, "Credit is of each order's gross amount (refunds are in Sales), over the touches in the "+
		attrDaysText(m.attrSettings().LookbackDays)+" before it; an order with no touch is credited to direct.")
	if cur.all.Unconverted > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d orders have no exchange rate to %s and are not in the attributed revenue.",
			cur.all.Unconverted, cmp.Or(r.Currency, "the base currency")))
	}
	return r, nil
}

// attrSums reads one period's daily sums under model.
func attrSums(app core.App, model string, q Query) (attrTotals, error) {
	t := attrTotals{byDim: map[string]map[string]attrSum{}}
	var rows []struct {
		Breakdown   string  `db:"breakdown"`
		Dim         string  `db:"dim"`
		Credit      float64 `db:"credit"`
		Orders      int     `db:"orders"`
		Touches     int     `db:"touches"`
		Unconverted int     `db:"unconverted"`
	}
	err := app.DB().NewQuery(`SELECT breakdown, dim, SUM(credit_` + model + `) AS credit, SUM(orders) AS orders,
			SUM(touches) AS touches, SUM(unconverted) AS unconverted FROM ` + AttributionDailyCollection + `
		WHERE day >= {:from} AND day <= {:to} GROUP BY breakdown, dim`).
		Bind(dbx.Params{"from": q.From, "to": q.To}).All(&rows)
	for _, r := range rows {
		s := attrSum{Credit: r.Credit, Orders: r.Orders, Touches: r.Touches, Unconverted: r.Unconverted}
		if r.Breakdown == "all" {
			t.all = s
			continue
		}
		if t.byDim[r.Breakdown] == nil {
			t.byDim[r.Breakdown] = map[string]attrSum{}
		}
		t.byDim[r.Breakdown][r.Dim] = s
	}
	return t, err
}

func attrFillTotals(out map[string]float64, t attrTotals) {
	out["attributed_revenue"] = attrRound(t.all.Credit)
	out["orders"] = float64(t.all.Orders)
	out["touches_per_order"] = 0
	if t.all.Orders > 0 {
		out["touches_per_order"] = float64(t.all.Touches) / float64(t.all.Orders)
	}
	var agent float64
	for d, s := range t.byDim["agent"] {
		if d != "" {
			agent += s.Credit
		}
	}
	out["agent_assisted_revenue"] = attrRound(agent)
	out["direct_revenue"] = attrRound(t.byDim["channel"]["direct"].Credit)
	out["unconverted_orders"] = float64(t.all.Unconverted)
}

// attrSeries is credited revenue per bucket, one line per value of by
// and attributed_revenue for all. Hourly buckets read the credits
// themselves (a range of a day or two); the others the daily sums.
func attrSeries(app core.App, model, by string, q Query) (*Series, error) {
	buckets := q.Buckets()
	s := &Series{X: make([]int64, len(buckets)), Y: map[string][]float64{"attributed_revenue": make([]float64, len(buckets))}}
	index := map[int64]int{}
	for i, b := range buckets {
		s.X[i] = b.Unix()
		index[b.Unix()] = i
	}
	fill := func(dst map[string][]float64, q Query, offset map[int64]int, at time.Time, dim string, credit float64) {
		i, ok := offset[q.BucketOf(at).Unix()]
		if !ok {
			return
		}
		if dst[dim] == nil {
			dst[dim] = make([]float64, len(buckets))
		}
		dst[dim][i] += credit
	}
	read := func(q Query, dst map[string][]float64) error {
		offset := map[int64]int{}
		for i, b := range q.Buckets() {
			offset[b.Unix()] = i
		}
		if q.Bucket == "hour" {
			var rows []struct {
				At     string  `db:"order_at"`
				Dim    string  `db:"dim"`
				Credit float64 `db:"credit"`
			}
			err := app.DB().NewQuery(`SELECT order_at, ` + by + ` AS dim, amount * share_` + model + ` AS credit FROM ` + CreditsCollection + `
				WHERE order_at >= {:from} AND order_at < {:to} AND NOT unconverted`).
				Bind(dbx.Params{"from": store.FormatTime(q.Start), "to": store.FormatTime(q.End)}).All(&rows)
			for _, r := range rows {
				at := attrTime(r.At)
				fill(dst, q, offset, at, r.Dim, r.Credit)
				fill(dst, q, offset, at, "attributed_revenue", r.Credit)
			}
			return err
		}
		var rows []struct {
			Day    string  `db:"day"`
			Dim    string  `db:"dim"`
			Credit float64 `db:"credit"`
		}
		err := app.DB().NewQuery(`SELECT day, dim, credit_` + model + ` AS credit FROM ` + AttributionDailyCollection + `
			WHERE breakdown = {:by} AND day >= {:from} AND day <= {:to}`).
			Bind(dbx.Params{"by": by, "from": q.From, "to": q.To}).All(&rows)
		for _, r := range rows {
			at, perr := time.ParseInLocation(dayLayout, r.Day, q.Loc)
			if perr != nil {
				continue
			}
			fill(dst, q, offset, at, r.Dim, r.Credit)
			fill(dst, q, offset, at, "attributed_revenue", r.Credit)
		}
		return err
	}
	if err := read(q, s.Y); err != nil {
		return nil, err
	}
	if q.Compare {
		s.Previous = map[string][]float64{}
		if err := read(q.Previous(), s.Previous); err != nil {
			return nil, err
		}
	}
	// A line per dimension value, keyed by the value ("" = none of them).
	for k, v := range s.Y {
		for i := range v {
			v[i] = attrRound(v[i])
		}
		if k == "" {
			s.Y["(none)"] = v
			delete(s.Y, k)
		}
	}
	for k, v := range s.Previous {
		for i := range v {
			v[i] = attrRound(v[i])
		}
		if k == "" {
			s.Previous["(none)"] = v
			delete(s.Previous, k)
		}
	}
	return s, nil
}

// attrModelsTable is every model's credit per channel in the range, so
// the page can show how the shares move from one model to another.
func attrModelsTable(app core.App, q Query) (Table, error) {
	t := Table{Name: "models", Title: "Credit by channel under each model", Columns: []Column{{Key: "channel", Label: "Channel", Type: TypeText}},
		Rows: [][]any{}}
	labels := map[string]string{"first": "First touch", "last": "Last touch", "linear": "Linear", "position": "Position (40/20/40)",
		"time_decay": "Time decay"}
	for _, m := range attrModels {
		t.Columns = append(t.Columns, Column{Key: m, Label: labels[m], Type: TypeMoney})
	}
	var rows []struct {
		Dim string  `db:"dim"`
		C0  float64 `db:"c0"`
		C1  float64 `db:"c1"`
		C2  float64 `db:"c2"`
		C3  float64 `db:"c3"`
		C4  float64 `db:"c4"`
	}
	err := app.DB().NewQuery(`SELECT dim, SUM(credit_first) AS c0, SUM(credit_last) AS c1, SUM(credit_linear) AS c2,
			SUM(credit_position) AS c3, SUM(credit_time_decay) AS c4 FROM ` + AttributionDailyCollection + `
		WHERE breakdown = 'channel' AND day >= {:from} AND day <= {:to} GROUP BY dim`).
		Bind(dbx.Params{"from": q.From, "to": q.To}).All(&rows)
	if err != nil {
		return t, err
	}
	credit := map[string][5]float64{} // channel → credit per model
	totals := map[string]float64{}
	for _, r := range rows {
		credit[r.Dim] = [5]float64{r.C0, r.C1, r.C2, r.C3, r.C4}
		totals[r.Dim] = r.C0 + r.C1 + r.C2 + r.C3 + r.C4
	}
	channels := make([]string, 0, len(credit))
	for c := range credit {
		channels = append(channels, c)
	}
	slices.SortFunc(channels, func(a, b string) int { return cmp.Or(cmp.Compare(totals[b], totals[a]), cmp.Compare(a, b)) })
	for _, c := range channels {
		row := []any{c}
		for m := range attrModels {
			row = append(row, attrRound(credit[c][m]))
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// attrNames maps journey ids to their names and staff ids to theirs.
func attrNames(app core.App, t attrTotals) (map[string]string, error) {
	names := map[string]string{}
	look := func(table, col string, ids map[string]attrSum) {
		var keys []any
		for id := range ids {
			if id != "" {
				keys = append(keys, id)
			}
		}
		if len(keys) == 0 {
			return
		}
		var rows []struct {
			ID   string `db:"id"`
			Name string `db:"name"`
		}
		// A module left out (no such table) leaves the ids as they are.
		_ = app.DB().Select("id", col+" AS name").From(table).Where(dbx.In("id", keys...)).All(&rows)
		for _, r := range rows {
			if r.Name != "" {
				names[r.ID] = r.Name
			}
		}
	}
	look("journeys", "name", t.byDim["journey"])
	look("staff", "COALESCE(NULLIF(name, ''), email)", t.byDim["agent"])
	return names, nil
}

func attrLabel(by, dim string, names map[string]string) string {
	if dim == "" {
		return map[string]string{"channel": "(unknown)", "campaign": "(no campaign)", "journey": "(no journey)", "agent": "(no agent)"}[by]
	}
	if n, ok := names[dim]; ok {
		return n
	}
	return dim
}

// attrSortedDims orders a breakdown by credit, largest first.
func attrSortedDims(m map[string]attrSum) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(m[b].Credit, m[a].Credit), cmp.Compare(a, b)) })
	return keys
}

// attrRound drops float noise from sums of shares (to a millionth).
func attrRound(v float64) float64 {
	if v == 0 {
		return 0
	}
	return float64(int64(v*1e6+attrCopysign(0.5, v))) / 1e6
}

func attrCopysign(h, v float64) float64 {
	if v < 0 {
		return -h
	}
	return h
}

func attrDaysText(d float64) string {
	if d == 1 {
		return "day"
	}
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.2f", d), "0"), ".0") + " days"
}
