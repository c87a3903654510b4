package metrics

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/eventstore"
)

// The inbox report reads metrics_conversations, one compact row per
// conversation, worked out from the inbox's tables and events. The rows
// heal themselves: before a report, inboxRefresh works out again every
// row whose conversation's updated time moved (the inbox saves the
// conversation on every change: a message, an assignment, a resolution),
// every row the events marked dirty (a resolution or a reopen stored after
// the conversation changed; a merge or an erasure moving the customer's
// events) and, when the counts differ, every missing or orphaned row.

// inboxRefreshMargin is how far before the newest row's updated time the
// refresh looks again: a transaction that stamped a conversation earlier
// may commit after a later one.
const inboxRefreshMargin = 10 * time.Minute

// inboxPart marks rows dirty as events are stored; it has no other state.
type inboxPart struct{ m *Module }

func (p *inboxPart) process(tx core.App, batch []*eventstore.Stored) error {
	var ids []string
	for _, s := range batch {
		switch s.Event.Type {
		case "conversation.opened", "conversation.resolved":
			if id, ok := s.Event.Properties["conversation"].(string); ok && id != "" {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	list, _ := json.Marshal(ids)
	_, err := tx.DB().NewQuery("UPDATE " + InboxConversationsCollection + " SET dirty = 1 WHERE id IN (SELECT value FROM json_each({:ids}))").
		Bind(dbx.Params{"ids": string(list)}).Execute()
	return err
}

// recompute: the customers' events moved; their conversations' first
// resolutions and reopens are read through them.
func (p *inboxPart) recompute(tx core.App, profiles []string) error {
	list, _ := json.Marshal(profiles)
	_, err := tx.DB().NewQuery("UPDATE " + InboxConversationsCollection + " SET dirty = 1 WHERE profile IN (SELECT value FROM json_each({:ids}))").
		Bind(dbx.Params{"ids": string(list)}).Execute()
	return err
}

// reset empties the rows: the next report works them all out again.
func (p *inboxPart) reset(tx core.App) error {
	for _, table := range []string{InboxConversationsCollection, InboxDaysCollection} {
		if _, err := tx.DB().NewQuery("DELETE FROM " + table).Execute(); err != nil {
			return err
		}
	}
	return nil
}

// inboxFillInline: up to this many rows are worked out in the request; more
// (the first report of a large inbox, after a rebuild) in the background,
// inboxFillBatch a transaction (fill.go).
const (
	inboxFillInline = 5000
	inboxFillBatch  = 500
)

// inboxRefresh brings metrics_conversations up to date with the inbox and
// says how many conversations have no row yet (a fill under way in the
// background). background: called at start, only to start such a fill.
func (m *Module) inboxRefresh(app core.App, background bool) (pending int, err error) {
	if !app.HasTable("conversations") {
		return 0, nil
	}
	if m.fills.inbox.Load() {
		return inboxMissing(app.DB())
	}
	stale, full, err := inboxStale(app.DB())
	if err != nil {
		return 0, err
	}
	if len(stale) > inboxFillInline {
		m.fillInboxInBackground(app)
		return inboxMissing(app.DB())
	}
	if background {
		return 0, nil
	}
	return 0, inboxWorkOutAll(app, stale, full)
}

// inboxStale lists the conversations whose row must be worked out again:
// those updated since the newest row (less a margin) or marked dirty and,
// when the counts differ (rows written behind the refresh's back, a
// conversation saved with an older updated time, conversations deleted),
// every one whose row is missing or out of date (full: rows of deleted
// conversations are to go too).
func inboxStale(db dbx.Builder) (ids []string, full bool, err error) {
	var newest string
	if err := db.NewQuery("SELECT COALESCE(MAX(src_updated), '') FROM " + InboxConversationsCollection).Row(&newest); err != nil {
		return nil, false, err
	}
	since := ""
	if t, ok := inboxParse(newest); ok {
		since = inboxFormat(t.Add(-inboxRefreshMargin))
	}
	var stale []string
	if err := db.NewQuery(`SELECT c.id FROM conversations c INDEXED BY idx_metrics_conversations_updated
		LEFT JOIN ` + InboxConversationsCollection + ` r ON r.id = c.id
		WHERE c.updated >= {:since} AND (r.id IS NULL OR r.src_updated != c.updated)
		UNION SELECT id FROM ` + InboxConversationsCollection + ` WHERE dirty = 1`).
		Bind(dbx.Params{"since": since}).Column(&stale); err != nil {
		return nil, false, err
	}
	var convs, rows int
	if err := db.NewQuery("SELECT COUNT(*) FROM conversations").Row(&convs); err != nil {
		return nil, false, err
	}
	if err := db.NewQuery("SELECT COUNT(*) FROM " + InboxConversationsCollection).Row(&rows); err != nil {
		return nil, false, err
	}
	if convs == rows {
		return stale, false, nil
	}
	var all []string
	if err := db.NewQuery(`SELECT c.id FROM conversations c LEFT JOIN ` + InboxConversationsCollection + ` r ON r.id = c.id
		WHERE r.id IS NULL OR r.src_updated != c.updated OR r.dirty = 1`).Column(&all); err != nil {
		return nil, false, err
	}
	return all, true, nil
}

// inboxMissing counts the conversations without a row.
func inboxMissing(db dbx.Builder) (int, error) {
	var n int
	err := db.NewQuery("SELECT (SELECT COUNT(*) FROM conversations) - (SELECT COUNT(*) FROM " + InboxConversationsCollection + ")").Row(&n)
	return max(n, 0), err
}

// inboxWorkOutAll works the rows of ids out again, 500 a statement, in one
// transaction (orphans: first delete the rows of deleted conversations).
func inboxWorkOutAll(app core.App, ids []string, orphans bool) error {
	if len(ids) == 0 && !orphans {
		return nil
	}
	return app.RunInTransaction(func(tx core.App) error {
		if orphans {
			// The customers' other conversations may have followed up on
			// the gone ones.
			gone, err := inboxPairs(tx.DB(), "id NOT IN (SELECT id FROM conversations)", nil)
			if err != nil {
				return err
			}
			if _, err := tx.DB().NewQuery("DELETE FROM " + InboxConversationsCollection + " WHERE id NOT IN (SELECT id FROM conversations)").Execute(); err != nil {
				return err
			}
			if err := inboxFollowUps(tx.DB(), gone); err != nil {
				return err
			}
		}
		for len(ids) > 0 {
			n := min(len(ids), 500)
			if err := inboxWorkOut(tx.DB(), ids[:n]); err != nil {
				return err
			}
			ids = ids[n:]
		}
		return nil
	})
}

// inboxWorkOut writes the rows of the conversations ids (deleting those
// whose conversation is gone).
func inboxWorkOut(db dbx.Builder, ids []string) error {
	list, _ := json.Marshal(ids)
	var convs []*inboxConv
	if err := db.NewQuery(`SELECT c.id, c.profile, c.channel, c.assignee, c.status, c.bot, c.handoff_at, c.resolved_at, c.opened_at,
		c.created, c.sla_breaches, c.csat_score, c.first_response_at, c.updated FROM json_each({:ids}) j CROSS JOIN conversations c ON c.id = j.value`).
		Bind(dbx.Params{"ids": string(list)}).All(&convs); err != nil {
		return err
	}
	// The customers and channels of the rows before and after: their
	// conversations' follow-ups are worked out again below.
	pairs, err := inboxPairs(db, "id IN (SELECT value FROM json_each({:ids}))", dbx.Params{"ids": string(list)})
	if err != nil {
		return err
	}
	for _, c := range convs {
		pairs[inboxKey{c.Profile, c.Channel}] = true
	}
	if _, err := db.NewQuery("DELETE FROM " + InboxConversationsCollection + " WHERE id IN (SELECT value FROM json_each({:ids}))").
		Bind(dbx.Params{"ids": string(list)}).Execute(); err != nil {
		return err
	}
	if len(convs) == 0 {
		return inboxFollowUps(db, pairs)
	}
	if err := inboxFirstReplies(db, convs); err != nil {
		return err
	}
	first, reopens, err := inboxResolutions(db, convs)
	if err != nil {
		return err
	}
	replies, err := inboxRepliesOf(db, string(list))
	if err != nil {
		return err
	}
	ins := db.NewQuery(`INSERT INTO ` + InboxConversationsCollection + ` (id, profile, channel, assignee, opened_ms, resolved_ms, frt,
		resolution, by_bot, handed_off, sla_breaches, csat, first_resolved_ms, reopened_ms, replies, src_updated, dirty, packed, follow_ms, version)
		VALUES ({:id}, {:profile}, {:channel}, {:assignee}, {:opened}, {:resolved}, {:frt}, {:resolution}, {:bot}, {:handed}, {:breaches},
		{:csat}, {:r1}, {:reopen}, {:replies}, {:updated}, 0, {:packed}, 0, {:version})`).Prepare()
	defer ins.Close()
	for _, c := range convs {
		frt, ok := c.frt()
		if !ok {
			frt = -1
		}
		res, ok := c.resolution()
		if !ok {
			res = -1
		}
		resolvedMs := int64(0)
		if c.Status == "resolved" {
			resolvedMs = inboxMs(c.ResolvedAt)
		}
		// The first resolution: from the events for a conversation that
		// came back, else the row's own.
		r1 := first[c.ID]
		if r1 == "" && c.Status == "resolved" {
			r1 = c.ResolvedAt
		}
		reopen := ""
		if r1 != "" {
			for _, at := range reopens[c.ID] { // ascending
				if at > r1 {
					reopen = at
					break
				}
			}
		}
		row := inboxRow{ID: c.ID, Profile: c.Profile, Channel: c.Channel, Assignee: c.Assignee, Opened: inboxMs(c.Created),
			Resolved: resolvedMs, FRT: frt, Resolution: res, Bot: c.byBot(), HandedOff: c.HandoffAt != "", SLABreaches: c.SLABreaches,
			CSAT: c.CSAT, FirstResolved: inboxMs(r1), Reopened: inboxMs(reopen), Replies: replies[c.ID]}
		if _, err := ins.Bind(dbx.Params{"id": row.ID, "profile": row.Profile, "channel": row.Channel, "assignee": row.Assignee,
			"opened": row.Opened, "resolved": row.Resolved, "frt": row.FRT, "resolution": row.Resolution, "bot": row.Bot,
			"handed": row.HandedOff, "breaches": row.SLABreaches, "csat": row.CSAT, "r1": row.FirstResolved, "reopen": row.Reopened,
			"replies": row.Replies, "updated": c.Updated, "packed": row.pack(), "version": inboxVersion()}).Execute(); err != nil {
			return err
		}
	}
	return inboxFollowUps(db, pairs)
}

// inboxVersion is a row's new version: the days' stamps add them up, so
// any write to a day's rows changes its stamp (up to 2^40 a row: the sum
// of millions stays exact).
func inboxVersion() int64 { return rand.Int64N(1<<40) + 1 }

// inboxPairs lists the customers and channels of the rows where.
func inboxPairs(db dbx.Builder, where string, p dbx.Params) (map[inboxKey]bool, error) {
	var rows []struct {
		Profile string `db:"profile"`
		Channel string `db:"channel"`
	}
	if err := db.NewQuery("SELECT DISTINCT profile, channel FROM " + InboxConversationsCollection + " WHERE " + where).
		Bind(p).All(&rows); err != nil {
		return nil, err
	}
	out := make(map[inboxKey]bool, len(rows))
	for _, r := range rows {
		out[inboxKey{r.Profile, r.Channel}] = true
	}
	return out, nil
}

// inboxFollowUps works out follow_ms of the rows of the customers on the
// channels: for a resolved conversation, the first time after its first
// resolution that it was reopened or the customer opened another
// conversation on the channel (first-contact resolution asks whether that
// came within fcr_days). A row whose follow-up moves gets a new version.
func inboxFollowUps(db dbx.Builder, pairs map[inboxKey]bool) error {
	if len(pairs) == 0 {
		return nil
	}
	list := make([][2]string, 0, len(pairs))
	for k := range pairs {
		list = append(list, [2]string{k.profile, k.channel})
	}
	js, _ := json.Marshal(list)
	var rows []struct {
		ID       string `db:"id"`
		Profile  string `db:"profile"`
		Channel  string `db:"channel"`
		Opened   int64  `db:"opened_ms"`
		R1       int64  `db:"first_resolved_ms"`
		Reopened int64  `db:"reopened_ms"`
		Follow   int64  `db:"follow_ms"`
	}
	if err := db.NewQuery(`SELECT r.id, r.profile, r.channel, r.opened_ms, r.first_resolved_ms, r.reopened_ms, COALESCE(r.follow_ms, 0) AS follow_ms
		FROM json_each({:pairs}) j CROSS JOIN ` + InboxConversationsCollection + ` r INDEXED BY idx_metrics_conversations_pair
		WHERE r.profile = j.value ->> '$[0]' AND r.channel = j.value ->> '$[1]'`).Bind(dbx.Params{"pairs": string(js)}).All(&rows); err != nil {
		return err
	}
	opened := map[inboxKey][]int64{}
	for _, r := range rows {
		k := inboxKey{r.Profile, r.Channel}
		opened[k] = append(opened[k], r.Opened)
	}
	for _, l := range opened {
		slices.Sort(l)
	}
	upd := db.NewQuery("UPDATE " + InboxConversationsCollection + " SET follow_ms = {:follow}, version = {:version} WHERE id = {:id}").Prepare()
	defer upd.Close()
	for _, r := range rows {
		var follow int64
		if r.R1 != 0 {
			if r.Reopened > r.R1 {
				follow = r.Reopened
			}
			l := opened[inboxKey{r.Profile, r.Channel}]
			i, found := slices.BinarySearch(l, r.R1)
			for found && i < len(l) && l[i] == r.R1 {
				i++
			}
			if i < len(l) && (follow == 0 || l[i] < follow) {
				follow = l[i]
			}
		}
		if follow != r.Follow {
			if _, err := upd.Bind(dbx.Params{"follow": follow, "version": inboxVersion(), "id": r.ID}).Execute(); err != nil {
				return err
			}
		}
	}
	return nil
}

// inboxResolutions reads, for the conversations that came back (the row
// holds the latest opening only: opened_at moved past created), their
// first resolution and their reopens from the inbox's events, ascending.
func inboxResolutions(db dbx.Builder, convs []*inboxConv) (first map[string]string, reopens map[string][]string, err error) {
	first, reopens = map[string]string{}, map[string][]string{}
	var back [][3]string // id, profile, created
	for _, c := range convs {
		if c.OpenedAt != c.Created {
			back = append(back, [3]string{c.ID, c.Profile, c.Created})
		}
	}
	if len(back) == 0 {
		return first, reopens, nil
	}
	list, _ := json.Marshal(back)
	var evs []struct {
		Conv string `db:"conv"`
		Type string `db:"type"`
		At   string `db:"occurred_at"`
	}
	// Through the customer's events (profile, occurred_at index) from the
	// conversation's opening on, not through every inbox event.
	if err := db.NewQuery(`SELECT j.value ->> '$[0]' AS conv, e.type, e.occurred_at
		FROM json_each({:list}) j CROSS JOIN events e INDEXED BY idx_events_profile_time
		WHERE e.profile = j.value ->> '$[1]' AND e.occurred_at >= j.value ->> '$[2]'
		AND e.type IN ('conversation.resolved', 'conversation.opened')
		AND e.properties ->> '$.conversation' = j.value ->> '$[0]'
		AND (e.type = 'conversation.resolved' OR e.properties ->> '$.reopened' = 1)
		ORDER BY e.occurred_at`).Bind(dbx.Params{"list": string(list)}).All(&evs); err != nil {
		return nil, nil, err
	}
	for _, e := range evs {
		if e.Type == "conversation.resolved" {
			if first[e.Conv] == "" {
				first[e.Conv] = e.At
			}
		} else {
			reopens[e.Conv] = append(reopens[e.Conv], e.At)
		}
	}
	return first, reopens, nil
}

// inboxRepliesOf counts the agent replies of the conversations (a JSON
// list of ids) by who wrote them, as "staff:n,staff:n" per conversation.
func inboxRepliesOf(db dbx.Builder, list string) (map[string]string, error) {
	var reps []struct {
		Conv  string `db:"conversation"`
		Staff string `db:"author_staff"`
		N     int    `db:"n"`
	}
	if err := db.NewQuery(`SELECT m.conversation, m.author_staff, COUNT(*) AS n FROM json_each({:ids}) j CROSS JOIN conversation_messages m
		WHERE m.conversation = j.value AND m.author = 'agent' AND m.direction = 'out'
		GROUP BY m.conversation, m.author_staff`).Bind(dbx.Params{"ids": list}).All(&reps); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range reps {
		s := out[r.Conv]
		if s != "" {
			s += ","
		}
		out[r.Conv] = s + r.Staff + ":" + strconv.Itoa(r.N)
	}
	return out, nil
}

// inboxAddReplies adds a row's "staff:n,…" to by.
func inboxAddReplies(by map[string]int, s string) {
	for s != "" {
		var part string
		part, s, _ = strings.Cut(s, ",")
		staff, n, _ := strings.Cut(part, ":")
		if v, err := strconv.Atoi(n); err == nil {
			by[staff] += v
		}
	}
}

// inboxMs is a stored time in unix milliseconds, 0 for none.
func inboxMs(s string) int64 {
	if s == "" {
		return 0
	}
	t, ok := inboxParse(s)
	if !ok {
		return 0
	}
	return t.UnixMilli()
}

// pack writes the row as one text, fields split by "|" (ids, channels and
// replies hold none), replies last.
func (c *inboxRow) pack() string {
	b := make([]byte, 0, 128)
	for _, s := range []string{c.ID, c.Profile, c.Channel, c.Assignee} {
		b = append(append(b, s...), '|')
	}
	for _, n := range []int64{c.Opened, c.Resolved} {
		b = append(strconv.AppendInt(b, n, 10), '|')
	}
	for _, f := range []float64{c.FRT, c.Resolution} {
		b = append(strconv.AppendFloat(b, f, 'g', -1, 64), '|')
	}
	for _, v := range []bool{c.Bot, c.HandedOff} {
		if v {
			b = append(b, '1', '|')
		} else {
			b = append(b, '0', '|')
		}
	}
	for _, n := range []int64{int64(c.SLABreaches), int64(c.CSAT), c.FirstResolved, c.Reopened} {
		b = append(strconv.AppendInt(b, n, 10), '|')
	}
	return string(append(b, c.Replies...))
}

// cutFields splits s at "|" into exactly len(f) fields (the last takes
// the rest); false when s has fewer.
func cutFields(s string, f []string) bool {
	for i := range len(f) - 1 {
		var ok bool
		if f[i], s, ok = strings.Cut(s, "|"); !ok {
			return false
		}
	}
	f[len(f)-1] = s
	return true
}

// unpack reads what pack wrote.
func (c *inboxRow) unpack(s string) bool {
	var f [15]string
	if !cutFields(s, f[:]) {
		return false
	}
	c.ID, c.Profile, c.Channel, c.Assignee, c.Replies = f[0], f[1], f[2], f[3], f[14]
	var errs [8]error
	c.Opened, errs[0] = strconv.ParseInt(f[4], 10, 64)
	c.Resolved, errs[1] = strconv.ParseInt(f[5], 10, 64)
	c.FRT, errs[2] = strconv.ParseFloat(f[6], 64)
	c.Resolution, errs[3] = strconv.ParseFloat(f[7], 64)
	c.Bot, c.HandedOff = f[8] == "1", f[9] == "1"
	var breaches, csat int64
	breaches, errs[4] = strconv.ParseInt(f[10], 10, 64)
	csat, errs[5] = strconv.ParseInt(f[11], 10, 64)
	c.SLABreaches, c.CSAT = int(breaches), int(csat)
	c.FirstResolved, errs[6] = strconv.ParseInt(f[12], 10, 64)
	c.Reopened, errs[7] = strconv.ParseInt(f[13], 10, 64)
	for _, err := range errs {
		if err != nil {
			return false
		}
	}
	return true
}
