package profiles

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/segmentrule"
)

// The customers list (GET /api/v1/profiles) and its CSV export
// (GET /api/v1/profiles/export.csv) share one query: search, filters and
// sort (docs/api.md).

// Summary is a profile in lists.
type Summary struct {
	ID              string  `db:"id" json:"id"`
	Name            string  `db:"name" json:"name"`
	Email           string  `db:"email" json:"email"`
	Phone           string  `db:"phone" json:"phone"`
	FirstSeen       string  `db:"first_seen" json:"first_seen"`
	LastSeen        string  `db:"last_seen" json:"last_seen"`
	OrdersCount     int     `db:"orders_count" json:"orders_count"`
	LifecycleStage  string  `db:"lifecycle_stage" json:"lifecycle_stage"`
	EngagementLevel string  `db:"engagement_level" json:"engagement_level"`
	Known           bool    `db:"known" json:"known"`
	Spend           float64 `db:"spend" json:"spend"`
	Created         string  `db:"created" json:"created"`
	Updated         string  `db:"updated" json:"updated"`
	// From computed: Currency is the base currency, or the one currency
	// the customer paid in ("" when mixed without a base currency).
	Currency      string             `db:"-" json:"currency"`
	LifetimeValue map[string]float64 `db:"-" json:"lifetime_value"`
	LastOrderAt   string             `db:"-" json:"last_order_at"`
	BuyingStage   string             `db:"-" json:"buying_stage"`
	Channels      []string           `db:"-" json:"channels"`
	ComputedText  string             `db:"computed" json:"-"`
}

// spendExpr is what a customer spent: in the base currency when one is
// set, else the sum of their lifetime values (one currency for most shops).
const spendExpr = "COALESCE(json_extract(p.computed, '$.lifetime_value_base'), (SELECT TOTAL(value) FROM json_each(p.computed, '$.lifetime_value')), 0)"

const summaryCols = "p.id, p.name, p.email, p.phone, p.first_seen, p.last_seen, p.orders_count, p.lifecycle_stage, p.engagement_level, p.known, p.created, p.updated, p.computed, " + spendExpr + " AS spend"

func (s *Summary) fill() {
	var c Computed
	if json.Unmarshal([]byte(s.ComputedText), &c) != nil {
		return
	}
	s.LifetimeValue, s.LastOrderAt, s.Channels, s.BuyingStage = c.LifetimeValue, c.LastOrderAt, c.Channels, c.BuyingStage
	switch {
	case c.LifetimeValueBase != nil && c.BaseCurrency != "":
		s.Currency = c.BaseCurrency
	case len(c.LifetimeValue) == 1:
		for k := range c.LifetimeValue {
			s.Currency = k
		}
	}
	if s.Channels == nil {
		s.Channels = []string{}
	}
}

// sorts are the list's orders ("-" first for descending); ties break on id.
var sorts = map[string][]string{
	"last_seen":  {"p.last_seen"},
	"first_seen": {"p.first_seen"},
	"spend":      {spendExpr},
	"orders":     {"p.orders_count"},
	"name":       {"p.name = ''", "p.name COLLATE NOCASE"}, // unnamed last
}

var channelRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,30}$`)

// listQuery turns the request's parameters into a FROM, a WHERE clause and
// an ORDER BY over `profiles p`, with its parameters in c. Bad values are a
// 400 naming the parameter. A search drives the query from the profiles it
// finds (CROSS JOIN keeps SQLite from walking the whole last_seen index
// instead and testing each profile against the matches).
func (m *Module) listQuery(q url.Values) (c *compiler, from, where, order string, err error) {
	c = newCompiler(m.now().UTC(), m.segs.lookup)
	conds := []string{"p.merged_into = ''"}
	search := strings.TrimSpace(q.Get("q"))
	// Known customers by default; a search finds visitors too (an
	// anonymous id pasted from a support ticket).
	who := q.Get("who")
	if who == "" {
		who = "customers"
		if search != "" {
			who = "all"
		}
	}
	switch who {
	case "customers":
		conds = append(conds, "p.known = 1")
	case "visitors":
		conds = append(conds, "p.known = 0")
	case "all":
	default:
		return nil, "", "", "", api.BadRequest("who", "must be customers, visitors or all")
	}
	from = "profiles p"
	if search != "" {
		if len(search) > 300 {
			return nil, "", "", "", api.BadRequest("q", "must be at most 300 characters")
		}
		from = "(" + m.searchIDs(c, search) + ") AS found CROSS JOIN profiles p ON p.id = found.profile"
	}
	if seg := q.Get("segment"); seg != "" {
		conds = append(conds, "p.id IN (SELECT profile FROM segment_members WHERE segment = "+c.Param(seg)+")")
	}
	if ch := q.Get("channel"); ch != "" {
		if !channelRE.MatchString(ch) {
			return nil, "", "", "", api.BadRequest("channel", "must be a channel name such as web, email, sms, whatsapp or pos")
		}
		conds = append(conds, "EXISTS (SELECT 1 FROM json_each(p.computed, '$.channels') WHERE value = "+c.Param(ch)+")")
	}
	if cs := q.Get("consent"); cs != "" {
		ch, st, _ := strings.Cut(strings.ToLower(cs), ":")
		r := &Rule{Consent: ch, Status: st}
		if !validConsentChannel(ch) || (st != ConsentSubscribed && st != ConsentUnsubscribed && st != "unknown") {
			return nil, "", "", "", api.BadRequest("consent", "must be channel:status, such as email:subscribed (channels email, sms, whatsapp; statuses subscribed, unsubscribed, unknown)")
		}
		s, _ := c.Compile(r, "")
		conds = append(conds, s)
	}
	if raw := q.Get("rule"); raw != "" {
		r, err := ParseRule([]byte(raw))
		if err != nil {
			return nil, "", "", "", api.BadRequest("rule", err.Error())
		}
		s, err := c.Compile(r, "")
		if err != nil {
			return nil, "", "", "", api.BadRequest("rule", err.Error())
		}
		conds = append(conds, "COALESCE("+s+", 0)")
	}
	for k, vs := range q {
		name, ok := strings.CutPrefix(k, "trait.")
		if !ok {
			continue
		}
		if !segmentrule.ValidTraitName(name) {
			return nil, "", "", "", api.BadRequest(k, "not a valid trait name")
		}
		for _, v := range vs {
			var val any = v
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				val = f
			} else if v == "true" || v == "false" {
				val = v == "true"
			}
			s, err := c.Compile(&Rule{Trait: name, Op: "eq", Value: val}, "")
			if err != nil {
				return nil, "", "", "", api.BadRequest(k, err.Error())
			}
			conds = append(conds, s)
		}
	}
	key := q.Get("sort")
	if key == "" {
		key = "-last_seen"
	}
	dir := " ASC"
	name, desc := strings.CutPrefix(key, "-")
	if desc {
		dir = " DESC"
	}
	expr, ok := sorts[name]
	if !ok {
		return nil, "", "", "", api.BadRequest("sort", "must be one of last_seen, first_seen, spend, orders, name (prefix - for descending, e.g. -spend)")
	}
	var parts []string
	for _, p := range expr {
		if strings.HasSuffix(p, "= ''") {
			parts = append(parts, p) // unnamed last either way
			continue
		}
		parts = append(parts, p+dir)
	}
	return c, from, strings.Join(conds, " AND "), strings.Join(parts, ", ") + ", p.id" + dir, nil
}

func (m *Module) handleSearch(e *core.RequestEvent) error {
	page, err := intParam(e, "page", 1, 1, 1<<30)
	if err != nil {
		return err
	}
	per, err := intParam(e, "perPage", 20, 1, 100)
	if err != nil {
		return err
	}
	total, items, err := m.Search(e.App, e.Request.URL.Query(), page, per)
	if err != nil {
		return err
	}
	return e.JSON(200, map[string]any{"page": page, "perPage": per, "totalItems": total, "items": items})
}

// Search answers one page of the customers list for the query parameters
// of GET /api/v1/profiles (q, who, segment, channel, consent, rule,
// trait.*, sort). Bad parameters are API errors naming them.
func (m *Module) Search(app core.App, q url.Values, page, perPage int) (int, []Summary, error) {
	c, from, where, order, err := m.listQuery(q)
	if err != nil {
		return 0, nil, err
	}
	var total int
	if err := app.DB().NewQuery("SELECT COUNT(*) FROM " + from + " WHERE " + where).Bind(c.Params).Row(&total); err != nil {
		return 0, nil, api.Internal("Search failed.", err)
	}
	// The page's ids first, then their rows: a sort that cannot use an
	// index would otherwise compute every column (spend, the computed
	// JSON) of every match, not only of the page's.
	var ids []string
	c.Params["limit"], c.Params["offset"] = perPage, (page-1)*perPage
	if err := app.DB().NewQuery("SELECT p.id FROM " + from + " WHERE " + where + " ORDER BY " + order + " LIMIT {:limit} OFFSET {:offset}").
		Bind(c.Params).Column(&ids); err != nil {
		return 0, nil, api.Internal("Search failed.", err)
	}
	items := []Summary{}
	if len(ids) == 0 {
		return total, items, nil
	}
	in, ip := inList("i", ids)
	var rows []Summary
	if err := app.DB().NewQuery("SELECT " + summaryCols + " FROM profiles p WHERE p.id IN (" + in + ")").Bind(ip).All(&rows); err != nil {
		return 0, nil, api.Internal("Search failed.", err)
	}
	byID := make(map[string]*Summary, len(rows))
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
	}
	for _, id := range ids {
		if r := byID[id]; r != nil {
			r.fill()
			items = append(items, *r)
		}
	}
	return total, items, nil
}

// csvColumns of the export, in order.
var csvColumns = []string{"id", "name", "email", "phone", "known", "first_seen", "last_seen", "orders", "spend", "currency", "last_order_at", "lifecycle_stage", "buying_stage", "channels", "tags"}

// handleExportCSV streams the current view of the list as CSV, row by
// row: the total comes first in X-Total-Count (the admin shows progress),
// rows are flushed as they are written, nothing is held in memory.
func (m *Module) handleExportCSV(e *core.RequestEvent) error {
	c, from, where, order, err := m.listQuery(e.Request.URL.Query())
	if err != nil {
		return err
	}
	if err := m.CatchUp(m.app); err != nil { // an export holds every row as it stands
		return api.Internal("Export failed.", err)
	}
	var total int
	if err := e.App.DB().NewQuery("SELECT COUNT(*) FROM " + from + " WHERE " + where).Bind(c.Params).Row(&total); err != nil {
		return api.Internal("Export failed.", err)
	}
	rows, err := e.App.DB().NewQuery("SELECT " + summaryCols + ", (SELECT group_concat(DISTINCT t.tag) FROM profile_tags t WHERE t.profile = p.id) AS tags FROM " + from + " WHERE " +
		where + " ORDER BY " + order).Bind(c.Params).Rows()
	if err != nil {
		return api.Internal("Export failed.", err)
	}
	defer rows.Close()
	h := e.Response.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="customers-`+m.now().UTC().Format("2006-01-02")+`.csv"`)
	h.Set("X-Total-Count", strconv.Itoa(total))
	h.Set("Cache-Control", "no-store")
	e.Response.WriteHeader(http.StatusOK)
	w := csv.NewWriter(e.Response)
	_ = w.Write(csvColumns)
	n := 0
	for rows.Next() {
		var s struct {
			Summary
			Tags *string `db:"tags"`
		}
		if err := rows.ScanStruct(&s); err != nil {
			m.log.Error("customers export: bad row; export cut short", "error", err)
			break
		}
		s.fill()
		tags := ""
		if s.Tags != nil {
			tags = strings.ReplaceAll(*s.Tags, ",", "; ")
		}
		rec := []string{s.ID, s.Name, s.Email, s.Phone, strconv.FormatBool(s.Known), s.FirstSeen, s.LastSeen,
			strconv.Itoa(s.OrdersCount), strconv.FormatFloat(round2(s.Spend), 'f', -1, 64), s.Currency, s.LastOrderAt,
			s.LifecycleStage, s.BuyingStage, strings.Join(s.Channels, "; "), tags}
		for i := range rec {
			rec[i] = csvSafe(rec[i])
		}
		if err := w.Write(rec); err != nil {
			return nil // the client went away
		}
		if n++; n%500 == 0 {
			w.Flush()
			if w.Error() != nil {
				return nil
			}
			_ = e.Flush()
		}
	}
	if err := rows.Err(); err != nil {
		m.log.Error("customers export: reading rows failed; export cut short", "error", err)
	}
	w.Flush()
	_ = e.Flush()
	return nil
}

// csvSafe keeps a spreadsheet from running a cell as a formula (a name
// such as "=HYPERLINK(…)" typed into a checkout form). Phone numbers and
// negative amounts (+44…, -5) stay as they are.
func csvSafe(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '@', '\t', '\r':
		return "'" + s
	case '+', '-':
		if len(s) == 1 || s[1] < '0' || s[1] > '9' {
			return "'" + s
		}
	}
	return s
}
