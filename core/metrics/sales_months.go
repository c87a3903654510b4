package metrics

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/store"
)

// A long sales range reads its whole past months from metrics_sales_months
// (1765001100_metrics_sales_months.go): a year is 12 rows instead of 365
// days of rows per metric, and its distinct buyers a sum over 12 short
// lists instead of a count over every order. The rest of the range (the
// days before its first whole month and after its last) is read as
// before.

// salesMonth is one month's row.
type salesMonth struct {
	month string     // YYYY-MM
	sums  []monthSum // its metrics_daily sales rows summed by metric, dim, currency
	// buyers: its counted orders by the previous order's day, ascending
	buyers []monthBuyers
}

type monthSum struct {
	Metric, Dim, Currency string
	Value, Count          float64
}

type monthBuyers struct {
	PrevDay        string
	Orders, Repeat float64
}

func (s monthSum) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{s.Metric, s.Dim, s.Currency, s.Value, s.Count})
}

func (s *monthSum) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &[]any{&s.Metric, &s.Dim, &s.Currency, &s.Value, &s.Count})
}

func (b monthBuyers) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{b.PrevDay, b.Orders, b.Repeat})
}

func (b *monthBuyers) UnmarshalJSON(raw []byte) error {
	return json.Unmarshal(raw, &[]any{&b.PrevDay, &b.Orders, &b.Repeat})
}

// buyersBefore: of the month's orders, those whose customer's previous
// order is before day from, and how many of those are repeat buyers.
func (m *salesMonth) buyersBefore(from string) (orders, repeat float64) {
	n := sort.Search(len(m.buyers), func(i int) bool { return m.buyers[i].PrevDay >= from })
	for _, b := range m.buyers[:n] {
		orders += b.Orders
		repeat += b.Repeat
	}
	return orders, repeat
}

// cachedMonths names the whole months of q the month rows can answer:
// lo and hi (their 1st days) and after (the day after hi's month); ""
// when none. Only months before the current one: a month still under
// way changes with every order.
func cachedMonths(q Query) (lo, hi, after string) {
	lo, hi, after = wholeMonths(q.From, q.To)
	if lo == "" {
		return "", "", ""
	}
	now := q.Now.In(q.Loc)
	current := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).Format(dayLayout)
	if after > current {
		h, _ := time.Parse(dayLayout, current)
		hi, after = h.AddDate(0, -1, 0).Format(dayLayout), current
	}
	if hi < lo {
		return "", "", ""
	}
	return lo, hi, after
}

// salesMonths reads the month rows from lo to hi (1st days), working out
// those missing.
func salesMonths(app core.App, lo, hi string) ([]*salesMonth, error) {
	read := func(db dbx.Builder) (map[string]*salesMonth, error) {
		var rows []struct {
			Month  string `db:"month"`
			Sums   string `db:"sums"`
			Buyers string `db:"buyers"`
		}
		if err := db.NewQuery("SELECT month, sums, buyers FROM " + SalesMonthsCollection + " WHERE month >= {:lo} AND month <= {:hi}").
			Bind(dbx.Params{"lo": lo[:7], "hi": hi[:7]}).All(&rows); err != nil {
			return nil, err
		}
		out := map[string]*salesMonth{}
		for _, r := range rows {
			m := &salesMonth{month: r.Month}
			if json.Unmarshal([]byte(r.Sums), &m.sums) == nil && json.Unmarshal([]byte(r.Buyers), &m.buyers) == nil {
				out[r.Month] = m
			}
		}
		return out, nil
	}
	var months []string
	first, _ := time.Parse(dayLayout, lo)
	last, _ := time.Parse(dayLayout, hi)
	for d := first; !d.After(last); d = d.AddDate(0, 1, 0) {
		months = append(months, d.Format("2006-01"))
	}
	have, err := read(app.DB())
	if err != nil {
		return nil, err
	}
	if len(have) < len(months) {
		// Worked out in a write transaction: no row of the month can
		// change between reading and storing (the triggers would not see
		// a change made in between).
		err := app.RunInTransaction(func(tx core.App) error {
			var err error
			if have, err = read(tx.DB()); err != nil {
				return err
			}
			for _, m := range months {
				if have[m] != nil {
					continue
				}
				row, err := workOutMonth(tx.DB(), m)
				if err != nil {
					return err
				}
				have[m] = row
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	out := make([]*salesMonth, 0, len(months))
	for _, m := range months {
		out = append(out, have[m])
	}
	return out, nil
}

// workOutMonth adds up one month's rows and stores them.
func workOutMonth(db dbx.Builder, month string) (*salesMonth, error) {
	start, _ := time.Parse("2006-01", month)
	p := dbx.Params{"from": start.Format(dayLayout), "to": start.AddDate(0, 1, 0).Format(dayLayout)}
	m := &salesMonth{month: month}
	if err := db.NewQuery(`SELECT metric, dim, currency, SUM(value) AS value, SUM(count) AS count FROM ` + DailyCollection + `
		WHERE metric IN (` + salesMetricsSQL() + `) AND day >= {:from} AND day < {:to} GROUP BY metric, dim, currency ORDER BY metric, dim, currency`).
		Bind(p).All(&m.sums); err != nil {
		return nil, err
	}
	for i := range m.sums {
		m.sums[i].Value = round6(m.sums[i].Value)
	}
	var buyers []struct {
		PrevDay string  `db:"prev_day"`
		Orders  float64 `db:"orders"`
		Repeat  float64 `db:"repeat"`
	}
	if err := db.NewQuery(`SELECT prev_day, COUNT(*) AS orders, TOTAL(repeat_buyer) AS repeat FROM ` + OrdersCollection + ` INDEXED BY idx_metrics_orders_prev
		WHERE kind = 'order' AND duplicate = 0 AND day >= {:from} AND day < {:to} AND profile != '' GROUP BY prev_day ORDER BY prev_day`).
		Bind(p).All(&buyers); err != nil {
		return nil, err
	}
	for _, b := range buyers {
		m.buyers = append(m.buyers, monthBuyers{b.PrevDay, b.Orders, b.Repeat})
	}
	if m.sums == nil {
		m.sums = []monthSum{}
	}
	if m.buyers == nil {
		m.buyers = []monthBuyers{}
	}
	sums, _ := json.Marshal(m.sums)
	buyersJSON, _ := json.Marshal(m.buyers)
	_, err := db.NewQuery("INSERT INTO " + SalesMonthsCollection + ` (id, month, sums, buyers) VALUES ({:id}, {:m}, {:s}, {:b})
		ON CONFLICT(month) DO UPDATE SET sums = excluded.sums, buyers = excluded.buyers`).
		Bind(dbx.Params{"id": store.NewRecordID(), "m": month, "s": string(sums), "b": string(buyersJSON)}).Execute()
	return m, err
}

func salesMetricsSQL() string {
	out := make([]string, len(salesMetrics))
	for i, v := range salesMetrics {
		out[i] = "'" + v.(string) + "'"
	}
	return strings.Join(out, ", ")
}

// countBuyersIn: of the counted orders from day lo to day hi (inclusive),
// those whose customer's previous order is before day from (each buyer's
// first order in a range starting at from), and their repeat buyers.
func countBuyersIn(db dbx.Builder, from, lo, hi string) (buyers, repeat float64, err error) {
	var row struct {
		Buyers float64 `db:"buyers"`
		Repeat float64 `db:"repeat"`
	}
	err = db.NewQuery(`SELECT COUNT(*) AS buyers, TOTAL(repeat_buyer) AS repeat FROM metrics_orders INDEXED BY idx_metrics_orders_prev
		WHERE kind = 'order' AND duplicate = 0 AND day >= {:lo} AND day <= {:hi} AND prev_day < {:from} AND profile != ''`).
		Bind(dbx.Params{"from": from, "lo": lo, "hi": hi}).One(&row)
	return row.Buyers, row.Repeat, err
}
