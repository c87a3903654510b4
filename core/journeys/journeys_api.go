package journeys

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	validation "github.com/go-ozzo/ozzo-validation/v4"
	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/journeys/graph"
	"github.com/omni/omni/core/segmentrule"
)

// The journeys API: owners create, edit, publish, pause, resume and
// archive journeys; staff read them, their versions and the recipes. The
// draft (journeys.graph) is saved as the owner works, problems and all;
// publishing is where a graph must be whole, and it freezes the draft as a
// new, immutable journey_versions row.
func (m *Module) journeyRoutes(g routeGroup) {
	// Literal paths before {id} patterns, so "recipes" and "runs" are
	// never taken for ids.
	g.GET("/recipes", m.handleRecipes).Bind(api.RequireStaff())
	g.GET("/runs", m.handleCustomerRuns).Bind(api.RequireStaff()) // runs_api.go
	g.GET("", m.handleList).Bind(api.RequireStaff())
	g.POST("", m.handleCreate).Bind(api.RequireOwner())
	g.GET("/{id}", m.handleGet).Bind(api.RequireStaff())
	g.PATCH("/{id}", m.handlePatch).Bind(api.RequireOwner())
	g.POST("/{id}/publish", m.handlePublish).Bind(api.RequireOwner())
	g.POST("/{id}/pause", m.handleStatus(StatusPaused)).Bind(api.RequireOwner())
	g.POST("/{id}/resume", m.handleStatus(StatusLive)).Bind(api.RequireOwner())
	g.POST("/{id}/archive", m.handleStatus(StatusArchived)).Bind(api.RequireOwner())
	g.GET("/{id}/versions", m.handleVersions).Bind(api.RequireStaff())
	g.GET("/{id}/versions/{v}", m.handleVersion).Bind(api.RequireStaff())
}

const (
	maxBody    = 2 << 20 // a graph is at most 1 MiB; room for the rest
	maxNameLen = 200
	maxDescLen = 2000
	maxNoteLen = 2000
)

// JourneyView is a journey as the API shows it.
type JourneyView struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Status      string          `json:"status"`
	Version     int             `json:"version"`
	Recipe      string          `json:"recipe"`
	Graph       json.RawMessage `json:"graph"`
	Settings    json.RawMessage `json:"settings"`
	// Problems is what publishing would refuse ([] when it would not).
	Problems graph.Problems `json:"problems"`
	// DraftChanged: the draft differs from the latest published version
	// (always true before the first publish).
	DraftChanged bool   `json:"draft_changed"`
	Created      string `json:"created"`
	Updated      string `json:"updated"`
	PublishedAt  string `json:"published_at"`
}

// JourneyItem is a row of the journeys list.
type JourneyItem struct {
	ID             string  `json:"id"`
	Name           string  `json:"name"`
	Description    string  `json:"description"`
	Status         string  `json:"status"`
	Version        int     `json:"version"`
	Recipe         string  `json:"recipe"`
	TriggerSummary string  `json:"trigger_summary"`
	Updated        string  `json:"updated"`
	PublishedAt    string  `json:"published_at"`
	RunsActive     int     `json:"runs_active"`
	RunsTotal      int     `json:"runs_total"`
	Conversions    int     `json:"conversions"`
	Revenue        float64 `json:"revenue"`
}

// journeyInput is what POST and PATCH read; absent fields stay as they are.
type journeyInput struct {
	Name        *string         `json:"name"`
	Description *string         `json:"description"`
	Graph       json.RawMessage `json:"graph"`
	Settings    json.RawMessage `json:"settings"`
	Recipe      string          `json:"recipe"`
	Params      json.RawMessage `json:"params"`
}

// readJSON decodes the request body into out; an empty body is {}.
func readJSON(e *core.RequestEvent, out any) error {
	b, err := io.ReadAll(io.LimitReader(e.Request.Body, maxBody+1))
	if err != nil {
		return api.Error(http.StatusBadRequest, "Could not read the request body.")
	}
	if len(b) > maxBody {
		return api.Error(http.StatusRequestEntityTooLarge, "The request body is too large.")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return api.BadRequest(te.Field, fmt.Sprintf("must be a JSON %s", jsonKind(te.Type.Kind().String())))
		}
		return api.Error(http.StatusBadRequest, "The body is not a JSON object: "+err.Error())
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	}
	return "number"
}

// draft is a journey's draft, parsed: the graph may have problems, but it
// reads as a graph.
type journeyDraft struct {
	graph    *graph.Graph
	settings graph.Settings
}

// parseDraft reads a graph and settings as sent or stored. It fails only
// when the JSON cannot be read as a graph or settings (an unknown field, a
// wrong type): a 400 naming graph or settings.
func parseDraft(rawGraph, rawSettings []byte) (*journeyDraft, error) {
	d := &journeyDraft{}
	if isJSONNull(rawGraph) {
		d.graph = &graph.Graph{Nodes: map[string]*graph.Node{}}
	} else {
		g, err := graph.Parse(rawGraph)
		if err != nil {
			return nil, api.BadRequest("graph", strings.TrimPrefix(err.Error(), "graph: "))
		}
		d.graph = g
	}
	if !isJSONNull(rawSettings) {
		dec := json.NewDecoder(bytes.NewReader(rawSettings))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d.settings); err != nil {
			return nil, api.BadRequest("settings", "cannot be read: "+strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	d.settings.Defaults()
	return d, nil
}

func isJSONNull(raw []byte) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// encode is the draft as stored: one canonical spelling (the string
// shorthand of next becomes an object, settings have their defaults), so
// drafts and versions compare byte for byte.
func (d *journeyDraft) encode() (g, s []byte, err error) {
	if g, err = json.Marshal(d.graph); err != nil {
		return nil, nil, err
	}
	s, err = json.Marshal(d.settings)
	return g, s, err
}

// problems is every reason publishing would refuse the draft: the graph's
// shape, the settings, and what the graph names that does not exist.
func (m *Module) problems(app core.App, d *journeyDraft) graph.Problems {
	ps := graph.Problems{}
	ps = append(ps, d.graph.Validate()...)
	raw, _ := json.Marshal(d.settings)
	if _, sp := graph.ParseSettings(raw); sp != nil {
		ps = append(ps, sp...)
	}
	ps = append(ps, references(app, d.graph)...)
	return ps
}

// references checks that the templates and segments a graph names exist,
// naming the node (templates are read from the table: messaging owns them).
func references(app core.App, g *graph.Graph) graph.Problems {
	var ps graph.Problems
	segment := func(node, field, id string) {
		if id == "" {
			return
		}
		var n int
		_ = app.DB().NewQuery("SELECT COUNT(*) FROM segments WHERE id={:id}").Bind(dbx.Params{"id": id}).Row(&n)
		if n == 0 {
			ps = append(ps, graph.Problem{Node: node, Field: field, Message: fmt.Sprintf("names no segment: %q", id)})
		}
	}
	segment("", "trigger.segment", g.Trigger.Segment)
	if g.ExitOn != nil {
		segment("", "exit_when.segment", g.ExitOn.Segment)
	}
	ids := make([]string, 0, len(g.Nodes))
	for id := range g.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		n := g.Nodes[id]
		if n == nil {
			continue
		}
		switch n.Type {
		case graph.Send:
			if n.Template == "" {
				continue
			}
			var t struct {
				Name    string `db:"name"`
				Channel string `db:"channel"`
			}
			err := app.DB().NewQuery("SELECT name, channel FROM templates WHERE id={:t} OR name={:t} LIMIT 1").
				Bind(dbx.Params{"t": n.Template}).One(&t)
			switch {
			case err != nil:
				ps = append(ps, graph.Problem{Node: id, Field: "template", Message: fmt.Sprintf("no template with id or name %q", n.Template)})
			case len(n.Channels) == 1 && t.Channel != "" && t.Channel != n.Channels[0]:
				ps = append(ps, graph.Problem{Node: id, Field: "template",
					Message: fmt.Sprintf("template %q is for %s, not %s", t.Name, t.Channel, n.Channels[0])})
			}
		case graph.Branch:
			if len(n.Rule) == 0 {
				continue
			}
			r, err := segmentrule.ParseRule(n.Rule)
			if err != nil {
				continue // Validate reports it
			}
			for _, s := range ruleSegments(r) {
				segment(id, "rule", s)
			}
		}
	}
	return ps
}

// ruleSegments lists the segments a rule refers to.
func ruleSegments(r *segmentrule.Rule) []string {
	if r == nil {
		return nil
	}
	var out []string
	if r.Segment != "" {
		out = append(out, r.Segment)
	}
	for _, c := range append(append([]*segmentrule.Rule{}, r.And...), r.Or...) {
		out = append(out, ruleSegments(c)...)
	}
	return append(out, ruleSegments(r.Not)...)
}

// findJourney loads a journey record, or a 404.
func findJourney(app core.App, id string) (*core.Record, error) {
	r, err := app.FindRecordById(Collection, id)
	if err != nil {
		return nil, api.Error(http.StatusNotFound, "No journey with this id.")
	}
	return r, nil
}

// rawField is a JSON field's stored text.
func rawField(r *core.Record, field string) []byte {
	switch v := r.GetRaw(field).(type) {
	case types.JSONRaw:
		return v
	case []byte:
		return v
	case string:
		return []byte(v)
	case nil:
		return nil
	default:
		b, _ := json.Marshal(v)
		return b
	}
}

// view is the API's picture of a journey record.
func (m *Module) view(app core.App, r *core.Record) (*JourneyView, error) {
	d, err := parseDraft(rawField(r, "graph"), rawField(r, "settings"))
	if err != nil {
		// Only the API writes drafts, so this is a stored graph from an
		// older format; show it and say why it cannot be published.
		d = &journeyDraft{graph: &graph.Graph{Nodes: map[string]*graph.Node{}}}
		d.settings.Defaults()
	}
	g, s, err := d.encode()
	if err != nil {
		return nil, err
	}
	v := &JourneyView{ID: r.Id, Name: r.GetString("name"), Description: r.GetString("description"),
		Status: r.GetString("status"), Version: r.GetInt("version"), Recipe: r.GetString("recipe"),
		Graph: g, Settings: s, Problems: m.problems(app, d), DraftChanged: true,
		Created: r.GetString("created"), Updated: r.GetString("updated"), PublishedAt: r.GetString("published_at")}
	if v.Version > 0 {
		var row struct {
			Graph    string `db:"graph"`
			Settings string `db:"settings"`
		}
		err := app.DB().NewQuery("SELECT graph, settings FROM " + VersionsCollection + " WHERE journey={:j} AND version={:v}").
			Bind(dbx.Params{"j": r.Id, "v": v.Version}).One(&row)
		if err == nil {
			v.DraftChanged = !sameJSON(g, []byte(row.Graph)) || !sameJSON(s, []byte(row.Settings))
		}
	}
	return v, nil
}

// sameJSON compares two JSON texts by value.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xa, yb)
}

func (m *Module) handleList(e *core.RequestEvent) error {
	status := e.Request.URL.Query().Get("status")
	switch status {
	case "", StatusDraft, StatusLive, StatusPaused, StatusArchived:
	default:
		return api.BadRequest("status", "must be draft, live, paused or archived")
	}
	var rows []struct {
		ID          string `db:"id"`
		Name        string `db:"name"`
		Description string `db:"description"`
		Status      string `db:"status"`
		Version     int    `db:"version"`
		Recipe      string `db:"recipe"`
		Graph       string `db:"graph"`
		Updated     string `db:"updated"`
		PublishedAt string `db:"published_at"`
	}
	q := e.App.DB().Select("id", "name", "description", "status", "version", "recipe", "graph", "updated", "published_at").
		From(Collection).OrderBy("updated DESC")
	if status != "" {
		q = q.Where(dbx.HashExp{"status": status})
	}
	if err := q.All(&rows); err != nil {
		return api.Internal("Could not list the journeys.", err)
	}
	var totals []struct {
		Journey     string  `db:"journey"`
		Active      int     `db:"active"`
		Total       int     `db:"total"`
		Conversions int     `db:"conversions"`
		Revenue     float64 `db:"revenue"`
	}
	err := e.App.DB().NewQuery(`SELECT journey, SUM(status IN ('active','waiting')) AS active, COUNT(*) AS total,
		SUM(goal_at != '') AS conversions, COALESCE(SUM(CASE WHEN goal_at != '' THEN goal_value END), 0) AS revenue
		FROM ` + RunsCollection + ` GROUP BY journey`).All(&totals)
	if err != nil {
		return api.Internal("Could not count the journeys' runs.", err)
	}
	byJourney := make(map[string]int, len(totals))
	for i, t := range totals {
		byJourney[t.Journey] = i
	}
	segmentName := func(id string) string {
		var name string
		_ = e.App.DB().NewQuery("SELECT name FROM segments WHERE id={:id}").Bind(dbx.Params{"id": id}).Row(&name)
		return name
	}
	items := make([]JourneyItem, 0, len(rows))
	for _, r := range rows {
		it := JourneyItem{ID: r.ID, Name: r.Name, Description: r.Description, Status: r.Status, Version: r.Version,
			Recipe: r.Recipe, Updated: r.Updated, PublishedAt: r.PublishedAt}
		// The summary says what enrols people now: the published version
		// when there is one, else the draft.
		var g *graph.Graph
		if r.Version > 0 {
			if c, err := m.live.version(e.App, r.ID, r.Version); err == nil {
				g = c.Graph
			}
		}
		if g == nil {
			g, _ = graph.Parse([]byte(r.Graph))
		}
		if g != nil {
			it.TriggerSummary = TriggerSummary(g, segmentName)
		}
		if i, ok := byJourney[r.ID]; ok {
			t := totals[i]
			it.RunsActive, it.RunsTotal, it.Conversions, it.Revenue = t.Active, t.Total, t.Conversions, t.Revenue
		}
		items = append(items, it)
	}
	return e.JSON(http.StatusOK, map[string]any{"items": items})
}

func (m *Module) handleGet(e *core.RequestEvent) error {
	r, err := findJourney(e.App, e.Request.PathValue("id"))
	if err != nil {
		return err
	}
	v, err := m.view(e.App, r)
	if err != nil {
		return api.Internal("Could not read the journey.", err)
	}
	return e.JSON(http.StatusOK, v)
}

// setText applies a name or description edit, checking its length.
func setText(r *core.Record, field string, v *string, max int, required bool) error {
	if v == nil {
		return nil
	}
	s := strings.TrimSpace(*v)
	if required && s == "" {
		return api.BadRequest(field, "is required")
	}
	if utf8.RuneCountInString(s) > max {
		return api.BadRequest(field, fmt.Sprintf("must be at most %d characters", max))
	}
	r.Set(field, s)
	return nil
}

func (m *Module) handleCreate(e *core.RequestEvent) error {
	var in journeyInput
	if err := readJSON(e, &in); err != nil {
		return err
	}
	if in.Recipe != "" {
		return m.createFromRecipe(e, in)
	}
	if in.Name == nil || strings.TrimSpace(*in.Name) == "" {
		return api.BadRequest("name", "is required (or give a recipe)")
	}
	d, err := parseDraft(in.Graph, in.Settings)
	if err != nil {
		return err
	}
	var rec *core.Record
	err = e.App.RunInTransaction(func(tx core.App) error {
		var err error
		rec, err = m.saveNew(tx, e, in, d, "")
		return err
	})
	if err != nil {
		return saveError(err, "Could not create the journey.")
	}
	return m.respond(e, http.StatusCreated, rec)
}

// saveNew inserts a draft journey.
func (m *Module) saveNew(tx core.App, e *core.RequestEvent, in journeyInput, d *journeyDraft, recipe string) (*core.Record, error) {
	col, err := tx.FindCollectionByNameOrId(Collection)
	if err != nil {
		return nil, err
	}
	rec := core.NewRecord(col)
	if err := setText(rec, "name", in.Name, maxNameLen, true); err != nil {
		return nil, err
	}
	if err := setText(rec, "description", in.Description, maxDescLen, false); err != nil {
		return nil, err
	}
	g, s, err := d.encode()
	if err != nil {
		return nil, err
	}
	rec.Set("graph", types.JSONRaw(g))
	rec.Set("settings", types.JSONRaw(s))
	rec.Set("status", StatusDraft)
	rec.Set("version", 0)
	rec.Set("recipe", recipe)
	if e.Auth != nil {
		rec.Set("created_by", e.Auth.Id)
	}
	return rec, tx.Save(rec)
}

// saveError passes API errors through, answers a record's validation
// errors as a 400 naming the fields, and anything else as a 500.
func saveError(err error, message string) error {
	var ae *router.ApiError
	if errors.As(err, &ae) {
		return ae
	}
	var ve validation.Errors
	if errors.As(err, &ve) {
		return api.Invalid(err, message)
	}
	return api.Internal(message, err)
}

func (m *Module) respond(e *core.RequestEvent, status int, r *core.Record) error {
	v, err := m.view(e.App, r)
	if err != nil {
		return api.Internal("Could not read the journey.", err)
	}
	return e.JSON(status, v)
}

func (m *Module) handlePatch(e *core.RequestEvent) error {
	r, err := findJourney(e.App, e.Request.PathValue("id"))
	if err != nil {
		return err
	}
	if r.GetString("status") == StatusArchived {
		return api.Error(http.StatusConflict, "An archived journey cannot be edited.")
	}
	var in journeyInput
	if err := readJSON(e, &in); err != nil {
		return err
	}
	if err := setText(r, "name", in.Name, maxNameLen, true); err != nil {
		return err
	}
	if err := setText(r, "description", in.Description, maxDescLen, false); err != nil {
		return err
	}
	if in.Graph != nil || in.Settings != nil {
		rawG, rawS := rawField(r, "graph"), rawField(r, "settings")
		if in.Graph != nil {
			rawG = in.Graph
		}
		if in.Settings != nil {
			rawS = in.Settings
		}
		d, err := parseDraft(rawG, rawS)
		if err != nil {
			return err
		}
		g, s, err := d.encode()
		if err != nil {
			return api.Internal("Could not save the journey.", err)
		}
		r.Set("graph", types.JSONRaw(g))
		r.Set("settings", types.JSONRaw(s))
	}
	if err := e.App.Save(r); err != nil {
		return saveError(err, "Could not save the journey.")
	}
	return m.respond(e, http.StatusOK, r)
}

// PublishResult is the answer to a publish.
type PublishResult struct {
	Version int    `json:"version"`
	Status  string `json:"status"`
	Moved   int    `json:"moved"`
}

func (m *Module) handlePublish(e *core.RequestEvent) error {
	id := e.Request.PathValue("id")
	if _, err := findJourney(e.App, id); err != nil {
		return err
	}
	var in struct {
		Note string            `json:"note"`
		Map  map[string]string `json:"map"`
	}
	if err := readJSON(e, &in); err != nil {
		return err
	}
	if utf8.RuneCountInString(in.Note) > maxNoteLen {
		return api.BadRequest("note", fmt.Sprintf("must be at most %d characters", maxNoteLen))
	}
	now := m.opts.Now()
	res := PublishResult{Status: StatusLive}
	// One transaction: the draft that is checked is the draft that is
	// frozen, and two publishes at once get consecutive versions.
	err := e.App.RunInTransaction(func(tx core.App) error {
		cur, err := tx.FindRecordById(Collection, id)
		if err != nil {
			return err
		}
		if cur.GetString("status") == StatusArchived {
			return api.Error(http.StatusConflict, "An archived journey cannot be published.")
		}
		d, err := parseDraft(rawField(cur, "graph"), rawField(cur, "settings"))
		if err != nil {
			return err
		}
		if ps := m.problems(tx, d); len(ps) > 0 {
			return refusal(ps)
		}
		for _, old := range sortedMapKeys(in.Map) {
			if to := in.Map[old]; d.graph.Nodes[to] == nil {
				return api.BadRequest("map."+old, fmt.Sprintf("%q is not a step of the new version", to))
			}
		}
		g, s, err := d.encode()
		if err != nil {
			return err
		}
		res.Version = cur.GetInt("version") + 1
		col, err := tx.FindCollectionByNameOrId(VersionsCollection)
		if err != nil {
			return err
		}
		v := core.NewRecord(col)
		v.Set("journey", id)
		v.Set("version", res.Version)
		v.Set("graph", types.JSONRaw(g))
		v.Set("settings", types.JSONRaw(s))
		v.Set("note", strings.TrimSpace(in.Note))
		if e.Auth != nil {
			v.Set("published_by", e.Auth.Id)
		}
		if err := tx.Save(v); err != nil {
			return err
		}
		cur.Set("version", res.Version)
		cur.Set("status", StatusLive)
		cur.Set("published_at", now.UTC())
		if err := tx.Save(cur); err != nil {
			return err
		}
		res.Moved, err = m.moveRuns(tx, id, res.Version, in.Map)
		return err
	})
	var ae *router.ApiError
	if errors.As(err, &ae) {
		return ae
	}
	if err != nil {
		return api.Internal("Could not publish the journey.", err)
	}
	m.reloadLive()
	return e.JSON(http.StatusOK, res)
}

// refusal is publishing's 400: data.graph is the first problem (the
// message says it), data.problems every problem, each naming its node.
func refusal(ps graph.Problems) error {
	err := api.FieldError(http.StatusBadRequest, "graph", "validation_journey_invalid", ps[0].Error())
	err.Data["problems"] = ps
	return err
}

func sortedMapKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// moveRuns moves runs of older versions that are at a mapped node onto
// version v at the node it maps to: each arrives there now (a wait starts
// over, a send is sent by the new step). Their history gets a row for the
// node they left, exit "" with detail.moved_to.
func (m *Module) moveRuns(tx core.App, journey string, v int, moves map[string]string) (int, error) {
	moved := 0
	now := m.opts.Now()
	for _, from := range sortedMapKeys(moves) {
		to := moves[from]
		var runs []Run
		err := tx.DB().NewQuery("SELECT " + RunColumns + " FROM " + RunsCollection +
			" WHERE journey={:j} AND version < {:v} AND node={:n} AND (status='active' OR status='waiting')").
			Bind(dbx.Params{"j": journey, "v": v, "n": from}).All(&runs)
		if err != nil {
			return 0, err
		}
		for _, r := range runs {
			detail := map[string]any{"arrived_at": arrivedAt(tx, r), "moved_to": map[string]any{"version": v, "node": to}}
			if err := recordStep(tx, Step{Run: r.ID, Journey: journey, Version: r.Version, Profile: r.Profile, Node: r.Node,
				Type: m.runNodeType(tx, r), Detail: detail, At: now}); err != nil {
				return 0, err
			}
			_, err := tx.DB().NewQuery("UPDATE " + RunsCollection + ` SET version={:v}, node={:to}, status='active', due_at={:at},
				wait_event='', attempt=0, context=json_remove(CASE WHEN json_valid(context) THEN context ELSE '{}' END, '$.resume', '$.resume_with'),
				updated={:at} WHERE id={:id}`).Bind(dbx.Params{"v": v, "to": to, "at": fmtT(now), "id": r.ID}).Execute()
			if err != nil {
				return 0, err
			}
			moved++
		}
	}
	return moved, nil
}

// arrivedAt is when a run arrived at its current node: when it left the
// one before (its last step row), or when it entered.
func arrivedAt(tx core.App, r Run) string {
	var at sql.NullString
	_ = tx.DB().NewQuery("SELECT MAX(at) FROM " + StepsCollection + " WHERE run={:r} AND node != '_goal'").
		Bind(dbx.Params{"r": r.ID}).Row(&at)
	if at.Valid && at.String != "" {
		return at.String
	}
	return r.EnteredAt
}

// runNodeType is the type of the node a run is at, in its version.
func (m *Module) runNodeType(app core.App, r Run) string {
	if c, err := m.live.version(app, r.Journey, r.Version); err == nil {
		if n := c.Graph.Nodes[r.Node]; n != nil {
			return n.Type
		}
	}
	return ""
}

// endRunAt ends an active or waiting run for reason, with the step row
// the record conventions ask for (exit "", detail.ended). It does nothing
// to a run that has already ended.
func (m *Module) endRunAt(tx core.App, r Run, reason string) (bool, error) {
	c, err := m.live.version(tx, r.Journey, r.Version)
	if err != nil {
		c = &compiled{ID: r.Journey, Version: r.Version, Graph: &graph.Graph{}} // the step row's type stays ""
	}
	ev, err := endEarly(tx, c, r, reason, nil, m.opts.Now())
	if err != nil || ev == nil {
		return false, err
	}
	// journey.exited goes out like a goal's or an exit rule's: the timeline
	// and metrics see the run end (the caller kicks the relay after commit).
	return true, stageJourneyEvents(tx, []*events.Event{ev})
}

// endAllRuns ends every active run of a journey for reason, each with its
// step row (exit "", detail.ended), in a few statements however many runs
// there are: the transaction holds the database's write lock.
func (m *Module) endAllRuns(tx core.App, journey, reason string) (int, error) {
	// The type of each step runs are at, by version and node.
	var at []struct {
		Version int    `db:"version"`
		Node    string `db:"node"`
	}
	err := tx.DB().NewQuery("SELECT DISTINCT version, node FROM " + RunsCollection +
		" WHERE journey={:j} AND (status='active' OR status='waiting')").Bind(dbx.Params{"j": journey}).All(&at)
	if err != nil || len(at) == 0 {
		return 0, err
	}
	now := fmtT(m.opts.Now())
	params := dbx.Params{"j": journey, "reason": reason, "now": now}
	typ := "CASE"
	for i, a := range at {
		k := strconv.Itoa(i)
		typ += " WHEN r.version={:v" + k + "} AND r.node={:n" + k + "} THEN {:t" + k + "}"
		params["v"+k], params["n"+k] = a.Version, a.Node
		params["t"+k] = m.runNodeType(tx, Run{Journey: journey, Version: a.Version, Node: a.Node})
	}
	typ += " ELSE '' END"
	_, err = tx.DB().NewQuery("INSERT INTO " + StepsCollection + ` (id, run, journey, version, profile, node, type, exit, detail, at)
		SELECT substr(lower(hex(randomblob(8))), 1, 15), r.id, r.journey, r.version, r.profile, r.node, ` + typ + `, '',
		json_object('arrived_at', COALESCE((SELECT MAX(s.at) FROM ` + StepsCollection + ` s WHERE s.run = r.id AND s.node != '_goal'), r.entered_at),
			'ended', {:reason}), {:now}
		FROM ` + RunsCollection + ` r WHERE r.journey={:j} AND (r.status='active' OR r.status='waiting')`).Bind(params).Execute()
	if err != nil {
		return 0, err
	}
	status := RunExited
	if reason == "end" {
		status = RunCompleted
	}
	params["s"] = status
	res, err := tx.DB().NewQuery("UPDATE " + RunsCollection + ` SET status={:s}, exit_reason={:reason}, ended_at={:now}, due_at='',
		wait_event='', updated={:now} WHERE journey={:j} AND (status='active' OR status='waiting')`).Bind(params).Execute()
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// reloadLive refreshes the live set after a status change and wakes the
// engine (runs of a resumed journey are due again).
func (m *Module) reloadLive() {
	if err := m.live.load(m.app); err != nil {
		m.log.Error("journeys: reload live journeys", "error", err)
	}
	m.kick()
}

// handleStatus pauses (live → paused), resumes (paused → live) or
// archives (any but archived; every active run ends "archived").
func (m *Module) handleStatus(to string) func(e *core.RequestEvent) error {
	return func(e *core.RequestEvent) error {
		id := e.Request.PathValue("id")
		if _, err := findJourney(e.App, id); err != nil {
			return err
		}
		ended := 0
		err := e.App.RunInTransaction(func(tx core.App) error {
			r, err := tx.FindRecordById(Collection, id)
			if err != nil {
				return err
			}
			from := r.GetString("status")
			switch {
			case to == StatusPaused && from != StatusLive:
				return api.Error(http.StatusConflict, fmt.Sprintf("Only a live journey can be paused; this one is %s.", from))
			case to == StatusLive && from != StatusPaused:
				return api.Error(http.StatusConflict, fmt.Sprintf("Only a paused journey can be resumed; this one is %s.", from))
			case to == StatusArchived && from == StatusArchived:
				return api.Error(http.StatusConflict, "The journey is already archived.")
			}
			r.Set("status", to)
			if err := tx.Save(r); err != nil {
				return err
			}
			if to != StatusArchived {
				return nil
			}
			ended, err = m.endAllRuns(tx, id, "archived")
			return err
		})
		if err != nil {
			return saveError(err, "Could not change the journey's status.")
		}
		m.reloadLive()
		out := map[string]any{"status": to}
		if to == StatusArchived {
			out["ended"] = ended
		}
		return e.JSON(http.StatusOK, out)
	}
}

// VersionItem is a row of a journey's version history.
type VersionItem struct {
	Version     int    `db:"version" json:"version"`
	PublishedAt string `db:"created" json:"published_at"`
	PublishedBy string `db:"published_by" json:"published_by"`
	Note        string `db:"note" json:"note"`
}

func (m *Module) handleVersions(e *core.RequestEvent) error {
	id := e.Request.PathValue("id")
	if _, err := findJourney(e.App, id); err != nil {
		return err
	}
	items := []VersionItem{}
	err := e.App.DB().NewQuery("SELECT version, created, published_by, note FROM " + VersionsCollection +
		" WHERE journey={:j} ORDER BY version DESC").Bind(dbx.Params{"j": id}).All(&items)
	if err != nil {
		return api.Internal("Could not list the versions.", err)
	}
	return e.JSON(http.StatusOK, map[string]any{"items": items})
}

func (m *Module) handleVersion(e *core.RequestEvent) error {
	id := e.Request.PathValue("id")
	if _, err := findJourney(e.App, id); err != nil {
		return err
	}
	v, err := strconv.Atoi(e.Request.PathValue("v"))
	if err != nil || v < 1 {
		return api.Error(http.StatusNotFound, "No such version: versions are numbered from 1.")
	}
	var row struct {
		VersionItem
		Graph    string `db:"graph"`
		Settings string `db:"settings"`
	}
	err = e.App.DB().NewQuery("SELECT version, created, published_by, note, graph, settings FROM " + VersionsCollection +
		" WHERE journey={:j} AND version={:v}").Bind(dbx.Params{"j": id, "v": v}).One(&row)
	if errors.Is(err, sql.ErrNoRows) {
		return api.Error(http.StatusNotFound, "The journey has no such version.")
	}
	if err != nil {
		return api.Internal("Could not read the version.", err)
	}
	return e.JSON(http.StatusOK, map[string]any{"journey": id, "version": row.Version, "published_at": row.PublishedAt,
		"published_by": row.PublishedBy, "note": row.Note,
		"graph": json.RawMessage(row.Graph), "settings": json.RawMessage(row.Settings)})
}
