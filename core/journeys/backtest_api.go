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
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/journeys/backtest"
	"github.com/omni/omni/core/journeys/graph"
)

// Backtest windows: 90 days unless told, at most 366.
const (
	defaultBacktestWindow = 90 * graph.Day
	maxBacktestWindow     = 366 * graph.Day
)

// backtestSlot lets one backtest run at a time: a replay keeps a core
// busy for up to a minute, and ingest must keep flowing beside it.
var backtestSlot = make(chan struct{}, 1)

// backtestRoutes: POST /api/v1/journeys/{id}/backtest (owners).
func (m *Module) backtestRoutes(g routeGroup) {
	g.POST("/{id}/backtest", m.handleBacktest).Bind(api.RequireOwner())
}

// backtestRun is a checked request, ready to replay.
type backtestRun struct {
	graph    *graph.Graph
	settings *graph.Settings
	from, to time.Time
}

// handleBacktest replays [from, to) of the stored events through the
// journey's draft (or a published version) and streams NDJSON: progress
// lines {"progress", "events"}, then {"result": …} (or {"error": …} if the
// replay fails once the answer has started).
func (m *Module) handleBacktest(e *core.RequestEvent) error {
	req, apiErr := m.readBacktest(e)
	if apiErr != nil {
		return apiErr
	}
	select {
	case backtestSlot <- struct{}{}:
		defer func() { <-backtestSlot }()
	default:
		return api.Error(http.StatusConflict, "Another backtest is running; try again when it has finished.")
	}
	rules, err := gateRules(m.app, m.o.Config)
	if err != nil {
		return api.Internal("Could not read the messaging settings.", err)
	}
	var entries []backtest.Entry
	if dt := req.graph.Trigger.Date; dt != nil {
		if entries, err = dateEntries(m.app, dt, rules.ShopTZ, req.from, req.to); err != nil {
			return api.Internal("Could not read the customers' dates.", err)
		}
	}
	lookups := newStoreLookups(m.app, req.from, rules.ShopTZ)
	defer lookups.close()
	if err := lookups.preload(triggerType(req.graph), req.from, req.to); err != nil {
		return api.Internal("Could not read the customers.", err)
	}

	e.Response.Header().Set("Content-Type", "application/x-ndjson")
	e.Response.Header().Set("Cache-Control", "no-store")
	e.Response.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(e.Response)
	write := func(v any) {
		_ = enc.Encode(v)
		_ = e.Flush()
	}
	write(backtest.Progress{})
	res, err := backtest.Run(e.Request.Context(), backtest.Input{
		Graph: req.graph, Settings: req.settings, From: req.from, To: req.to,
		Events:   backtestEvents(m.app, backtest.Types(req.graph), req.from, req.to),
		Entries:  entries,
		Lookups:  lookups,
		Rules:    rules,
		Progress: func(p backtest.Progress) { write(p) },
	})
	if err != nil {
		if e.Request.Context().Err() == nil {
			m.log.Error("backtest failed", "journey", e.Request.PathValue("id"), "error", err)
			write(map[string]string{"error": "The backtest could not finish: " + err.Error()})
		}
		return nil
	}
	write(map[string]any{"result": res})
	return nil
}

// readBacktest checks the request and loads the graph it is about.
func (m *Module) readBacktest(e *core.RequestEvent) (*backtestRun, *router.ApiError) {
	var body struct {
		From    string          `json:"from"`
		To      string          `json:"to"`
		Version json.RawMessage `json:"version"`
	}
	raw, err := io.ReadAll(io.LimitReader(e.Request.Body, 1<<16))
	if err != nil {
		return nil, api.BadRequest("body", "could not be read")
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			return nil, api.BadRequest("body", `must be JSON like {"from": "2026-09-01", "to": "2026-12-01", "version": "draft"}`)
		}
	}
	now := m.opts.Now().UTC()
	to := now
	if body.To != "" {
		if to, err = parseWhen(body.To); err != nil {
			return nil, api.BadRequest("to", err.Error())
		}
	}
	// History ends now: a window reaching into the future stops today.
	to = minTime(to, now)
	from := to.Add(-defaultBacktestWindow)
	if body.From != "" {
		if from, err = parseWhen(body.From); err != nil {
			return nil, api.BadRequest("from", err.Error())
		}
	}
	switch {
	case !from.Before(to):
		return nil, api.BadRequest("from", "must be before to (and before now)")
	case to.Sub(from) > maxBacktestWindow:
		return nil, api.BadRequest("from", "the window is at most 366 days: move from later or to earlier")
	}

	id := e.Request.PathValue("id")
	var j struct {
		Graph    string `db:"graph"`
		Settings string `db:"settings"`
	}
	err = m.app.DB().NewQuery("SELECT graph, settings FROM " + Collection + " WHERE id={:id}").Bind(dbx.Params{"id": id}).One(&j)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, api.Error(http.StatusNotFound, "No journey with this id.")
	}
	if err != nil {
		return nil, api.Internal("Could not load the journey.", err)
	}
	rawGraph, rawSettings := j.Graph, j.Settings
	version := strings.Trim(strings.TrimSpace(string(body.Version)), `"`)
	if version != "" && version != "draft" && version != "null" {
		v, err := strconv.Atoi(version)
		if err != nil || v < 1 {
			return nil, api.BadRequest("version", `must be "draft" or the number of a published version`)
		}
		err = m.app.DB().NewQuery("SELECT graph, settings FROM " + VersionsCollection + " WHERE journey={:j} AND version={:v}").
			Bind(dbx.Params{"j": id, "v": v}).One(&j)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, api.BadRequest("version", fmt.Sprintf("this journey has no version %d", v))
		}
		if err != nil {
			return nil, api.Internal("Could not load the version.", err)
		}
		rawGraph, rawSettings = j.Graph, j.Settings
	}
	if s := strings.TrimSpace(rawGraph); s == "" || s == "null" || s == "{}" {
		return nil, api.BadRequest("graph", "the journey has no steps yet: build it, then backtest it")
	}
	g, err := graph.Parse([]byte(rawGraph))
	if err != nil {
		return nil, api.BadRequest("graph", err.Error())
	}
	settings, ps := graph.ParseSettings([]byte(rawSettings))
	if ps != nil {
		return nil, api.BadRequest(ps[0].Field, ps[0].Message)
	}
	if g.Trigger.Manual {
		return nil, api.BadRequest("trigger", backtest.ErrManual.Error())
	}
	if ps := g.Validate(); ps != nil {
		return nil, graphProblems(ps)
	}
	if ps := m.backtestReferences(g, from); ps != nil {
		return nil, graphProblems(ps)
	}
	return &backtestRun{graph: g, settings: settings, from: from, to: to}, nil
}

// backtestReferences checks what Validate cannot: that templates and
// segments exist and branch rules compile.
func (m *Module) backtestReferences(g *graph.Graph, at time.Time) graph.Problems {
	var ps graph.Problems
	l := newStoreLookups(m.app, at, time.UTC)
	defer l.close()
	segmentExists := func(id string) bool {
		var n int
		_ = m.app.DB().NewQuery("SELECT COUNT(*) FROM segments WHERE id={:id}").Bind(dbx.Params{"id": id}).Row(&n)
		return n > 0
	}
	if s := g.Trigger.Segment; s != "" && !segmentExists(s) {
		ps = append(ps, graph.Problem{Field: "trigger.segment", Message: fmt.Sprintf("no segment with id %q", s)})
	}
	if g.ExitOn != nil && g.ExitOn.Segment != "" && !segmentExists(g.ExitOn.Segment) {
		ps = append(ps, graph.Problem{Field: "exit_when.segment", Message: fmt.Sprintf("no segment with id %q", g.ExitOn.Segment)})
	}
	for _, id := range sortedNodeIDs(g) {
		n := g.Nodes[id]
		switch {
		case n.Type == graph.Send && n.Template != "":
			if _, ok := l.Template(n.Template); !ok {
				ps = append(ps, graph.Problem{Node: id, Field: "template", Message: fmt.Sprintf("no template with id or name %q", n.Template)})
			}
		case n.Type == graph.Branch && len(n.Rule) > 0:
			if _, _, err := l.compile(n.Rule, at); err != nil {
				ps = append(ps, graph.Problem{Node: id, Field: "rule", Message: err.Error()})
			}
		}
	}
	return ps
}

// graphProblems is the 400 publishing answers too: data.graph names the
// first problem, data.problems lists them all.
func graphProblems(ps graph.Problems) *router.ApiError {
	err := api.BadRequest("graph", ps[0].Error())
	err.Data["problems"] = ps
	return err
}

func sortedNodeIDs(g *graph.Graph) []string {
	ids := make([]string, 0, len(g.Nodes))
	for id := range g.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// parseWhen reads a time (RFC 3339) or a day (UTC midnight).
func parseWhen(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date like 2026-09-01 or a time like 2026-09-01T00:00:00Z", s)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
