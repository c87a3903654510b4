package journeys

import (
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/journeys/graph"
	"github.com/omni/omni/core/lift"
)

// Results of a journey: what entered each step and left by which exit,
// what was sent and what came of it, the conversions and revenue within
// the goal window, and the lift of the treated over the holdout and of
// each A/B arm over the others. Everything is computed from the records
// (journey_runs, journey_steps, the send ledger and the events) when
// asked: there are no counters to drift.
func (m *Module) statsRoutes(g routeGroup) {
	g.GET("/{id}/stats", m.getStats).Bind(api.RequireStaff())
}

// Stats is the answer of GET /api/v1/journeys/{id}/stats.
type Stats struct {
	Journey JourneyStats                      `json:"journey"`
	Nodes   map[string]*NodeStats             `json:"nodes"`
	Arms    map[string]map[string]*GroupStats `json:"arms"`
	Holdout HoldoutStats                      `json:"holdout"`
	// ComputedAt is when these figures were read: results slow to compute
	// are served again for a while (stats_cache.go).
	ComputedAt time.Time `json:"computed_at"`
}

// Engagement is what came of the messages sent: sends that went out (or
// are on their way) and how many of them were delivered, opened, clicked
// and replied to.
type Engagement struct {
	Delivered int `json:"delivered"`
	Opened    int `json:"opened"`
	Clicked   int `json:"clicked"`
	Replied   int `json:"replied"`
}

// JourneyStats is the whole journey.
type JourneyStats struct {
	Entered   int            `json:"entered"`
	Active    int            `json:"active"`
	Completed int            `json:"completed"`
	Exited    map[string]int `json:"exited"`
	Sends     int            `json:"sends"`
	Engagement
	Conversions int     `json:"conversions"`
	Revenue     float64 `json:"revenue"`
	Currency    string  `json:"currency"`
	// RevenueByCurrency is there only when goals came in more than one
	// currency: Revenue is then the main currency's alone.
	RevenueByCurrency map[string]float64 `json:"revenue_by_currency,omitempty"`
}

// NodeStats is one step.
type NodeStats struct {
	Entered int            `json:"entered"` // visits: left the step, or at it now
	Active  int            `json:"active"`  // runs at the step now
	Exits   map[string]int `json:"exits"`
	// Ended counts runs that ended while at the step (goal, exit rule,
	// by hand, archived), by reason.
	Ended      map[string]int `json:"ended"`
	Suppressed map[string]int `json:"suppressed"` // send steps: suppressed sends by reason
	Sends      map[string]int `json:"sends"`      // send steps: sends by channel
	Engagement
}

// GroupStats is a group of runs compared with another: an A/B arm, or
// the held-out and the treated customers.
type GroupStats struct {
	Entered     int     `json:"entered"` // runs in the group (customers: the same, as the lift's unit)
	Active      int     `json:"active"`  // of them, in the journey now
	Customers   int     `json:"customers"`
	Conversions int     `json:"conversions"`
	Revenue     float64 `json:"revenue"`
	// ConversionRate is the posterior mean with its 95% credible interval.
	ConversionRate *lift.Interval `json:"conversion_rate,omitempty"`
	Sends          int            `json:"sends"`
	Engagement
	// Lift and Verdict: arms only, each arm against the other arms of its
	// split together.
	Lift    *LiftStats `json:"lift,omitempty"`
	Verdict string     `json:"verdict,omitempty"`

	group lift.Group
}

// LiftStats is the comparison of two groups.
type LiftStats struct {
	Conversion         lift.Lift `json:"conversion"`
	RevenuePerCustomer lift.Lift `json:"revenue_per_customer"`
}

// HoldoutStats compares the customers a holdout step held out with those
// it let through (the treated). Lift is null below the minimum of
// lift.Enough, and the verdict then says so.
type HoldoutStats struct {
	HeldOut GroupStats `json:"held_out"`
	Treated GroupStats `json:"treated"`
	Lift    *LiftStats `json:"lift"`
	Verdict string     `json:"verdict"`
}

// NoHoldout is the holdout verdict of a journey without a holdout step.
const NoHoldout = "this journey has no holdout"

// replyWindow is how long after a send an inbound message on the same
// channel counts as a reply to it.
const replyWindow = "+7 days"

func (m *Module) getStats(e *core.RequestEvent) error {
	id := e.Request.PathValue("id")
	var j struct {
		Version int    `db:"version"`
		Graph   string `db:"graph"`
	}
	err := e.App.DB().NewQuery("SELECT version, graph FROM " + Collection + " WHERE id={:id}").Bind(dbx.Params{"id": id}).One(&j)
	if errors.Is(err, sql.ErrNoRows) {
		return api.Error(http.StatusNotFound, "No journey with id "+strconv.Quote(id)+".")
	}
	if err != nil {
		return api.Internal("Could not read the journey.", err)
	}
	version := 0
	if v := e.Request.URL.Query().Get("version"); v != "" {
		version, err = strconv.Atoi(v)
		if err != nil || version < 1 {
			return api.BadRequest("version", "must be a published version number (1, 2, …)")
		}
	}
	// The steps to list even before anyone reached them: those of the
	// version asked for, else the latest published, else the draft.
	rawGraph := j.Graph
	if v := version; v > 0 || j.Version > 0 {
		if v == 0 {
			v = j.Version
		}
		err := e.App.DB().NewQuery("SELECT graph FROM " + VersionsCollection + " WHERE journey={:j} AND version={:v}").
			Bind(dbx.Params{"j": id, "v": v}).Row(&rawGraph)
		if errors.Is(err, sql.ErrNoRows) && version > 0 {
			return api.BadRequest("version", fmt.Sprintf("the journey has no version %d", version))
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return api.Internal("Could not read the journey's version.", err)
		}
	}
	var g *graph.Graph
	if rawGraph != "" {
		g, _ = graph.Parse([]byte(rawGraph)) // an unreadable draft lists no steps ahead of the data
	}
	key := id + "\x00" + strconv.Itoa(version) + "\x00" + strconv.Itoa(j.Version) + "\x00" + rawGraph
	st, err := m.stats.get(key, func() (*Stats, error) { return computeStats(e.App.DB(), id, version, g) })
	if err != nil {
		return api.Internal("Could not compute the journey's results.", err)
	}
	return e.JSON(http.StatusOK, st)
}

// statsQuery scopes every query to one journey and, if version > 0, one
// of its versions.
type statsQuery struct {
	db      dbx.Builder
	journey string
	version int
}

// runs is the journey's runs as r: a FROM item and its condition. (Not
// a CTE: SQLite would join a materialized CTE without an index.)
func (q statsQuery) runs() (from, where string) {
	where = "r.journey={:j}"
	if q.version > 0 {
		where += " AND r.version={:v}"
	}
	return RunsCollection + " r", where
}

func (q statsQuery) stepsWhere(alias string) string {
	s := alias + ".journey={:j}"
	if q.version > 0 {
		s += " AND " + alias + ".version={:v}"
	}
	return s
}

func (q statsQuery) all(sql string, params dbx.Params, into any) error {
	p := dbx.Params{"j": q.journey, "v": q.version}
	for k, v := range params {
		p[k] = v
	}
	return q.db.NewQuery(sql).Bind(p).All(into)
}

// converted is true for a run whose goal came within its goal window;
// revenueOf is its revenue in the main currency (goals without a
// currency count as the main currency's).
const (
	converted = "(r.goal_at != '' AND (r.goal_until = '' OR r.goal_at <= r.goal_until))"
	revenueOf = "(CASE WHEN " + converted + " AND r.goal_currency IN ({:cur}, '') THEN r.goal_value ELSE 0 END)"
	// groupCols aggregate a group of runs (r) for a lift comparison.
	groupCols = "COUNT(*) AS n, COALESCE(SUM(r.status IN ('active','waiting')), 0) AS active, COALESCE(SUM(" + converted +
		"), 0) AS conv, TOTAL(" + revenueOf + ") AS rev, TOTAL(" + revenueOf + " * " + revenueOf + ") AS revsq"
)

// holdoutRuns is the CTE h of the runs that left a holdout step: held
// out (ho) or let through. Joined to r, r.holdout also marks a held-out run.
func (q statsQuery) holdoutRuns() string {
	return "WITH h AS (SELECT s.run, MAX(s.exit = 'held_out') AS ho FROM " + StepsCollection + " s WHERE " + q.stepsWhere("s") +
		" AND s.type = 'holdout' AND s.exit != '' GROUP BY s.run) "
}

// groupRow is a scanned groupCols row.
type groupRow struct {
	Key    string  `db:"k"`
	Key2   string  `db:"k2"`
	N      int     `db:"n"`
	Active int     `db:"active"`
	Conv   int     `db:"conv"`
	Rev    float64 `db:"rev"`
	RevSq  float64 `db:"revsq"`
}

func (r groupRow) stats() *GroupStats {
	return &GroupStats{Entered: r.N, Customers: r.N, Active: r.Active, Conversions: r.Conv, Revenue: r.Rev,
		group: lift.Group{Customers: r.N, Conversions: r.Conv, Revenue: r.Rev, RevenueSq: r.RevSq}}
}

// computeStats reads the results of journey (one version if version > 0);
// g, if not nil, lists the steps to show even with no data.
func computeStats(db dbx.Builder, journey string, version int, g *graph.Graph) (*Stats, error) {
	q := statsQuery{db: db, journey: journey, version: version}
	runs, inJourney := q.runs()
	st := &Stats{
		Journey: JourneyStats{Exited: map[string]int{}},
		Nodes:   map[string]*NodeStats{},
		Arms:    map[string]map[string]*GroupStats{},
	}
	node := func(id string) *NodeStats {
		n := st.Nodes[id]
		if n == nil {
			n = &NodeStats{Exits: map[string]int{}, Ended: map[string]int{}, Suppressed: map[string]int{}, Sends: map[string]int{}}
			st.Nodes[id] = n
		}
		return n
	}
	if g != nil {
		for id := range g.Nodes {
			node(id)
		}
	}

	// Runs by status and exit reason.
	var runRows []struct {
		Status string `db:"status"`
		Reason string `db:"exit_reason"`
		N      int    `db:"n"`
	}
	if err := q.all("SELECT r.status, r.exit_reason, COUNT(*) AS n FROM "+runs+" WHERE "+inJourney+" GROUP BY r.status, r.exit_reason", nil, &runRows); err != nil {
		return nil, fmt.Errorf("runs: %w", err)
	}
	for _, r := range runRows {
		st.Journey.Entered += r.N
		switch r.Status {
		case RunActive, RunWaiting:
			st.Journey.Active += r.N
		case RunCompleted:
			st.Journey.Completed += r.N
		default:
			st.Journey.Exited[r.Reason] += r.N
		}
	}

	// Conversions and revenue, by currency.
	var curRows []struct {
		Currency string  `db:"goal_currency"`
		N        int     `db:"n"`
		Revenue  float64 `db:"revenue"`
	}
	if err := q.all("SELECT r.goal_currency, COUNT(*) AS n, TOTAL(r.goal_value) AS revenue FROM "+runs+" WHERE "+inJourney+" AND "+converted+
		" GROUP BY r.goal_currency", nil, &curRows); err != nil {
		return nil, fmt.Errorf("conversions: %w", err)
	}
	cur := mainCurrency(curRows)
	byCur := map[string]float64{}
	for _, c := range curRows {
		st.Journey.Conversions += c.N
		k := c.Currency
		if k == "" {
			k = cur
		}
		byCur[k] += c.Revenue
	}
	st.Journey.Currency, st.Journey.Revenue = cur, byCur[cur]
	if len(byCur) > 1 {
		st.Journey.RevenueByCurrency = byCur
	}
	withCur := dbx.Params{"cur": cur}

	// Step visits by exit; runs that ended at a step, by reason.
	var stepRows []struct {
		Node  string `db:"node"`
		Exit  string `db:"exit"`
		Ended string `db:"ended"`
		N     int    `db:"n"`
	}
	if err := q.all("SELECT s.node, s.exit, COALESCE(CASE WHEN s.exit = '' AND json_valid(s.detail) THEN json_extract(s.detail, '$.ended') END, '') AS ended, "+
		"COUNT(*) AS n FROM "+StepsCollection+" s WHERE "+q.stepsWhere("s")+" AND s.node != '_goal' GROUP BY s.node, s.exit, ended", nil, &stepRows); err != nil {
		return nil, fmt.Errorf("steps: %w", err)
	}
	for _, s := range stepRows {
		n := node(s.Node)
		n.Entered += s.N
		if s.Exit != "" {
			n.Exits[s.Exit] += s.N
			continue
		}
		reason := s.Ended
		if reason == "" {
			reason = "end"
		}
		n.Ended[reason] += s.N
	}

	// Runs at each step now.
	var atRows []struct {
		Node string `db:"node"`
		N    int    `db:"n"`
	}
	if err := q.all("SELECT r.node, COUNT(*) AS n FROM "+runs+" WHERE "+inJourney+" AND r.status IN ('active','waiting') GROUP BY r.node", nil, &atRows); err != nil {
		return nil, fmt.Errorf("active runs: %w", err)
	}
	for _, a := range atRows {
		n := node(a.Node)
		n.Active += a.N
		n.Entered += a.N
	}

	// Suppressed sends by reason: the step's reason, else the ledger's.
	var supRows []struct {
		Node   string `db:"node"`
		Reason string `db:"reason"`
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	if err := q.all(`SELECT s.node, COALESCE(NULLIF(json_extract(s.detail, '$.reason'), ''), m.reason, '') AS reason,
		COALESCE(m.status, '') AS status, COUNT(*) AS n
		FROM `+StepsCollection+` s LEFT JOIN messages m ON m.id = json_extract(s.detail, '$.message_id')
		WHERE `+q.stepsWhere("s")+` AND s.type = 'send' AND s.exit = 'suppressed' AND json_valid(s.detail)
		GROUP BY s.node, reason, status`, nil, &supRows); err != nil {
		return nil, fmt.Errorf("suppressed sends: %w", err)
	}
	for _, s := range supRows {
		node(s.Node).Suppressed[SuppressionReason(s.Reason, s.Status)] += s.N
	}

	// Arms: runs by the arm they took at each split.
	var armRows []groupRow
	if err := q.all(`WITH a AS (SELECT DISTINCT s.node AS k, COALESCE(NULLIF(json_extract(s.detail, '$.arm'), ''), s.exit) AS k2, s.run
		FROM `+StepsCollection+` s WHERE `+q.stepsWhere("s")+` AND s.type = 'split' AND s.exit != '' AND json_valid(s.detail))
		SELECT a.k, a.k2, `+groupCols+` FROM a JOIN `+runs+` ON r.id = a.run WHERE `+inJourney+` GROUP BY a.k, a.k2`, withCur, &armRows); err != nil {
		return nil, fmt.Errorf("arms: %w", err)
	}
	for _, a := range armRows {
		if st.Arms[a.Key] == nil {
			st.Arms[a.Key] = map[string]*GroupStats{}
		}
		st.Arms[a.Key][a.Key2] = a.stats()
	}

	// Holdout: the held out against the let through.
	var hoRows []groupRow
	if err := q.all(q.holdoutRuns()+`SELECT CASE WHEN h.ho OR r.holdout THEN 'held_out' ELSE 'treated' END AS k, '' AS k2, `+groupCols+`
		FROM h JOIN `+runs+` ON r.id = h.run WHERE `+inJourney+` GROUP BY k`, withCur, &hoRows); err != nil {
		return nil, fmt.Errorf("holdout: %w", err)
	}
	hasHoldout := len(hoRows) > 0
	if g != nil {
		for _, n := range g.Nodes {
			hasHoldout = hasHoldout || n.Type == graph.Holdout
		}
	}
	for _, h := range hoRows {
		gs := h.stats()
		if h.Key == "held_out" {
			st.Holdout.HeldOut = *gs
		} else {
			st.Holdout.Treated = *gs
		}
	}

	// Messages and what came of them.
	if err := q.messages(st, node); err != nil {
		return nil, err
	}

	// Lift: the holdout, and each arm against the other arms of its split.
	ho := &st.Holdout
	ho.HeldOut.ConversionRate, ho.Treated.ConversionRate = rateOf(ho.HeldOut.group), rateOf(ho.Treated.group)
	switch {
	case !hasHoldout:
		ho.Verdict = NoHoldout
	default:
		ho.Lift, ho.Verdict = compare(ho.Treated.group, ho.HeldOut.group, "treated customers", "held-out customers")
	}
	for _, arms := range st.Arms {
		for name, a := range arms {
			var rest lift.Group
			for other, o := range arms {
				if other != name {
					rest.Customers += o.group.Customers
					rest.Conversions += o.group.Conversions
					rest.Revenue += o.group.Revenue
					rest.RevenueSq += o.group.RevenueSq
				}
			}
			a.ConversionRate = rateOf(a.group)
			a.Lift, a.Verdict = compare(a.group, rest, "customers in arm "+name, "customers in the other arms")
		}
	}
	return st, nil
}

// messages counts the journey's sends per step, arm and group, with their
// delivery, opens, clicks and replies. A message belongs to the step whose
// send step row names it; one still awaiting its outcome, to the step its
// run is at.
//
// Opened: the ledger says read (WhatsApp, SMS read receipts) or opened
// (an email.opened or email.clicked naming the message, which the
// messaging ledger records as opened_at). Clicked: the ledger's
// clicked_at. Replied: a message.received from the customer on the same
// channel within 7 days after it went out.
func (q statsQuery) messages(st *Stats, node func(string) *NodeStats) error {
	const out = "m.status IN ('queued','scheduled','sent','delivered','read')"
	const sentAt = "COALESCE(NULLIF(m.sent_at, ''), NULLIF(m.queued_at, ''), m.created)"
	var rows []struct {
		Run       string `db:"run"`
		Node      string `db:"node"` // where the run is
		Holdout   bool   `db:"holdout"`
		Message   string `db:"message"`
		Channel   string `db:"channel"`
		Delivered bool   `db:"delivered"`
		Opened    bool   `db:"opened"`
		Clicked   bool   `db:"clicked"`
		Replied   bool   `db:"replied"`
		// Steps are the run's split, holdout and send steps, each as type,
		// node, exit and its arm or message id (joined by \x1f, the steps
		// by \x1e): one look-up of the run's steps instead of one for
		// each thing read of them.
		Steps sql.NullString `db:"steps"`
	}
	runs, inJourney := q.runs()
	err := q.all(`SELECT r.id AS run, r.node, r.holdout, m.id AS message, m.channel,
		m.status IN ('delivered','read') AS delivered,
		(m.status = 'read' OR m.opened_at != '') AS opened,
		m.clicked_at != '' AS clicked,
		EXISTS (SELECT 1 FROM events e WHERE e.profile = m.profile AND +e.type = 'message.received' AND e.channel = m.channel
			AND e.occurred_at > `+sentAt+` AND e.occurred_at <= strftime('%Y-%m-%d %H:%M:%fZ', `+sentAt+`, '`+replyWindow+`')) AS replied,
		(SELECT group_concat(st.type || char(31) || st.node || char(31) || st.exit || char(31) || COALESCE(CASE st.type
				WHEN 'split' THEN COALESCE(NULLIF(json_extract(st.detail, '$.arm'), ''), st.exit)
				WHEN 'send' THEN json_extract(st.detail, '$.message_id') END, ''), char(30))
			FROM `+StepsCollection+` st WHERE st.run = r.id AND st.type IN ('split', 'holdout', 'send')
			AND (st.type = 'holdout' OR json_valid(st.detail))) AS steps
		FROM `+runs+` JOIN messages m ON m.profile = r.profile AND m.journey_run = r.id
		WHERE `+inJourney+` AND `+out,
		nil, &rows)
	if err != nil {
		return fmt.Errorf("messages: %w", err)
	}
	for _, r := range rows {
		e := Engagement{Delivered: b2i(r.Delivered), Opened: b2i(r.Opened), Clicked: b2i(r.Clicked), Replied: b2i(r.Replied)}
		// The message belongs to the send step that names it; one still
		// awaiting its outcome, to the step its run is at.
		at, sentBy := r.Node, false
		side := -1           // of a holdout: 1 held out, 0 treated, -1 neither
		var arms [][2]string // [split, arm] the run took
		for step := range strings.SplitSeq(r.Steps.String, "\x1e") {
			typ, rest, _ := strings.Cut(step, "\x1f")
			stepNode, rest, _ := strings.Cut(rest, "\x1f")
			exit, extra, _ := strings.Cut(rest, "\x1f")
			switch {
			case typ == "send" && extra == r.Message && !sentBy:
				at, sentBy = stepNode, true
			case typ == "split" && exit != "":
				arms = append(arms, [2]string{stepNode, extra})
			case typ == "holdout" && exit != "":
				if exit == "held_out" || r.Holdout {
					side = 1
				} else if side < 0 {
					side = 0
				}
			}
		}
		st.Journey.Sends++
		st.Journey.Engagement.add(e)
		n := node(at)
		n.Sends[r.Channel]++
		n.Engagement.add(e)
		seen := map[*GroupStats]bool{}
		for _, a := range arms {
			if gs := st.Arms[a[0]][a[1]]; gs != nil && !seen[gs] {
				seen[gs] = true
				gs.Sends++
				gs.Engagement.add(e)
			}
		}
		switch side {
		case 1:
			st.Holdout.HeldOut.Sends++
			st.Holdout.HeldOut.Engagement.add(e)
		case 0:
			st.Holdout.Treated.Sends++
			st.Holdout.Treated.Engagement.add(e)
		}
	}
	return nil
}

func (e *Engagement) add(o Engagement) {
	e.Delivered += o.Delivered
	e.Opened += o.Opened
	e.Clicked += o.Clicked
	e.Replied += o.Replied
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// mainCurrency is the currency most goals came in (ties: the larger
// revenue, then by name); "" if none named one.
func mainCurrency(rows []struct {
	Currency string  `db:"goal_currency"`
	N        int     `db:"n"`
	Revenue  float64 `db:"revenue"`
}) string {
	best := -1
	for i, r := range rows {
		if r.Currency == "" {
			continue
		}
		if best < 0 || r.N > rows[best].N || (r.N == rows[best].N && (r.Revenue > rows[best].Revenue ||
			(r.Revenue == rows[best].Revenue && r.Currency < rows[best].Currency))) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return rows[best].Currency
}

func rateOf(g lift.Group) *lift.Interval {
	if g.Customers == 0 {
		return nil
	}
	r := lift.Rate(g)
	return &r
}

// compare is lift.Compare as the API shows it: no lift below the minimum
// (lift.Enough), so a point estimate from a handful of customers is never
// read as a result; each group's conversion rate keeps its honest, wide
// interval meanwhile.
func compare(treated, control lift.Group, treatedName, controlName string) (*LiftStats, string) {
	c := lift.Compare(treated, control, treatedName, controlName)
	if c == nil || !c.Enough {
		return nil, lift.NotEnoughData
	}
	return &LiftStats{Conversion: c.Conversion, RevenuePerCustomer: c.RevenuePerCustomer}, c.Verdict
}

// Suppression reasons, as the backtest names them too.
var suppressionReasons = []struct{ key, marker string }{
	{"frequency_cap", "frequency cap"},
	{"quiet_hours", "quiet hours"},
	{"consent", "no marketing consent"},
	{"whatsapp_window", "whatsapp 24-hour window"},
	{"undeliverable", "is undeliverable"},
	{"no_address", "the customer has no "},
	{"no_connector", "channel is connected"},
}

// SuppressionReason turns why the gate refused a send (its sentence in
// the ledger, or a reason key) into a short key: frequency_cap,
// quiet_hours, consent, whatsapp_window, undeliverable, no_address,
// no_connector, failed (the connector could not deliver it) or other.
// With a channel fallback list the gate names every channel's reason;
// the first key in this order that any of them matches wins.
func SuppressionReason(reason, ledgerStatus string) string {
	r := strings.ToLower(strings.TrimSpace(reason))
	for _, s := range suppressionReasons {
		if r == s.key || strings.Contains(r, s.marker) {
			return s.key
		}
	}
	if r == "failed" || ledgerStatus == "failed" {
		return "failed"
	}
	return "other"
}
