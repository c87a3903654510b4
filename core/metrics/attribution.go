package metrics

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/store"
)

// Collections of the attribution part.
const (
	TouchesCollection          = "metrics_touches"
	CreditsCollection          = "metrics_credits"
	AttributionDailyCollection = "metrics_attribution_daily"
)

// attribution keeps every customer's touches (web visits excepted: those
// are read from the events table) and each order's credit under the five
// models. A new touch re-credits the customer's orders
// it may reach (those within the lookback after it, for touches that
// arrive late); a stored order is credited from the touches before it.
// Credits are of the order's gross amount in the base currency: refunds
// are reported by Sales, not taken off a channel's credit.
type attribution struct{ m *Module }

// attrOrder is what crediting needs of an order.placed.
type attrOrder struct {
	Event, Key, Profile string
	At                  time.Time
	Amount              float64 // base currency; 0 when unconverted
	Unconverted         bool    // no rate from its currency to the base
}

func (a *attribution) process(tx core.App, batch []*eventstore.Stored) error {
	w := a.begin(tx)
	defer w.close()
	var touches []attrTouchRow
	var placed []*eventstore.Stored
	for _, st := range batch {
		ev := st.Event
		if st.Profile == "" || ev == nil {
			continue
		}
		if ev.Type == events.OrderPlaced {
			placed = append(placed, st)
			continue
		}
		if t, ok := attrTouchOf(tx.DB(), st.RecordID, st.Profile, ev); ok {
			touches = append(touches, t)
		}
	}
	added, err := w.insertTouches(touches)
	if err != nil {
		return err
	}
	type window struct{ from, to time.Time }
	dirty := map[string]*window{} // profile → orders to re-credit
	for _, t := range touches {
		if t.Kind != attrKindVisit && !added[t.Ref] {
			continue // stored before (a visit is its event: new in the batch)
		}
		d := dirty[t.Profile]
		if d == nil {
			d = &window{t.At, t.At}
			dirty[t.Profile] = d
		}
		d.from = attrMinTime(d.from, t.At)
		d.to = attrMaxTime(d.to, t.At.Add(w.s.lookback()))
	}
	// The latest order credited before this batch's (those are credited
	// below from every touch already): a touch after it reaches none.
	var latestAt string
	if len(dirty) > 0 {
		if err := w.q("SELECT COALESCE(MAX(order_at), '') FROM "+CreditsCollection, nil).Row(&latestAt); err != nil {
			return err
		}
	}
	orders, err := w.ordersOf(placed)
	if err != nil {
		return err
	}
	if err := w.creditNew(orders); err != nil {
		return err
	}
	credited := map[string]bool{}
	for _, o := range orders {
		credited[o.Event] = true
	}
	// Touches that reach orders already credited (they arrived late).
	if len(dirty) > 0 {
		// Events mostly arrive in time order: a touch later than the latest
		// order credited before the batch (one step down the order_at
		// index) reaches none, so only the customers with an older touch
		// are looked up.
		latest := attrTime(latestAt)
		ids := make([]any, 0, len(dirty))
		from := time.Time{}
		for p, d := range dirty {
			if latestAt == "" || d.from.After(latest) {
				continue
			}
			ids = append(ids, p)
			if from.IsZero() || d.from.Before(from) {
				from = d.from
			}
		}
		if len(ids) == 0 {
			return w.flush()
		}
		past, err := w.creditedOrders(dbx.And(dbx.In("profile", ids...), dbx.NewExp("order_at >= {:from}", dbx.Params{"from": store.FormatTime(from)})))
		if err != nil {
			return err
		}
		for _, o := range past {
			d := dirty[o.Profile]
			if credited[o.Event] || o.At.Before(d.from) || o.At.After(d.to) {
				continue
			}
			if err := w.creditOrder(o, true); err != nil {
				return err
			}
		}
	}
	return w.flush()
}

// recompute re-derives the customers' touches and credits from the events
// table after a merge, an un-merge or an erasure moved their events.
func (a *attribution) recompute(tx core.App, profiles []string) error {
	if len(profiles) == 0 {
		return nil
	}
	w := a.begin(tx)
	defer w.close()
	ids := make([]any, len(profiles))
	for i, p := range profiles {
		ids[i] = p
	}
	in := dbx.In("profile", ids...)
	if err := w.dropCredits(in); err != nil {
		return err
	}
	if _, err := tx.DB().Delete(TouchesCollection, in).Execute(); err != nil {
		return err
	}
	types := append(append([]any{}, attrStoredTouchTypes...), events.OrderPlaced)
	var rows []struct {
		ID         string `db:"id"`
		Type       string `db:"type"`
		Source     string `db:"source"`
		OccurredAt string `db:"occurred_at"`
		Properties string `db:"properties"`
		Context    string `db:"context"`
		Profile    string `db:"profile"`
	}
	err := tx.DB().Select("id", "type", "source", "occurred_at", "properties", "context", "profile").From("events").
		Where(dbx.And(in, dbx.In("type", types...))).OrderBy("occurred_at", "id").All(&rows)
	if err != nil {
		return err
	}
	var touches []attrTouchRow
	var placed []*eventstore.Stored
	for _, r := range rows {
		ev := &events.Event{Type: r.Type, Source: r.Source, OccurredAt: attrTime(r.OccurredAt)}
		_ = json.Unmarshal([]byte(r.Properties), &ev.Properties)
		_ = json.Unmarshal([]byte(r.Context), &ev.Context)
		if ev.Type == events.OrderPlaced {
			placed = append(placed, &eventstore.Stored{RecordID: r.ID, Event: ev, Profile: r.Profile})
			continue
		}
		if t, ok := attrTouchOf(tx.DB(), r.ID, r.Profile, ev); ok {
			touches = append(touches, t)
		}
	}
	if _, err := w.insertTouches(touches); err != nil {
		return err
	}
	orders, err := w.ordersOf(placed) // oldest first: a repeated order keeps its first report
	if err != nil {
		return err
	}
	if err := w.creditNew(orders); err != nil {
		return err
	}
	return w.flush()
}

func (a *attribution) reset(tx core.App) error {
	for _, c := range []string{CreditsCollection, AttributionDailyCollection, TouchesCollection} {
		if _, err := tx.DB().Delete(c, nil).Execute(); err != nil {
			return err
		}
	}
	return nil
}

// recreditChunk is how many orders one transaction of a re-credit
// writes: the events processor waits for no more than one chunk.
const recreditChunk = 1000

// recreditAll credits every order again from the stored touches (the
// lookback, the half-life or the position shares changed), recreditChunk
// orders per transaction. Orders stored meanwhile are credited under the
// new setting already. progress (may be nil) is told orders done of total;
// a cancelled ctx stops it between chunks.
func (a *attribution) recreditAll(ctx context.Context, app core.App, progress func(done, total int)) error {
	var total int
	if err := app.DB().NewQuery("SELECT COUNT(*) FROM " + CreditsCollection + " WHERE pos = 0").Row(&total); err != nil {
		return err
	}
	after, done := "", 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var ids []string
		if err := app.DB().NewQuery("SELECT order_event FROM " + CreditsCollection + " WHERE order_event > {:after} AND pos = 0 ORDER BY order_event LIMIT {:n}").
			Bind(dbx.Params{"after": after, "n": recreditChunk}).Column(&ids); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		after = ids[len(ids)-1]
		err := app.RunInTransaction(func(tx core.App) error {
			w := a.begin(tx)
			defer w.close()
			orders, err := w.creditedOrders(dbx.In("order_event", anys(ids)...))
			if err != nil {
				return err
			}
			for _, o := range orders {
				if err := w.creditOrder(o, true); err != nil {
					return err
				}
			}
			return w.flush()
		})
		if err != nil {
			return err
		}
		done += len(ids)
		if progress != nil {
			progress(min(done, max(total, done)), max(total, done))
		}
	}
}

// attrTx is the part's work in one transaction: its statements, prepared
// once (they run for every order and touch of a batch), and the daily sums'
// changes, written once per key at the end.
type attrTx struct {
	a     *attribution
	tx    core.App
	ex    dbx.Executor // for the multi-row writes
	s     AttributionSettings
	stmts map[string]*dbx.Query
	rows  *store.Statements // multi-row inserts (insertRows)
	daily map[attrDailyKey]*attrDaily
	// credits to insert (written before any read of the table) and the
	// orders credited in this transaction, by key.
	pending [][]any
	keys    map[string]string
}

type attrDailyKey struct{ Day, Breakdown, Dim string }

func (a *attribution) begin(tx core.App) *attrTx {
	return &attrTx{a: a, tx: tx, ex: store.Executor(tx), s: a.m.attrSettings(), stmts: map[string]*dbx.Query{}, rows: store.NewStatements(tx),
		daily: map[attrDailyKey]*attrDaily{}, keys: map[string]string{}}
}

// q is the prepared statement of sql, bound to p.
func (w *attrTx) q(sql string, p dbx.Params) *dbx.Query {
	q, ok := w.stmts[sql]
	if !ok {
		q = w.tx.DB().NewQuery(sql).Prepare()
		w.stmts[sql] = q
	}
	return q.Bind(p)
}

func (w *attrTx) close() {
	for _, q := range w.stmts {
		_ = q.Close()
	}
	w.rows.Close()
}

// insertTouches stores touches once each (by ref) and says which refs
// are new. Visits are not stored: their page views are in the events
// table already (attrTx.touchesOf reads them there).
func (w *attrTx) insertTouches(all []attrTouchRow) (map[string]bool, error) {
	added := map[string]bool{}
	var touches []attrTouchRow
	for _, t := range all {
		if t.Kind != attrKindVisit {
			touches = append(touches, t)
		}
	}
	for len(touches) > 0 {
		n := min(len(touches), store.ValuesPerStatement/10)
		var b strings.Builder
		b.WriteString(`INSERT INTO ` + TouchesCollection + ` (id, profile, at, channel, kind, campaign, journey, agent, ref, event) VALUES `)
		args := make([]any, 0, n*10)
		for i, t := range touches[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, store.NewRecordID(), t.Profile, store.FormatTime(t.At), attrClip(t.Channel, 50), t.Kind,
				attrClip(t.Campaign, 300), attrClip(t.Journey, 50), attrClip(t.Agent, 50), t.Ref, t.Event)
		}
		b.WriteString(" ON CONFLICT(ref) DO NOTHING RETURNING ref")
		rows, err := w.ex.Query(b.String(), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var ref string
			if err := rows.Scan(&ref); err != nil {
				rows.Close()
				return nil, err
			}
			added[ref] = true
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		touches = touches[n:]
	}
	return added, nil
}

// ordersOf reads the order.placed events, in order.
func (w *attrTx) ordersOf(placed []*eventstore.Stored) ([]attrOrder, error) {
	if len(placed) == 0 {
		return nil, nil
	}
	// The rollups' conversion of the same events, when they stored it in
	// this transaction.
	ids := make([]any, len(placed))
	for i, st := range placed {
		ids[i] = st.RecordID
	}
	var facts []attrOrderFact
	if err := w.tx.DB().Select("event", "amount_base", "rate").From(OrdersCollection).Where(dbx.In("event", ids...)).All(&facts); err != nil {
		return nil, err
	}
	byEvent := make(map[string]*attrOrderFact, len(facts))
	for i := range facts {
		byEvent[facts[i].Event] = &facts[i]
	}
	out := make([]attrOrder, 0, len(placed))
	for _, st := range placed {
		if o, ok := w.orderOf(st.RecordID, st.Profile, st.Event, byEvent[st.RecordID]); ok {
			out = append(out, o)
		}
	}
	return out, nil
}

// attrOrderFact is the rollups' row of an order (metrics_orders).
type attrOrderFact struct {
	Event      string  `db:"event"`
	AmountBase float64 `db:"amount_base"`
	Rate       float64 `db:"rate"`
}

// orderOf reads an order.placed: its key and amount in the base currency
// (the rollups' conversion when they stored it in this transaction, else
// the same rule: the owner's or the configured rate).
func (w *attrTx) orderOf(record, profile string, ev *events.Event, fact *attrOrderFact) (attrOrder, bool) {
	o := attrOrder{Event: record, Profile: profile, At: ev.OccurredAt.UTC()}
	if profile == "" {
		return o, false
	}
	id := attrString(ev.Properties["order_id"])
	if id == "" {
		id = "event:" + record
	}
	o.Key = attrClip(ev.Source+":"+id, 300)
	if fact != nil {
		o.Amount, o.Unconverted = fact.AmountBase, fact.Rate <= 0
		if o.Unconverted {
			o.Amount = 0
		}
		return o, true
	}
	var amount float64
	for _, k := range []string{"total", "revenue", "value", "total_price", "amount"} {
		if v, ok := number(ev.Properties[k]); ok {
			amount = v
			break
		}
	}
	cur := strings.ToUpper(attrString(ev.Properties["currency"]))
	base, rates := w.a.m.settings.currency(w.tx)
	switch {
	case cur == "" || cur == base:
		o.Amount = amount
	case rates[cur] > 0:
		o.Amount = amount * rates[cur]
	default:
		o.Unconverted = true
	}
	return o, true
}

// creditNew credits orders just stored (or re-derived), oldest first,
// but not a second report of an order (its key) credited already.
func (w *attrTx) creditNew(orders []attrOrder) error {
	if len(orders) == 0 {
		return nil
	}
	if err := w.flushCredits(); err != nil {
		return err
	}
	keys := make([]any, 0, len(orders))
	profiles := make([]any, 0, len(orders))
	from, to := orders[0].At, orders[0].At
	for _, o := range orders {
		keys = append(keys, o.Key)
		profiles = append(profiles, o.Profile)
		from, to = attrMinTime(from, o.At), attrMaxTime(to, o.At)
	}
	var known []struct {
		Key   string `db:"order_key"`
		Event string `db:"order_event"`
	}
	err := w.tx.DB().Select("order_key", "order_event").From(CreditsCollection).
		Where(dbx.And(dbx.HashExp{"pos": 0}, dbx.In("order_key", keys...))).All(&known)
	if err != nil {
		return err
	}
	credited := map[string][]string{} // key → order events credited under it
	for _, k := range known {
		credited[k.Key] = append(credited[k.Key], k.Event)
	}
	// The touches of all these customers in the orders' lookbacks.
	touches, err := w.touchesOf(profiles, from.Add(-w.s.lookback()), to)
	if err != nil {
		return err
	}
	for _, o := range orders {
		exists, dup := false, false
		if ev, ok := w.keys[o.Key]; ok {
			exists, dup = ev == o.Event, ev != o.Event
		}
		for _, ev := range credited[o.Key] {
			exists, dup = exists || ev == o.Event, dup || ev != o.Event
		}
		if dup {
			continue // the same order reported again
		}
		if exists {
			if err := w.dropCredits(dbx.HashExp{"order_event": o.Event}); err != nil {
				return err
			}
		}
		w.credit(o, touches[o.Profile])
	}
	return nil
}

// creditedOrders lists the credited orders matching where (one row each:
// every order has a row at pos 0).
func (w *attrTx) creditedOrders(where dbx.Expression) ([]attrOrder, error) {
	if err := w.flushCredits(); err != nil {
		return nil, err
	}
	var rows []struct {
		Event       string  `db:"order_event"`
		Key         string  `db:"order_key"`
		Profile     string  `db:"profile"`
		At          string  `db:"order_at"`
		Amount      float64 `db:"amount"`
		Unconverted bool    `db:"unconverted"`
	}
	err := w.tx.DB().Select("order_event", "order_key", "profile", "order_at", "amount", "unconverted").From(CreditsCollection).
		Where(dbx.And(dbx.HashExp{"pos": 0}, where)).OrderBy("order_at").All(&rows)
	out := make([]attrOrder, len(rows))
	for i, r := range rows {
		out[i] = attrOrder{Event: r.Event, Key: r.Key, Profile: r.Profile, At: attrTime(r.At), Amount: r.Amount, Unconverted: r.Unconverted}
	}
	return out, err
}

// attrCredit is one touch of an order's path with its share under each
// model (attrModels' order), or the one "direct" row of an order without.
type attrCredit struct {
	Kind, Channel, Campaign, Journey, Agent string
	TouchAt                                 time.Time
	Shares                                  [5]float64
}

// creditOrder (re)writes the order's credits from the customer's touches
// (existing: it has credits to replace).
func (w *attrTx) creditOrder(o attrOrder, existing bool) error {
	if existing {
		if err := w.dropCredits(dbx.HashExp{"order_event": o.Event}); err != nil {
			return err
		}
	}
	touches, err := w.touchesOf([]any{o.Profile}, o.At.Add(-w.s.lookback()), o.At)
	if err != nil {
		return err
	}
	w.credit(o, touches[o.Profile])
	return nil
}

// credit writes the order's credits (pending until the next flush) from
// the customer's touches around it.
func (w *attrTx) credit(o attrOrder, touches []attrTouch) {
	path := attrPath(touches, o.At, w.s)
	credits := attrCreditsOf(path, o, w.s)
	day := o.At.In(w.a.m.loc).Format(dayLayout)
	for i, c := range credits {
		touchAt := ""
		if !c.TouchAt.IsZero() {
			touchAt = store.FormatTime(c.TouchAt)
		}
		w.pending = append(w.pending, []any{store.NewRecordID(), o.Event, o.Key, o.Profile, store.FormatTime(o.At), day, i, c.Kind,
			c.Channel, c.Campaign, c.Journey, c.Agent, touchAt, c.Shares[0], c.Shares[1], c.Shares[2], c.Shares[3], c.Shares[4],
			o.Amount, len(path), o.Unconverted})
	}
	w.keys[o.Key] = o.Event
	w.add(attrDailyOf(day, o, len(path), credits), 1)
}

// attrCreditsOf is an order's path with each touch's shares, or one
// "direct" row, whole under every model, when no touch reached it.
func attrCreditsOf(path []attrTouch, o attrOrder, s AttributionSettings) []attrCredit {
	if len(path) == 0 {
		return []attrCredit{{Kind: attrKindNone, Channel: "direct", Shares: [5]float64{1, 1, 1, 1, 1}}}
	}
	out := make([]attrCredit, len(path))
	for i, t := range path {
		out[i] = attrCredit{Kind: t.Kind, Channel: t.Channel, Campaign: t.Campaign, Journey: t.Journey, Agent: t.Agent, TouchAt: t.At}
	}
	for m, model := range attrModels {
		for i, w := range attrShares(model, path, o.At, s) {
			out[i].Shares[m] = w
		}
	}
	return out
}

// attrDaily is one order's contribution to a metrics_attribution_daily
// row (Credits in attrModels' order).
type attrDaily struct {
	Day, Breakdown, Dim     string
	Credits                 [5]float64
	Orders, Touches, Unconv int
}

// attrBreakdowns are the dimensions the report breaks credit down by.
var attrBreakdowns = []string{"channel", "campaign", "journey", "agent"}

func (c attrCredit) dim(by string) string {
	switch by {
	case "channel":
		return c.Channel
	case "campaign":
		return c.Campaign
	case "journey":
		return c.Journey
	case "agent":
		return c.Agent
	}
	return ""
}

// attrDailyOf is what an order adds to the daily sums: its amount under
// every model and its path length (breakdown "all"), and per dimension
// value the credit it gave and one order. An order without a rate adds
// only its count of unconverted orders.
func attrDailyOf(day string, o attrOrder, touches int, credits []attrCredit) []attrDaily {
	if o.Unconverted {
		return []attrDaily{{Day: day, Breakdown: "all", Unconv: 1}}
	}
	all := attrDaily{Day: day, Breakdown: "all", Orders: 1, Touches: touches}
	for m := range all.Credits {
		all.Credits[m] = o.Amount
	}
	out := []attrDaily{all}
	for _, by := range attrBreakdowns {
		idx := map[string]int{}
		for _, c := range credits {
			d := c.dim(by)
			i, ok := idx[d]
			if !ok {
				i = len(out)
				idx[d] = i
				out = append(out, attrDaily{Day: day, Breakdown: by, Dim: d, Orders: 1})
			}
			for m, sh := range c.Shares {
				out[i].Credits[m] += sh * o.Amount
			}
		}
	}
	return out
}

// add adds (sign 1) or takes out (sign −1) contributions, in memory until
// flush.
func (w *attrTx) add(rows []attrDaily, sign int) {
	for _, r := range rows {
		k := attrDailyKey{r.Day, r.Breakdown, r.Dim}
		d := w.daily[k]
		if d == nil {
			d = &attrDaily{Day: r.Day, Breakdown: r.Breakdown, Dim: r.Dim}
			w.daily[k] = d
		}
		for m, c := range r.Credits {
			d.Credits[m] += float64(sign) * c
		}
		d.Orders += sign * r.Orders
		d.Touches += sign * r.Touches
		d.Unconv += sign * r.Unconv
	}
}

// flushCredits inserts the pending credits. OR FAIL rather than the
// default ABORT: a multi-row statement that may undo its own first rows
// makes SQLite keep a statement journal; a failure fails the whole
// transaction anyway.
func (w *attrTx) flushCredits() error {
	if len(w.pending) == 0 {
		return nil
	}
	err := w.insertRows(`INSERT OR FAIL INTO `+CreditsCollection+` (id, order_event, order_key, profile, order_at, day, pos, kind,
		channel, campaign, journey, agent, touch_at, share_first, share_last, share_linear, share_position, share_time_decay,
		amount, touches, unconverted) VALUES `, 21, "", w.pending)
	w.pending = w.pending[:0]
	return err
}

// flush writes the pending credits and the daily sums' changes; a daily
// row no order reaches any more is deleted.
func (w *attrTx) flush() error {
	if err := w.flushCredits(); err != nil {
		return err
	}
	var rows [][]any
	days := map[string]bool{}
	for _, d := range w.daily {
		moved := d.Orders != 0 || d.Touches != 0 || d.Unconv != 0
		for _, c := range d.Credits {
			moved = moved || math.Abs(c) > 1e-9
		}
		if !moved {
			continue // taken out and put back as it was
		}
		rows = append(rows, []any{store.NewRecordID(), d.Day, d.Breakdown, d.Dim, d.Credits[0], d.Credits[1], d.Credits[2],
			d.Credits[3], d.Credits[4], d.Orders, d.Touches, d.Unconv})
		if d.Orders < 0 || d.Unconv < 0 {
			days[d.Day] = true
		}
	}
	clear(w.daily)
	err := w.insertRows(`INSERT INTO `+AttributionDailyCollection+` (id, day, breakdown, dim, credit_first, credit_last,
			credit_linear, credit_position, credit_time_decay, orders, touches, unconverted) VALUES `, 12,
		` ON CONFLICT(breakdown, day, dim) DO UPDATE SET credit_first = credit_first + excluded.credit_first,
			credit_last = credit_last + excluded.credit_last, credit_linear = credit_linear + excluded.credit_linear,
			credit_position = credit_position + excluded.credit_position,
			credit_time_decay = credit_time_decay + excluded.credit_time_decay, orders = orders + excluded.orders,
			touches = touches + excluded.touches, unconverted = unconverted + excluded.unconverted`, rows)
	if err != nil || len(days) == 0 {
		return err
	}
	in := make([]any, 0, len(days))
	for d := range days {
		in = append(in, d)
	}
	_, err = w.tx.DB().Delete(AttributionDailyCollection, dbx.And(dbx.In("day", in...),
		dbx.NewExp("orders <= 0 AND unconverted <= 0"))).Execute()
	return err
}

// insertRows runs head (…VALUES), a "(?, …)" group per row, then tail,
// a few rows a statement (store.Statements.ExecRows).
func (w *attrTx) insertRows(head string, cols int, tail string, rows [][]any) error {
	args := make([]any, 0, len(rows)*cols)
	for _, r := range rows {
		args = append(args, r...)
	}
	return w.rows.ExecRows(head, cols, tail, args)
}

// dropCredits deletes the credits matching where and takes what they
// added out of the daily sums.
func (w *attrTx) dropCredits(where dbx.Expression) error {
	if err := w.flushCredits(); err != nil {
		return err
	}
	var rows []struct {
		Event       string  `db:"order_event"`
		Day         string  `db:"day"`
		Kind        string  `db:"kind"`
		Channel     string  `db:"channel"`
		Campaign    string  `db:"campaign"`
		Journey     string  `db:"journey"`
		Agent       string  `db:"agent"`
		S0          float64 `db:"share_first"`
		S1          float64 `db:"share_last"`
		S2          float64 `db:"share_linear"`
		S3          float64 `db:"share_position"`
		S4          float64 `db:"share_time_decay"`
		Amount      float64 `db:"amount"`
		Touches     int     `db:"touches"`
		Unconverted bool    `db:"unconverted"`
	}
	err := w.tx.DB().Select("order_event", "day", "kind", "channel", "campaign", "journey", "agent", "share_first", "share_last",
		"share_linear", "share_position", "share_time_decay", "amount", "touches", "unconverted").From(CreditsCollection).
		Where(where).OrderBy("order_event", "pos").All(&rows)
	if err != nil || len(rows) == 0 {
		return err
	}
	for i := 0; i < len(rows); {
		j := i
		var credits []attrCredit
		for ; j < len(rows) && rows[j].Event == rows[i].Event; j++ {
			r := rows[j]
			credits = append(credits, attrCredit{Kind: r.Kind, Channel: r.Channel, Campaign: r.Campaign, Journey: r.Journey,
				Agent: r.Agent, Shares: [5]float64{r.S0, r.S1, r.S2, r.S3, r.S4}})
		}
		r := rows[i]
		w.add(attrDailyOf(r.Day, attrOrder{Event: r.Event, Amount: r.Amount, Unconverted: r.Unconverted}, r.Touches, credits), -1)
		i = j
	}
	_, err = w.tx.DB().Delete(CreditsCollection, where).Execute()
	return err
}

func attrString(v any) string {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	}
	return ""
}

// attrClip cuts s to n bytes on a rune boundary.
func attrClip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

func attrMinTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func attrMaxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
