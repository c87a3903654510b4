package inbox

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
)

// Summary is a conversation as the list and the API answer it: its fields,
// who the customer is, who has it, how long the customer has waited and
// the SLA due time that applies now.
type Summary struct {
	Conversation
	Customer       CustomerRef `json:"customer"`
	AssigneeName   string      `json:"assignee_name"`
	WaitingSeconds int64       `json:"waiting_seconds"` // 0 when not waiting
	SLA            *SLAState   `json:"sla"`             // null when no target applies
}

// CustomerRef names the customer of a conversation.
type CustomerRef struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
	Phone string `json:"phone"`
}

// SLAState is the due time that applies: the first response until an
// agent answered once, then the next response.
type SLAState struct {
	Due      string `json:"due"` // RFC 3339
	Kind     string `json:"kind"`
	Breached bool   `json:"breached"`
}

// summaryRow is a conversations row joined with its customer and assignee
// and the list's sort keys.
type summaryRow struct {
	Conversation
	CustName     string  `db:"cust_name"`
	CustEmail    string  `db:"cust_email"`
	CustPhone    string  `db:"cust_phone"`
	AssigneeName string  `db:"assignee_name"`
	K1           float64 `db:"k1"`
	K2           float64 `db:"k2"`
}

// dueExpr is the SLA due time that applies now ("" for none): the first
// response's until an agent answered, then the next response's.
const dueExpr = `(CASE WHEN c.status = 'resolved' THEN ''
	WHEN c.first_response_at = '' AND c.first_response_due != '' THEN c.first_response_due
	ELSE c.next_response_due END)`

// sortKeys are the list orders as two numbers (k1, k2) ascending, then
// the id: keyset paging compares (k1, k2, id) with the cursor's values, so
// a page never repeats or skips a row however the order is defined.
// Negated Julian days sort newest first.
var sortKeys = map[string][2]string{
	// The longest-waiting first; conversations not waiting after, the most
	// recent first.
	"waiting": {`(CASE WHEN c.waiting_since != '' THEN 0 ELSE 1 END)`,
		`(CASE WHEN c.waiting_since != '' THEN julianday(c.waiting_since) ELSE -COALESCE(julianday(NULLIF(c.last_message_at, '')), 0) END)`},
	"recent": {`(0)`, `(-COALESCE(julianday(NULLIF(c.last_message_at, '')), julianday(NULLIF(c.created, '')), 0))`},
	// SLA due soonest first; without a due time, the most recent.
	"due": {`(CASE WHEN ` + dueExpr + ` != '' THEN 0 ELSE 1 END)`,
		`(CASE WHEN ` + dueExpr + ` != '' THEN julianday(` + dueExpr + `) ELSE -COALESCE(julianday(NULLIF(c.last_message_at, '')), 0) END)`},
}

// summaryQuery selects conversations joined with their customer and
// assignee, with the sort keys of an order as k1 and k2.
func summaryQuery(db dbx.Builder, sort string) *dbx.SelectQuery {
	k := sortKeys[sort]
	return db.Select("c.*", "COALESCE(p.name, '') AS cust_name", "COALESCE(p.email, '') AS cust_email",
		"COALESCE(p.phone, '') AS cust_phone", "COALESCE(NULLIF(s.name, ''), s.email, '') AS assignee_name",
		k[0]+" AS k1", k[1]+" AS k2").
		From(ConversationsCollection+" c").
		LeftJoin("profiles p", dbx.NewExp("p.id = c.profile")).
		LeftJoin("staff s", dbx.NewExp("s.id = c.assignee"))
}

func (m *Module) summary(r *summaryRow, now time.Time) Summary {
	s := Summary{Conversation: r.Conversation, AssigneeName: r.AssigneeName,
		Customer: CustomerRef{ID: r.Profile, Name: r.CustName, Email: r.CustEmail, Phone: r.CustPhone}}
	if s.Labels == nil {
		s.Labels = JSONList{}
	}
	if s.Context == nil {
		s.Context = JSONMap{}
	}
	if at, err := parseTime(r.WaitingSince); err == nil && now.After(at) {
		s.WaitingSeconds = int64(now.Sub(at) / time.Second)
	}
	if r.Status == StatusResolved {
		return s
	}
	due, kind := r.NextResponseDue, "next"
	if r.FirstResponseAt == "" && r.FirstResponseDue != "" {
		due, kind = r.FirstResponseDue, "first"
	}
	if at, err := parseTime(due); err == nil {
		s.SLA = &SLAState{Due: at.UTC().Format(time.RFC3339), Kind: kind, Breached: !now.Before(at)}
	}
	return s
}

// summaryOf reads one conversation's Summary.
func (m *Module) summaryOf(db dbx.Builder, id string) (*Summary, error) {
	var r summaryRow
	if err := summaryQuery(db, "recent").Where(dbx.HashExp{"c.id": id}).One(&r); err != nil {
		return nil, err
	}
	s := m.summary(&r, m.opts.Now())
	return &s, nil
}

// cursor is where the next page starts: the last row's sort keys.
type cursor struct {
	K1 float64 `json:"a"`
	K2 float64 `json:"b"`
	ID string  `json:"i"`
}

func (c cursor) String() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err == nil && c.ID == "" {
		err = errors.New("no id")
	}
	return c, err
}

func (m *Module) handleList(e *core.RequestEvent) error {
	q := e.Request.URL.Query()
	var where []dbx.Expression
	switch st := q.Get("status"); st {
	case "", StatusOpen:
		where = append(where, dbx.HashExp{"c.status": StatusOpen})
	case StatusPending, StatusSnoozed, StatusResolved:
		where = append(where, dbx.HashExp{"c.status": st})
	case "all":
	default:
		return api.BadRequest("status", "must be open, pending, snoozed, resolved or all")
	}
	switch a := q.Get("assignee"); a {
	case "":
	case "none":
		where = append(where, dbx.HashExp{"c.assignee": ""})
	case "me":
		if me := staffID(e); me != "" {
			where = append(where, dbx.HashExp{"c.assignee": me})
		} else {
			where = append(where, dbx.NewExp("0")) // a superuser is no staff member: nothing is theirs
		}
	default:
		where = append(where, dbx.HashExp{"c.assignee": a})
	}
	if ch := q.Get("channel"); ch != "" {
		if !validChannel(ch) {
			return api.BadRequest("channel", "must be one of "+strings.Join(Channels, ", "))
		}
		where = append(where, dbx.HashExp{"c.channel": ch})
	}
	if l := strings.ToLower(strings.TrimSpace(q.Get("label"))); l != "" {
		where = append(where, dbx.NewExp(`EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(c.labels) THEN c.labels ELSE '[]' END) j WHERE j.value = {:label})`,
			dbx.Params{"label": l}))
	}
	if text := strings.TrimSpace(q.Get("q")); text != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(text)) + "%"
		where = append(where, dbx.NewExp(`(LOWER(COALESCE(p.name, '')) LIKE {:q} ESCAPE '\' OR LOWER(COALESCE(p.email, '')) LIKE {:q} ESCAPE '\'
			OR COALESCE(p.phone, '') LIKE {:q} ESCAPE '\' OR LOWER(c.last_message) LIKE {:q} ESCAPE '\' OR LOWER(c.subject) LIKE {:q} ESCAPE '\')`,
			dbx.Params{"q": like}))
	}
	sort := q.Get("sort")
	if sort == "" {
		sort = "waiting"
	}
	keys, ok := sortKeys[sort]
	if !ok {
		return api.BadRequest("sort", "must be waiting, recent or due")
	}
	limit := 50
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 200 {
			return api.BadRequest("limit", "must be a number from 1 to 200")
		}
		limit = n
	}
	if b := q.Get("before"); b != "" {
		cur, err := parseCursor(b)
		if err != nil {
			return api.BadRequest("before", "is not a cursor from a previous page's next")
		}
		where = append(where, dbx.NewExp("("+keys[0]+", "+keys[1]+", c.id) > ({:k1}, {:k2}, {:id})",
			dbx.Params{"k1": cur.K1, "k2": cur.K2, "id": cur.ID}))
	}
	var rows []summaryRow
	err := summaryQuery(e.App.DB(), sort).Where(dbx.And(where...)).OrderBy("k1", "k2", "c.id").Limit(int64(limit + 1)).All(&rows)
	if err != nil {
		return api.Internal("Could not list conversations.", err)
	}
	next := ""
	if len(rows) > limit {
		last := rows[limit-1]
		next = cursor{K1: last.K1, K2: last.K2, ID: last.ID}.String()
		rows = rows[:limit]
	}
	now := m.opts.Now()
	items := make([]Summary, len(rows))
	for i := range rows {
		items[i] = m.summary(&rows[i], now)
	}
	return e.JSON(http.StatusOK, map[string]any{"items": items, "next": next})
}

// Counts are the inbox's live counters over conversations that need a
// person (status open), plus the bot's (pending) and the snoozed.
type Counts struct {
	Mine       int            `json:"mine"`
	Unassigned int            `json:"unassigned"`
	All        int            `json:"all"`
	Pending    int            `json:"pending"`
	Snoozed    int            `json:"snoozed"`
	Unread     UnreadCounts   `json:"unread"` // conversations with unread messages
	Channels   map[string]int `json:"channels"`
	Labels     map[string]int `json:"labels"`
}

// UnreadCounts counts open conversations with unread customer messages.
type UnreadCounts struct {
	Mine       int `json:"mine"`
	Unassigned int `json:"unassigned"`
	All        int `json:"all"`
}

func (m *Module) handleCounts(e *core.RequestEvent) error {
	c, err := countConversations(e.App.DB(), staffID(e))
	if err != nil {
		return api.Internal("Could not count conversations.", err)
	}
	return e.JSON(http.StatusOK, c)
}

func countConversations(db dbx.Builder, me string) (*Counts, error) {
	var r struct {
		Mine             int `db:"mine"`
		Unassigned       int `db:"unassigned"`
		All              int `db:"all_open"`
		Pending          int `db:"pending"`
		Snoozed          int `db:"snoozed"`
		UnreadMine       int `db:"unread_mine"`
		UnreadUnassigned int `db:"unread_unassigned"`
		UnreadAll        int `db:"unread_all"`
	}
	err := db.NewQuery(`SELECT
		COALESCE(SUM(status = 'open' AND assignee = {:me} AND {:me} != ''), 0) AS mine,
		COALESCE(SUM(status = 'open' AND assignee = ''), 0) AS unassigned,
		COALESCE(SUM(status = 'open'), 0) AS all_open,
		COALESCE(SUM(status = 'pending'), 0) AS pending,
		COALESCE(SUM(status = 'snoozed'), 0) AS snoozed,
		COALESCE(SUM(status = 'open' AND unread > 0 AND assignee = {:me} AND {:me} != ''), 0) AS unread_mine,
		COALESCE(SUM(status = 'open' AND unread > 0 AND assignee = ''), 0) AS unread_unassigned,
		COALESCE(SUM(status = 'open' AND unread > 0), 0) AS unread_all
		FROM ` + ConversationsCollection + ` WHERE status IN ('open', 'pending', 'snoozed')`).Bind(dbx.Params{"me": me}).One(&r)
	if err != nil {
		return nil, err
	}
	c := &Counts{Mine: r.Mine, Unassigned: r.Unassigned, All: r.All, Pending: r.Pending, Snoozed: r.Snoozed,
		Unread:   UnreadCounts{Mine: r.UnreadMine, Unassigned: r.UnreadUnassigned, All: r.UnreadAll},
		Channels: map[string]int{}, Labels: map[string]int{}}
	for _, ch := range Channels {
		c.Channels[ch] = 0
	}
	var groups []struct {
		Key string `db:"k"`
		N   int    `db:"n"`
	}
	if err := db.NewQuery("SELECT channel AS k, COUNT(*) AS n FROM " + ConversationsCollection + " WHERE status = 'open' GROUP BY channel").All(&groups); err != nil {
		return nil, err
	}
	for _, g := range groups {
		c.Channels[g.Key] = g.N
	}
	groups = nil
	if err := db.NewQuery(`SELECT j.value AS k, COUNT(*) AS n FROM ` + ConversationsCollection + ` c,
		json_each(CASE WHEN json_valid(c.labels) THEN c.labels ELSE '[]' END) j WHERE c.status = 'open' GROUP BY j.value`).All(&groups); err != nil {
		return nil, err
	}
	for _, g := range groups {
		c.Labels[g.Key] = g.N
	}
	return c, nil
}
