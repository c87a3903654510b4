package inbox

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/store"
)

// Agents, presence and automatic assignment. An agent is online while
// their inbox page sends a heartbeat (POST /api/v1/inbox/presence every
// 30 s) and they have not set themselves away. When a conversation needs
// a person (opened without the bot, reopened, handed off by the bot or a
// journey) and the owner chose round_robin or least_open, it goes to an
// online agent under capacity; when nobody is free it stays unassigned
// and assignWaiting retries every tick.

// OnlineWindow is how long after their last heartbeat an agent counts as
// online (three missed 30 s heartbeats).
const OnlineWindow = 90 * time.Second

// Assignment modes.
const (
	AssignManual     = "manual"
	AssignRoundRobin = "round_robin" // the free agent assigned longest ago
	AssignLeastOpen  = "least_open"  // the free agent with the fewest open conversations
)

// Assignment is the "assignment" setting.
type Assignment struct {
	Mode string `json:"mode"`
	// Capacity is the default most open conversations per agent (0 = no
	// limit); an agent's own capacity (inbox_agents) overrides it.
	Capacity int `json:"capacity"`
}

func defaultAssignment() any { return Assignment{Mode: AssignManual} }

func checkAssignment(raw json.RawMessage) (any, error) {
	var a Assignment
	if err := strictJSON(raw, &a); err != nil {
		return nil, fieldErr("assignment", err.Error())
	}
	switch a.Mode {
	case "":
		a.Mode = AssignManual
	case AssignManual, AssignRoundRobin, AssignLeastOpen:
	default:
		return nil, fieldErr("assignment.mode", "must be manual, round_robin or least_open")
	}
	if a.Capacity < 0 {
		return nil, fieldErr("assignment.capacity", "must be 0 (no limit) or more")
	}
	return a, nil
}

func (m *Module) assignment() Assignment {
	a := Assignment{Mode: AssignManual}
	m.setting("assignment", &a)
	return a
}

// Agent is a staff member as the inbox sees them.
type Agent struct {
	ID    string `db:"id" json:"id"`
	Name  string `db:"name" json:"name"`
	Email string `db:"email" json:"email"`
	Role  string `db:"role" json:"role"`
	// Capacity is the agent's own limit (0 = the default); Limit is the
	// one in force (0 = none).
	Capacity       int    `db:"capacity" json:"capacity"`
	Limit          int    `db:"-" json:"limit"`
	Away           bool   `db:"away" json:"away"`
	Online         bool   `db:"-" json:"online"`
	Open           int    `db:"open" json:"open"`
	SeenAt         string `db:"seen_at" json:"seen_at"`
	LastAssignedAt string `db:"last_assigned_at" json:"last_assigned_at"`
}

// agents lists every staff member with presence, capacity and how many
// open conversations they hold (one staff id: just that one).
func (m *Module) agents(db dbx.Builder, now time.Time, only string) ([]Agent, error) {
	q := `SELECT s.id, COALESCE(s.name, '') AS name, s.email, s.role, COALESCE(a.capacity, 0) AS capacity, COALESCE(a.away, 0) AS away,
		COALESCE(a.seen_at, '') AS seen_at, COALESCE(a.last_assigned_at, '') AS last_assigned_at,
		(SELECT COUNT(*) FROM ` + ConversationsCollection + ` c WHERE c.assignee = s.id AND c.status = 'open') AS open
		FROM staff s LEFT JOIN ` + AgentsCollection + ` a ON a.staff = s.id`
	params := dbx.Params{}
	if only != "" {
		q += ` WHERE s.id = {:id}`
		params["id"] = only
	}
	var out []Agent
	if err := db.NewQuery(q + ` ORDER BY s.name, s.email`).Bind(params).All(&out); err != nil {
		return nil, err
	}
	def := m.assignment().Capacity
	since := store.FormatTime(now.Add(-OnlineWindow))
	for i := range out {
		a := &out[i]
		a.Online = !a.Away && a.SeenAt != "" && a.SeenAt >= since
		a.Limit = a.Capacity
		if a.Limit == 0 {
			a.Limit = def
		}
	}
	if out == nil {
		out = []Agent{}
	}
	return out, nil
}

// upsertAgent writes an inbox_agents row's fields for a staff member.
func upsertAgent(db dbx.Builder, staffID string, set dbx.Params, now time.Time) error {
	res, err := db.Update(AgentsCollection, withUpdated(set, now), dbx.HashExp{"staff": staffID}).Execute()
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	row := dbx.Params{"id": store.NewRecordID(), "staff": staffID, "capacity": 0, "away": false, "seen_at": "",
		"last_assigned_at": "", "created": store.FormatTime(now), "updated": store.FormatTime(now)}
	for k, v := range set {
		row[k] = v
	}
	_, err = db.Insert(AgentsCollection, row).Execute()
	return err
}

func withUpdated(p dbx.Params, now time.Time) dbx.Params {
	out := dbx.Params{"updated": store.FormatTime(now)}
	for k, v := range p {
		out[k] = v
	}
	return out
}

// agentRoutes: presence (any staff member, for themself), the agents list
// for the assign menu and @mentions, and capacity (owners) or away (the
// agent themself or an owner).
func (m *Module) agentRoutes(g *router.RouterGroup[*core.RequestEvent]) {
	g.POST("/presence", func(e *core.RequestEvent) error {
		var in struct {
			Away *bool `json:"away"`
		}
		raw, err := io.ReadAll(io.LimitReader(e.Request.Body, 1<<12))
		if err != nil {
			return api.BadRequest("away", "cannot read the body")
		}
		if len(bytes.TrimSpace(raw)) > 0 { // the heartbeat itself has no body
			if err := json.Unmarshal(raw, &in); err != nil {
				return api.BadRequest("away", "the body must be {away?: true or false}")
			}
		}
		now := m.opts.Now()
		set := dbx.Params{"seen_at": store.FormatTime(now)}
		if in.Away != nil {
			set["away"] = *in.Away
		}
		if err := upsertAgent(m.app.DB(), e.Auth.Id, set, now); err != nil {
			return api.Internal("could not record presence", err)
		}
		return m.answerAgent(e, e.Auth.Id, now)
	}).Bind(api.RequireStaff())

	g.GET("/agents", func(e *core.RequestEvent) error {
		list, err := m.agents(m.app.DB(), m.opts.Now(), "")
		if err != nil {
			return api.Internal("could not list agents", err)
		}
		return e.JSON(200, map[string]any{"items": list})
	}).Bind(api.RequireStaff())

	g.PATCH("/agents/{staff}", func(e *core.RequestEvent) error {
		id := e.Request.PathValue("staff")
		var in struct {
			Capacity *int  `json:"capacity"`
			Away     *bool `json:"away"`
		}
		if err := e.BindBody(&in); err != nil {
			return api.BadRequest("capacity", "the body must be {capacity?: number, away?: bool}")
		}
		if _, err := m.app.FindRecordById("staff", id); err != nil {
			return api.Error(404, "There is no staff member "+id+".")
		}
		owner := api.IsOwner(e)
		set := dbx.Params{}
		if in.Capacity != nil {
			if !owner {
				return router.NewForbiddenError("Only owners can change an agent's capacity.", nil)
			}
			if *in.Capacity < 0 {
				return api.BadRequest("capacity", "must be 0 (the default) or more")
			}
			set["capacity"] = *in.Capacity
		}
		if in.Away != nil {
			if !owner && e.Auth.Id != id {
				return router.NewForbiddenError("Only owners can set another agent away.", nil)
			}
			set["away"] = *in.Away
		}
		if len(set) == 0 {
			return api.BadRequest("capacity", "give capacity or away")
		}
		now := m.opts.Now()
		if err := upsertAgent(m.app.DB(), id, set, now); err != nil {
			return api.Internal("could not save the agent", err)
		}
		return m.answerAgent(e, id, now)
	}).Bind(api.RequireStaff())
}

func (m *Module) answerAgent(e *core.RequestEvent, id string, now time.Time) error {
	list, err := m.agents(m.app.DB(), now, id)
	if err != nil {
		return api.Internal("could not read the agent", err)
	}
	if len(list) == 0 {
		// A superuser has presence but is not an agent.
		return e.JSON(200, Agent{ID: id})
	}
	return e.JSON(200, list[0])
}

// autoAssign gives c to a free online agent when the owner chose automatic
// assignment and c has no assignee; false when nobody could take it.
func (m *Module) autoAssign(tx core.App, c *Conversation, now time.Time) (bool, error) {
	if c.Assignee != "" || c.Status != StatusOpen {
		return false, nil
	}
	a := m.assignment()
	if a.Mode != AssignRoundRobin && a.Mode != AssignLeastOpen {
		return false, nil
	}
	agent, err := m.freeAgent(tx.DB(), a, now)
	if err != nil || agent == "" {
		return false, err
	}
	return true, m.assignTo(tx, c, agent, now)
}

// freeAgent picks the online agent under capacity the mode prefers, or "".
func (m *Module) freeAgent(db dbx.Builder, a Assignment, now time.Time) (string, error) {
	order := "last ASC, open ASC, id ASC"
	if a.Mode == AssignLeastOpen {
		order = "open ASC, last ASC, id ASC"
	}
	var id string
	err := db.NewQuery(`SELECT id FROM (
			SELECT s.id AS id, COALESCE(NULLIF(a.last_assigned_at, ''), '0') AS last,
				CASE WHEN a.capacity > 0 THEN a.capacity ELSE {:def} END AS lim,
				(SELECT COUNT(*) FROM ` + ConversationsCollection + ` c WHERE c.assignee = s.id AND c.status = 'open') AS open
			FROM ` + AgentsCollection + ` a JOIN staff s ON s.id = a.staff
			WHERE a.away = 0 AND a.seen_at >= {:since})
		WHERE lim = 0 OR open < lim
		ORDER BY ` + order + ` LIMIT 1`).
		Bind(dbx.Params{"def": a.Capacity, "since": store.FormatTime(now.Add(-OnlineWindow))}).Row(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// assignTo sets c's assignee and notes when that agent last got one (for
// round robin).
func (m *Module) assignTo(tx core.App, c *Conversation, agent string, now time.Time) error {
	db := tx.DB()
	if _, err := db.Update(ConversationsCollection, dbx.Params{"assignee": agent, "updated": store.FormatTime(now)},
		dbx.HashExp{"id": c.ID}).Execute(); err != nil {
		return err
	}
	c.Assignee = agent
	m.live.touch(c.ID, "")
	return upsertAgent(db, agent, dbx.Params{"last_assigned_at": store.FormatTime(now)}, now)
}

// assignWaiting assigns open conversations nobody holds, oldest waiting
// first, while some agent is free (an agent came online, another resolved
// one or capacity was raised).
func (m *Module) assignWaiting(ctx context.Context, now time.Time) {
	a := m.assignment()
	if a.Mode != AssignRoundRobin && a.Mode != AssignLeastOpen {
		return
	}
	var ids []string
	err := m.app.DB().Select("id").From(ConversationsCollection).
		Where(dbx.HashExp{"status": StatusOpen, "assignee": ""}).
		OrderBy("COALESCE(NULLIF(waiting_since, ''), opened_at) ASC").Limit(50).Column(&ids)
	if err != nil || len(ids) == 0 {
		return
	}
	if free, err := m.freeAgent(m.app.DB(), a, now); err != nil || free == "" {
		return
	}
	assigned := 0
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		var took bool
		err := m.app.RunInTransaction(func(tx core.App) error {
			c, err := loadConversation(tx.DB(), id)
			if err != nil {
				return err
			}
			took, err = m.autoAssign(tx, c, now)
			return err
		})
		if err != nil {
			m.log.Warn("inbox: assigning a waiting conversation", "conversation", id, "error", err)
			break
		}
		if !took {
			break // nobody free any more
		}
		assigned++
	}
	if assigned > 0 {
		m.afterCommit()
	}
}
