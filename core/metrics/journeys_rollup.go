package metrics

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/store"
)

// The journeys report's messages come from a daily rollup of the send
// ledger (metrics_messages_daily), so a period reads a few rows a day
// whatever the ledger holds. A message's outcome (opened, clicked,
// replied, unsubscribed) depends on the message and the events about it,
// never on the period asked for, so the figures of whole days add up to
// the period's.
//
// The rollup heals itself before each report reads it: it re-counts the
// whole days (in the shop's zone) of the messages that changed since it
// last looked, found by watermarks on
//   - the ledger's updated (a status moved on, a message was added),
//   - the runs' updated (a run moved on: a send's step is written as the
//     run leaves it),
//   - the stored time of the events that change an outcome: opens and
//     clicks (the message they name), a customer's message (their sends
//     of the 10 days before), a consent change (their sends before it), a
//     merge or an un-merge (both customers' sends); an erasure deletes
//     messages of unknown days, so it re-counts every day.
// Today and later are never stored: they are counted live at each
// report. The watermarks look back msgLag before the last value seen, so
// a transaction that committed late is still found. `omni metrics
// rebuild` empties it (reset); the next report counts every day again.

// Collections of the rollup (1765000800_metrics_messages_daily.go).
const (
	MessagesDailyCollection = "metrics_messages_daily"
	MessagesStateCollection = "metrics_messages_state"
	HoldoutDailyCollection  = "metrics_holdout_daily"
)

// outcomeEventTypes are the stored events that change a message's outcome
// (the partial index's condition: a query must say it the same way).
const outcomeEventTypes = "type IN ('email.opened', 'email.clicked', 'message.received', 'consent.changed', " +
	"'profile.merged', 'profile.unmerged', 'profile.erased')"

// msgLag is how far before the last value seen a watermark looks again.
const msgLag = 5 * time.Minute

// msgKey is a rollup row's dimensions.
type msgKey struct {
	Channel, Kind, Journey, Node, Reason string
}

// msgCounts is what came of a group of messages.
type msgCounts struct {
	Sent         int `db:"sent"`
	Delivered    int `db:"delivered"`
	Opened       int `db:"opened"`
	Clicked      int `db:"clicked"`
	Replied      int `db:"replied"`
	Unsubscribed int `db:"unsubscribed"`
	Failed       int `db:"failed"`
	Refused      int `db:"refused"`
	NodeOpened   int `db:"node_opened"`
	NodeClicked  int `db:"node_clicked"`
}

// add adds d's counts to c.
func (c *msgCounts) add(d msgCounts) {
	c.Sent += d.Sent
	c.Delivered += d.Delivered
	c.Opened += d.Opened
	c.Clicked += d.Clicked
	c.Replied += d.Replied
	c.Unsubscribed += d.Unsubscribed
	c.Failed += d.Failed
	c.Refused += d.Refused
	c.NodeOpened += d.NodeOpened
	c.NodeClicked += d.NodeClicked
}

// msgRow is a group of messages created in one bucket (a day of the shop
// when stored; an hour or quarter hour when counted live).
type msgRow struct {
	At time.Time
	msgKey
	msgCounts
}

// msgFact is one message as the rollup counts it.
type msgFact struct {
	at time.Time // its grain (UTC hour or quarter hour)
	msgKey
	msgCounts
}

// countMessages counts the messages created in [start, end) one by one:
// the ledger's statuses, then the events that tell what came of them.
func countMessages(db dbx.Builder, start, end time.Time, loc *time.Location) (map[string]*msgFact, error) {
	q := Query{Loc: loc, Start: start, End: end, Bucket: "day"}
	g := grainOf(q, "m.created")
	p := dbx.Params{"start": store.FormatTime(start), "end": store.FormatTime(end)}
	where := msgWhere(jfilter{})
	facts := map[string]*msgFact{}
	var base []struct {
		ID      string `db:"id"`
		G       string `db:"g"`
		Channel string `db:"channel"`
		Kind    string `db:"kind"`
		Status  string `db:"status"`
		Reason  string `db:"reason"`
		Journey string `db:"journey"`
		Node    string `db:"node"`
	}
	// A journey send's step: the send step's row naming it, else the
	// step its run is at.
	err := db.NewQuery(`SELECT m.id, ` + g.sql + ` AS g, m.channel, ` + msgKind + ` AS kind, m.status, m.reason,
		COALESCE(r.journey, '') AS journey,
		(CASE WHEN r.id IS NULL THEN '' ELSE COALESCE((SELECT s.node FROM journey_steps s WHERE s.run = r.id AND s.type = 'send'
			AND json_valid(s.detail) AND json_extract(s.detail, '$.message_id') = m.id LIMIT 1), r.node) END) AS node
		FROM messages m LEFT JOIN journey_runs r ON m.journey_run != '' AND r.id = m.journey_run
		WHERE ` + where).Bind(p).All(&base)
	if err != nil {
		return nil, fmt.Errorf("journeys report: ledger: %w", err)
	}
	for _, b := range base {
		at, err := time.ParseInLocation(g.layout, b.G, time.UTC)
		if err != nil {
			continue
		}
		f := &msgFact{at: at, msgKey: msgKey{Channel: b.Channel, Kind: b.Kind, Journey: b.Journey, Node: b.Node}}
		switch b.Status {
		case "queued", "scheduled", "sent":
			f.Sent = 1
		case "delivered":
			f.Sent, f.Delivered = 1, 1
		case "read":
			f.Sent, f.Delivered, f.Opened = 1, 1, 1
		case "failed":
			f.Failed = 1
		case "suppressed":
			f.Refused = 1
			f.Reason = refusalReason(b.Reason)
		}
		if b.Status == "read" && f.Journey != "" {
			f.NodeOpened = 1
		}
		facts[b.ID] = f
	}
	type idRow struct {
		ID string `db:"id"`
		A  bool   `db:"a"`
		B  bool   `db:"b"`
	}
	each := func(what, sql string, fn func(f *msgFact, r idRow)) error {
		var rows []idRow
		if err := db.NewQuery(sql).Bind(p).All(&rows); err != nil {
			return fmt.Errorf("journeys report: %s: %w", what, err)
		}
		for _, r := range rows {
			if f := facts[r.ID]; f != nil {
				fn(f, r)
			}
		}
		return nil
	}
	// Opens and clicks reported by events naming the message.
	if err := each("opens", `SELECT m.id AS id, MAX(e.type = 'email.clicked') AS b
		FROM events e JOIN messages m ON m.id = COALESCE(NULLIF(json_extract(e.properties, '$.outbound_id'), ''), json_extract(e.properties, '$.message_id'))
		WHERE e.type IN ('email.opened', 'email.clicked') AND e.occurred_at >= {:start} AND json_valid(e.properties)
			AND e.occurred_at >= m.created AND `+msgOut+` AND `+where+`
		GROUP BY m.id`, func(f *msgFact, r idRow) {
		f.Opened = 1
		if r.B {
			f.Clicked = 1
		}
	}); err != nil {
		return nil, err
	}
	// Replies: the customers' messages on the channel within the window.
	if err := each("replies", `SELECT DISTINCT m.id AS id
		FROM events e JOIN messages m ON m.profile = e.profile AND m.channel = e.channel
			AND m.created < e.occurred_at AND m.created >= strftime('%Y-%m-%d %H:%M:%fZ', e.occurred_at, '`+replyLookback+`')
		WHERE e.type = 'message.received' AND e.occurred_at > {:start}
			AND e.occurred_at <= strftime('%Y-%m-%d %H:%M:%fZ', {:end}, '`+replyWindow+`')
			AND `+msgOut+` AND `+where+`
			AND e.occurred_at > `+msgSentAt+` AND e.occurred_at <= strftime('%Y-%m-%d %H:%M:%fZ', `+msgSentAt+`, '`+replyWindow+`')`,
		func(f *msgFact, _ idRow) { f.Replied = 1 }); err != nil {
		return nil, err
	}
	// Unsubscribes: each to the customer's latest send on the channel
	// before it (by the link: the latest marketing send).
	if err := each("unsubscribes", `SELECT DISTINCT m.id AS id
		FROM (SELECT e.occurred_at AS at, `+linkUnsubscribe+` AS link,
				(SELECT m.id FROM messages m WHERE m.profile = e.profile AND m.channel = json_extract(e.properties, '$.channel')
					AND m.created < e.occurred_at AND `+msgOut+` AND (NOT `+linkUnsubscribe+` OR m.kind = 'marketing')
					ORDER BY m.created DESC LIMIT 1) AS msg
			FROM events e WHERE e.type = 'consent.changed' AND e.occurred_at > {:start} AND json_valid(e.properties)
				AND json_extract(e.properties, '$.status') = 'unsubscribed') u
		JOIN messages m ON m.id = u.msg
		WHERE `+where+` AND (u.link OR u.at <= strftime('%Y-%m-%d %H:%M:%fZ', `+msgSentAt+`, '`+replyWindow+`'))`,
		func(f *msgFact, _ idRow) { f.Unsubscribed = 1 }); err != nil {
		return nil, err
	}
	// The steps table's opens and clicks of journey sends: events of the
	// message's own customer naming it.
	names := func(typ string) string {
		return `EXISTS (SELECT 1 FROM events e WHERE e.profile = m.profile AND +e.type = '` + typ + `' AND e.occurred_at >= m.created
			AND json_valid(e.properties) AND COALESCE(NULLIF(json_extract(e.properties, '$.outbound_id'), ''), json_extract(e.properties, '$.message_id')) = m.id)`
	}
	if err := each("step opens", `SELECT id, a, b FROM (SELECT m.id AS id, (`+names("email.opened")+` OR `+names("email.clicked")+`) AS a,
		`+names("email.clicked")+` AS b FROM messages m WHERE `+where+` AND m.journey_run != '' AND `+msgOut+`) WHERE a OR b`,
		func(f *msgFact, r idRow) {
			if f.Journey == "" {
				return
			}
			if r.A {
				f.NodeOpened = 1
			}
			if r.B {
				f.NodeClicked = 1
			}
		}); err != nil {
		return nil, err
	}
	return facts, nil
}

// groupFacts adds the facts up by bucket (bucket maps a fact's grain to
// its bucket's start) and dimensions.
func groupFacts(facts map[string]*msgFact, bucket func(t time.Time) time.Time) []msgRow {
	type k struct {
		at int64
		msgKey
	}
	sums := map[k]*msgRow{}
	for _, f := range facts {
		at := bucket(f.at)
		key := k{at.Unix(), f.msgKey}
		r := sums[key]
		if r == nil {
			r = &msgRow{At: at, msgKey: f.msgKey}
			sums[key] = r
		}
		r.add(f.msgCounts)
	}
	out := make([]msgRow, 0, len(sums))
	for _, r := range sums {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

func dayStart(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
}

// messageRows are the groups of messages created in q, by day of the
// shop, or by grain for hourly buckets. Stored days come filtered by f
// and summed over what the report does not show apart (journey and step,
// unless one journey is asked for); rows counted live are not filtered:
// the caller filters.
func (m *Module) messageRows(app core.App, q Query, f jfilter) ([]msgRow, error) {
	if q.Bucket == "hour" {
		facts, err := countMessages(app.DB(), q.Start, q.End, q.Loc)
		if err != nil {
			return nil, err
		}
		return groupFacts(facts, func(t time.Time) time.Time { return t }), nil
	}
	today := dayStart(q.Now, q.Loc)
	var rows []msgRow
	if q.Start.Before(today) {
		end := q.End
		if end.After(today) {
			end = today
		}
		var stored []struct {
			Day string `db:"day"`
			msgKey
			msgCounts
		}
		where, dims, by := "day >= {:from} AND day < {:to}", "'' AS journey, '' AS node", ""
		if f.journey != "" {
			where, dims, by = where+" AND journey = {:journey}", "journey, node", ", journey, node"
		}
		if f.channel != "" {
			where += " AND channel = {:channel}"
		}
		// A monthly chart needs the stored days summed by month only: a
		// month's row stands on its 1st (on the period's first day for the
		// first month; its days fall in no bucket of the chart either way).
		day := "day"
		if q.Bucket == "month" {
			day = "substr(day, 1, 7) || '-01'"
		}
		err := app.DB().NewQuery(`SELECT ` + day + ` AS day, channel, kind, ` + dims + `, reason, SUM(sent) AS sent, SUM(delivered) AS delivered,
			SUM(opened) AS opened, SUM(clicked) AS clicked, SUM(replied) AS replied, SUM(unsubscribed) AS unsubscribed, SUM(failed) AS failed,
			SUM(refused) AS refused, SUM(node_opened) AS node_opened, SUM(node_clicked) AS node_clicked
			FROM ` + MessagesDailyCollection + ` WHERE ` + where + ` GROUP BY ` + day + `, channel, kind, reason` + by).
			Bind(dbx.Params{"from": q.Start.Format(dayLayout), "to": end.Format(dayLayout), "journey": f.journey, "channel": f.channel}).All(&stored)
		if err != nil {
			return nil, fmt.Errorf("journeys report: rollup: %w", err)
		}
		for _, s := range stored {
			at, err := time.ParseInLocation(dayLayout, s.Day, q.Loc)
			if err != nil {
				continue
			}
			if at.Before(q.Start) {
				at = q.Start
			}
			rows = append(rows, msgRow{At: at, msgKey: s.msgKey, msgCounts: s.msgCounts})
		}
	}
	live, err := countedFromToday(app.DB(), q, today, countMessageDays, nil)
	if err != nil {
		return nil, err
	}
	return append(rows, live...), nil
}

// countedFromToday counts the part of q from today on with count (the
// stored rollup holds the days before), keeping the rows keep accepts
// (all when keep is nil).
func countedFromToday[T any](db dbx.Builder, q Query, today time.Time,
	count func(dbx.Builder, time.Time, time.Time, *time.Location) ([]T, error), keep func(T) bool) ([]T, error) {
	if !q.End.After(today) {
		return nil, nil
	}
	start := q.Start
	if start.Before(today) {
		start = today
	}
	live, err := count(db, start, q.End, q.Loc)
	if err != nil || keep == nil {
		return live, err
	}
	kept := live[:0]
	for _, r := range live {
		if keep(r) {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// countMessageDays is what came of the messages created in the days
// [from, to), by day of the shop: what the rollup stores of a past day
// and what a report counts live of today.
func countMessageDays(db dbx.Builder, from, to time.Time, loc *time.Location) ([]msgRow, error) {
	facts, err := countMessages(db, from, to, loc)
	if err != nil {
		return nil, err
	}
	return groupFacts(facts, func(t time.Time) time.Time { return dayStart(t, loc) }), nil
}

// msgState is what the rollup has seen.
type msgState struct {
	Zone     string `json:"zone"`
	Through  string `json:"through"`  // every day before this one is stored
	Ledger   string `json:"ledger"`   // the latest messages.updated seen
	Runs     string `json:"runs"`     // the latest journey_runs.updated seen
	Outcomes string `json:"outcomes"` // the latest events.created of outcomeEventTypes seen
}

const msgStateKey = "rollup"

// refreshMessages brings the stored days before today up to date; the
// report calls it once before reading. When every day must be counted
// again (the first report, after a rebuild, an erasure or a change of
// zone) and the ledger is large, the days are counted in the background,
// a week at a time (fill.go); the returned fill says which days are not
// stored yet (zero when all are). background: called at start, only to
// start such a fill.
func (m *Module) refreshMessages(app core.App, loc *time.Location, today time.Time, background bool) (msgFill, error) {
	var raw types.JSONRaw
	_ = app.DB().NewQuery("SELECT value FROM " + MessagesStateCollection + " WHERE key = {:k}").Bind(dbx.Params{"k": msgStateKey}).Row(&raw)
	var st msgState
	_ = json.Unmarshal(raw, &st) // no state or an unreadable one: count every day
	// The latest values now, before looking: what changes while we count
	// is found next time.
	var now msgState
	now.Zone, now.Through = loc.String(), today.Format(dayLayout)
	db := app.DB()
	_ = db.NewQuery("SELECT COALESCE(MAX(updated), '') FROM messages").Row(&now.Ledger)
	_ = db.NewQuery("SELECT COALESCE(MAX(updated), '') FROM journey_runs").Row(&now.Runs)
	// (Newest first down the partial index: MAX() would read all of it,
	// and left to itself SQLite reads the outcome types' rows of the
	// type index and sorts them: some 50 ms on every report.)
	_ = db.NewQuery("SELECT created FROM events INDEXED BY idx_metrics_events_outcomes WHERE " + outcomeEventTypes +
		" ORDER BY created DESC LIMIT 1").Row(&now.Outcomes)
	if st == now {
		fill := readMsgFill(db)
		if fill.pending() {
			m.fillMessagesInBackground(app, loc)
		}
		return fill, nil
	}
	through, err := time.ParseInLocation(dayLayout, st.Through, loc)
	full := st.Zone != now.Zone || err != nil
	days := map[string]bool{}
	if !full {
		var err error
		if full, err = changedDays(db, st, loc, days); err != nil {
			return msgFill{}, err
		}
		// Days that ended since the last look.
		for d := through; d.Before(today); d = d.AddDate(0, 0, 1) {
			days[d.Format(dayLayout)] = true
		}
	}
	// A large ledger is counted in the background, a small one now.
	var first time.Time
	inBackground := false
	if full {
		var firstAt string
		_ = db.NewQuery("SELECT MIN(d) FROM (SELECT MIN(created) AS d FROM messages UNION ALL " +
			"SELECT MIN(entered_at) FROM journey_runs WHERE entered_at != '')").Row(&firstAt)
		if t, err := time.Parse(types.DefaultDateLayout, firstAt); err == nil {
			first = dayStart(t, loc)
		}
		var n int
		_ = db.NewQuery("SELECT COUNT(*) FROM messages").Row(&n)
		inBackground = n > msgFillInline
	}
	if background && !inBackground {
		return msgFill{}, nil
	}
	var fill msgFill
	err = app.RunInTransaction(func(tx core.App) error {
		fill = readMsgFill(tx.DB())
		switch {
		case full:
			for _, c := range []string{MessagesDailyCollection, HoldoutDailyCollection, RunsDailyCollection} {
				if _, err := tx.DB().NewQuery("DELETE FROM " + c).Execute(); err != nil {
					return err
				}
			}
			fill = msgFill{}
			if first.IsZero() {
				break
			}
			if inBackground {
				// Every day before today is left to the fill.
				fill = msgFill{First: first.Format(dayLayout), From: today.Format(dayLayout)}
			} else if err := storeDays(tx, first, today, loc); err != nil {
				return err
			}
		default:
			// Days the fill has not reached yet are counted when it does.
			for d := range days {
				if fill.pending() && d < fill.From {
					delete(days, d)
				}
			}
			if err := storeChangedDays(tx, days, loc, today); err != nil {
				return err
			}
		}
		if err := writeMsgState(tx, msgFillKey, fill, !fill.pending()); err != nil {
			return err
		}
		return writeMsgState(tx, msgStateKey, now, false)
	})
	if err != nil {
		return msgFill{}, err
	}
	if fill.pending() {
		m.fillMessagesInBackground(app, loc)
	}
	return fill, nil
}

// writeMsgState replaces (or, with remove, deletes) a state row.
func writeMsgState(tx core.App, key string, v any, remove bool) error {
	if _, err := tx.DB().NewQuery("DELETE FROM " + MessagesStateCollection + " WHERE key = {:k}").Bind(dbx.Params{"k": key}).Execute(); err != nil {
		return err
	}
	if remove {
		return nil
	}
	b, _ := json.Marshal(v)
	_, err := tx.DB().NewQuery("INSERT INTO " + MessagesStateCollection + " (id, key, value) VALUES ({:id}, {:k}, {:v})").
		Bind(dbx.Params{"id": store.NewRecordID(), "k": key, "v": string(b)}).Execute()
	return err
}

// since is the condition "col is at or after the watermark, less msgLag".
func since(col, mark string, p dbx.Params, name string) string {
	if mark == "" {
		return col + " > ''"
	}
	if t, err := time.Parse(types.DefaultDateLayout, mark); err == nil {
		mark = store.FormatTime(t.Add(-msgLag))
	}
	p[name] = mark
	return col + " >= {:" + name + "}"
}

// changedDays adds the days (in loc) of the messages whose figures may
// have changed since st; full when every day must be counted again.
func changedDays(db dbx.Builder, st msgState, loc *time.Location, days map[string]bool) (full bool, err error) {
	addDays := func(what, sql string, p dbx.Params) error {
		var created []string
		if err := db.NewQuery(sql).Bind(p).Column(&created); err != nil {
			return fmt.Errorf("journeys report: changed %s: %w", what, err)
		}
		for _, c := range created {
			if t, err := time.Parse(types.DefaultDateLayout, c); err == nil {
				days[dayStart(t, loc).Format(dayLayout)] = true
			}
		}
		return nil
	}
	p := dbx.Params{}
	if err := addDays("ledger", "SELECT DISTINCT created FROM messages WHERE "+since("updated", st.Ledger, p, "w"), p); err != nil {
		return false, err
	}
	p = dbx.Params{}
	if err := addDays("runs", "SELECT DISTINCT m.created FROM messages m WHERE m.journey_run != '' AND m.journey_run IN (SELECT id FROM journey_runs WHERE "+
		since("updated", st.Runs, p, "w")+")", p); err != nil {
		return false, err
	}
	// The days a changed run entered, ended and reached its goal in.
	p = dbx.Params{}
	for _, col := range []string{"entered_at", "ended_at", "goal_at"} {
		if err := addDays("runs "+col, "SELECT DISTINCT "+col+" FROM journey_runs WHERE "+col+" != '' AND "+since("updated", st.Runs, p, "w"), p); err != nil {
			return false, err
		}
	}
	p = dbx.Params{}
	var evs []struct {
		Type       string `db:"type"`
		Source     string `db:"source"`
		Profile    string `db:"profile"`
		At         string `db:"occurred_at"`
		Properties string `db:"properties"`
	}
	if err := db.NewQuery("SELECT type, source, profile, occurred_at, properties FROM events WHERE " + outcomeEventTypes + " AND " +
		since("created", st.Outcomes, p, "w")).Bind(p).All(&evs); err != nil {
		return false, fmt.Errorf("journeys report: changed outcomes: %w", err)
	}
	for _, e := range evs {
		var props map[string]any
		_ = json.Unmarshal([]byte(e.Properties), &props)
		str := func(k string) string { s, _ := props[k].(string); return s }
		var sql string
		p := dbx.Params{"p": e.Profile, "at": e.At}
		switch e.Type {
		case "email.opened", "email.clicked":
			id := str("outbound_id")
			if id == "" {
				id = str("message_id")
			}
			sql, p["id"] = "SELECT created FROM messages WHERE id = {:id}", id
		case "message.received":
			sql = "SELECT created FROM messages WHERE profile = {:p} AND created < {:at} AND created >= strftime('%Y-%m-%d %H:%M:%fZ', {:at}, '" + replyLookback + "')"
		case "consent.changed":
			sql = "SELECT created FROM messages WHERE profile = {:p} AND created < {:at}"
		case "profile.merged", "profile.unmerged":
			p["a"], p["b"] = str("profile_id"), str("merged_profile_id")+str("unmerged_profile_id")
			sql = "SELECT created FROM messages WHERE profile IN ({:a}, {:b})"
		case "profile.erased":
			if e.Source == "omni" {
				return true, nil
			}
			continue
		}
		if err := addDays(e.Type, sql, p); err != nil {
			return false, err
		}
	}
	return false, nil
}

// storeChangedDays counts the given days before today again, a run of
// consecutive days at a time.
func storeChangedDays(tx core.App, days map[string]bool, loc *time.Location, today time.Time) error {
	var list []string
	for d := range days {
		if d < today.Format(dayLayout) {
			list = append(list, d)
		}
	}
	sort.Strings(list)
	for i := 0; i < len(list); {
		from, _ := time.ParseInLocation(dayLayout, list[i], loc)
		to := from.AddDate(0, 0, 1)
		i++
		for i < len(list) && list[i] == to.Format(dayLayout) {
			to = to.AddDate(0, 0, 1)
			i++
		}
		if err := storeDays(tx, from, to, loc); err != nil {
			return err
		}
	}
	return nil
}

// storeDays replaces the stored days [from, to).
func storeDays(tx core.App, from, to time.Time, loc *time.Location) error {
	if err := storeHoldoutDays(tx, from, to, loc); err != nil {
		return err
	}
	if err := storeRunDays(tx, from, to, loc); err != nil {
		return err
	}
	rows, err := countMessageDays(tx.DB(), from, to, loc)
	if err != nil {
		return err
	}
	if _, err := tx.DB().NewQuery("DELETE FROM " + MessagesDailyCollection + " WHERE day >= {:from} AND day < {:to}").
		Bind(dbx.Params{"from": from.Format(dayLayout), "to": to.Format(dayLayout)}).Execute(); err != nil {
		return err
	}
	const per = 200
	for len(rows) > 0 {
		n := min(per, len(rows))
		var b strings.Builder
		b.WriteString("INSERT INTO " + MessagesDailyCollection + ` (id, day, channel, kind, journey, node, reason, sent, delivered, opened, clicked,
			replied, unsubscribed, failed, refused, node_opened, node_clicked) VALUES `)
		var args []any
		for i, r := range rows[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			c := r.msgCounts
			args = append(args, store.NewRecordID(), r.At.Format(dayLayout), r.Channel, r.Kind, r.Journey, r.Node, r.Reason,
				c.Sent, c.Delivered, c.Opened, c.Clicked, c.Replied, c.Unsubscribed, c.Failed, c.Refused, c.NodeOpened, c.NodeClicked)
		}
		if _, err := store.Executor(tx).Exec(b.String(), args...); err != nil {
			return fmt.Errorf("journeys report: store days: %w", err)
		}
		rows = rows[n:]
	}
	return nil
}

// messagesPart lets `omni metrics rebuild` empty the rollup; it keeps
// nothing from the events stream (see refreshMessages).
type messagesPart struct{}

func (messagesPart) process(core.App, []*eventstore.Stored) error { return nil }
func (messagesPart) recompute(core.App, []string) error           { return nil }
func (messagesPart) reset(tx core.App) error {
	for _, c := range []string{MessagesDailyCollection, HoldoutDailyCollection, RunsDailyCollection, MessagesStateCollection} {
		if _, err := tx.DB().NewQuery("DELETE FROM " + c).Execute(); err != nil {
			return err
		}
	}
	return nil
}

// holdoutRow is a group of journey runs that entered in one bucket (a day
// of the shop when stored) and left a holdout step: held out or let
// through, by goal currency.
type holdoutRow struct {
	At          time.Time
	Journey     string  `db:"journey"`
	Held        bool    `db:"held"`
	Currency    string  `db:"currency"`
	Runs        int     `db:"runs"`
	Conversions int     `db:"conversions"`
	Value       float64 `db:"value"`    // goal value of the converted runs, in Currency
	ValueSq     float64 `db:"value_sq"` // Σ value²
}

// countHoldouts counts the runs that entered in [start, end) and left a
// holdout step of their version. Driven by the period's runs (entered_at
// index; CROSS JOIN keeps SQLite from reading every run of the journey
// instead), each run's steps by its run index.
func countHoldouts(db dbx.Builder, start, end time.Time, loc *time.Location) ([]holdoutRow, error) {
	nodes, err := holdoutNodes(db, "")
	if err != nil || len(nodes) == 0 {
		return nil, err
	}
	g := grainOf(Query{Loc: loc, Start: start, End: end, Bucket: "day"}, "r.entered_at")
	p := dbx.Params{"start": store.FormatTime(start), "end": store.FormatTime(end)}
	var vals []string
	for j, versions := range nodes {
		for v, ids := range versions {
			for _, id := range ids {
				k := fmt.Sprintf("h%d", len(vals))
				p[k+"j"], p[k+"v"], p[k+"n"] = j, v, id
				vals = append(vals, "({:"+k+"j}, {:"+k+"v}, {:"+k+"n})")
			}
		}
	}
	var rows []struct {
		G string `db:"g"`
		holdoutRow
	}
	err = db.NewQuery(`WITH h(j, v, n) AS (VALUES ` + strings.Join(vals, ", ") + `)
		SELECT g, journey, held, currency, COUNT(*) AS runs, COALESCE(SUM(conv), 0) AS conversions, TOTAL(val) AS value, TOTAL(val * val) AS value_sq FROM (
			SELECT r.id, ` + g.sql + ` AS g, r.journey AS journey, (MAX(s.exit = 'held_out') OR r.holdout) AS held, ` + runConverted + ` AS conv,
				r.goal_currency AS currency, (CASE WHEN ` + runConverted + ` THEN r.goal_value ELSE 0 END) AS val
			FROM journey_runs r CROSS JOIN journey_steps s ON s.run = r.id CROSS JOIN h ON h.j = r.journey AND h.v = r.version AND h.n = s.node
			WHERE r.entered_at >= {:start} AND r.entered_at < {:end} AND s.exit != '' GROUP BY r.id)
		GROUP BY g, journey, held, currency`).Bind(p).All(&rows)
	if err != nil {
		return nil, fmt.Errorf("journeys report: holdout: %w", err)
	}
	out := make([]holdoutRow, 0, len(rows))
	for _, r := range rows {
		at, err := time.ParseInLocation(g.layout, r.G, time.UTC)
		if err != nil {
			continue
		}
		r.holdoutRow.At = dayStart(at, loc)
		out = append(out, r.holdoutRow)
	}
	return out, nil
}

// holdoutRows are the holdout groups of the runs that entered in q (of
// one journey if given), summed per journey, side and currency.
func (m *Module) holdoutRows(app core.App, q Query, journey string) ([]holdoutRow, error) {
	today := dayStart(q.Now, q.Loc)
	var out []holdoutRow
	if q.Start.Before(today) {
		end := q.End
		if end.After(today) {
			end = today
		}
		where := "day >= {:from} AND day < {:to}"
		if journey != "" {
			where += " AND journey = {:journey}"
		}
		if err := app.DB().NewQuery(`SELECT journey, held, currency, SUM(runs) AS runs, SUM(conversions) AS conversions,
			TOTAL(value) AS value, TOTAL(value_sq) AS value_sq FROM ` + HoldoutDailyCollection + ` WHERE ` + where + `
			GROUP BY journey, held, currency`).Bind(dbx.Params{"from": q.Start.Format(dayLayout), "to": end.Format(dayLayout), "journey": journey}).
			All(&out); err != nil {
			return nil, fmt.Errorf("journeys report: holdout rollup: %w", err)
		}
	}
	live, err := countedFromToday(app.DB(), q, today, countHoldoutDays, func(r holdoutRow) bool {
		return journey == "" || r.Journey == journey
	})
	if err != nil {
		return nil, err
	}
	out = append(out, live...)
	return out, nil
}

// countHoldoutDays is the holdout groups of the runs that entered in the
// days [from, to), by day of the shop: what the rollup stores of a past
// day and what a report counts live of today.
func countHoldoutDays(db dbx.Builder, from, to time.Time, loc *time.Location) ([]holdoutRow, error) {
	rows, err := countHoldouts(db, from, to, loc)
	if err != nil {
		return nil, err
	}
	// Grains of one day together.
	type k struct {
		day      int64
		journey  string
		currency string
		held     bool
	}
	sums := map[k]*holdoutRow{}
	var out []*holdoutRow
	for _, r := range rows {
		key := k{r.At.Unix(), r.Journey, r.Currency, r.Held}
		s := sums[key]
		if s == nil {
			s = &holdoutRow{At: r.At, Journey: r.Journey, Currency: r.Currency, Held: r.Held}
			sums[key] = s
			out = append(out, s)
		}
		s.add(r)
	}
	list := make([]holdoutRow, len(out))
	for i, s := range out {
		list[i] = *s
	}
	return list, nil
}

// add adds r's runs, conversions and values to h.
func (h *holdoutRow) add(r holdoutRow) {
	h.Runs += r.Runs
	h.Conversions += r.Conversions
	h.Value += r.Value
	h.ValueSq += r.ValueSq
}

// storeHoldoutDays replaces the stored holdout groups of [from, to).
func storeHoldoutDays(tx core.App, from, to time.Time, loc *time.Location) error {
	rows, err := countHoldoutDays(tx.DB(), from, to, loc)
	if err != nil {
		return err
	}
	if _, err := tx.DB().NewQuery("DELETE FROM " + HoldoutDailyCollection + " WHERE day >= {:from} AND day < {:to}").
		Bind(dbx.Params{"from": from.Format(dayLayout), "to": to.Format(dayLayout)}).Execute(); err != nil {
		return err
	}
	for _, r := range rows {
		if _, err := store.Executor(tx).Exec("INSERT INTO "+HoldoutDailyCollection+
			" (id, day, journey, held, currency, runs, conversions, value, value_sq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			store.NewRecordID(), r.At.Format(dayLayout), r.Journey, r.Held, r.Currency, r.Runs, r.Conversions, r.Value, r.ValueSq); err != nil {
			return fmt.Errorf("journeys report: store holdouts: %w", err)
		}
	}
	return nil
}

// runRow is a journey's runs of one day of the shop (or of a period, once
// summed): those that entered, completed, or reached their goal (what), by
// goal currency with the goal values.
type runRow struct {
	At       time.Time
	Journey  string  `db:"journey"`
	What     string  `db:"what"`
	Currency string  `db:"currency"`
	N        int     `db:"n"`
	Value    float64 `db:"value"`
}

// countRunDays counts the runs that entered, completed and converted in
// the days [from, to), by day of the shop: what the rollup stores of a
// past day and what a report counts live of today.
func countRunDays(db dbx.Builder, from, to time.Time, loc *time.Location) ([]runRow, error) {
	q := Query{Loc: loc, Start: from, End: to, Bucket: "day"}
	p := dbx.Params{"start": store.FormatTime(from), "end": store.FormatTime(to)}
	type k struct {
		day                     int64
		journey, what, currency string
	}
	sums := map[k]*runRow{}
	var out []*runRow
	for _, c := range []struct{ col, sql string }{
		{"r.entered_at", "SELECT %s AS g, r.journey, 'entered' AS what, '' AS currency, COUNT(*) AS n, 0 AS value FROM journey_runs r " +
			"WHERE r.entered_at >= {:start} AND r.entered_at < {:end} GROUP BY g, r.journey"},
		{"r.ended_at", "SELECT %s AS g, r.journey, 'completed' AS what, '' AS currency, COUNT(*) AS n, 0 AS value FROM journey_runs r " +
			"WHERE r.ended_at != '' AND r.ended_at >= {:start} AND r.ended_at < {:end} AND r.status = 'completed' GROUP BY g, r.journey"},
		{"r.goal_at", "SELECT %s AS g, r.journey, 'goal' AS what, r.goal_currency AS currency, COUNT(*) AS n, TOTAL(r.goal_value) AS value " +
			"FROM journey_runs r WHERE " + runConverted + " AND r.goal_at >= {:start} AND r.goal_at < {:end} GROUP BY g, r.journey, r.goal_currency"},
	} {
		g := grainOf(q, c.col)
		var rows []struct {
			G string `db:"g"`
			runRow
		}
		if err := db.NewQuery(fmt.Sprintf(c.sql, g.sql)).Bind(p).All(&rows); err != nil {
			return nil, fmt.Errorf("journeys report: runs: %w", err)
		}
		for _, r := range rows {
			at, err := time.ParseInLocation(g.layout, r.G, time.UTC)
			if err != nil {
				continue
			}
			day := dayStart(at, loc)
			key := k{day.Unix(), r.Journey, r.What, r.Currency}
			s := sums[key]
			if s == nil {
				s = &runRow{At: day, Journey: r.Journey, What: r.What, Currency: r.Currency}
				sums[key] = s
				out = append(out, s)
			}
			s.N += r.N
			s.Value += r.Value
		}
	}
	list := make([]runRow, len(out))
	for i, s := range out {
		list[i] = *s
	}
	return list, nil
}

// storeRunDays replaces the stored run counts of [from, to).
func storeRunDays(tx core.App, from, to time.Time, loc *time.Location) error {
	rows, err := countRunDays(tx.DB(), from, to, loc)
	if err != nil {
		return err
	}
	if _, err := tx.DB().NewQuery("DELETE FROM " + RunsDailyCollection + " WHERE day >= {:from} AND day < {:to}").
		Bind(dbx.Params{"from": from.Format(dayLayout), "to": to.Format(dayLayout)}).Execute(); err != nil {
		return err
	}
	for _, r := range rows {
		if _, err := store.Executor(tx).Exec("INSERT INTO "+RunsDailyCollection+" (id, day, journey, what, currency, n, value) VALUES (?, ?, ?, ?, ?, ?, ?)",
			store.NewRecordID(), r.At.Format(dayLayout), r.Journey, r.What, r.Currency, r.N, r.Value); err != nil {
			return fmt.Errorf("journeys report: store runs: %w", err)
		}
	}
	return nil
}

// runRows are the run counts of q (of one journey if given), summed per
// journey, what and currency over the period: stored days, today live.
func (m *Module) runRows(app core.App, q Query, journey string) ([]runRow, error) {
	today := dayStart(q.Now, q.Loc)
	var rows []runRow
	if q.Start.Before(today) {
		end := q.End
		if end.After(today) {
			end = today
		}
		where := "day >= {:from} AND day < {:to}"
		if journey != "" {
			where += " AND journey = {:journey}"
		}
		if err := app.DB().NewQuery(`SELECT journey, what, currency, SUM(n) AS n, TOTAL(value) AS value FROM ` + RunsDailyCollection +
			` WHERE ` + where + ` GROUP BY journey, what, currency`).
			Bind(dbx.Params{"from": q.Start.Format(dayLayout), "to": end.Format(dayLayout), "journey": journey}).All(&rows); err != nil {
			return nil, fmt.Errorf("journeys report: runs rollup: %w", err)
		}
	}
	live, err := countedFromToday(app.DB(), q, today, countRunDays, func(r runRow) bool {
		return journey == "" || r.Journey == journey
	})
	if err != nil {
		return nil, err
	}
	rows = append(rows, live...)
	// One row per journey, what and currency.
	type k struct{ journey, what, currency string }
	sums := map[k]int{}
	var out []runRow
	for _, r := range rows {
		key := k{r.Journey, r.What, r.Currency}
		i, ok := sums[key]
		if !ok {
			sums[key] = len(out)
			out = append(out, runRow{Journey: r.Journey, What: r.What, Currency: r.Currency})
			i = len(out) - 1
		}
		out[i].N += r.N
		out[i].Value += r.Value
	}
	return out, nil
}
