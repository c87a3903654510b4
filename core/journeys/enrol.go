package journeys

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/journeys/graph"
	"github.com/omni/omni/core/store"
)

// maxEnrolProfiles bounds a list of customers in one request; a segment
// has no bound.
const maxEnrolProfiles = 10000

// enrolChunk is how many customers one enrolment transaction takes: short
// enough that ingest never waits long for the single writer.
const enrolChunk = 5000

// Reason a listed customer is skipped.
const skipNoCustomer = "no such customer"

func (m *Module) enrolRoutes(g routeGroup) {
	// Staff: an agent may enrol the one customer they are talking to (the
	// inbox's "start a journey"); a list or a segment is the owner's call.
	g.POST("/{id}/enrol", m.handleEnrol).Bind(api.RequireStaff())
}

// EnrolResult is the answer of an enrolment.
type EnrolResult struct {
	Enrolled int            `json:"enrolled"`
	Skipped  map[string]int `json:"skipped"`
}

// handleEnrol enrols listed customers or a segment's members into a live
// journey: POST /api/v1/journeys/{id}/enrol {profiles: [ids]} | {segment: id}.
// Owners enrol any list or segment; agents one customer.
func (m *Module) handleEnrol(e *core.RequestEvent) error {
	id := e.Request.PathValue("id")
	var status string
	err := m.app.DB().NewQuery("SELECT status FROM " + Collection + " WHERE id = {:id}").Bind(dbx.Params{"id": id}).Row(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return api.Error(http.StatusNotFound, "no such journey")
	}
	if err != nil {
		return api.Internal("could not read the journey", err)
	}
	raw, err := io.ReadAll(http.MaxBytesReader(e.Response, e.Request.Body, 1<<20))
	if err != nil {
		return api.BadRequest("profiles", "the body is too large: list at most 10000 customers, or enrol a segment")
	}
	var body struct {
		Profiles json.RawMessage `json:"profiles"`
		Segment  json.RawMessage `json:"segment"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return api.BadRequest("profiles", "the body must be {\"profiles\": [customer ids]} or {\"segment\": \"<segment id>\"}")
	}
	hasProfiles, hasSegment := len(body.Profiles) > 0 && string(body.Profiles) != "null", len(body.Segment) > 0 && string(body.Segment) != "null"
	if hasProfiles == hasSegment {
		return api.BadRequest("profiles", "give either profiles (a list of customer ids) or segment (a segment id)")
	}
	if !api.IsOwner(e) && (hasSegment || !singleProfile(body.Profiles)) {
		return api.Error(http.StatusForbidden, "only the shop owner can enrol a segment or several customers; staff may enrol one customer at a time")
	}
	var profiles []string
	rc := RunContext{Source: "manual"}
	if hasProfiles {
		if err := json.Unmarshal(body.Profiles, &profiles); err != nil {
			return api.BadRequest("profiles", "must be a list of customer ids")
		}
		switch {
		case len(profiles) == 0:
			return api.BadRequest("profiles", "is empty: list at least one customer id")
		case len(profiles) > maxEnrolProfiles:
			return api.BadRequest("profiles", fmt.Sprintf("lists %d customers; at most %d per request, or enrol a segment", len(profiles), maxEnrolProfiles))
		}
		for i, p := range profiles {
			if p == "" || len(p) > 50 {
				return api.BadRequest("profiles", fmt.Sprintf("item %d is not a customer id", i))
			}
		}
	} else {
		var seg string
		if err := json.Unmarshal(body.Segment, &seg); err != nil || seg == "" {
			return api.BadRequest("segment", "must be a segment id")
		}
		var n int
		if err := m.app.DB().NewQuery("SELECT COUNT(*) FROM segments WHERE id = {:id}").Bind(dbx.Params{"id": seg}).Row(&n); err != nil {
			return api.Internal("could not read the segment", err)
		}
		if n == 0 {
			return api.BadRequest("segment", "no such segment")
		}
		rc = RunContext{Source: "segment", Segment: seg}
	}
	c, ok := m.live.get(id)
	if status != StatusLive || !ok || c.Status != StatusLive {
		return api.Error(http.StatusConflict, fmt.Sprintf("the journey is %s: only a live journey takes enrolments", status))
	}
	if hasSegment {
		profiles, err = segmentMembers(m.app, rc.Segment)
		if err != nil {
			return api.Internal("could not read the segment's members", err)
		}
	}
	res, err := m.enrolMany(c, profiles, rc, m.opts.Now())
	if err != nil {
		return api.Internal("enrolment failed part way; run it again to enrol the rest", err)
	}
	return e.JSON(http.StatusOK, res)
}

// singleProfile: the body lists exactly one customer.
func singleProfile(raw json.RawMessage) bool {
	var ids []json.RawMessage
	return json.Unmarshal(raw, &ids) == nil && len(ids) == 1
}

// segmentMembers lists the customers in a segment now.
func segmentMembers(app core.App, segment string) ([]string, error) {
	var ids []string
	err := app.DB().NewQuery("SELECT m.profile FROM segment_members m JOIN profiles p ON p.id = m.profile " +
		"WHERE m.segment = {:s} AND p.merged_into = '' ORDER BY m.profile").Bind(dbx.Params{"s": segment}).Column(&ids)
	return ids, err
}

// enrolMany enrols customers in chunked transactions with prepared
// statements, by the same rules as enrol (one active run, re-entry), and
// stages journey.entered for each run started. Merged customers are
// enrolled as the customer they were merged into; unknown ids are skipped.
func (m *Module) enrolMany(c *compiled, profiles []string, rc RunContext, at time.Time) (EnrolResult, error) {
	res := EnrolResult{Skipped: map[string]int{}}
	ctx, err := json.Marshal(rc)
	if err != nil {
		return res, err
	}
	seen := map[string]bool{}
	for len(profiles) > 0 {
		n := min(len(profiles), enrolChunk)
		chunk := profiles[:n]
		profiles = profiles[n:]
		err := m.app.RunInTransaction(func(tx core.App) error {
			ids, missing, err := canonicalProfiles(tx, chunk)
			if err != nil {
				return err
			}
			res.Skipped[skipNoCustomer] += missing
			var fresh []string
			for _, p := range ids {
				if seen[p] {
					continue // listed twice, or two merged ids of one customer
				}
				seen[p] = true
				fresh = append(fresh, p)
			}
			started, skipped, err := enrolChunkTx(tx, c, fresh, string(ctx), at)
			if err != nil {
				return err
			}
			for k, v := range skipped {
				res.Skipped[k] += v
			}
			staged := make([]*events.Event, len(started))
			for i, s := range started {
				staged[i] = journeyEvent("journey.entered", c, s[0], s[1], map[string]any{"source": rc.Source}, at)
			}
			if err := stageJourneyEvents(tx, staged); err != nil {
				return err
			}
			res.Enrolled += len(started)
			return nil
		})
		if err != nil {
			return res, err
		}
		m.kick()
		if m.o != nil && m.o.Relay != nil {
			m.o.Relay.Kick()
		}
	}
	return res, nil
}

// canonicalProfiles maps ids to the customers they are now (following
// merges) and counts the ids that are no customer.
func canonicalProfiles(tx core.App, ids []string) ([]string, int, error) {
	out := make([]string, 0, len(ids))
	missing := 0
	pending := ids
	for hop := 0; len(pending) > 0; hop++ {
		args := make([]any, len(pending))
		for i, p := range pending {
			args[i] = p
		}
		var rows []struct {
			ID     string `db:"id"`
			Merged string `db:"merged_into"`
		}
		if err := tx.DB().Select("id", "merged_into").From("profiles").Where(dbx.In("id", args...)).All(&rows); err != nil {
			return nil, 0, err
		}
		into := make(map[string]string, len(rows))
		for _, r := range rows {
			into[r.ID] = r.Merged
		}
		var next []string
		for _, p := range pending {
			to, ok := into[p]
			switch {
			case !ok:
				missing++
			case to == "":
				out = append(out, p)
			case hop < 5:
				next = append(next, to)
			default:
				missing++ // a merge chain that does not end: nobody to enrol
			}
		}
		pending = next
	}
	return out, missing, nil
}

// enrolChunkTx enrols profiles (canonical, distinct) into c: one query for
// their runs of this journey, one prepared insert per run started. It
// returns the runs started as (run id, profile) and the skips by reason.
func enrolChunkTx(tx core.App, c *compiled, profiles []string, ctx string, at time.Time) ([][2]string, map[string]int, error) {
	skipped := map[string]int{}
	if len(profiles) == 0 {
		return nil, skipped, nil
	}
	args := make([]any, len(profiles))
	for i, p := range profiles {
		args[i] = p
	}
	var rows []struct {
		Profile   string `db:"profile"`
		Status    string `db:"status"`
		EnteredAt string `db:"entered_at"`
	}
	if err := tx.DB().Select("profile", "status", "entered_at").From(RunsCollection).
		Where(dbx.HashExp{"journey": c.ID}).AndWhere(dbx.In("profile", args...)).All(&rows); err != nil {
		return nil, nil, err
	}
	last := make(map[string]*lastRun, len(rows))
	for _, r := range rows {
		l := last[r.Profile]
		if l == nil {
			l = &lastRun{}
			last[r.Profile] = l
		}
		l.Active = l.Active || r.Status == RunActive || r.Status == RunWaiting
		if r.EnteredAt > l.EnteredAt {
			l.EnteredAt = r.EnteredAt
		}
	}
	ins, err := newRunInserter(tx)
	if err != nil {
		return nil, nil, err
	}
	defer ins.close()
	var started [][2]string
	for _, p := range profiles {
		if err := refuseEnrolment(c, last[p], at); err != nil {
			skipped[err.Error()]++
			continue
		}
		id, err := ins.insert(c, p, ctx, "", at)
		if err != nil {
			return nil, nil, err
		}
		started = append(started, [2]string{id, p})
	}
	return started, skipped, nil
}

// lastRun is what the re-entry rules look at: whether the customer has an
// active run of the journey, and when they last entered it ("" never).
type lastRun struct {
	Active    bool
	EnteredAt string
}

// refuseEnrolment applies the rules every enrolment follows: never two
// active runs of one journey, then the journey's re-entry setting.
func refuseEnrolment(j *compiled, last *lastRun, at time.Time) error {
	switch {
	case last == nil || last.EnteredAt == "" && !last.Active:
		return nil
	case last.Active:
		return ErrActiveRun
	case j.Settings.Reentry == "once":
		return ErrReentry
	case j.Settings.Reentry == "cooldown":
		cd, _ := graph.ParseDuration(j.Settings.Cooldown)
		if at.Before(parseT(last.EnteredAt).Add(cd)) {
			return ErrReentry
		}
	}
	return nil
}

// runInserter starts runs with one prepared statement, for the paths that
// enrol many customers in one transaction (a segment, a batch of events).
// Callers apply refuseEnrolment first, as enrol does.
type runInserter struct{ stmt *sql.Stmt }

func newRunInserter(tx core.App) (*runInserter, error) {
	stmt, err := store.Executor(tx).Prepare("INSERT INTO " + RunsCollection + ` (id, journey, version, profile, node, status, exit_reason,
		context, due_at, wait_event, attempt, arm, holdout, trigger_event, entered_at, ended_at, goal_until, goal_at, goal_event, goal_value,
		goal_currency, created, updated) VALUES (?, ?, ?, ?, ?, 'active', '', ?, ?, '', 0, '', 0, ?, ?, '', ?, '', '', 0, '', ?, ?)`)
	if err != nil {
		return nil, err
	}
	return &runInserter{stmt: stmt}, nil
}

// insert starts a run of c for profile at its first step, due at once.
func (ri *runInserter) insert(c *compiled, profile, ctx, triggerEvent string, at time.Time) (string, error) {
	now := fmtT(at)
	goalUntil := ""
	if c.GoalWithin > 0 {
		goalUntil = fmtT(at.Add(c.GoalWithin))
	}
	id := store.NewRecordID()
	_, err := ri.stmt.Exec(id, c.ID, c.Version, profile, c.Graph.Start, ctx, now, triggerEvent, now, goalUntil, now, now)
	return id, err
}

func (ri *runInserter) close() { _ = ri.stmt.Close() }
