package metrics

import (
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

// attribution keeps every customer's touches and each order's credit
// under the five models. A stored touch re-credits the customer's orders
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
	s := a.m.attrSettings()
	type window struct{ from, to time.Time }
	dirty := map[string]*window{} // profile → orders to re-credit
	var orders []attrOrder
	for _, st := range batch {
		ev := st.Event
		if st.Profile == "" || ev == nil {
			continue
		}
		if ev.Type == events.OrderPlaced {
			if o, ok := a.orderOf(tx, st.RecordID, st.Profile, ev); ok {
				orders = append(orders, o)
			}
			continue
		}
		t, ok := attrTouchOf(tx.DB(), st.RecordID, st.Profile, ev)
		if !ok {
			continue
		}
		added, err := a.insertTouch(tx, t)
		if err != nil {
			return err
		}
		if !added {
			continue
		}
		w := dirty[t.Profile]
		if w == nil {
			w = &window{t.At, t.At}
			dirty[t.Profile] = w
		}
		w.from = attrMinTime(w.from, t.At)
		w.to = attrMaxTime(w.to, t.At.Add(s.lookback()))
	}
	credited := map[string]bool{}
	for _, o := range orders {
		if dup, err := a.keyCredited(tx, o); err != nil {
			return err
		} else if dup {
			continue // the same order reported again
		}
		if err := a.creditOrder(tx, o, s); err != nil {
			return err
		}
		credited[o.Event] = true
	}
	// Touches that reach orders already credited (they arrived late).
	for profile, w := range dirty {
		past, err := a.creditedOrders(tx, "profile = {:p} AND order_at >= {:from} AND order_at <= {:to}",
			dbx.Params{"p": profile, "from": store.FormatTime(w.from), "to": store.FormatTime(w.to)})
		if err != nil {
			return err
		}
		for _, o := range past {
			if credited[o.Event] {
				continue
			}
			if err := a.creditOrder(tx, o, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// recompute re-derives the customers' touches and credits from the events
// table after a merge, an un-merge or an erasure moved their events.
func (a *attribution) recompute(tx core.App, profiles []string) error {
	if len(profiles) == 0 {
		return nil
	}
	ids := make([]any, len(profiles))
	for i, p := range profiles {
		ids[i] = p
	}
	in := dbx.In("profile", ids...)
	if err := a.dropCredits(tx, in); err != nil {
		return err
	}
	if _, err := tx.DB().Delete(TouchesCollection, in).Execute(); err != nil {
		return err
	}
	types := make([]any, 0, len(attrTouchTypes)+1)
	for _, t := range attrTouchTypes {
		types = append(types, t)
	}
	types = append(types, events.OrderPlaced)
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
	var orders []attrOrder
	for _, r := range rows {
		ev := &events.Event{Type: r.Type, Source: r.Source, OccurredAt: attrTime(r.OccurredAt)}
		_ = json.Unmarshal([]byte(r.Properties), &ev.Properties)
		_ = json.Unmarshal([]byte(r.Context), &ev.Context)
		if ev.Type == events.OrderPlaced {
			if o, ok := a.orderOf(tx, r.ID, r.Profile, ev); ok {
				orders = append(orders, o)
			}
			continue
		}
		if t, ok := attrTouchOf(tx.DB(), r.ID, r.Profile, ev); ok {
			if _, err := a.insertTouch(tx, t); err != nil {
				return err
			}
		}
	}
	s := a.m.attrSettings()
	for _, o := range orders { // oldest first: a repeated order keeps its first report
		if dup, err := a.keyCredited(tx, o); err != nil {
			return err
		} else if dup {
			continue
		}
		if err := a.creditOrder(tx, o, s); err != nil {
			return err
		}
	}
	return nil
}

func (a *attribution) reset(tx core.App) error {
	for _, c := range []string{CreditsCollection, AttributionDailyCollection, TouchesCollection} {
		if _, err := tx.DB().Delete(c, nil).Execute(); err != nil {
			return err
		}
	}
	return nil
}

// recreditAll credits every order again from the stored touches: the
// lookback or the half-life changed.
func (a *attribution) recreditAll(tx core.App) error {
	orders, err := a.creditedOrders(tx, "1 = 1", nil)
	if err != nil {
		return err
	}
	s := a.m.attrSettings()
	for _, o := range orders {
		if err := a.creditOrder(tx, o, s); err != nil {
			return err
		}
	}
	return nil
}

// insertTouch stores a touch once (by its ref); false when it was there.
func (a *attribution) insertTouch(tx core.App, t attrTouchRow) (bool, error) {
	res, err := tx.DB().NewQuery(`INSERT INTO ` + TouchesCollection + ` (id, profile, at, channel, kind, campaign, journey, agent, ref, event)
		VALUES ({:id}, {:p}, {:at}, {:ch}, {:k}, {:c}, {:j}, {:ag}, {:ref}, {:ev}) ON CONFLICT(ref) DO NOTHING`).
		Bind(dbx.Params{"id": store.NewRecordID(), "p": t.Profile, "at": store.FormatTime(t.At), "ch": attrClip(t.Channel, 50),
			"k": t.Kind, "c": attrClip(t.Campaign, 300), "j": attrClip(t.Journey, 50), "ag": attrClip(t.Agent, 50),
			"ref": attrClip(t.Ref, 400), "ev": t.Event}).Execute()
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// orderOf reads an order.placed: its key and amount in the base currency
// (the rollups' conversion when they stored it in this transaction, else
// the same rule: the owner's or the configured rate).
func (a *attribution) orderOf(tx core.App, record, profile string, ev *events.Event) (attrOrder, bool) {
	o := attrOrder{Event: record, Profile: profile, At: ev.OccurredAt.UTC()}
	if profile == "" {
		return o, false
	}
	id := attrString(ev.Properties["order_id"])
	if id == "" {
		id = "event:" + record
	}
	o.Key = attrClip(ev.Source+":"+id, 300)
	var fact struct {
		AmountBase float64 `db:"amount_base"`
		Rate       float64 `db:"rate"`
	}
	if err := tx.DB().NewQuery("SELECT amount_base, rate FROM " + OrdersCollection + " WHERE event = {:e}").
		Bind(dbx.Params{"e": record}).One(&fact); err == nil {
		o.Amount, o.Unconverted = fact.AmountBase, fact.Rate <= 0
		if o.Unconverted {
			o.Amount = 0
		}
		return o, true
	}
	var amount float64
	for _, k := range []string{"total", "revenue", "value", "total_price", "amount"} {
		if v, ok := attrNumber(ev.Properties[k]); ok {
			amount = v
			break
		}
	}
	cur := strings.ToUpper(attrString(ev.Properties["currency"]))
	base, rates := a.m.settings.currency(tx)
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

// keyCredited: another report of the same order is credited already.
func (a *attribution) keyCredited(tx core.App, o attrOrder) (bool, error) {
	var n int
	err := tx.DB().NewQuery("SELECT COUNT(*) FROM " + CreditsCollection + " WHERE order_key = {:k} AND order_event != {:e}").
		Bind(dbx.Params{"k": o.Key, "e": o.Event}).Row(&n)
	return n > 0, err
}

// creditedOrders lists the credited orders matching where (one row each:
// the first-touch model has exactly one credit row per order).
func (a *attribution) creditedOrders(tx core.App, where string, p dbx.Params) ([]attrOrder, error) {
	var rows []struct {
		Event       string  `db:"order_event"`
		Key         string  `db:"order_key"`
		Profile     string  `db:"profile"`
		At          string  `db:"order_at"`
		Amount      float64 `db:"amount"`
		Unconverted bool    `db:"unconverted"`
	}
	err := tx.DB().NewQuery("SELECT order_event, order_key, profile, order_at, amount, unconverted FROM " + CreditsCollection +
		" WHERE model = 'first' AND (" + where + ") ORDER BY order_at").Bind(p).All(&rows)
	out := make([]attrOrder, len(rows))
	for i, r := range rows {
		out[i] = attrOrder{Event: r.Event, Key: r.Key, Profile: r.Profile, At: attrTime(r.At), Amount: r.Amount, Unconverted: r.Unconverted}
	}
	return out, err
}

// attrCredit is one credit row.
type attrCredit struct {
	Model, Kind, Channel, Campaign, Journey, Agent string
	TouchAt                                        time.Time
	Share, Credit                                  float64
}

// creditOrder (re)writes the order's credits from the customer's touches.
func (a *attribution) creditOrder(tx core.App, o attrOrder, s AttributionSettings) error {
	if err := a.dropCredits(tx, dbx.HashExp{"order_event": o.Event}); err != nil {
		return err
	}
	var rows []struct {
		At       string `db:"at"`
		Kind     string `db:"kind"`
		Channel  string `db:"channel"`
		Campaign string `db:"campaign"`
		Journey  string `db:"journey"`
		Agent    string `db:"agent"`
		Ref      string `db:"ref"`
	}
	err := tx.DB().NewQuery("SELECT at, kind, channel, campaign, journey, agent, ref FROM " + TouchesCollection +
		" WHERE profile = {:p} AND at >= {:from} AND at <= {:to}").
		Bind(dbx.Params{"p": o.Profile, "from": store.FormatTime(o.At.Add(-s.lookback())), "to": store.FormatTime(o.At)}).All(&rows)
	if err != nil {
		return err
	}
	touches := make([]attrTouch, len(rows))
	for i, r := range rows {
		touches[i] = attrTouch{At: attrTime(r.At), Kind: r.Kind, Channel: r.Channel, Campaign: r.Campaign, Journey: r.Journey, Agent: r.Agent, Ref: r.Ref}
	}
	path := attrPath(touches, o.At, s)
	credits := attrCreditsOf(path, o, s)
	day := o.At.In(a.m.loc).Format(dayLayout)
	for _, c := range credits {
		touchAt := ""
		if !c.TouchAt.IsZero() {
			touchAt = store.FormatTime(c.TouchAt)
		}
		_, err := tx.DB().NewQuery(`INSERT INTO ` + CreditsCollection + ` (id, order_event, order_key, profile, order_at, day, model, kind,
			channel, campaign, journey, agent, touch_at, share, credit, amount, touches, unconverted)
			VALUES ({:id}, {:e}, {:k}, {:p}, {:at}, {:day}, {:model}, {:kind}, {:ch}, {:c}, {:j}, {:ag}, {:tat}, {:share}, {:credit},
			{:amount}, {:n}, {:u})`).Bind(dbx.Params{"id": store.NewRecordID(), "e": o.Event, "k": o.Key, "p": o.Profile,
			"at": store.FormatTime(o.At), "day": day, "model": c.Model, "kind": c.Kind, "ch": c.Channel, "c": c.Campaign,
			"j": c.Journey, "ag": c.Agent, "tat": touchAt, "share": c.Share, "credit": c.Credit, "amount": o.Amount,
			"n": len(path), "u": o.Unconverted}).Execute()
		if err != nil {
			return err
		}
	}
	return a.addDaily(tx, attrDailyOf(day, o, len(path), credits), 1)
}

// attrCreditsOf is an order's credit rows under every model: one per
// touch with a share (none under first and last but the one touch they
// credit), or one "direct" row per model when no touch reached it.
func attrCreditsOf(path []attrTouch, o attrOrder, s AttributionSettings) []attrCredit {
	var out []attrCredit
	for _, model := range attrModels {
		if len(path) == 0 {
			out = append(out, attrCredit{Model: model, Kind: attrKindNone, Channel: "direct", Share: 1, Credit: o.Amount})
			continue
		}
		for i, w := range attrShares(model, path, o.At, s) {
			if w == 0 {
				continue
			}
			t := path[i]
			out = append(out, attrCredit{Model: model, Kind: t.Kind, Channel: t.Channel, Campaign: t.Campaign, Journey: t.Journey,
				Agent: t.Agent, TouchAt: t.At, Share: w, Credit: w * o.Amount})
		}
	}
	return out
}

// attrDaily is one order's contribution to a metrics_attribution_daily row.
type attrDaily struct {
	Day, Model, Breakdown, Dim string
	Credit                     float64
	Orders, Touches, Unconv    int
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

// attrDailyOf is what an order adds to the daily sums: per model, its
// amount and path length (breakdown "all"), and per dimension value the
// credit it gave and one order. An order without a rate adds only its
// count of unconverted orders.
func attrDailyOf(day string, o attrOrder, touches int, credits []attrCredit) []attrDaily {
	var out []attrDaily
	for _, model := range attrModels {
		if o.Unconverted {
			out = append(out, attrDaily{Day: day, Model: model, Breakdown: "all", Unconv: 1})
			continue
		}
		out = append(out, attrDaily{Day: day, Model: model, Breakdown: "all", Credit: o.Amount, Orders: 1, Touches: touches})
		for _, by := range attrBreakdowns {
			idx := map[string]int{}
			for _, c := range credits {
				if c.Model != model {
					continue
				}
				d := c.dim(by)
				i, ok := idx[d]
				if !ok {
					i = len(out)
					idx[d] = i
					out = append(out, attrDaily{Day: day, Model: model, Breakdown: by, Dim: d, Orders: 1})
				}
				out[i].Credit += c.Credit
			}
		}
	}
	return out
}

// addDaily adds (sign 1) or takes out (sign −1) contributions.
func (a *attribution) addDaily(tx core.App, rows []attrDaily, sign int) error {
	for _, r := range rows {
		p := dbx.Params{"id": store.NewRecordID(), "day": r.Day, "model": r.Model, "b": r.Breakdown, "dim": r.Dim,
			"credit": float64(sign) * r.Credit, "orders": sign * r.Orders, "touches": sign * r.Touches, "u": sign * r.Unconv}
		_, err := tx.DB().NewQuery(`INSERT INTO ` + AttributionDailyCollection + ` (id, day, model, breakdown, dim, credit, orders, touches, unconverted)
			VALUES ({:id}, {:day}, {:model}, {:b}, {:dim}, {:credit}, {:orders}, {:touches}, {:u})
			ON CONFLICT(model, breakdown, day, dim) DO UPDATE SET credit = credit + excluded.credit, orders = orders + excluded.orders,
			touches = touches + excluded.touches, unconverted = unconverted + excluded.unconverted`).Bind(p).Execute()
		if err != nil {
			return err
		}
		if sign < 0 {
			_, err = tx.DB().NewQuery(`DELETE FROM ` + AttributionDailyCollection + ` WHERE model = {:model} AND breakdown = {:b}
				AND day = {:day} AND dim = {:dim} AND orders <= 0 AND unconverted <= 0`).Bind(p).Execute()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// dropCredits deletes the credits matching where and takes what they
// added out of the daily sums.
func (a *attribution) dropCredits(tx core.App, where dbx.Expression) error {
	var rows []struct {
		Event       string  `db:"order_event"`
		Day         string  `db:"day"`
		Model       string  `db:"model"`
		Kind        string  `db:"kind"`
		Channel     string  `db:"channel"`
		Campaign    string  `db:"campaign"`
		Journey     string  `db:"journey"`
		Agent       string  `db:"agent"`
		Credit      float64 `db:"credit"`
		Amount      float64 `db:"amount"`
		Touches     int     `db:"touches"`
		Unconverted bool    `db:"unconverted"`
	}
	err := tx.DB().Select("order_event", "day", "model", "kind", "channel", "campaign", "journey", "agent", "credit", "amount",
		"touches", "unconverted").From(CreditsCollection).Where(where).OrderBy("order_event").All(&rows)
	if err != nil || len(rows) == 0 {
		return err
	}
	for i := 0; i < len(rows); {
		j := i
		var credits []attrCredit
		for ; j < len(rows) && rows[j].Event == rows[i].Event; j++ {
			r := rows[j]
			credits = append(credits, attrCredit{Model: r.Model, Kind: r.Kind, Channel: r.Channel, Campaign: r.Campaign,
				Journey: r.Journey, Agent: r.Agent, Credit: r.Credit})
		}
		r := rows[i]
		o := attrOrder{Event: r.Event, Amount: r.Amount, Unconverted: r.Unconverted}
		if err := a.addDaily(tx, attrDailyOf(r.Day, o, r.Touches, credits), -1); err != nil {
			return err
		}
		i = j
	}
	_, err = tx.DB().Delete(CreditsCollection, where).Execute()
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

func attrNumber(v any) (float64, bool) {
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
