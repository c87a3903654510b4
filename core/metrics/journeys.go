package metrics

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/lift"
	"github.com/omni/omni/core/store"
)

// The journeys and messages report reads the send ledger (messages) and
// the journeys' tables (journeys, journey_versions, journey_runs,
// journey_steps) at query time, read-only, with the definitions of the
// journey's own results (core/journeys/stats.go):
//
//   - a message is sent when it went out or is on its way (queued,
//     scheduled, sent, delivered, read); failed and suppressed (refused by
//     the gate) are counted apart. Messages fall in the period they were
//     created in (asked of the gate).
//   - delivered: the ledger says delivered or read.
//   - opened: the ledger says read (WhatsApp, SMS read receipts), or an
//     email.opened or email.clicked event names the message (properties
//     outbound_id or message_id).
//   - clicked: an email.clicked event names the message.
//   - replied: a message.received from the customer on the message's
//     channel within replyWindow after it went out.
//   - unsubscribed: a consent.changed to unsubscribed on the message's
//     channel, attributed to the customer's latest send on that channel
//     before it, within replyWindow; one made with the unsubscribe link,
//     to the latest marketing send (only those carry the link) at any
//     time before it.
//   - conversions and revenue: journey goals reached within their window
//     (journey_runs.goal_at), in the period the goal was reached; revenue
//     in the base currency.
//
// Holdout lift compares, per journey, the runs that entered in the period
// and passed a holdout step: held out against let through, with core/lift
// (the formula the journey's results page uses).

// replyWindow is how long after a send a reply or an unsubscribe on the
// same channel counts for it (SQLite date modifier).
const replyWindow = "+3 days"

// replyLookback bounds the sends a reply looks back at by when they were
// created (the index): the window plus time a scheduled send may wait.
const replyLookback = "-10 days"

// msgOut are the ledger statuses of a message that went out or is on its
// way; msgSentAt is when it went out.
const (
	// (The unary + keeps SQLite from reading the ledger by its status
	// index: the period's hour index is the narrower.)
	msgOut    = "+m.status IN ('queued','scheduled','sent','delivered','read')"
	msgSentAt = "COALESCE(NULLIF(m.sent_at, ''), NULLIF(m.queued_at, ''), m.created)"
	// msgKind is the ledger kind, with journey sends apart.
	msgKind = "(CASE WHEN m.journey_run != '' THEN 'journey' ELSE m.kind END)"
	// runConverted: a run whose goal came within its goal window.
	runConverted = "(r.goal_at != '' AND (r.goal_until = '' OR r.goal_at <= r.goal_until))"
)

// linkUnsubscribe: consent changes the customer made with a message's
// unsubscribe link (core/messaging/prefs records these reasons).
const linkUnsubscribe = "(e.source = 'customer' AND json_extract(e.properties, '$.reason') IN " +
	"('unsubscribe link', 'one-click unsubscribe from the mail app (RFC 8058)'))"

// msgChannels are the channels the gate sends on.
var msgChannels = []string{"email", "sms", "whatsapp", "chat"}

// engagement is what came of a group of messages, with the refusals by
// reason key.
type engagement struct {
	msgCounts
	reasons map[string]int
}

// msgFigures are a period's message figures, whole and broken down.
type msgFigures struct {
	total     engagement
	byChannel map[string]*engagement
	byKind    map[string]*engagement
	series    []engagement // by bucket of the query
}

// jfilter is the report's own parameters.
type jfilter struct {
	journey string // journey=ID: that journey's messages and goals only
	channel string // channel=email|sms|whatsapp|chat
}

func (m *Module) journeysReport(app core.App, q Query) (*Report, error) {
	f := jfilter{journey: strings.TrimSpace(q.Params["journey"]), channel: strings.ToLower(strings.TrimSpace(q.Params["channel"]))}
	if f.channel != "" && !slices.Contains(msgChannels, f.channel) {
		return nil, api.BadRequest("channel", fmt.Sprintf("expected %s, got %q", strings.Join(msgChannels, ", "), f.channel))
	}
	db := app.DB()
	// Names for the journeys table; the graph of the one asked for only.
	var journeys []journeyRow
	if err := db.NewQuery("SELECT id, name, version, '' AS graph FROM journeys ORDER BY name, id").All(&journeys); err != nil {
		return nil, fmt.Errorf("journeys: %w", err)
	}
	var current *journeyRow
	if f.journey != "" {
		for i := range journeys {
			if journeys[i].ID == f.journey {
				current = &journeys[i]
			}
		}
		if current == nil {
			return nil, api.BadRequest("journey", fmt.Sprintf("no journey with id %q", f.journey))
		}
		if err := db.NewQuery("SELECT graph FROM journeys WHERE id = {:id}").Bind(dbx.Params{"id": current.ID}).Row(&current.Graph); err != nil {
			return nil, fmt.Errorf("journeys: %w", err)
		}
	}

	base, rates := m.settings.currency(app)
	money := moneyRates{base: base, rates: rates}
	r := newReport("journeys", q)
	r.Currency = base

	fill, err := m.refreshMessages(app, q.Loc, dayStart(q.Now, q.Loc), false)
	if err != nil {
		return nil, err
	}
	if n := fill.note(q); n != "" {
		r.Notes = append(r.Notes, n)
	}
	curRows, err := m.messageRows(app, q, f)
	if err != nil {
		return nil, err
	}
	cur := readMessages(q, f, curRows)
	runs, err := m.runRows(app, q, f.journey)
	if err != nil {
		return nil, err
	}
	goals := goalsOf(runs, money)
	cur.totals(r.Totals, goals)
	if q.Compare {
		p := q.Previous()
		prevRows, err := m.messageRows(app, p, f)
		if err != nil {
			return nil, err
		}
		prev := readMessages(p, f, prevRows)
		pruns, err := m.runRows(app, p, f.journey)
		if err != nil {
			return nil, err
		}
		pgoals := goalsOf(pruns, money)
		prev.totals(r.Previous, pgoals)
		r.Series = cur.chart(q, prev)
	} else {
		r.Series = cur.chart(q, nil)
	}
	if goals.unconverted > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d conversions in a currency without an exchange rate are not in revenue.", goals.unconverted))
	}
	if f.channel != "" {
		r.Notes = append(r.Notes, "Conversions and revenue are the journeys' goals, whatever the channel.")
	}

	r.Tables = append(r.Tables, cur.channelTable(), cur.kindTable())
	holds, err := m.holdoutRows(app, q, f.journey)
	if err != nil {
		return nil, err
	}
	jt, err := journeyTable(db, journeys, f.journey, runs, goals, money, holds)
	if err != nil {
		return nil, err
	}
	r.Tables = append(r.Tables, jt)
	if current != nil {
		nt, err := nodeTable(db, q, current, f.channel, money, curRows)
		if err != nil {
			return nil, err
		}
		r.Tables = append(r.Tables, nt)
	}
	return r, nil
}

// totals writes the report's totals.
func (f *msgFigures) totals(into map[string]float64, g *goalFigures) {
	t := f.total
	into["sent"] = float64(t.Sent)
	into["delivered"] = float64(t.Delivered)
	into["opened"] = float64(t.Opened)
	into["clicked"] = float64(t.Clicked)
	into["replied"] = float64(t.Replied)
	into["unsubscribed"] = float64(t.Unsubscribed)
	into["failed"] = float64(t.Failed)
	into["refused"] = float64(t.Refused)
	into["delivery_rate"] = share(t.Delivered, t.Sent)
	into["open_rate"] = share(t.Opened, t.Sent)
	into["click_rate"] = share(t.Clicked, t.Sent)
	into["reply_rate"] = share(t.Replied, t.Sent)
	into["unsubscribe_rate"] = share(t.Unsubscribed, t.Sent)
	into["conversions"] = float64(g.total.conversions)
	into["revenue"] = round2(g.total.revenue)
}

func share(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// chart is sent, delivered, opened and clicked per bucket (prev beside).
func (f *msgFigures) chart(q Query, prev *msgFigures) *Series {
	s := &Series{Y: map[string][]float64{}}
	for _, b := range q.Buckets() {
		s.X = append(s.X, b.Unix())
	}
	lines := func(ser []engagement) map[string][]float64 {
		y := map[string][]float64{}
		for _, e := range ser {
			y["sent"] = append(y["sent"], float64(e.Sent))
			y["delivered"] = append(y["delivered"], float64(e.Delivered))
			y["opened"] = append(y["opened"], float64(e.Opened))
			y["clicked"] = append(y["clicked"], float64(e.Clicked))
		}
		return y
	}
	s.Y = lines(f.series)
	if prev != nil {
		// Bucket i of the previous period beside bucket i of this one.
		p := lines(prev.series)
		s.Previous = map[string][]float64{}
		for k, v := range p {
			s.Previous[k] = make([]float64, len(s.X))
			copy(s.Previous[k], v)
		}
	}
	return s
}

var engagementColumns = []Column{
	{Key: "sent", Label: "Sent", Type: TypeNumber},
	{Key: "delivered", Label: "Delivered", Type: TypeNumber},
	{Key: "opened", Label: "Read / opened", Type: TypeNumber},
	{Key: "clicked", Label: "Clicked", Type: TypeNumber},
	{Key: "replied", Label: "Replied", Type: TypeNumber},
	{Key: "unsubscribed", Label: "Unsubscribed", Type: TypeNumber},
	{Key: "failed", Label: "Failed", Type: TypeNumber},
	{Key: "refused", Label: "Refused by the rules", Type: TypeNumber},
	{Key: "top_refusal", Label: "Top refusal reason", Type: TypeText},
	{Key: "delivery_rate", Label: "Delivery rate", Type: TypePercent},
	{Key: "open_rate", Label: "Open rate", Type: TypePercent},
	{Key: "click_rate", Label: "Click rate", Type: TypePercent},
	{Key: "reply_rate", Label: "Reply rate", Type: TypePercent},
}

func (e *engagement) row(first string) []any {
	return []any{first, e.Sent, e.Delivered, e.Opened, e.Clicked, e.Replied, e.Unsubscribed, e.Failed, e.Refused, topReason(e.reasons),
		share(e.Delivered, e.Sent), share(e.Opened, e.Sent), share(e.Clicked, e.Sent), share(e.Replied, e.Sent)}
}

// topReason is the most frequent refusal (ties: by name).
func topReason(reasons map[string]int) string {
	best, n := "", 0
	for k, v := range reasons {
		if v > n || (v == n && k < best) {
			best, n = k, v
		}
	}
	return best
}

func (f *msgFigures) channelTable() Table {
	t := Table{Name: "by_channel", Title: "Messages by channel (every kind)",
		Columns: append([]Column{{Key: "channel", Label: "Channel", Type: TypeText}}, engagementColumns...), Rows: [][]any{}}
	for _, k := range sortedGroups(f.byChannel) {
		name := k
		if name == "" {
			name = "none" // refused before a channel was chosen
		}
		t.Rows = append(t.Rows, f.byChannel[k].row(name))
	}
	return t
}

func (f *msgFigures) kindTable() Table {
	t := Table{Name: "by_kind", Title: "Messages by kind (journey, marketing campaign, transactional, conversation)",
		Columns: append([]Column{{Key: "kind", Label: "Kind", Type: TypeText}}, engagementColumns...), Rows: [][]any{}}
	for _, k := range sortedGroups(f.byKind) {
		t.Rows = append(t.Rows, f.byKind[k].row(k))
	}
	return t
}

func sortedGroups(m map[string]*engagement) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Busiest first, then by name.
	sort.Slice(keys, func(i, j int) bool {
		a, b := m[keys[i]], m[keys[j]]
		if a.Sent+a.Refused+a.Failed != b.Sent+b.Refused+b.Failed {
			return a.Sent+a.Refused+a.Failed > b.Sent+b.Refused+b.Failed
		}
		return keys[i] < keys[j]
	})
	return keys
}

// grain is how finely the ledger is grouped in SQL before the groups are
// put in the query's buckets (in the shop's zone): hours, or quarter
// hours in a zone whose offset is not whole hours (India, Nepal, …).
type grain struct{ sql, layout string }

func grainOf(q Query, col string) grain {
	for _, b := range append(q.Buckets(), q.End) {
		if _, off := b.Zone(); off%3600 != 0 {
			return grain{sql: "substr(" + col + ", 1, 14) || printf('%02d', CAST(substr(" + col + ", 15, 2) AS INTEGER) / 15 * 15)",
				layout: "2006-01-02 15:04"}
		}
	}
	return grain{sql: "substr(" + col + ", 1, 13)", layout: "2006-01-02 15"}
}

// msgWhere selects the ledger rows (m) of the query; the parameters are
// start, end, channel and journey.
func msgWhere(f jfilter) string {
	// The hour prefix first: it leads the ledger's index (see
	// 1765000400_metrics_journeys_idx.go).
	w := "substr(m.created, 1, 13) >= substr({:start}, 1, 13) AND substr(m.created, 1, 13) <= substr({:end}, 1, 13)" +
		" AND m.created >= {:start} AND m.created < {:end}"
	if f.channel != "" {
		w += " AND m.channel = {:channel}"
	}
	if f.journey != "" {
		w += " AND m.journey_run IN (SELECT id FROM journey_runs WHERE journey = {:journey})"
	}
	return w
}

func rangeParams(q Query, f jfilter) dbx.Params {
	return dbx.Params{"start": store.FormatTime(q.Start), "end": store.FormatTime(q.End), "channel": f.channel, "journey": f.journey}
}

// readMessages adds up the message groups of q that pass the filter.
func readMessages(q Query, f jfilter, rows []msgRow) *msgFigures {
	out := &msgFigures{byChannel: map[string]*engagement{}, byKind: map[string]*engagement{}, series: make([]engagement, len(q.Buckets()))}
	buckets := map[int64]int{}
	for i, b := range q.Buckets() {
		buckets[b.Unix()] = i
	}
	for _, r := range rows {
		if (f.channel != "" && r.Channel != f.channel) || (f.journey != "" && r.Journey != f.journey) {
			continue
		}
		if r.At.Before(q.Start) || !r.At.Before(q.End) {
			continue
		}
		es := []*engagement{&out.total, group(out.byChannel, r.Channel), group(out.byKind, r.Kind)}
		if i, ok := buckets[q.BucketOf(r.At).Unix()]; ok {
			es = append(es, &out.series[i])
		}
		for _, e := range es {
			e.add(r.msgCounts)
			if r.Refused > 0 {
				if e.reasons == nil {
					e.reasons = map[string]int{}
				}
				e.reasons[r.Reason] += r.Refused
			}
		}
	}
	return out
}

func group(m map[string]*engagement, k string) *engagement {
	e := m[k]
	if e == nil {
		e = &engagement{}
		m[k] = e
	}
	return e
}

// refusalReasons turn the gate's sentence in the ledger into a short key
// (the keys and markers of core/journeys' SuppressionReason).
var refusalReasons = []struct{ key, marker string }{
	{"frequency_cap", "frequency cap"},
	{"quiet_hours", "quiet hours"},
	{"consent", "no marketing consent"},
	{"whatsapp_window", "whatsapp 24-hour window"},
	{"undeliverable", "is undeliverable"},
	{"no_address", "the customer has no "},
	{"no_connector", "channel is connected"},
}

func refusalReason(reason string) string {
	r := strings.ToLower(strings.TrimSpace(reason))
	for _, s := range refusalReasons {
		if r == s.key || strings.Contains(r, s.marker) {
			return s.key
		}
	}
	return "other"
}

// moneyRates converts goal revenue into the base currency.
type moneyRates struct {
	base  string
	rates map[string]float64
}

// rate of one unit of cur in the base currency; 0 when unknown. A goal
// without a currency is taken as the base currency's.
func (mr moneyRates) rate(cur string) float64 {
	cur = strings.ToUpper(strings.TrimSpace(cur))
	if cur == "" || cur == mr.base {
		return 1
	}
	return mr.rates[cur]
}

// sql is the rate as an SQL expression of col (bound as rate_*).
func (mr moneyRates) sql(col string, p dbx.Params) string {
	var b strings.Builder
	b.WriteString("(CASE UPPER(" + col + ") WHEN '' THEN 1")
	if mr.base != "" {
		p["rate_base"] = mr.base
		b.WriteString(" WHEN {:rate_base} THEN 1")
	}
	for i, cur := range sortedRateKeys(mr.rates) {
		if cur == mr.base {
			continue
		}
		k := fmt.Sprintf("rate_%d", i)
		p[k+"c"], p[k] = cur, mr.rates[cur]
		b.WriteString(" WHEN {:" + k + "c} THEN {:" + k + "}")
	}
	b.WriteString(" ELSE 0 END)")
	return b.String()
}

func sortedRateKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// goalFigures are the journeys' conversions in a period.
type goalFigures struct {
	total       goalSum
	byJourney   map[string]*goalSum
	unconverted int // conversions in a currency without a rate
}

type goalSum struct {
	conversions int
	revenue     float64 // base currency
}

// goalsOf adds up the goals reached in a period from its run counts.
func goalsOf(runs []runRow, money moneyRates) *goalFigures {
	g := &goalFigures{byJourney: map[string]*goalSum{}}
	for _, r := range runs {
		if r.What != "goal" {
			continue
		}
		s := g.byJourney[r.Journey]
		if s == nil {
			s = &goalSum{}
			g.byJourney[r.Journey] = s
		}
		s.conversions += r.N
		g.total.conversions += r.N
		rate := money.rate(r.Currency)
		if rate == 0 && r.Value != 0 {
			g.unconverted += r.N
		}
		s.revenue += r.Value * rate
		g.total.revenue += r.Value * rate
	}
	return g
}

// journeyRow is a journey as the report reads it.
type journeyRow struct {
	ID      string `db:"id"`
	Name    string `db:"name"`
	Version int    `db:"version"`
	Graph   string `db:"graph"`
}

// journeyTable is each journey's runs, goals and holdout lift in q.
func journeyTable(db dbx.Builder, journeys []journeyRow, only string, runs []runRow, goals *goalFigures, money moneyRates, holds []holdoutRow) (Table, error) {
	t := Table{Name: "by_journey", Title: "Journeys", Rows: [][]any{}, Columns: []Column{
		{Key: "journey_id", Label: "Journey id", Type: TypeText},
		{Key: "journey", Label: "Journey", Type: TypeText},
		{Key: "entered", Label: "Entered", Type: TypeNumber},
		{Key: "completed", Label: "Completed", Type: TypeNumber},
		{Key: "conversions", Label: "Conversions", Type: TypeNumber},
		{Key: "conversion_rate", Label: "Conversion rate", Type: TypePercent},
		{Key: "revenue", Label: "Revenue", Type: TypeMoney},
		{Key: "holdout_lift", Label: "Holdout lift (conversion)", Type: TypePercent},
		{Key: "lift_low", Label: "Lift 95% low", Type: TypePercent},
		{Key: "lift_high", Label: "Lift 95% high", Type: TypePercent},
		{Key: "lift_confidence", Label: "Chance the journey helps", Type: TypePercent},
		{Key: "lift_verdict", Label: "Holdout verdict", Type: TypeText},
	}}
	type runCount struct{ Entered, Completed int }
	byJourney := map[string]*runCount{}
	// Entered in the period; completed (reached the end) in the period.
	for _, r := range runs {
		if byJourney[r.Journey] == nil {
			byJourney[r.Journey] = &runCount{}
		}
		switch r.What {
		case "entered":
			byJourney[r.Journey].Entered += r.N
		case "completed":
			byJourney[r.Journey].Completed += r.N
		}
	}
	holdouts, err := holdoutNodes(db, only)
	if err != nil {
		return t, err
	}
	lifts := holdoutGroups(holds, money)
	for _, j := range journeys {
		if only != "" && j.ID != only {
			continue
		}
		c, g := byJourney[j.ID], goals.byJourney[j.ID]
		if c == nil {
			c = &runCount{}
		}
		if g == nil {
			g = &goalSum{}
		}
		if c.Entered == 0 && c.Completed == 0 && g.conversions == 0 && only == "" {
			continue // nothing in the period
		}
		row := []any{j.ID, j.Name, c.Entered, c.Completed, g.conversions, share(g.conversions, c.Entered), round2(g.revenue)}
		row = append(row, holdoutLift(holdouts[j.ID] != nil, lifts[j.ID])...)
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// holdoutNodes lists, per journey, each published version's holdout steps.
func holdoutNodes(db dbx.Builder, only string) (map[string]map[int][]string, error) {
	var versions []struct {
		Journey string `db:"journey"`
		Version int    `db:"version"`
		Graph   string `db:"graph"`
	}
	sql := "SELECT journey, version, graph FROM journey_versions"
	if only != "" {
		sql += " WHERE journey = {:j}"
	}
	if err := db.NewQuery(sql).Bind(dbx.Params{"j": only}).All(&versions); err != nil {
		return nil, fmt.Errorf("journeys report: versions: %w", err)
	}
	out := map[string]map[int][]string{}
	for _, v := range versions {
		g := parseGraph(v.Graph)
		for _, id := range g.order() {
			if g.Nodes[id].Type == "holdout" {
				if out[v.Journey] == nil {
					out[v.Journey] = map[int][]string{}
				}
				out[v.Journey][v.Version] = append(out[v.Journey][v.Version], id)
			}
		}
	}
	return out, nil
}

// holdoutGroups adds up, per journey, the runs that entered in the
// period and left a holdout step: held out (or marked so) against let
// through, their goal revenue in the base currency.
func holdoutGroups(rows []holdoutRow, money moneyRates) map[string]*[2]lift.Group {
	out := map[string]*[2]lift.Group{}
	for _, r := range rows {
		if out[r.Journey] == nil {
			out[r.Journey] = &[2]lift.Group{}
		}
		g := &out[r.Journey][0] // treated
		if r.Held {
			g = &out[r.Journey][1]
		}
		rate := money.rate(r.Currency)
		g.Customers += r.Runs
		g.Conversions += r.Conversions
		g.Revenue += r.Value * rate
		g.RevenueSq += r.ValueSq * rate * rate
	}
	return out
}

// holdoutLift is a journey's lift cells: the conversion lift of the
// treated over the held out, its 95% interval, the chance the journey
// helps, the verdict; only the verdict below lift's minimum.
func holdoutLift(hasHoldout bool, groups *[2]lift.Group) []any {
	if !hasHoldout {
		return []any{nil, nil, nil, nil, "no holdout"}
	}
	var c *lift.Comparison
	if groups != nil {
		c = lift.Compare(groups[0], groups[1], "customers in the journey", "held-out customers")
	}
	if c == nil || !c.Enough {
		return []any{nil, nil, nil, nil, lift.NotEnoughData}
	}
	return []any{c.Conversion.Estimate, c.Conversion.Low, c.Conversion.High, c.Conversion.ProbabilityBetter, c.Verdict}
}

// jgraph is what the report reads of a journey's graph (the format is
// core/journeys/graph's, documented in docs/journeys.md).
type jgraph struct {
	Start string            `json:"start"`
	Nodes map[string]*jnode `json:"nodes"`
}

type jnode struct {
	Type string          `json:"type"`
	Name string          `json:"name"`
	Next json.RawMessage `json:"next"`
}

func parseGraph(raw string) jgraph {
	var g jgraph
	_ = json.Unmarshal([]byte(raw), &g) // an unreadable graph lists no steps
	if g.Nodes == nil {
		g.Nodes = map[string]*jnode{}
	}
	for id, n := range g.Nodes {
		if n == nil {
			delete(g.Nodes, id)
		}
	}
	return g
}

// next is the node's exits' targets, by exit name ("next": "s2" is one).
func (n *jnode) next() []string {
	var one string
	if json.Unmarshal(n.Next, &one) == nil {
		return []string{one}
	}
	var m map[string]string
	_ = json.Unmarshal(n.Next, &m)
	exits := make([]string, 0, len(m))
	for k := range m {
		exits = append(exits, k)
	}
	slices.Sort(exits)
	out := make([]string, len(exits))
	for i, k := range exits {
		out[i] = m[k]
	}
	return out
}

// order lists the nodes as the journey runs them: breadth first from the
// start, then any the start does not reach, by id.
func (g jgraph) order() []string {
	var out []string
	seen := map[string]bool{}
	queue := []string{g.Start}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if seen[id] || g.Nodes[id] == nil {
			continue
		}
		seen[id] = true
		out = append(out, id)
		queue = append(queue, g.Nodes[id].next()...)
	}
	var rest []string
	for id := range g.Nodes {
		if !seen[id] {
			rest = append(rest, id)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// nodeTable is one journey's steps in q: visits, the messages each send
// step sent and what came of them, and the conversions (and revenue) of
// the runs that passed the step.
func nodeTable(db dbx.Builder, q Query, j *journeyRow, channel string, money moneyRates, msgs []msgRow) (Table, error) {
	t := Table{Name: "by_node", Title: "Steps of " + j.Name, Rows: [][]any{}, Columns: []Column{
		{Key: "node", Label: "Step id", Type: TypeText},
		{Key: "label", Label: "Step", Type: TypeText},
		{Key: "type", Label: "Type", Type: TypeText},
		{Key: "reached", Label: "Reached", Type: TypeNumber},
		{Key: "sent", Label: "Sent", Type: TypeNumber},
		{Key: "delivered", Label: "Delivered", Type: TypeNumber},
		{Key: "opened", Label: "Read / opened", Type: TypeNumber},
		{Key: "clicked", Label: "Clicked", Type: TypeNumber},
		{Key: "conversions", Label: "Conversions after it", Type: TypeNumber},
		{Key: "revenue", Label: "Revenue after it", Type: TypeMoney},
	}}
	// The steps of the latest published version, else the draft's.
	raw := j.Graph
	if j.Version > 0 {
		_ = db.NewQuery("SELECT graph FROM journey_versions WHERE journey = {:j} AND version = {:v}").
			Bind(dbx.Params{"j": j.ID, "v": j.Version}).Row(&raw)
	}
	g := parseGraph(raw)
	type nodeFig struct {
		reached, sent, delivered, opened, clicked, conversions int
		revenue                                                float64
	}
	figs := map[string]*nodeFig{}
	fig := func(id string) *nodeFig {
		if figs[id] == nil {
			figs[id] = &nodeFig{}
		}
		return figs[id]
	}
	p := dbx.Params{"start": store.FormatTime(q.Start), "end": store.FormatTime(q.End), "journey": j.ID, "channel": channel}
	type nrow struct {
		Node      string  `db:"node"`
		N         int     `db:"n"`
		Delivered int     `db:"delivered"`
		Opened    int     `db:"opened"`
		Clicked   int     `db:"clicked"`
		Revenue   float64 `db:"revenue"`
	}
	read := func(what, sql string, fn func(r nrow)) error {
		var rows []nrow
		if err := db.NewQuery(sql).Bind(p).All(&rows); err != nil {
			return fmt.Errorf("journeys report: %s: %w", what, err)
		}
		for _, r := range rows {
			fn(r)
		}
		return nil
	}
	// Visits in the period (a step row is written as a run leaves a step
	// or ends at it) and, when the period runs to now, the runs at a step.
	if err := read("visits", `SELECT s.node, COUNT(*) AS n FROM journey_steps s WHERE s.journey = {:journey}
		AND s.at >= {:start} AND s.at < {:end} AND s.node != '_goal' GROUP BY s.node`, func(r nrow) { fig(r.Node).reached += r.N }); err != nil {
		return t, err
	}
	if q.End.After(q.Now) {
		if err := read("runs at a step", `SELECT r.node, COUNT(*) AS n FROM journey_runs r WHERE r.journey = {:journey}
			AND r.status IN ('active', 'waiting') GROUP BY r.node`, func(r nrow) { fig(r.Node).reached += r.N }); err != nil {
			return t, err
		}
	}
	// Messages: those a send step's row names, else the run's step now
	// (the rollup's node).
	for _, r := range msgs {
		if r.Journey != j.ID || (channel != "" && r.Channel != channel) || r.Sent == 0 {
			continue
		}
		n := fig(r.Node)
		n.sent, n.delivered, n.opened, n.clicked = n.sent+r.Sent, n.delivered+r.Delivered, n.opened+r.NodeOpened, n.clicked+r.NodeClicked
	}
	// Conversions in the period of runs that passed each step before
	// their goal.
	if err := read("conversions", `SELECT v.node, COUNT(*) AS n, TOTAL(v.rev) AS revenue
		FROM (SELECT DISTINCT s.run, s.node, r.goal_value * `+money.sql("r.goal_currency", p)+` AS rev
			FROM journey_runs r JOIN journey_steps s ON s.run = r.id
			WHERE r.goal_at != '' AND r.goal_at >= {:start} AND r.goal_at < {:end} AND r.journey = {:journey} AND `+runConverted+`
				AND s.node != '_goal' AND s.at <= r.goal_at) v
		GROUP BY v.node`, func(r nrow) {
		n := fig(r.Node)
		n.conversions, n.revenue = n.conversions+r.N, n.revenue+r.Revenue
	}); err != nil {
		return t, err
	}
	ids := g.order()
	var older []string // steps of an older version
	for id := range figs {
		if g.Nodes[id] == nil && id != "" {
			older = append(older, id)
		}
	}
	slices.Sort(older)
	ids = append(ids, older...)
	for _, id := range ids {
		n := fig(id)
		label, typ := id, ""
		if gn := g.Nodes[id]; gn != nil {
			typ = gn.Type
			if gn.Name != "" {
				label = gn.Name
			}
		}
		t.Rows = append(t.Rows, []any{id, label, typ, n.reached, n.sent, n.delivered, n.opened, n.clicked, n.conversions, round2(n.revenue)})
	}
	return t, nil
}
