package metrics

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
)

// Report is the answer of every GET /api/v1/metrics/{name}: totals for the
// range (and the previous one beside them), a series ready for a chart and
// the breakdown tables behind it. The same shape for every report, so the
// admin draws any of them with one set of components and exports any table
// as CSV (?format=csv&table=NAME; without table, the first).
type Report struct {
	Report   string `json:"report"`   // sales, customers, funnel, journeys, inbox, attribution
	From     string `json:"from"`     // first day, YYYY-MM-DD in the shop's time zone
	To       string `json:"to"`       // last day (inclusive)
	Timezone string `json:"timezone"` // the shop's (messaging.timezone)
	Bucket   string `json:"bucket"`   // hour | day | week | month: one point of Series
	// Currency is the base currency money figures are in ("" when none is
	// known yet: then only the per-currency tables have money).
	Currency string `json:"currency,omitempty"`
	// Compare is the previous period of the same length, when asked for
	// (compare=previous).
	Compare *Period `json:"compare,omitempty"`
	// Totals of the range, by metric key (net_revenue, orders, aov, …).
	Totals map[string]float64 `json:"totals"`
	// Previous holds the same keys for Compare.
	Previous map[string]float64 `json:"previous,omitempty"`
	Series   *Series            `json:"series,omitempty"`
	Tables   []Table            `json:"tables"`
	// Notes say what a figure leaves out (e.g. "2 orders in JPY have no
	// exchange rate and are not in net_revenue").
	Notes []string `json:"notes,omitempty"`
}

// Period is a range of whole days in the shop's zone.
type Period struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Series is one chart: X holds each bucket's start (Unix seconds), Y each
// line's values by metric key (same length as X). Previous holds the
// previous period's values at the same offsets (bucket i of the previous
// period beside bucket i of this one).
type Series struct {
	X        []int64              `json:"x"`
	Y        map[string][]float64 `json:"y"`
	Previous map[string][]float64 `json:"previous,omitempty"`
}

// Table is a breakdown (by channel, product, cohort, agent, …).
type Table struct {
	Name    string   `json:"name"`  // key for ?table= and the CSV file name
	Title   string   `json:"title"` // shown above it
	Columns []Column `json:"columns"`
	Rows    [][]any  `json:"rows"` // each row has one value per column
}

// Column types tell the admin how to format a value.
const (
	TypeText     = "text"
	TypeNumber   = "number"
	TypeMoney    = "money"    // in Report.Currency unless the row has a currency column
	TypePercent  = "percent"  // a share 0..1
	TypeDuration = "duration" // seconds
	TypeDate     = "date"     // YYYY-MM-DD or YYYY-MM
)

// Column is one column of a Table.
type Column struct {
	Key   string `json:"key"`
	Label string `json:"label"`
	Type  string `json:"type"`
}

// Query is a report request: the range in the shop's zone and the options
// every report shares. Reports read their own extra parameters from Params
// (by=, model=, funnel=, …).
type Query struct {
	Loc     *time.Location
	Start   time.Time // first instant of From, in Loc
	End     time.Time // first instant after To, in Loc (exclusive)
	From    string
	To      string
	Bucket  string // hour | day | week | month
	Compare bool   // compare=previous
	By      string // a report-specific breakdown, "" when none
	Params  map[string]string
	Now     time.Time
}

// Previous is the period of the same length just before q.
func (q Query) Previous() Query {
	p := q
	days := int(q.End.Sub(q.Start).Round(time.Hour).Hours()/24 + 0.5)
	p.End = q.Start
	p.Start = q.Start.AddDate(0, 0, -days)
	p.From, p.To = p.Start.Format(dayLayout), p.End.AddDate(0, 0, -1).Format(dayLayout)
	p.Compare = false
	return p
}

// Buckets returns the start of every bucket of q, in order.
func (q Query) Buckets() []time.Time {
	var out []time.Time
	for t := q.Start; t.Before(q.End); t = nextBucket(t, q.Bucket) {
		out = append(out, t)
	}
	return out
}

// BucketOf returns the start of the bucket t falls in.
func (q Query) BucketOf(t time.Time) time.Time {
	t = t.In(q.Loc)
	switch q.Bucket {
	case "hour":
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, q.Loc)
	case "week": // weeks start on Monday
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, q.Loc)
		return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
	case "month":
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, q.Loc)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, q.Loc)
}

func nextBucket(t time.Time, bucket string) time.Time {
	switch bucket {
	case "hour":
		return t.Add(time.Hour)
	case "week":
		return t.AddDate(0, 0, 7)
	case "month":
		return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, t.Location())
	}
	return t.AddDate(0, 0, 1)
}

const dayLayout = "2006-01-02"

// maxDays bounds a range (a little over two years of daily rollups).
const maxDays = 800

// parseQuery reads from, to, range, compare, by and bucket. Ranges are
// whole days in the shop's zone: from=2026-11-01&to=2026-11-30, or
// range=today|yesterday|7d|30d|90d|12m (ending today). Without either,
// the last 30 days.
func parseQuery(r *http.Request, loc *time.Location, now time.Time) (Query, error) {
	v := r.URL.Query()
	q := Query{Loc: loc, Now: now, Params: map[string]string{}}
	for k := range v {
		q.Params[k] = v.Get(k)
	}
	today := time.Date(now.In(loc).Year(), now.In(loc).Month(), now.In(loc).Day(), 0, 0, 0, 0, loc)
	from, to := v.Get("from"), v.Get("to")
	switch {
	case from != "" || to != "":
		if from == "" {
			return q, api.BadRequest("from", "give the first day as YYYY-MM-DD along with to")
		}
		f, err := time.ParseInLocation(dayLayout, from, loc)
		if err != nil {
			return q, api.BadRequest("from", fmt.Sprintf("expected a day as YYYY-MM-DD, got %q", from))
		}
		t := today
		if to != "" {
			if t, err = time.ParseInLocation(dayLayout, to, loc); err != nil {
				return q, api.BadRequest("to", fmt.Sprintf("expected a day as YYYY-MM-DD, got %q", to))
			}
		}
		if t.Before(f) {
			return q, api.BadRequest("to", "the last day is before the first (from)")
		}
		q.Start, q.End = f, t.AddDate(0, 0, 1)
	default:
		rng := v.Get("range")
		if rng == "" {
			rng = "30d"
		}
		q.End = today.AddDate(0, 0, 1)
		switch rng {
		case "today":
			q.Start = today
		case "yesterday":
			q.Start, q.End = today.AddDate(0, 0, -1), today
		case "7d":
			q.Start = today.AddDate(0, 0, -6)
		case "30d":
			q.Start = today.AddDate(0, 0, -29)
		case "90d":
			q.Start = today.AddDate(0, 0, -89)
		case "12m":
			q.Start = today.AddDate(-1, 0, 1)
		default:
			return q, api.BadRequest("range", fmt.Sprintf("expected today, yesterday, 7d, 30d, 90d or 12m (or from and to), got %q", rng))
		}
	}
	if q.End.Sub(q.Start) > maxDays*24*time.Hour {
		return q, api.BadRequest("from", fmt.Sprintf("a range may span at most %d days", maxDays))
	}
	q.From, q.To = q.Start.Format(dayLayout), q.End.AddDate(0, 0, -1).Format(dayLayout)
	switch c := v.Get("compare"); c {
	case "", "none":
	case "previous":
		q.Compare = true
	default:
		return q, api.BadRequest("compare", fmt.Sprintf("expected previous or none, got %q", c))
	}
	q.By = v.Get("by")
	days := q.End.Sub(q.Start).Hours() / 24
	switch b := v.Get("bucket"); b {
	case "":
		switch {
		case days <= 2:
			q.Bucket = "hour"
		case days <= 92:
			q.Bucket = "day"
		case days <= 200:
			q.Bucket = "week"
		default:
			q.Bucket = "month"
		}
	case "hour", "day", "week", "month":
		if b == "hour" && days > 31 {
			return q, api.BadRequest("bucket", "hourly points are for ranges of up to 31 days")
		}
		q.Bucket = b
	default:
		return q, api.BadRequest("bucket", fmt.Sprintf("expected hour, day, week or month, got %q", b))
	}
	return q, nil
}

// newReport starts a report for q.
func newReport(name string, q Query) *Report {
	r := &Report{Report: name, From: q.From, To: q.To, Timezone: q.Loc.String(), Bucket: q.Bucket,
		Totals: map[string]float64{}, Tables: []Table{}}
	if q.Compare {
		p := q.Previous()
		r.Compare = &Period{From: p.From, To: p.To}
		r.Previous = map[string]float64{}
	}
	return r
}

// writeReport answers JSON, or one table as CSV when format=csv.
func writeReport(e *core.RequestEvent, r *Report) error {
	switch f := e.Request.URL.Query().Get("format"); f {
	case "", "json":
		return e.JSON(http.StatusOK, r)
	case "csv":
	default:
		return api.BadRequest("format", fmt.Sprintf("expected json or csv, got %q", f))
	}
	name := e.Request.URL.Query().Get("table")
	var t *Table
	for i := range r.Tables {
		if name == "" || r.Tables[i].Name == name {
			t = &r.Tables[i]
			break
		}
	}
	if t == nil && name != "" {
		names := make([]string, len(r.Tables))
		for i, x := range r.Tables {
			names[i] = x.Name
		}
		return api.BadRequest("table", fmt.Sprintf("the %s report has no table %q (it has: %s)", r.Report, name, strings.Join(names, ", ")))
	}
	if t == nil { // no tables: the totals
		t = &Table{Name: "totals", Columns: []Column{{Key: "metric", Label: "Metric"}, {Key: "value", Label: "Value"}}}
		for _, k := range sortedKeys(r.Totals) {
			t.Rows = append(t.Rows, []any{k, r.Totals[k]})
		}
	}
	h := e.Response.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="omni-%s-%s-%s-%s.csv"`, r.Report, t.Name, r.From, r.To))
	e.Response.WriteHeader(http.StatusOK)
	w := csv.NewWriter(e.Response)
	head := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		head[i] = c.Label
	}
	_ = w.Write(head)
	for _, row := range t.Rows {
		rec := make([]string, len(row))
		for i, v := range row {
			rec[i] = csvCell(v)
		}
		_ = w.Write(rec)
	}
	w.Flush()
	return w.Error()
}

func csvCell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		// A cell starting with = + - @ would be a formula in a spreadsheet.
		if x != "" && strings.ContainsRune("=+-@\t\r", rune(x[0])) {
			if _, err := strconv.ParseFloat(x, 64); err != nil {
				return "'" + x
			}
		}
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
