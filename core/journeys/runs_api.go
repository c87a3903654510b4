package journeys

import (
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/store"
)

// Runs through the API: a journey's runs, one customer's runs across
// journeys (their 360° page), one run with its history, and ending a run
// by hand (owners). GET /runs (one customer's runs) is registered with
// the literal paths in journeyRoutes.
func (m *Module) runRoutes(g routeGroup) {
	g.GET("/{id}/runs", m.handleRuns).Bind(api.RequireStaff())
	g.GET("/{id}/runs/{run}", m.handleRun).Bind(api.RequireStaff())
	g.POST("/{id}/runs/{run}/end", m.handleEndRun).Bind(api.RequireOwner())
}

const (
	defaultRunLimit = 100
	maxRunLimit     = 500
)

// RunView is a run as the API shows it.
type RunView struct {
	Run
	Context     json.RawMessage `json:"context"`
	JourneyName string          `json:"journey_name"`
	NodeName    string          `json:"node_name"`
	NodeType    string          `json:"node_type"`
	State       string          `json:"state"`
}

// StepView is one row of a run's history.
type StepView struct {
	ID       string          `db:"id" json:"id"`
	Version  int             `db:"version" json:"version"`
	Node     string          `db:"node" json:"node"`
	NodeName string          `db:"-" json:"node_name"`
	Type     string          `db:"type" json:"type"`
	Exit     string          `db:"exit" json:"exit"`
	Detail   json.RawMessage `db:"-" json:"detail"`
	RawJSON  string          `db:"detail" json:"-"`
	At       string          `db:"at" json:"at"`
}

// runView describes r; names caches journey names by id.
func (m *Module) runView(app core.App, r Run, names map[string]string) RunView {
	v := RunView{Run: r, Context: json.RawMessage("{}"), NodeName: r.Node, State: RunState(r)}
	if json.Valid([]byte(r.Context)) && r.Context != "" {
		v.Context = json.RawMessage(r.Context)
	}
	if c, err := m.live.version(app, r.Journey, r.Version); err == nil {
		n := c.Graph.Nodes[r.Node]
		v.NodeName = NodeName(r.Node, n)
		if n != nil {
			v.NodeType = n.Type
		}
	}
	name, ok := names[r.Journey]
	if !ok {
		_ = app.DB().NewQuery("SELECT name FROM " + Collection + " WHERE id={:id}").Bind(dbx.Params{"id": r.Journey}).Row(&name)
		names[r.Journey] = name
	}
	v.JourneyName = name
	return v
}

// runLimit reads ?limit=.
func runLimit(e *core.RequestEvent) (int, error) {
	s := e.Request.URL.Query().Get("limit")
	if s == "" {
		return defaultRunLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxRunLimit {
		return 0, api.BadRequest("limit", "must be a whole number from 1 to 500")
	}
	return n, nil
}

var runStatuses = map[string]bool{RunActive: true, RunWaiting: true, RunCompleted: true, RunExited: true}

// listRuns lists runs matching every column = value of where, newest
// first.
func (m *Module) listRuns(e *core.RequestEvent, where map[string]string) error {
	limit, err := runLimit(e)
	if err != nil {
		return err
	}
	params := dbx.Params{"limit": limit}
	conds := []string{}
	for _, col := range []string{"journey", "profile", "status"} {
		if v, ok := where[col]; ok {
			conds = append(conds, col+"={:"+col+"}")
			params[col] = v
		}
	}
	var runs []Run
	err = e.App.DB().NewQuery("SELECT " + RunColumns + " FROM " + RunsCollection + " WHERE " + strings.Join(conds, " AND ") +
		" ORDER BY entered_at DESC, id DESC LIMIT {:limit}").Bind(params).All(&runs)
	if err != nil {
		return api.Internal("Could not list the runs.", err)
	}
	names := map[string]string{}
	items := make([]RunView, 0, len(runs))
	for _, r := range runs {
		items = append(items, m.runView(e.App, r, names))
	}
	return e.JSON(http.StatusOK, map[string]any{"items": items})
}

// runFilters reads ?profile= and ?status= into where.
func runFilters(e *core.RequestEvent, where map[string]string) (map[string]string, error) {
	q := e.Request.URL.Query()
	if p := q.Get("profile"); p != "" {
		where["profile"] = survivingProfile(e.App, p)
	}
	switch s := q.Get("status"); {
	case s == "":
	case runStatuses[s]:
		where["status"] = s
	default:
		return nil, api.BadRequest("status", "must be active, waiting, completed or exited")
	}
	return where, nil
}

// survivingProfile follows merges from a profile id to the profile that holds its
// runs now (merges move runs to the survivor); an unknown id stays as it is.
func survivingProfile(app core.App, id string) string {
	if p, err := store.SurvivingProfile(app.DB(), id); err == nil {
		return p
	}
	return id
}

func (m *Module) handleRuns(e *core.RequestEvent) error {
	id := e.Request.PathValue("id")
	if _, err := findJourney(e.App, id); err != nil {
		return err
	}
	where, err := runFilters(e, map[string]string{"journey": id})
	if err != nil {
		return err
	}
	return m.listRuns(e, where)
}

// handleCustomerRuns lists one customer's runs across journeys, newest
// first.
func (m *Module) handleCustomerRuns(e *core.RequestEvent) error {
	if e.Request.URL.Query().Get("profile") == "" {
		return api.BadRequest("profile", "is required: whose runs to list")
	}
	where, err := runFilters(e, map[string]string{})
	if err != nil {
		return err
	}
	return m.listRuns(e, where)
}

// findRun loads a run of journey, or a 404.
func findRun(app core.App, journey, id string) (Run, error) {
	var r Run
	err := app.DB().NewQuery("SELECT " + RunColumns + " FROM " + RunsCollection + " WHERE id={:id} AND journey={:j}").
		Bind(dbx.Params{"id": id, "j": journey}).One(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return r, api.Error(http.StatusNotFound, "The journey has no run with this id.")
	}
	if err != nil {
		return r, api.Internal("Could not read the run.", err)
	}
	return r, nil
}

func (m *Module) handleRun(e *core.RequestEvent) error {
	id := e.Request.PathValue("id")
	if _, err := findJourney(e.App, id); err != nil {
		return err
	}
	r, err := findRun(e.App, id, e.Request.PathValue("run"))
	if err != nil {
		return err
	}
	steps := []StepView{}
	err = e.App.DB().NewQuery("SELECT id, version, node, type, exit, detail, at FROM " + StepsCollection +
		" WHERE run={:r} ORDER BY at, rowid").Bind(dbx.Params{"r": r.ID}).All(&steps)
	if err != nil {
		return api.Internal("Could not read the run's steps.", err)
	}
	for i := range steps {
		s := &steps[i]
		s.Detail = json.RawMessage("{}")
		if json.Valid([]byte(s.RawJSON)) && s.RawJSON != "" {
			s.Detail = json.RawMessage(s.RawJSON)
		}
		s.NodeName = s.Node
		if c, err := m.live.version(e.App, id, s.Version); err == nil {
			s.NodeName = NodeName(s.Node, c.Graph.Nodes[s.Node])
		}
	}
	return e.JSON(http.StatusOK, struct {
		RunView
		Steps []StepView `json:"steps"`
	}{m.runView(e.App, r, map[string]string{}), steps})
}

func (m *Module) handleEndRun(e *core.RequestEvent) error {
	id := e.Request.PathValue("id")
	if _, err := findJourney(e.App, id); err != nil {
		return err
	}
	var out Run
	err := e.App.RunInTransaction(func(tx core.App) error {
		r, err := findRun(tx, id, e.Request.PathValue("run"))
		if err != nil {
			return err
		}
		ok, err := m.endRunAt(tx, r, "manual")
		if err != nil {
			return err
		}
		if !ok {
			return api.Error(http.StatusConflict, "The run has already ended ("+RunState(r)+").")
		}
		out, err = findRun(tx, id, r.ID)
		return err
	})
	if err != nil {
		return saveError(err, "Could not end the run.")
	}
	if m.o != nil && m.o.Relay != nil {
		m.o.Relay.Kick() // journey.exited, staged with the end
	}
	return e.JSON(http.StatusOK, m.runView(e.App, out, map[string]string{}))
}
