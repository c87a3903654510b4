package metrics

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/api"
)

// The inbox report reads the inbox's tables at query time (read-only,
// never through its package): conversations (one row per thread, holding
// its current opening), conversation_messages (who wrote when) and, for
// history the row no longer holds, the inbox's own events in the events
// table: conversation.resolved, conversation.opened {reopened: true} and
// survey.answered (CSAT on 1–5 per conversation, NPS on 0–10 per
// customer).
//
// A conversation belongs to the period it first opened in (its row's
// created time: a reopen moves opened_at, not created), so a reopened
// conversation counts once.

// inboxFCRDaysDefault is how long after a resolution the customer must
// stay quiet for the resolution to count as first-contact resolution,
// unless the metrics setting "inbox" {fcr_days} says otherwise.
const inboxFCRDaysDefault = 3

// InboxSetting is the metrics setting "inbox".
type InboxSetting struct {
	FCRDays int `json:"fcr_days"`
}

// inboxChannelParam is what a channel name looks like (whatsapp, email,
// sms, chat, …).
var inboxChannelParam = regexp.MustCompile(`^[a-z0-9_-]{1,20}$`)

// inboxConv is one conversation as the report reads it: its row only
// (reading every message of 50,000 conversations would not answer in
// time); the messages are read for the few the row cannot tell about.
type inboxConv struct {
	ID          string `db:"id"`
	Profile     string `db:"profile"`
	Channel     string `db:"channel"`
	Assignee    string `db:"assignee"`
	Status      string `db:"status"`
	Bot         bool   `db:"bot"`
	HandoffAt   string `db:"handoff_at"`
	ResolvedAt  string `db:"resolved_at"`
	OpenedAt    string `db:"opened_at"` // the latest opening (a reopen moves it)
	Created     string `db:"created"`   // the first opening
	SLABreaches int    `db:"sla_breaches"`
	CSAT        int    `db:"csat_score"`
	// FirstResponseAt is the inbox's first agent reply of the latest
	// opening (inboxFirstReplies corrects it where an agent wrote first).
	FirstResponseAt string `db:"first_response_at"`
	Updated         string `db:"updated"`
	// askedAt, when set, is the customer's first message of the opening
	// (inboxFirstReplies read it): the first response runs from it.
	askedAt string
}

// inboxFilter is the report's own parameters: channel= and agent=.
type inboxFilter struct {
	channel, agent string
}

func (f inboxFilter) where(alias string) (string, dbx.Params) {
	var sb strings.Builder
	p := dbx.Params{}
	if f.channel != "" {
		sb.WriteString(" AND " + alias + "channel = {:channel}")
		p["channel"] = f.channel
	}
	if f.agent != "" {
		sb.WriteString(" AND " + alias + "assignee = {:agent}")
		p["agent"] = f.agent
	}
	return sb.String(), p
}

// inboxFigures is what one period adds up to.
type inboxFigures struct {
	totals map[string]float64
	// per bucket, same length as the query's buckets
	opened, resolved, frtMedian []float64
	all                         inboxAcc
	agents, channels            map[string]*inboxAcc // by assignee, by channel
	nps                         [11]int
	replies                     map[string]int // agent replies by staff id
	// First-contact resolution is judged of conversations first resolved
	// before cutoff, on follow-ups within window (unix ms).
	cutoff, window int64
}

func (m *Module) inboxReport(app core.App, q Query) (*Report, error) {
	f := inboxFilter{channel: strings.TrimSpace(q.Params["channel"]), agent: strings.TrimSpace(q.Params["agent"])}
	if f.channel != "" && !inboxChannelParam.MatchString(f.channel) {
		return nil, api.BadRequest("channel", fmt.Sprintf("expected a channel name such as whatsapp, email, sms or chat, got %q", f.channel))
	}
	if f.agent != "" {
		var n int
		if err := app.DB().NewQuery("SELECT COUNT(*) FROM staff WHERE id = {:id}").Bind(dbx.Params{"id": f.agent}).Row(&n); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, api.BadRequest("agent", fmt.Sprintf("no staff member has the id %q", f.agent))
		}
	}
	fcrDays := inboxFCRDaysDefault
	var s InboxSetting
	if m.settings.get("inbox", &s) && s.FCRDays >= 1 && s.FCRDays <= 90 {
		fcrDays = s.FCRDays
	}

	pending, err := m.inboxRefresh(app, false)
	if err != nil {
		return nil, err
	}
	r := newReport("inbox", q)
	if pending > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%s conversation(s) are still being worked out in the background: "+
			"until then they are not in these figures.", thousands(pending)))
	}
	cur, err := inboxCompute(app, q, f, fcrDays)
	if err != nil {
		return nil, err
	}
	r.Totals = cur.totals
	w, p := f.where("")
	var waiting int
	if err := app.DB().NewQuery("SELECT COUNT(*) FROM conversations WHERE status = 'open' AND waiting_since != ''" + w).
		Bind(p).Row(&waiting); err != nil {
		return nil, err
	}
	r.Totals["waiting_now"] = float64(waiting)

	buckets := q.Buckets()
	r.Series = &Series{X: make([]int64, len(buckets)), Y: map[string][]float64{
		"opened": cur.opened, "resolved": cur.resolved, "first_response_median": cur.frtMedian}}
	for i, b := range buckets {
		r.Series.X[i] = b.Unix()
	}
	if q.Compare {
		prev, err := inboxCompute(app, q.Previous(), f, fcrDays)
		if err != nil {
			return nil, err
		}
		r.Previous = prev.totals
		fit := func(v []float64) []float64 { // bucket i of the previous period beside bucket i of this one
			out := make([]float64, len(buckets))
			copy(out, v)
			return out
		}
		r.Series.Previous = map[string][]float64{"opened": fit(prev.opened), "resolved": fit(prev.resolved),
			"first_response_median": fit(prev.frtMedian)}
	}

	names, err := inboxStaffNames(app)
	if err != nil {
		return nil, err
	}
	r.Tables = append(r.Tables, inboxByAgent(cur, names), inboxByChannel(cur), inboxCSATTable(cur), inboxNPSTable(cur))
	r.Notes = append(r.Notes, fmt.Sprintf("First-contact resolution: a resolved conversation counts as resolved at first contact when the customer "+
		"neither reopens it nor opens another one on the same channel within %d days of its first resolution.", fcrDays))
	if cur.all.pending > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d resolved conversation(s) were resolved less than %d days ago and are not in fcr_rate yet.",
			cur.all.pending, fcrDays))
	}
	r.Notes = append(r.Notes, "Response and resolution times run on the clock, not business hours.")
	if f.channel != "" || f.agent != "" {
		r.Notes = append(r.Notes, "NPS answers are about the shop, not a conversation: the channel and agent filters do not apply to them.")
	}
	return r, nil
}

// inboxRow is a conversation's metrics_conversations row.
type inboxRow struct {
	ID, Profile, Channel, Assignee string
	Opened, Resolved               int64   // unix ms; Resolved 0 unless resolved
	FRT, Resolution                float64 // seconds; -1 none
	Bot, HandedOff                 bool
	SLABreaches, CSAT              int
	FirstResolved, Reopened        int64 // unix ms; 0 none
	Replies                        string
	// Follow and Version are the row's own columns, not of the packed
	// text: the customer's later conversations move them.
	Follow, Version int64
}

func (c *inboxRow) frt() (float64, bool)        { return c.FRT, c.FRT >= 0 }
func (c *inboxRow) resolution() (float64, bool) { return c.Resolution, c.Resolution >= 0 }

// inboxRows reads metrics_conversations rows (their packed text: one
// column a row reads much faster than fifteen). A row that does not
// unpack is worked out again by the next refresh.
func inboxRows(db dbx.Builder, where string, p dbx.Params) ([]*inboxRow, error) {
	// One text of all the rows ("\n" between them): tens of thousands of
	// rows one by one through database/sql cost more than the report.
	// Each: follow_ms|version|packed (the two change without the rest).
	var all string
	if err := db.NewQuery(`SELECT COALESCE(group_concat(COALESCE(follow_ms, 0) || '|' || COALESCE(version, 0) || '|' || packed, char(10)), '')
		FROM ` + InboxConversationsCollection + ` INDEXED BY idx_metrics_conversations_opened WHERE ` + where).
		Bind(p).Row(&all); err != nil {
		return nil, err
	}
	rows := make([]inboxRow, strings.Count(all, "\n")+1) // one allocation, not one a row
	out := make([]*inboxRow, 0, len(rows))
	for i := 0; all != ""; i++ {
		var line, follow, version string
		line, all, _ = strings.Cut(all, "\n")
		follow, line, _ = strings.Cut(line, "|")
		version, line, _ = strings.Cut(line, "|")
		var err1, err2 error
		rows[i].Follow, err1 = strconv.ParseInt(follow, 10, 64)
		rows[i].Version, err2 = strconv.ParseInt(version, 10, 64)
		if err1 == nil && err2 == nil && rows[i].unpack(line) {
			out = append(out, &rows[i])
		}
	}
	return out, nil
}

// inboxCompute adds up the conversations opened in q (and, for the
// series, those resolved in it): from the day rollup (inbox_days.go) for
// days, weeks and months, from the conversations' rows for hours.
func inboxCompute(app core.App, q Query, f inboxFilter, fcrDays int) (*inboxFigures, error) {
	db := app.DB()
	start, end := q.Start.UnixMilli(), q.End.UnixMilli()
	window := int64(fcrDays) * 24 * int64(time.Hour/time.Millisecond)
	buckets := q.Buckets()
	index := make(map[int64]int, len(buckets))
	for i, b := range buckets {
		index[b.Unix()] = i
	}
	// The bucket of a time, worked out once per quarter hour (every zone's
	// offset is whole quarter hours, so all of one falls in one bucket).
	const quarter = int64(15 * time.Minute / time.Millisecond)
	byQuarter := map[int64]int{}
	bucketOf := func(ms int64) (int, bool) {
		k := ms / quarter
		i, seen := byQuarter[k]
		if !seen {
			j, ok := index[q.BucketOf(time.UnixMilli(ms)).Unix()]
			if !ok {
				j = -1
			}
			byQuarter[k], i = j, j
		}
		return i, i >= 0
	}
	fg := &inboxFigures{totals: map[string]float64{}, opened: make([]float64, len(buckets)), resolved: make([]float64, len(buckets)),
		frtMedian: make([]float64, len(buckets)), agents: map[string]*inboxAcc{}, channels: map[string]*inboxAcc{}, replies: map[string]int{},
		cutoff: q.Now.UnixMilli() - window, window: window}
	// Resolved in the period, whenever opened (the series).
	wa, pa := f.where("")
	pa["s"], pa["e"] = start, end
	var resolved string
	if err := db.NewQuery(`SELECT COALESCE(group_concat(resolved_ms), '') FROM ` + InboxConversationsCollection + ` INDEXED BY idx_metrics_conversations_resolved
		WHERE resolved_ms > 0 AND resolved_ms >= {:s} AND resolved_ms < {:e}` + wa).Bind(pa).Row(&resolved); err != nil {
		return nil, err
	}
	for resolved != "" {
		var v string
		v, resolved, _ = strings.Cut(resolved, ",")
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			if i, ok := bucketOf(ms); ok {
				fg.resolved[i]++
			}
		}
	}

	frtByBucket := make([][]float64, len(buckets))
	take := func(i int, d *inboxDay) {
		if (f.channel != "" && d.channel != f.channel) || (f.agent != "" && d.assignee != f.agent) {
			return
		}
		fg.add(d)
		if i >= 0 {
			fg.opened[i] += float64(d.n)
			frtByBucket[i] = append(frtByBucket[i], d.frt...)
		}
	}
	if q.Bucket == "hour" {
		w, p := inboxFilter{channel: f.channel}.where("")
		p["s"], p["e"] = start, end
		rows, err := inboxRows(db, `opened_ms >= {:s} AND opened_ms < {:e}`+w, p)
		if err != nil {
			return nil, err
		}
		for _, c := range rows {
			i, _ := bucketOf(c.Opened)
			d := &inboxDay{channel: c.Channel, assignee: c.Assignee}
			d.add(c)
			take(i, d)
		}
	} else {
		days, err := inboxDays(app, q)
		if err != nil {
			return nil, err
		}
		for day, groups := range days {
			i, _ := bucketOf(day)
			for _, d := range groups {
				take(i, d)
			}
		}
	}
	for i, v := range frtByBucket {
		fg.frtMedian[i], _ = inboxPercentile(v, 0.5)
	}

	if err := inboxNPS(app, q, fg); err != nil {
		return nil, err
	}
	fg.all.put(fg.totals)
	var promoters, detractors, answers int
	for score, n := range fg.nps {
		answers += n
		switch {
		case score >= 9:
			promoters += n
		case score <= 6:
			detractors += n
		}
	}
	fg.totals["nps_responses"] = float64(answers)
	if answers > 0 {
		fg.totals["nps"] = inboxRound(float64(promoters-detractors)/float64(answers)*100, 1)
	}
	return fg, nil
}

// add takes a group's figures into the period's, its agent's and its
// channel's.
func (fg *inboxFigures) add(d *inboxDay) {
	for _, a := range []*inboxAcc{&fg.all, inboxAccOf(fg.agents, d.assignee), inboxAccOf(fg.channels, d.channel)} {
		a.add(d, fg.cutoff, fg.window)
	}
	for staff, n := range d.replies {
		fg.replies[staff] += n
	}
}

func inboxAccOf(by map[string]*inboxAcc, key string) *inboxAcc {
	a := by[key]
	if a == nil {
		a = &inboxAcc{}
		by[key] = a
	}
	return a
}

// inboxKey is a customer on a channel.
type inboxKey struct{ profile, channel string }

// inboxAcc adds up groups of conversations into a period's figures.
type inboxAcc struct {
	n, bot, handed, breaches, breached int
	csat                               [6]int
	frt, res                           []float64
	// First-contact resolution: judged, resolved at first contact, and
	// resolved less than the window ago (not judged yet).
	fcrN, fcrOK, pending int
}

// add takes d in. A conversation first resolved before the cutoff (the
// window before now) is judged: resolved at first contact unless, within
// the window after its first resolution, it was reopened or the customer
// opened another conversation on the same channel (its follow-up).
func (a *inboxAcc) add(d *inboxDay, cutoff, window int64) {
	a.n += d.n
	a.bot += d.bot
	a.handed += d.handed
	a.breaches += d.breaches
	a.breached += d.breached
	for s := 1; s <= 5; s++ {
		a.csat[s] += d.csat[s]
	}
	a.frt = append(a.frt, d.frt...)
	a.res = append(a.res, d.res...)
	for i := 0; i+1 < len(d.fcr); i += 2 {
		r1, follow := d.fcr[i], d.fcr[i+1]
		if r1 > cutoff {
			a.pending++
			continue
		}
		a.fcrN++
		if follow == 0 || follow > r1+window {
			a.fcrOK++
		}
	}
}

// put writes the figures to t.
func (a *inboxAcc) put(t map[string]float64) {
	csatN, csatSum := 0, 0
	for s := 1; s <= 5; s++ {
		csatN += a.csat[s]
		csatSum += s * a.csat[s]
	}
	t["conversations"] = float64(a.n)
	t["by_bot"] = float64(a.bot)
	t["handed_off"] = float64(a.handed)
	t["sla_breaches"] = float64(a.breaches)
	t["csat_responses"] = float64(csatN)
	if a.n > 0 {
		t["sla_breach_rate"] = float64(a.breached) / float64(a.n)
	}
	if v, ok := inboxPercentile(a.frt, 0.5); ok {
		t["first_response_median"] = v
		t["first_response_p90"], _ = inboxPercentile(a.frt, 0.9)
	}
	if v, ok := inboxPercentile(a.res, 0.5); ok {
		t["resolution_median"] = v
		t["resolution_p90"], _ = inboxPercentile(a.res, 0.9)
	}
	if a.fcrN > 0 {
		t["fcr_rate"] = float64(a.fcrOK) / float64(a.fcrN)
	}
	if csatN > 0 {
		t["csat"] = inboxRound(float64(csatSum)/float64(csatN), 2)
		t["csat_satisfied_rate"] = float64(a.csat[4]+a.csat[5]) / float64(csatN)
	}
}

// inboxFastAnswer is how soon after the opening an agent's first message
// is more likely a conversation staff started than an answer: for those
// the messages tell.
const inboxFastAnswer = 5 * time.Second

// inboxFirstReplies checks the first replies the rows cannot vouch for:
// where an agent wrote within seconds of the opening, the first response
// is the first agent reply after the customer's first message of the
// opening (and after the hand-off), if any.
func inboxFirstReplies(db dbx.Builder, convs []*inboxConv) error {
	var look [][3]string
	at := map[string]*inboxConv{}
	for _, c := range convs {
		if d, ok := c.frt(); ok && d < inboxFastAnswer.Seconds() {
			look = append(look, [3]string{c.ID, c.OpenedAt, c.HandoffAt})
			at[c.ID] = c
		}
	}
	for len(look) > 0 {
		n := min(len(look), 500)
		list, _ := json.Marshal(look[:n])
		var found []struct {
			ID    string `db:"id"`
			In    string `db:"first_in"`
			Reply string `db:"reply"`
		}
		if err := db.NewQuery(`WITH j AS (SELECT value ->> '$[0]' AS id, value ->> '$[1]' AS opened, value ->> '$[2]' AS handoff FROM json_each({:list})),
			f AS (SELECT j.id, j.handoff, (SELECT MIN(m.created) FROM conversation_messages m WHERE m.conversation = j.id
				AND m.author = 'customer' AND m.auto_reply = 0 AND m.created >= j.opened) AS first_in FROM j)
			SELECT f.id, COALESCE(f.first_in, '') AS first_in, CASE WHEN f.first_in IS NULL THEN '' ELSE COALESCE((SELECT MIN(m.created) FROM conversation_messages m
				WHERE m.conversation = f.id AND m.author = 'agent' AND m.direction = 'out' AND m.created >= MAX(f.first_in, f.handoff)), '') END AS reply
			FROM f`).Bind(dbx.Params{"list": string(list)}).All(&found); err != nil {
			return err
		}
		for _, x := range found {
			if c := at[x.ID]; c != nil {
				c.FirstResponseAt, c.askedAt = x.Reply, x.In
			}
		}
		look = look[n:]
	}
	return nil
}

// frt is the first response time in seconds of the latest opening: from
// the customer's message that opened it (or the hand-off, when the bot or
// a journey had it first) to the first agent reply.
func (c *inboxConv) frt() (float64, bool) {
	if c.FirstResponseAt == "" {
		return 0, false
	}
	from := max(c.OpenedAt, c.askedAt, c.HandoffAt)
	a, ok1 := inboxParse(from)
	b, ok2 := inboxParse(c.FirstResponseAt)
	if !ok1 || !ok2 || b.Before(a) {
		return 0, false
	}
	return b.Sub(a).Seconds(), true
}

// resolution is the time from opening to the (last) resolution, for a
// resolved conversation.
func (c *inboxConv) resolution() (float64, bool) {
	if c.Status != "resolved" || c.ResolvedAt == "" {
		return 0, false
	}
	a, ok1 := inboxParse(c.Created)
	b, ok2 := inboxParse(c.ResolvedAt)
	if !ok1 || !ok2 || b.Before(a) {
		return 0, false
	}
	return b.Sub(a).Seconds(), true
}

// byBot: resolved while the bot still had it, no person having replied.
func (c *inboxConv) byBot() bool { return c.Status == "resolved" && c.Bot && c.FirstResponseAt == "" }

// inboxNPS counts NPS answers (survey.answered on 0–10) given in q:
// each customer's latest answer in the period.
func inboxNPS(app core.App, q Query, fg *inboxFigures) error {
	// SQLite picks out the three fields (as JSON texts, so no tab or line
	// break inside) of the answers whose properties decode as the survey
	// struct did (an object, survey a string or absent), in one text.
	var all string
	if err := app.DB().NewQuery(`SELECT COALESCE(group_concat(
			CASE WHEN profile = '' THEN 'event:' || id ELSE profile END || char(9) ||
			COALESCE(properties -> '$.survey', 'null') || char(9) || COALESCE(properties -> '$.score', 'null') || char(9) ||
			COALESCE(properties -> '$.scale', 'null'), char(10) ORDER BY occurred_at), '')
		FROM events INDEXED BY idx_metrics_events_surveys WHERE type = 'survey.answered' AND occurred_at >= {:s} AND occurred_at < {:e}
		AND json_valid(properties) AND json_type(properties) = 'object'
		AND COALESCE(json_type(properties, '$.survey'), 'null') IN ('null', 'text')`).
		Bind(dbx.Params{"s": inboxFormat(q.Start), "e": inboxFormat(q.End)}).Row(&all); err != nil {
		return err
	}
	latest := map[string]int{}
	for all != "" {
		var line string
		line, all, _ = strings.Cut(all, "\n")
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			continue
		}
		sv, ok1 := inboxJSONValue(f[1])
		score, ok2 := inboxJSONValue(f[2])
		scale, ok3 := inboxJSONValue(f[3])
		survey, isText := sv.(string)
		if !ok1 || !ok2 || !ok3 || (sv != nil && !isText) || !inboxTenScale(survey, scale) {
			continue
		}
		v, ok := inboxNumber(score)
		if !ok || v < 0 || v > 10 || v != math.Trunc(v) {
			continue
		}
		latest[f[0]] = int(v)
	}
	for _, s := range latest {
		fg.nps[s]++
	}
	return nil
}

// inboxJSONValue decodes a JSON text as json.Unmarshal into an any
// would: plain strings and numbers (most answers) without it. s is
// SQLite's JSON of a value, so valid JSON.
func inboxJSONValue(s string) (any, bool) {
	switch {
	case s == "null":
		return nil, true
	case len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' && !strings.ContainsAny(s[1:len(s)-1], `\"`):
		return s[1 : len(s)-1], true
	case s != "" && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')):
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f, true
		}
	}
	var v any
	err := json.Unmarshal([]byte(s), &v)
	return v, err == nil
}

// inboxTenScale: Omni's NPS answers say survey "nps"; others may only say
// the scale (10, "0-10", "nps"), as the journeys' bad-score rule reads them.
func inboxTenScale(survey string, scale any) bool {
	if strings.EqualFold(survey, "nps") {
		return true
	}
	if strings.EqualFold(survey, "csat") {
		return false
	}
	if n, ok := scale.(float64); ok {
		return n == 10
	}
	s, _ := scale.(string)
	s = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "–", "-")
	return s == "0-10" || s == "nps" || s == "10"
}

func inboxNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

// inboxGroup is a by_agent or by_channel row in the making.
type inboxGroup struct {
	key string
	acc *inboxAcc
}

func inboxGroups(by map[string]*inboxAcc) []*inboxGroup {
	out := make([]*inboxGroup, 0, len(by))
	for k, a := range by {
		out = append(out, &inboxGroup{key: k, acc: a})
	}
	return out
}

// inboxCell is a total for a table cell: nil when the figure has no data.
func inboxCell(t map[string]float64, key string) any {
	if v, ok := t[key]; ok {
		return v
	}
	return nil
}

func inboxByAgent(fg *inboxFigures, names map[string]string) Table {
	t := Table{Name: "by_agent", Title: "By agent", Columns: []Column{
		{Key: "agent", Label: "Agent", Type: TypeText},
		{Key: "conversations", Label: "Conversations", Type: TypeNumber},
		{Key: "replies", Label: "Replies", Type: TypeNumber},
		{Key: "first_response_median", Label: "First response (median)", Type: TypeDuration},
		{Key: "resolution_median", Label: "Resolution (median)", Type: TypeDuration},
		{Key: "fcr_rate", Label: "First-contact resolution", Type: TypePercent},
		{Key: "csat", Label: "CSAT", Type: TypeNumber},
		{Key: "sla_breaches", Label: "SLA breaches", Type: TypeNumber},
	}, Rows: [][]any{}}
	groups := inboxGroups(fg.agents)
	seen := map[string]bool{}
	for _, g := range groups {
		seen[g.key] = true
	}
	// Agents who replied in conversations assigned to someone else.
	for id := range fg.replies {
		if !seen[id] && id != "" {
			groups = append(groups, &inboxGroup{key: id, acc: &inboxAcc{}})
		}
	}
	slices.SortFunc(groups, func(a, b *inboxGroup) int {
		if a.acc.n != b.acc.n {
			return b.acc.n - a.acc.n
		}
		if c := strings.Compare(inboxAgentName(names, a.key), inboxAgentName(names, b.key)); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	for _, g := range groups {
		tot := map[string]float64{}
		g.acc.put(tot)
		t.Rows = append(t.Rows, []any{inboxAgentName(names, g.key), g.acc.n, fg.replies[g.key],
			inboxCell(tot, "first_response_median"), inboxCell(tot, "resolution_median"), inboxCell(tot, "fcr_rate"),
			inboxCell(tot, "csat"), tot["sla_breaches"]})
	}
	return t
}

func inboxAgentName(names map[string]string, id string) string {
	if id == "" {
		return "Unassigned"
	}
	if n := names[id]; n != "" {
		return n
	}
	return id // no longer on the staff
}

func inboxByChannel(fg *inboxFigures) Table {
	t := Table{Name: "by_channel", Title: "By channel", Columns: []Column{
		{Key: "channel", Label: "Channel", Type: TypeText},
		{Key: "conversations", Label: "Conversations", Type: TypeNumber},
		{Key: "first_response_median", Label: "First response (median)", Type: TypeDuration},
		{Key: "resolution_median", Label: "Resolution (median)", Type: TypeDuration},
		{Key: "fcr_rate", Label: "First-contact resolution", Type: TypePercent},
		{Key: "csat", Label: "CSAT", Type: TypeNumber},
	}, Rows: [][]any{}}
	groups := inboxGroups(fg.channels)
	slices.SortFunc(groups, func(a, b *inboxGroup) int {
		if a.acc.n != b.acc.n {
			return b.acc.n - a.acc.n
		}
		return strings.Compare(a.key, b.key)
	})
	for _, g := range groups {
		tot := map[string]float64{}
		g.acc.put(tot)
		t.Rows = append(t.Rows, []any{g.key, g.acc.n, inboxCell(tot, "first_response_median"),
			inboxCell(tot, "resolution_median"), inboxCell(tot, "fcr_rate"), inboxCell(tot, "csat")})
	}
	return t
}

func inboxCSATTable(fg *inboxFigures) Table {
	t := Table{Name: "csat_distribution", Title: "CSAT answers", Columns: []Column{
		{Key: "score", Label: "Score", Type: TypeNumber},
		{Key: "responses", Label: "Answers", Type: TypeNumber},
		{Key: "share", Label: "Share", Type: TypePercent},
	}, Rows: [][]any{}}
	n := fg.all.csat
	total := n[1] + n[2] + n[3] + n[4] + n[5]
	for s := 1; s <= 5; s++ {
		t.Rows = append(t.Rows, []any{s, n[s], inboxShare(n[s], total)})
	}
	return t
}

func inboxNPSTable(fg *inboxFigures) Table {
	t := Table{Name: "nps_distribution", Title: "NPS answers", Columns: []Column{
		{Key: "score", Label: "Score", Type: TypeNumber},
		{Key: "group", Label: "Group", Type: TypeText},
		{Key: "responses", Label: "Answers", Type: TypeNumber},
		{Key: "share", Label: "Share", Type: TypePercent},
	}, Rows: [][]any{}}
	total := 0
	for _, n := range fg.nps {
		total += n
	}
	for s, n := range fg.nps {
		group := "detractor"
		switch {
		case s >= 9:
			group = "promoter"
		case s >= 7:
			group = "passive"
		}
		t.Rows = append(t.Rows, []any{s, group, n, inboxShare(n, total)})
	}
	return t
}

func inboxShare(n, total int) float64 {
	if total == 0 {
		return 0
	}
	return float64(n) / float64(total)
}

func inboxStaffNames(app core.App) (map[string]string, error) {
	var rows []struct {
		ID    string `db:"id"`
		Name  string `db:"name"`
		Email string `db:"email"`
	}
	if err := app.DB().NewQuery("SELECT id, name, email FROM staff").All(&rows); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Name
		if strings.TrimSpace(r.Name) == "" {
			out[r.ID] = r.Email
		}
	}
	return out, nil
}

// inboxPercentile is the p-quantile of v by linear interpolation between
// the closest ranks (as spreadsheets' PERCENTILE.INC): the median of 4
// values is the mean of the middle two; p90 of 1..10 is 9.1.
func inboxPercentile(v []float64, p float64) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	pos := p * float64(len(s)-1)
	lo := int(math.Floor(pos))
	// The lo-th smallest, then the next one up (the least of the rest):
	// a selection, not a sort of tens of thousands of values.
	a := inboxSelect(s, lo)
	b := a
	if lo+1 < len(s) {
		b = slices.Min(s[lo+1:])
	}
	return a + (pos-float64(lo))*(b-a), true
}

// inboxSelect puts the k-th smallest of s at s[k], the smaller before it
// and the larger after (quickselect), and returns it.
func inboxSelect(s []float64, k int) float64 {
	lo, hi := 0, len(s)-1
	for lo < hi {
		// median of three as the pivot
		mid := lo + (hi-lo)/2
		if s[mid] < s[lo] {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if s[hi] < s[lo] {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if s[hi] < s[mid] {
			s[hi], s[mid] = s[mid], s[hi]
		}
		pivot := s[mid]
		i, j := lo, hi
		for i <= j {
			for s[i] < pivot {
				i++
			}
			for s[j] > pivot {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return s[k]
		}
	}
	return s[k]
}

func inboxRound(v float64, places int) float64 {
	f := math.Pow(10, float64(places))
	return math.Round(v*f) / f
}

// inboxFormat is a time as the store writes it, so text comparison orders.
func inboxFormat(t time.Time) string { return t.UTC().Format(types.DefaultDateLayout) }

func inboxParse(s string) (time.Time, bool) {
	t, err := time.Parse(types.DefaultDateLayout, s)
	if err != nil {
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return time.Time{}, false
		}
	}
	return t, true
}
