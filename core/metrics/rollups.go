package metrics

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/store"
)

// rollups keeps metrics_orders (one fact per order event), metrics_customers
// (per buying customer, with the rows of metrics_daily they contribute) and
// metrics_daily (the sum of every customer's contribution).
//
// Everything a customer adds to metrics_daily is derived from their facts
// alone, so after any change (a new order, a merge, an un-merge, an
// erasure, new exchange rates) recompute re-derives the customer's whole
// contribution and applies only the difference to what it added before.
// Redelivered events add no fact (the event's record id is unique), so
// nothing is counted twice.
type rollups struct {
	m    *Module
	jobs jobs // the rebuild or re-rating running in the background (rebuild.go)
}

// Fact kinds (metrics_orders.kind).
const (
	kindOrder  = "order"
	kindRefund = "refund"
	kindCancel = "cancel"
)

// Where a fact's rate came from (metrics_orders.rate_from).
const (
	rateBase   = "base"   // the order is in the base currency
	rateVendor = "vendor" // the event carried it (exchange_rate, fx_rate)
	rateOwner  = "owner"  // the owner's or omni.yaml's rates
)

// amountKeys name an order's total, in the order they are tried (analytics
// libraries call it revenue, value or amount).
var amountKeys = []string{"total", "revenue", "value", "total_price", "amount"}

// orderIDKeys name the vendor's order id, tried in order.
var orderIDKeys = []string{"order_id", "order_name", "order_number", "checkout_id"}

// vendorRateKeys: one unit of the event's currency in the shop's base
// currency, as the vendor reported it. Accepted only when the event names
// no base_currency or names the shop's.
var vendorRateKeys = []string{"exchange_rate", "fx_rate"}

func factKind(typ string) string {
	switch typ {
	case events.OrderPlaced:
		return kindOrder
	case events.OrderRefunded:
		return kindRefund
	case events.OrderCancelled:
		return kindCancel
	}
	return ""
}

// item is one line of an order or a refund, as stored in metrics_orders.items.
type item struct {
	Key      string  `json:"key"` // sku, else title
	Quantity float64 `json:"quantity"`
	Amount   float64 `json:"amount"` // in the fact's currency
}

const insertFactSQL = `INSERT INTO metrics_orders (id, event, event_id, profile, kind, order_key, source, channel, campaign,
journey_run, occurred_at, day, currency, amount, rate, amount_base, items, duplicate, "returning", repeat_buyer, prev_day,
rate_from, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(event) DO NOTHING`

// process adds the batch's order facts and re-derives their customers.
// The new facts are classified with the customer's stored facts before
// they are written (so each is inserted once, with its flags), and the
// customers of the batch are read a chunk at a time: a batch costs a few
// statements per order, not a handful of queries per customer.
func (r *rollups) process(tx core.App, batch []*eventstore.Stored) error {
	var fresh []*fact
	var touched []string
	seen := map[string]bool{}
	var base string
	var rates map[string]float64
	for _, s := range batch {
		kind := factKind(s.Event.Type)
		if kind == "" || s.Profile == "" {
			continue
		}
		if fresh == nil {
			base, rates = r.m.settings.currency(tx)
		}
		f := r.m.newFact(s, kind, base, rates)
		f.id, f.event, f.eventID, f.source, f.profile = store.NewRecordID(), s.RecordID, s.Event.ID, s.Event.Source, s.Profile
		f.isNew = true
		fresh = append(fresh, f)
		if !seen[s.Profile] {
			seen[s.Profile] = true
			touched = append(touched, s.Profile)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	ex := store.Executor(tx)
	var eventIDs, orderKeys []any
	for _, f := range fresh {
		eventIDs = append(eventIDs, f.event)
		if f.kind == kindOrder {
			orderKeys = append(orderKeys, f.orderKey)
		}
	}
	// Redelivered events already have their fact: they add nothing.
	stored, err := columnSet(ex, "SELECT event FROM metrics_orders WHERE event IN (%s)", eventIDs)
	if err != nil {
		return err
	}
	// A second order.placed of an order already counted is a duplicate.
	// The unary + keep SQLite on the order_key index (kind and duplicate
	// alone would pick idx_metrics_orders_prev and scan every order).
	counted, err := columnSet(ex, "SELECT order_key FROM metrics_orders WHERE order_key IN (%s) AND +kind = 'order' AND +duplicate = 0", orderKeys)
	if err != nil {
		return err
	}
	added := map[string][]*fact{}
	for _, f := range fresh {
		if f.kind == kindOrder {
			f.duplicate = counted[f.orderKey]
			counted[f.orderKey] = true
		}
		if !stored[f.event] {
			stored[f.event] = true
			added[f.profile] = append(added[f.profile], f)
		}
	}
	return r.rederive(tx, touched, added)
}

// inChunk is how many values one IN (…) list binds (SQLite allows 32766
// variables; short lists keep each statement's plan small).
const inChunk = 500

// columnSet runs query (one %s for the IN list) over values, a chunk at a
// time, and returns the set of the first column's values.
func columnSet(ex dbx.Executor, query string, values []any) (map[string]bool, error) {
	out := map[string]bool{}
	for part := range slices.Chunk(values, inChunk) {
		rows, err := ex.Query(fmt.Sprintf(query, placeholders(len(part))), part...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return nil, err
			}
			out[v] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// placeholders is "?, ?, …" for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// recompute follows the customers' events (merges, un-merges, erasures
// moved or deleted them) and re-derives what they contribute.
func (r *rollups) recompute(tx core.App, profiles []string) error {
	return r.recomputeProfiles(tx, profiles, true)
}

func (r *rollups) reset(tx core.App) error {
	for _, t := range []string{OrdersCollection, CustomersCollection, DailyCollection} {
		if _, err := store.Executor(tx).Exec("DELETE FROM " + t); err != nil {
			return err
		}
	}
	return nil
}

// fact is one row of metrics_orders.
type fact struct {
	id, orderKey, kind, channel, campaign, journeyRun string
	at                                                time.Time
	atText                                            string // occurred_at as stored: facts sort by it, then by id
	day, currency, rateFrom                           string
	prevDay                                           string // the customer's previous counted order's day (counted orders only)
	amount, rate                                      float64
	items                                             []item
	duplicate, returning                              bool
	repeat                                            bool // the customer has two orders or more (repeat_buyer)

	// A fact of the batch being processed, not stored yet (process).
	isNew                           bool
	event, eventID, source, profile string
}

func (f *fact) base() float64 { return round6(f.amount * f.rate) }

// newFact reads an order event.
func (m *Module) newFact(s *eventstore.Stored, kind, base string, rates map[string]float64) *fact {
	ev := s.Event
	p := ev.Properties
	f := &fact{kind: kind, at: ev.OccurredAt, atText: store.FormatTime(ev.OccurredAt), channel: ev.Context.Channel, journeyRun: ev.Context.JourneyRun}
	if ev.Context.Campaign != nil {
		f.campaign = ev.Context.Campaign.Name
	}
	f.day = ev.OccurredAt.In(m.loc).Format(dayLayout)
	f.orderKey = ev.Source + ":" + orderID(p, ev.ID)
	for _, k := range amountKeys {
		if v, ok := number(p[k]); ok {
			f.amount = math.Abs(v)
			break
		}
	}
	f.currency = strings.ToUpper(strings.TrimSpace(str(p["currency"])))
	if f.currency == "" {
		f.currency = base
	}
	f.rate, f.rateFrom = rateOf(f.currency, base, rates, p)
	f.items = lineItems(p["line_items"])
	return f
}

// orderID is the vendor's id of the order an event is about (a refund's
// order_id names the order it refunds); without one the event is its own
// order.
func orderID(p map[string]any, eventID string) string {
	for _, k := range orderIDKeys {
		if s := str(p[k]); s != "" {
			return s
		}
	}
	return "event:" + eventID
}

// rateOf is one unit of currency in the base currency, and where it came
// from; 0 and "" when nobody has said.
func rateOf(currency, base string, rates map[string]float64, p map[string]any) (float64, string) {
	if currency == base {
		return 1, rateBase
	}
	if vb := strings.ToUpper(str(p["base_currency"])); vb == "" || vb == base {
		for _, k := range vendorRateKeys {
			if v, ok := number(p[k]); ok && v > 0 {
				return v, rateVendor
			}
		}
	}
	if v := rates[currency]; v > 0 {
		return v, rateOwner
	}
	return 0, ""
}

// lineItems reads line_items: the product key is the sku, else the title
// (or name); the line's amount is its total (total, subtotal, amount),
// else price × quantity less total_discount.
func lineItems(v any) []item {
	list, _ := v.([]any)
	out := make([]item, 0, len(list))
	for _, x := range list {
		li, ok := x.(map[string]any)
		if !ok {
			continue
		}
		it := item{Key: str(li["sku"]), Quantity: 1}
		for _, k := range []string{"title", "name"} {
			if it.Key == "" {
				it.Key = str(li[k])
			}
		}
		if it.Key == "" {
			continue
		}
		if q, ok := number(li["quantity"]); ok {
			it.Quantity = q
		}
		found := false
		for _, k := range []string{"total", "subtotal", "amount"} {
			if a, ok := number(li[k]); ok {
				it.Amount, found = math.Abs(a), true
				break
			}
		}
		if !found {
			if price, ok := number(li["price"]); ok {
				disc, _ := number(li["total_discount"])
				it.Amount = math.Max(0, price*it.Quantity-disc)
			}
		}
		out = append(out, it)
	}
	return out
}

// number reads a JSON number or a numeric string.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

// round6 keeps sums exact to a millionth whatever order they are added in:
// a rebuild and the incremental rollups give the same figures.
func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }

// dkey is one row of metrics_daily.
type dkey struct{ metric, day, dim, currency string }

// contribution is what one customer adds to metrics_daily: key → value, count.
type contribution map[dkey][2]float64

func (c contribution) add(metric, day, dim, currency string, value, count float64) {
	k := dkey{metric, day, dim, currency}
	v := c[k]
	c[k] = [2]float64{round6(v[0] + value), v[1] + count}
}

// MarshalJSON stores the contribution as [[metric, day, dim, currency, value, count], …], sorted.
// It is written by hand: every customer's contribution is written again on
// each of their orders, on the events path.
func (c contribution) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64*len(c)+2)
	b = append(b, '[')
	for i, k := range c.keys() {
		v := c[k]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for _, s := range [4]string{k.metric, k.day, k.dim, k.currency} {
			b = appendJSONString(b, s)
			b = append(b, ',')
		}
		b = appendJSONNumber(b, v[0])
		b = append(b, ',')
		b = appendJSONNumber(b, v[1])
		b = append(b, ']')
	}
	return append(b, ']'), nil
}

// appendJSONString quotes s; strings needing escapes go through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONNumber writes v as the shortest JSON number that reads back as v.
func appendJSONNumber(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, '0')
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func (c contribution) keys() []dkey {
	keys := make([]dkey, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		return a.metric+"\x00"+a.day+"\x00"+a.dim+"\x00"+a.currency < b.metric+"\x00"+b.day+"\x00"+b.dim+"\x00"+b.currency
	})
	return keys
}

func parseContribution(raw string) contribution {
	if c, ok := scanContribution(raw); ok {
		return c
	}
	c := contribution{}
	var rows [][]any
	if json.Unmarshal([]byte(raw), &rows) != nil {
		return c
	}
	for _, r := range rows {
		if len(r) != 6 {
			continue
		}
		v, _ := number(r[4])
		n, _ := number(r[5])
		c[dkey{str(r[0]), str(r[1]), str(r[2]), str(r[3])}] = [2]float64{v, n}
	}
	return c
}

// scanContribution reads what MarshalJSON wrote without encoding/json's
// reflection (it runs for every customer on each of their orders); false on
// anything else (escaped strings, other shapes), which the caller then
// reads with encoding/json.
func scanContribution(raw string) (contribution, bool) {
	c := contribution{}
	i := 0
	next := func(want byte) bool {
		if i < len(raw) && raw[i] == want {
			i++
			return true
		}
		return false
	}
	quoted := func() (string, bool) {
		if !next('"') {
			return "", false
		}
		j := strings.IndexByte(raw[i:], '"')
		if j < 0 || strings.IndexByte(raw[i:i+j], '\\') >= 0 {
			return "", false
		}
		s := raw[i : i+j]
		i += j + 1
		return strings.TrimSpace(s), true
	}
	num := func() (float64, bool) {
		j := i
		for j < len(raw) && raw[j] != ',' && raw[j] != ']' {
			j++
		}
		f, err := strconv.ParseFloat(raw[i:j], 64)
		i = j
		return f, err == nil
	}
	if !next('[') {
		return nil, false
	}
	if next(']') {
		return c, i == len(raw)
	}
	for {
		if !next('[') {
			return nil, false
		}
		var k [4]string
		for n := range k {
			s, ok := quoted()
			if !ok || !next(',') {
				return nil, false
			}
			k[n] = s
		}
		v, ok1 := num()
		if !ok1 || !next(',') {
			return nil, false
		}
		n, ok2 := num()
		if !ok2 || !next(']') {
			return nil, false
		}
		c[dkey{k[0], k[1], k[2], k[3]}] = [2]float64{v, n}
		if next(']') {
			return c, i == len(raw)
		}
		if !next(',') {
			return nil, false
		}
	}
}

// rollupStmts are the statements of a recompute, prepared once per call.
type rollupStmts struct {
	ex                                                                                          dbx.Executor
	insertFact, upsertDaily, zeroDaily, insertCustomer, updateCustomer, deleteCustomer, setFact *sql.Stmt
	created                                                                                     string          // the new facts' created, the customers' updated
	months                                                                                      map[string]bool // of the new facts (forgetMonths)
}

func (s *rollupStmts) close() {
	for _, st := range []*sql.Stmt{s.insertFact, s.upsertDaily, s.zeroDaily, s.insertCustomer, s.updateCustomer, s.deleteCustomer, s.setFact} {
		if st != nil {
			st.Close()
		}
	}
}

func prepareRollups(tx core.App) (*rollupStmts, error) {
	ex := store.Executor(tx)
	s := &rollupStmts{ex: ex, created: types.NowDateTime().String(), months: map[string]bool{}}
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&s.insertFact, insertFactSQL},
		{&s.upsertDaily, upsertDailySQL + "(?, ?, ?, ?, ?, ?, ?)" + onDailyConflict},
		{&s.zeroDaily, "DELETE FROM metrics_daily WHERE metric = ? AND day = ? AND dim = ? AND currency = ? AND count = 0 AND value = 0"},
		// A customer's row is inserted or updated as loadContribs found it
		// (an upsert pays for a failed insert first).
		{&s.insertCustomer, `INSERT INTO metrics_customers (first_order_at, first_month, first_channel, last_order_at, orders,
			net_base, months, contrib, updated, profile, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.updateCustomer, `UPDATE metrics_customers SET first_order_at = ?, first_month = ?, first_channel = ?, last_order_at = ?,
			orders = ?, net_base = ?, months = ?, contrib = ?, updated = ? WHERE profile = ?`},
		{&s.deleteCustomer, "DELETE FROM metrics_customers WHERE profile = ?"},
		{&s.setFact, `UPDATE metrics_orders SET "returning" = ?, channel = ?, repeat_buyer = ?, prev_day = ? WHERE id = ?`},
	} {
		st, err := ex.Prepare(p.sql)
		if err != nil {
			s.close()
			return nil, err
		}
		*p.st = st
	}
	return s, nil
}

const (
	upsertDailySQL  = "INSERT INTO metrics_daily (id, day, metric, dim, currency, value, count) VALUES "
	onDailyConflict = ` ON CONFLICT(metric, day, dim, currency) DO UPDATE SET value = round(value + excluded.value, 6), count = count + excluded.count`
)

// recomputeProfiles re-derives each customer's contribution and applies
// the difference. follow first moves facts to the profile their event
// belongs to now (and deletes facts whose event is gone); the profiles
// that gain facts are recomputed too.
func (r *rollups) recomputeProfiles(tx core.App, profiles []string, follow bool) error {
	if follow {
		var err error
		if profiles, err = r.follow(tx, profiles); err != nil {
			return err
		}
	}
	return r.rederive(tx, profiles, nil)
}

// rederive re-derives the given customers from their stored facts and
// the new facts of added (by profile; process), writes the new facts, the
// facts whose flags changed and the customers' rows, and applies the
// difference to metrics_daily. Customers are read a chunk at a time (two
// queries per chunk).
func (r *rollups) rederive(tx core.App, profiles []string, added map[string][]*fact) error {
	st, err := prepareRollups(tx)
	if err != nil {
		return err
	}
	defer st.close()
	// Each customer once: a chunk's rows are read before any is written.
	seen := make(map[string]bool, len(profiles))
	profiles = slices.DeleteFunc(slices.Clone(profiles), func(p string) bool {
		if p == "" || seen[p] {
			return true
		}
		seen[p] = true
		return false
	})
	// The customers' differences are summed first and metrics_daily takes
	// one upsert per row the batch changes: a busy day's orders of many
	// customers all move the same few rows (orders, customers_first, …).
	diff := contribution{}
	for chunk := range slices.Chunk(profiles, inChunk) {
		facts, err := st.loadFacts(chunk)
		if err != nil {
			return err
		}
		olds, err := st.loadContribs(chunk)
		if err != nil {
			return err
		}
		for _, p := range chunk {
			fs := facts[p]
			if len(added[p]) > 0 {
				fs = append(fs, added[p]...)
				sortFacts(fs)
			}
			old, hadRow := olds[p]
			if err := st.apply(p, fs, old, hadRow, diff); err != nil {
				return fmt.Errorf("metrics: recompute %s: %w", p, err)
			}
		}
	}
	if err := st.forgetMonths(); err != nil {
		return err
	}
	return st.addDaily(diff)
}

// forgetMonths drops the month rows of the sales report
// (sales_months.go) of the months the new facts fall in: the report works
// them out again. (Migration 1765001400 says why this is not a trigger.)
func (st *rollupStmts) forgetMonths() error {
	if len(st.months) == 0 {
		return nil
	}
	months := make([]string, 0, len(st.months))
	for mo := range st.months {
		months = append(months, mo)
	}
	for part := range slices.Chunk(months, inChunk) {
		if _, err := st.ex.Exec("DELETE FROM "+SalesMonthsCollection+" WHERE month IN ("+placeholders(len(part))+")", stringArgs(part)...); err != nil {
			return err
		}
	}
	return nil
}

// sortFacts puts a customer's facts in time order, as loadFacts reads them.
func sortFacts(fs []*fact) {
	slices.SortFunc(fs, func(a, b *fact) int {
		if c := strings.Compare(a.atText, b.atText); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
}

// follow re-points the facts of the given customers (and of the events
// they own now) at the events' current profile. It returns the given
// profiles and those that received facts.
func (r *rollups) follow(tx core.App, profiles []string) ([]string, error) {
	ex := store.Executor(tx)
	out := slices.Clone(profiles)
	seen := map[string]bool{}
	for _, p := range profiles {
		seen[p] = true
	}
	for _, p := range profiles {
		type move struct{ id, from, to string }
		var moves []move
		rows, err := ex.Query(`SELECT o.id, o.profile, e.profile FROM metrics_orders o LEFT JOIN events e ON e.id = o.event WHERE o.profile = ?
			UNION ALL SELECT o.id, o.profile, e.profile FROM events e JOIN metrics_orders o ON o.event = e.id
			WHERE e.profile = ? AND e.type IN ('order.placed', 'order.refunded', 'order.cancelled') AND o.profile != e.profile`, p, p)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var mv move
			var to sql.NullString
			if err := rows.Scan(&mv.id, &mv.from, &to); err != nil {
				rows.Close()
				return nil, err
			}
			if mv.to = to.String; mv.to != mv.from {
				moves = append(moves, mv)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		for _, mv := range moves {
			if mv.to == "" { // the event is gone (erased) or belongs to nobody
				_, err = ex.Exec("DELETE FROM metrics_orders WHERE id = ?", mv.id)
			} else {
				_, err = ex.Exec("UPDATE metrics_orders SET profile = ? WHERE id = ?", mv.to, mv.id)
			}
			if err != nil {
				return nil, err
			}
			for _, q := range []string{mv.from, mv.to} {
				if q != "" && !seen[q] {
					seen[q] = true
					out = append(out, q)
				}
			}
		}
	}
	return out, nil
}

// customerState is what recompute derives from one customer's facts.
type customerState struct {
	contrib                  contribution
	firstAt, lastAt          time.Time
	firstMonth, firstChannel string
	orders                   int
	netBase                  float64
	months                   []int
	changed                  []*fact // facts whose returning flag or channel changed
	hasFacts                 bool
}

// apply writes what derive makes of one customer's facts (time order):
// the new facts, the stored facts whose flags changed and the customer's
// row; the difference between what the customer adds to metrics_daily
// (day and month rows) now and added before (oldRaw) goes into diff.
func (st *rollupStmts) apply(profile string, facts []*fact, oldRaw string, hadRow bool, diff contribution) error {
	cs := derive(facts)
	for _, f := range facts {
		if f.isNew {
			if err := st.insert(f); err != nil {
				return err
			}
		}
	}
	for _, f := range cs.changed {
		if f.isNew {
			continue // written with its flags above
		}
		if _, err := st.setFact.Exec(f.returning, f.channel, f.repeat, f.prevDay, f.id); err != nil {
			return err
		}
	}
	// The difference between what the customer adds now and added before.
	old := parseContribution(oldRaw)
	for k, v := range cs.contrib {
		o := old[k]
		if d := [2]float64{round6(v[0] - o[0]), v[1] - o[1]}; d != [2]float64{} {
			diff.addRow(k, d)
		}
	}
	for k, o := range old {
		if _, ok := cs.contrib[k]; !ok {
			diff.addRow(k, [2]float64{-o[0], -o[1]})
		}
	}
	if !cs.hasFacts {
		if hadRow {
			_, err := st.deleteCustomer.Exec(profile)
			return err
		}
		return nil
	}
	contrib, _ := cs.contrib.MarshalJSON() // not json.Marshal: it would check and copy the output again
	months, _ := json.Marshal(cs.months)
	var first, last string
	if !cs.firstAt.IsZero() {
		first, last = store.FormatTime(cs.firstAt), store.FormatTime(cs.lastAt)
	}
	args := []any{first, cs.firstMonth, cs.firstChannel, last, cs.orders, round6(cs.netBase), string(months), string(contrib), st.created, profile}
	var err error
	if hadRow {
		_, err = st.updateCustomer.Exec(args...)
	} else {
		_, err = st.insertCustomer.Exec(append(args, store.NewRecordID())...)
	}
	return err
}

// insert stores a new fact with the flags derive gave it.
func (st *rollupStmts) insert(f *fact) error {
	items, _ := json.Marshal(f.items)
	res, err := st.insertFact.Exec(f.id, f.event, f.eventID, f.profile, f.kind, f.orderKey, f.source, f.channel, f.campaign,
		f.journeyRun, f.atText, f.day, f.currency, f.amount, f.rate, f.base(), string(items), f.duplicate, f.returning,
		f.repeat, f.prevDay, f.rateFrom, st.created)
	if err != nil {
		return fmt.Errorf("metrics: order fact of %s: %w", f.eventID, err)
	}
	// process checked the event has no fact yet, in this transaction: a
	// fact not written would be counted in the customer's contribution.
	if n, err := res.RowsAffected(); err == nil && n != 1 {
		return fmt.Errorf("metrics: order fact of %s: the event has a fact already", f.eventID)
	}
	st.months[month(f.day)] = true
	return nil
}

// addRow adds d to a row of metrics_daily and, for the metrics also kept
// by month, to its month row. Product and first-order rows are summed by
// month too (the sales and customers reports read whole months of a long
// range from them): the month row moves with the day row, so it is always
// their sum.
func (c contribution) addRow(k dkey, d [2]float64) {
	c.add(k.metric, k.day, k.dim, k.currency, d[0], d[1])
	if monthlyMetric[k.metric] {
		c.add(k.metric+"_month", month(k.day)+"-01", k.dim, k.currency, d[0], d[1])
	}
}

// monthlyMetric names the metrics also kept by month (metric + "_month",
// day = the month's 1st).
var monthlyMetric = map[string]bool{"product_sales": true, "product_refunds": true, "customers_first": true, "customers_first_orders": true}

// dailyChunk is how many rows one upsert into metrics_daily writes (the
// SQLite driver matches each bound value to its place by a scan of all of
// them: a statement of many values binds in quadratic time).
const dailyChunk = 16

// addDaily adds diff to metrics_daily, many rows per statement; a row
// back to nothing goes.
func (st *rollupStmts) addDaily(diff contribution) error {
	var args []any
	var shrunk []dkey
	var chunk *sql.Stmt
	flush := func(n int) error {
		var err error
		switch {
		case n == 0:
			return nil
		case n == 1:
			_, err = st.upsertDaily.Exec(args...)
		case n == dailyChunk:
			if chunk == nil {
				if chunk, err = st.ex.Prepare(upsertDailySQL + rowsSQL(n) + onDailyConflict); err != nil {
					return err
				}
			}
			_, err = chunk.Exec(args...)
		default:
			_, err = st.ex.Exec(upsertDailySQL+rowsSQL(n)+onDailyConflict, args...)
		}
		args = args[:0]
		return err
	}
	defer func() {
		if chunk != nil {
			chunk.Close()
		}
	}()
	n := 0
	for _, k := range diff.keys() {
		d := diff[k]
		if d == [2]float64{} {
			continue
		}
		args = append(args, store.NewRecordID(), k.day, k.metric, k.dim, k.currency, d[0], d[1])
		if d[0] < 0 || d[1] < 0 {
			shrunk = append(shrunk, k)
		}
		if n++; n == dailyChunk {
			if err := flush(n); err != nil {
				return err
			}
			n = 0
		}
	}
	if err := flush(n); err != nil {
		return err
	}
	for _, k := range shrunk {
		if _, err := st.zeroDaily.Exec(k.metric, k.day, k.dim, k.currency); err != nil {
			return err
		}
	}
	return nil
}

// rowsSQL is n rows of metrics_daily's seven values.
func rowsSQL(n int) string {
	return strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?), ", n), ", ")
}

// loadFacts reads the facts of a chunk of customers, each one's in time order.
func (st *rollupStmts) loadFacts(profiles []string) (map[string][]*fact, error) {
	rows, err := st.ex.Query(`SELECT profile, id, kind, order_key, channel, occurred_at, day, currency, amount, rate, items, duplicate,
		"returning", repeat_buyer, prev_day FROM metrics_orders WHERE profile IN (`+placeholders(len(profiles))+`)`, stringArgs(profiles)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]*fact{}
	for rows.Next() {
		f := &fact{}
		var profile, items string
		if err := rows.Scan(&profile, &f.id, &f.kind, &f.orderKey, &f.channel, &f.atText, &f.day, &f.currency, &f.amount, &f.rate, &items,
			&f.duplicate, &f.returning, &f.repeat, &f.prevDay); err != nil {
			return nil, err
		}
		if t, err := types.ParseDateTime(f.atText); err == nil {
			f.at = t.Time()
		}
		f.items = parseItems(items)
		out[profile] = append(out[profile], f)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, fs := range out {
		sortFacts(fs)
	}
	return out, nil
}

// loadContribs reads what a chunk of customers added to metrics_daily
// before (absent: no row).
func (st *rollupStmts) loadContribs(profiles []string) (map[string]string, error) {
	rows, err := st.ex.Query("SELECT profile, contrib FROM metrics_customers WHERE profile IN ("+placeholders(len(profiles))+")", stringArgs(profiles)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]string, len(profiles))
	for rows.Next() {
		var p, c string
		if err := rows.Scan(&p, &c); err != nil {
			return nil, err
		}
		out[p] = c
	}
	return out, rows.Err()
}

// stringArgs binds a list of strings to an IN (…) list.
func stringArgs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// derive classifies a customer's facts (time order) and computes their
// contribution to metrics_daily (the keys are documented in docs/metrics.md):
// the first counted order is new, later ones returning; a refund or a
// cancellation takes its order's flag and channel.
func derive(facts []*fact) *customerState {
	cs := &customerState{contrib: contribution{}, hasFacts: len(facts) > 0}
	type orderInfo struct {
		returning bool
		channel   string
	}
	orders := map[string]orderInfo{}
	cancelled := map[string]bool{}
	var firstDay string
	monthSet := map[int]bool{}
	set := func(f *fact, returning bool, channel string) {
		if f.returning != returning || f.channel != channel {
			f.returning, f.channel = returning, channel
			cs.changed = append(cs.changed, f)
		}
	}
	// prevDays are what each fact's prev_day should be: the day of the
	// customer's previous counted order, on counted orders only.
	prevDays := make([]string, len(facts))
	var lastDay string
	for i, f := range facts {
		c := cs.contrib
		switch f.kind {
		case kindOrder:
			if f.duplicate {
				set(f, false, f.channel)
				continue
			}
			returning := cs.orders > 0
			set(f, returning, f.channel)
			prevDays[i], lastDay = lastDay, f.day
			orders[f.orderKey] = orderInfo{returning, f.channel}
			if cs.orders == 0 {
				cs.firstAt, firstDay, cs.firstMonth, cs.firstChannel = f.at, f.day, month(f.day), f.channel
			}
			cs.orders++
			cs.lastAt = f.at
			monthSet[monthsBetween(cs.firstMonth, month(f.day))] = true
			if f.currency != "" {
				c.add("orders", f.day, "", f.currency, f.amount, 1)
			}
			if f.rate <= 0 {
				c.add("unconverted", f.day, f.currency, "", f.amount, 1)
				if cs.orders == 1 {
					c.add("customers_new", f.day, f.channel, "", 0, 1)
				}
				continue
			}
			b := f.base()
			cs.netBase += b
			c.add("orders", f.day, "", "", b, 1)
			c.add(newOrReturning("orders", returning), f.day, "", "", b, 1)
			c.add("channel_orders", f.day, f.channel, "", b, 1)
			for _, it := range f.items {
				c.add("product_sales", f.day, it.Key, "", round6(it.Amount*f.rate), it.Quantity)
			}
			if cs.orders == 1 {
				c.add("customers_new", firstDay, f.channel, "", b, 1)
			}
		case kindRefund:
			o, ok := orders[f.orderKey]
			if !ok { // an order we never saw: returning if they had ordered before
				o = orderInfo{cs.orders > 0, f.channel}
			}
			if o.channel == "" {
				o.channel = f.channel
			}
			set(f, o.returning, o.channel)
			if f.currency != "" {
				c.add("refunds", f.day, "", f.currency, f.amount, 1)
			}
			if f.rate <= 0 {
				c.add("unconverted", f.day, f.currency, "", f.amount, 1)
				continue
			}
			b := f.base()
			cs.netBase -= b
			c.add("refunds", f.day, "", "", b, 1)
			c.add(newOrReturning("refunds", o.returning), f.day, "", "", b, 1)
			c.add("channel_refunds", f.day, o.channel, "", b, 1)
			for _, it := range f.items {
				c.add("product_refunds", f.day, it.Key, "", round6(it.Amount*f.rate), it.Quantity)
			}
		case kindCancel:
			o, ok := orders[f.orderKey]
			if !ok {
				o = orderInfo{cs.orders > 0, f.channel}
			}
			set(f, o.returning, f.channel)
			if cancelled[f.orderKey] { // one order cancelled twice counts once
				continue
			}
			cancelled[f.orderKey] = true
			c.add("cancelled", f.day, "", "", 0, 1)
		}
	}
	// Every fact of a customer with two orders or more says so (the
	// sales report counts repeat buyers from idx_metrics_orders_prev).
	repeat := cs.orders >= 2
	for i, f := range facts {
		if f.repeat != repeat || f.prevDay != prevDays[i] {
			f.repeat, f.prevDay = repeat, prevDays[i]
			if !slices.Contains(cs.changed, f) {
				cs.changed = append(cs.changed, f)
			}
		}
	}
	for mo := range monthSet {
		cs.months = append(cs.months, mo)
	}
	slices.Sort(cs.months)
	if cs.months == nil {
		cs.months = []int{}
	}
	if cs.orders > 0 {
		cs.addBuyerRows(firstDay)
	}
	return cs
}

// addBuyerRows adds the customers report's rows of a buyer (so the report
// sums a few hundred daily rows, not every buyer's row): on the first
// order's day by first channel, customers_first (value = lifetime net in
// the base currency, count 1) and customers_first_orders (value = lifetime
// orders, count 1 when two or more); on the cohort month's 1st, one
// customers_cohort row per later month with an order (dim = the offset).
func (cs *customerState) addBuyerRows(firstDay string) {
	c := cs.contrib
	repeat := 0.0
	if cs.orders >= 2 {
		repeat = 1
	}
	c.add("customers_first", firstDay, cs.firstChannel, "", round6(cs.netBase), 1)
	c.add("customers_first_orders", firstDay, cs.firstChannel, "", float64(cs.orders), repeat)
	for _, k := range cs.months {
		if k >= 1 {
			c.add("customers_cohort", cs.firstMonth+"-01", strconv.Itoa(k), "", 0, 1)
		}
	}
}

func newOrReturning(metric string, returning bool) string {
	if returning {
		return metric + "_returning"
	}
	return metric + "_new"
}

func month(day string) string {
	if len(day) >= 7 {
		return day[:7]
	}
	return day
}

// monthsBetween counts whole calendar months from YYYY-MM a to b.
func monthsBetween(a, b string) int {
	ta, err1 := time.Parse("2006-01", a)
	tb, err2 := time.Parse("2006-01", b)
	if err1 != nil || err2 != nil {
		return 0
	}
	return (tb.Year()-ta.Year())*12 + int(tb.Month()) - int(ta.Month())
}

// parseItems reads metrics_orders.items. What json.Marshal wrote for
// []item ([{"key":"…","quantity":1,"amount":2.5}, …]) is scanned by hand
// (every fact of a customer is read again on each of their orders);
// anything else (escaped keys, older shapes) goes through encoding/json.
func parseItems(raw string) []item {
	if out, ok := scanItems(raw); ok {
		return out
	}
	var out []item
	_ = json.Unmarshal([]byte(raw), &out)
	return out
}

func scanItems(raw string) ([]item, bool) {
	const (
		keyField      = `{"key":"`
		quantityField = `,"quantity":`
		amountField   = `,"amount":`
	)
	if raw == "" || raw == "null" {
		return nil, true
	}
	if !strings.HasPrefix(raw, "[") {
		return nil, false
	}
	rest := raw[1:]
	out := []item{}
	if rest == "]" {
		return out, true
	}
	num := func(field string) (float64, bool) {
		if !strings.HasPrefix(rest, field) {
			return 0, false
		}
		rest = rest[len(field):]
		j := strings.IndexAny(rest, ",}")
		if j < 0 {
			return 0, false
		}
		f, err := strconv.ParseFloat(rest[:j], 64)
		rest = rest[j:]
		return f, err == nil
	}
	for {
		if !strings.HasPrefix(rest, keyField) {
			return nil, false
		}
		rest = rest[len(keyField):]
		j := strings.IndexByte(rest, '"')
		if j < 0 || strings.IndexByte(rest[:j], '\\') >= 0 {
			return nil, false
		}
		it := item{Key: rest[:j]}
		rest = rest[j+1:]
		var ok bool
		if it.Quantity, ok = num(quantityField); !ok {
			return nil, false
		}
		if it.Amount, ok = num(amountField); !ok {
			return nil, false
		}
		if !strings.HasPrefix(rest, "}") {
			return nil, false
		}
		rest = rest[1:]
		out = append(out, it)
		switch {
		case rest == "]":
			return out, true
		case strings.HasPrefix(rest, ","):
			rest = rest[1:]
		default:
			return nil, false
		}
	}
}
