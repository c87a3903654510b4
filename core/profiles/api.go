package profiles

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
)

// Register adds the HTTP API (docs/profiles.md).
func (m *Module) Register(r *router.Router[*core.RequestEvent]) {
	g := r.Group("/api/v1")
	g.Bind(api.RequireStaff())
	g.GET("/profiles", m.handleSearch)
	g.GET("/profiles/currency", m.handleBaseCurrency)
	g.GET("/profiles/{id}", m.handleGet)
	g.GET("/profiles/{id}/timeline", m.handleTimeline)
	g.GET("/profiles/{id}/merges", m.handleMerges)
	g.POST("/profiles/{id}/merges/{merge}/undo", m.handleUnmerge).Bind(api.RequireOwner())
	g.POST("/profiles/{id}/consent", m.handleSetConsent) // agents too: a customer may call either
	g.POST("/profiles/{id}/export", m.handleExport).Bind(api.RequireOwner())
	g.DELETE("/profiles/{id}", m.handleErase).Bind(api.RequireOwner())
	g.DELETE("/tombstones/{kind}/{value}", m.handleRemoveTombstone).Bind(api.RequireOwner())
	g.GET("/segments", m.handleSegments)
	g.POST("/segments/preview", m.handlePreviewRule).Bind(api.RequireOwner())
	g.GET("/segments/{id}/preview", m.handlePreview)
	g.GET("/segments/{id}/counts", m.handleCounts)
	g.GET("/profiles/export.csv", m.handleExportCSV).Bind(api.RequireOwner()) // personal data in bulk
	m.registerTagsNotes(g)
}

// noProfile is the 404 of a profile id that is not there.
func noProfile(e *core.RequestEvent) error {
	return api.Error(http.StatusNotFound, "No profile with id "+strconv.Quote(e.Request.PathValue("id"))+".")
}

// intParam reads a whole-number query parameter; out of range is a 400
// naming it.
func intParam(e *core.RequestEvent, name string, def, lo, hi int) (int, error) {
	s := e.Request.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, api.BadRequest(name, "must be a whole number between "+strconv.Itoa(lo)+" and "+strconv.Itoa(hi))
	}
	return n, nil
}

func likePrefix(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s) + "%"
}

func (m *Module) region() string {
	if m.defaultRegion == "" {
		return "US"
	}
	return m.defaultRegion
}

// Detail is the full profile as served by GET /api/v1/profiles/{id}.
type Detail struct {
	ID          string                  `json:"id"`
	RequestedID string                  `json:"requested_id"`
	Name        string                  `json:"name"`
	Email       string                  `json:"email"`
	Phone       string                  `json:"phone"`
	Created     string                  `json:"created"`
	Updated     string                  `json:"updated"`
	Traits      map[string]any          `json:"traits"`
	Computed    *Computed               `json:"computed"`
	Consent     map[string]ConsentEntry `json:"consent"`
	Identities  []IdentityRow           `json:"identities"`
	Segments    []MembershipRow         `json:"segments"`
	MergedFrom  []string                `json:"merged_from"`
	Merges      []Merge                 `json:"merges"`
	Conflicts   []ConflictRow           `json:"conflicts"`
}

type IdentityRow struct {
	Kind    string `db:"kind" json:"kind"`
	Value   string `db:"value" json:"value"`
	Created string `db:"created" json:"created"`
}

type MembershipRow struct {
	ID        string `db:"id" json:"id"`
	Name      string `db:"name" json:"name"`
	EnteredAt string `db:"entered_at" json:"entered_at"`
}

type ConflictRow struct {
	ID       string `db:"id" json:"id"`
	ProfileA string `db:"profile_a" json:"profile_a"`
	ProfileB string `db:"profile_b" json:"profile_b"`
	Kind     string `db:"kind" json:"kind"`
	ValueA   string `db:"value_a" json:"value_a"`
	ValueB   string `db:"value_b" json:"value_b"`
	Reason   string `db:"reason" json:"reason"`
	Status   string `db:"status" json:"status"`
	EventID  string `db:"event_id" json:"event_id"`
	Created  string `db:"created" json:"created"`
}

// Get loads a profile with everything attached; merged ids resolve.
func Get(app core.App, id string) (*Detail, error) {
	row, err := findProfile(app, id)
	if err != nil {
		return nil, err
	}
	p, err := row.decode()
	if err != nil {
		return nil, err
	}
	d := &Detail{ID: row.ID, RequestedID: id, Name: row.Name, Email: row.Email, Phone: row.Phone, Created: row.Created,
		Traits: p.traits, Computed: p.comp, Consent: p.consent,
		Identities: []IdentityRow{}, Segments: []MembershipRow{}, MergedFrom: []string{}, Conflicts: []ConflictRow{}}
	_ = app.DB().NewQuery("SELECT updated FROM profiles WHERE id={:id}").Bind(dbx.Params{"id": row.ID}).Row(&d.Updated)
	db := app.DB()
	prm := dbx.Params{"id": row.ID}
	if err := db.NewQuery("SELECT kind, value, created FROM identities WHERE profile={:id} ORDER BY kind, created").Bind(prm).All(&d.Identities); err != nil {
		return nil, err
	}
	if err := db.NewQuery("SELECT s.id, s.name, m.entered_at FROM segment_members m JOIN segments s ON s.id = m.segment WHERE m.profile={:id} ORDER BY s.name").Bind(prm).All(&d.Segments); err != nil {
		return nil, err
	}
	if err := db.NewQuery("SELECT id FROM profiles WHERE merged_into={:id} AND merged_into != '' ORDER BY created").Bind(prm).Column(&d.MergedFrom); err != nil {
		return nil, err
	}
	ids := append([]string{row.ID}, d.MergedFrom...)
	in, ip := inList("i", ids)
	if d.Merges, err = merges(app, ids); err != nil {
		return nil, err
	}
	if err := db.NewQuery("SELECT id, profile_a, profile_b, kind, value_a, value_b, reason, status, event_id, created FROM profile_conflicts WHERE profile_a IN (" + in + ") OR profile_b IN (" + in + ") ORDER BY created").Bind(ip).All(&d.Conflicts); err != nil {
		return nil, err
	}
	return d, nil
}

func inList(prefix string, vals []string) (string, dbx.Params) {
	p := dbx.Params{}
	parts := make([]string, len(vals))
	for i, v := range vals {
		k := prefix + strconv.Itoa(i)
		p[k] = v
		parts[i] = "{:" + k + "}"
	}
	return strings.Join(parts, ","), p
}

func (m *Module) handleGet(e *core.RequestEvent) error {
	// The customer page shows last seen and orders as they stand.
	if err := m.CatchUp(m.app, e.Request.PathValue("id")); err != nil {
		m.log.Warn("write a waiting profile row before showing it", "error", err)
	}
	d, err := Get(e.App, e.Request.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		return noProfile(e)
	}
	if err != nil {
		return api.Internal("Could not load the profile.", err)
	}
	return e.JSON(200, d)
}

// handleMerges lists the merge ledger of a profile and of the profiles
// merged into it, oldest first, each with the sentence that explains it.
func (m *Module) handleMerges(e *core.RequestEvent) error {
	row, err := findProfile(e.App, e.Request.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		return noProfile(e)
	}
	if err != nil {
		return api.Internal("Could not load the profile.", err)
	}
	var ids []string // the profiles merged into it
	if err := e.App.DB().NewQuery("SELECT id FROM profiles WHERE merged_into={:id} AND merged_into != ''").
		Bind(dbx.Params{"id": row.ID}).Column(&ids); err != nil {
		return api.Internal("Could not load the merges.", err)
	}
	items, err := merges(e.App, append(ids, row.ID))
	if err != nil {
		return api.Internal("Could not load the merges.", err)
	}
	return e.JSON(200, map[string]any{"items": items})
}

// TimelineEvent is one event on a timeline.
type TimelineEvent struct {
	ID         string          `db:"id" json:"id"`
	EventID    string          `db:"event_id" json:"event_id"`
	Type       string          `db:"type" json:"type"`
	Name       string          `db:"name" json:"name"`
	Source     string          `db:"source" json:"source"`
	Channel    string          `db:"channel" json:"channel"`
	OccurredAt string          `db:"occurred_at" json:"occurred_at"`
	Identities json.RawMessage `db:"-" json:"identities"`
	Properties json.RawMessage `db:"-" json:"properties"`
	Context    json.RawMessage `db:"-" json:"context"`
	IdentText  string          `db:"identities" json:"-"`
	PropText   string          `db:"properties" json:"-"`
	CtxText    string          `db:"context" json:"-"`
	// Shape is the entry in a shop owner's words (timeline.go).
	Shape
	propMap map[string]any
}

func (t *TimelineEvent) fill() {
	raw := func(s string) json.RawMessage {
		if s == "" {
			return json.RawMessage("null")
		}
		return json.RawMessage(s)
	}
	t.Identities, t.Properties, t.Context = raw(t.IdentText), raw(t.PropText), raw(t.CtxText)
}

const eventCols = "id, event_id, type, name, source, channel, occurred_at, identities, properties, context"

func (m *Module) handleTimeline(e *core.RequestEvent) error {
	row, err := findProfile(e.App, e.Request.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		return noProfile(e)
	}
	if err != nil {
		return api.Internal("Could not load the profile.", err)
	}
	per, err := intParam(e, "perPage", 50, 1, 200)
	if err != nil {
		return err
	}
	q := e.Request.URL.Query()
	where := []string{"profile = {:p}"}
	prm := dbx.Params{"p": row.ID, "limit": per + 1}
	var types []string
	for _, t := range q["type"] {
		for _, x := range strings.Split(t, ",") {
			if x = strings.TrimSpace(x); x != "" {
				types = append(types, x)
			}
		}
	}
	if len(types) > 0 {
		in, ip := inList("t", types)
		for k, v := range ip {
			prm[k] = v
		}
		where = append(where, "type IN ("+in+")")
	}
	if ch := q.Get("channel"); ch != "" {
		where = append(where, "channel = {:ch}")
		prm["ch"] = ch
	}
	if before := q.Get("before"); before != "" {
		ts, id, hasID := strings.Cut(before, "~")
		t, err := time.Parse(dbTime, ts)
		if err != nil {
			if t, err = time.Parse(time.RFC3339Nano, ts); err != nil {
				return api.BadRequest("before", "expected the next cursor of the previous page or an RFC 3339 time")
			}
		}
		prm["bt"] = t.UTC().Format(dbTime)
		if hasID {
			prm["bid"] = id
			where = append(where, "(occurred_at < {:bt} OR (occurred_at = {:bt} AND id < {:bid}))")
		} else {
			where = append(where, "occurred_at < {:bt}")
		}
	}
	items := []*TimelineEvent{}
	if err := e.App.DB().NewQuery("SELECT " + eventCols + " FROM events WHERE " + strings.Join(where, " AND ") + " ORDER BY occurred_at DESC, id DESC LIMIT {:limit}").
		Bind(prm).All(&items); err != nil {
		return api.Internal("Could not load the timeline.", err)
	}
	next := ""
	if len(items) > per {
		items = items[:per]
		last := items[len(items)-1]
		next = strings.Replace(last.OccurredAt, " ", "T", 1) + "~" + last.ID
	}
	sh := &shaper{app: e.App, profile: row.ID}
	sh.load(items)
	for _, it := range items {
		sh.shape(it)
		it.fill()
	}
	out, err := withNotes(e.App, row.ID, items, q.Get("before"), next != "", types, q.Get("channel"))
	if err != nil {
		return api.Internal("Could not load the timeline.", err)
	}
	return e.JSON(200, map[string]any{"items": out, "next": next})
}

// handleBaseCurrency says which base currency lifetime_value_base and
// average_order_value_base use, and where it came from (currency.go).
func (m *Module) handleBaseCurrency(e *core.RequestEvent) error {
	return e.JSON(200, m.Base())
}

func (m *Module) handleSegments(e *core.RequestEvent) error {
	var rows []*segmentRow
	if err := e.App.DB().NewQuery(`SELECT s.id, s.name, s.description, s.rule, s.created, s.updated,
(SELECT COUNT(*) FROM segment_members m WHERE m.segment = s.id) AS members FROM segments s ORDER BY s.name`).All(&rows); err != nil {
		return api.Internal("Could not list the segments.", err)
	}
	for _, r := range rows {
		r.Rule = json.RawMessage(r.RuleText)
		if rule, err := ParseRule([]byte(r.RuleText)); err == nil {
			r.TimeBased = m.isTimeBased(rule)
		}
	}
	if rows == nil {
		rows = []*segmentRow{}
	}
	return e.JSON(200, map[string]any{"items": rows})
}

// Preview counts the live profiles matching a rule and returns a sample.
func (m *Module) Preview(app core.App, r *Rule) (int, []Summary, error) {
	if err := m.CatchUp(m.app); err != nil { // the rule reads every row as it stands
		return 0, nil, err
	}
	c := newCompiler(m.now().UTC(), m.segs.lookup)
	where, err := c.Compile(r, "")
	if err != nil {
		return 0, nil, err
	}
	w := "p.merged_into = '' AND COALESCE(" + where + ", 0)"
	var n int
	if err := app.DB().NewQuery("SELECT COUNT(*) FROM profiles p WHERE " + w).Bind(c.Params).Row(&n); err != nil {
		return 0, nil, err
	}
	sample := []Summary{}
	if err := app.DB().NewQuery("SELECT " + summaryCols + " FROM profiles p WHERE " + w + " ORDER BY p.last_seen DESC LIMIT 20").Bind(c.Params).All(&sample); err != nil {
		return 0, nil, err
	}
	for i := range sample {
		sample[i].fill()
	}
	return n, sample, nil
}

func (m *Module) handlePreview(e *core.RequestEvent) error {
	r, ok := m.segs.lookup(e.Request.PathValue("id"))
	if !ok {
		return api.Error(http.StatusNotFound, "No segment with id "+strconv.Quote(e.Request.PathValue("id"))+".")
	}
	n, sample, err := m.Preview(e.App, r)
	if err != nil {
		return api.BadRequest("rule", err.Error())
	}
	return e.JSON(200, map[string]any{"count": n, "sample": sample})
}

func (m *Module) handlePreviewRule(e *core.RequestEvent) error {
	var body struct {
		Rule json.RawMessage `json:"rule"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(e.Response, e.Request.Body, 1<<16)).Decode(&body); err != nil {
		return api.BadRequest("body", "must be JSON like {\"rule\": {...}}: "+err.Error())
	}
	if len(body.Rule) == 0 {
		return api.BadRequest("rule", "is required")
	}
	r, err := m.ValidateRule(body.Rule, "")
	if err != nil {
		return api.BadRequest("rule", err.Error())
	}
	n, sample, err := m.Preview(e.App, r)
	if err != nil {
		return api.BadRequest("rule", err.Error())
	}
	return e.JSON(200, map[string]any{"count": n, "sample": sample})
}

func (m *Module) handleCounts(e *core.RequestEvent) error {
	days, err := intParam(e, "days", 30, 1, 3660)
	if err != nil {
		return err
	}
	type dayCount struct {
		Day   string `db:"day" json:"day"`
		Count int    `db:"count" json:"count"`
	}
	items := []dayCount{}
	since := m.now().UTC().AddDate(0, 0, -days).Format("2006-01-02")
	if err := e.App.DB().NewQuery("SELECT day, count FROM segment_counts WHERE segment={:s} AND day > {:d} ORDER BY day").
		Bind(dbx.Params{"s": e.Request.PathValue("id"), "d": since}).All(&items); err != nil {
		return api.Internal("Could not load the counts.", err)
	}
	return e.JSON(200, map[string]any{"items": items})
}
