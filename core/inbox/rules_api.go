package inbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/store"
)

// ruleInput is a rule as written by an owner; PATCH sends only what
// changes.
type ruleInput struct {
	Name     *string   `json:"name"`
	Enabled  *bool     `json:"enabled"`
	Position *int      `json:"position"`
	Channels *[]string `json:"channels"`
	Keywords *[]string `json:"keywords"`
	Action   *string   `json:"action"`
	Reply    *string   `json:"reply"`
	Value    *string   `json:"value"`
}

// ruleRoutes: GET /api/v1/inbox/rules (staff: agents see what the bot
// says), POST, PATCH /{id} and DELETE /{id} (owners).
func (m *Module) ruleRoutes(g *router.RouterGroup[*core.RequestEvent]) {
	g.GET("/rules", func(e *core.RequestEvent) error {
		rules, err := listRules(m.app.DB(), false)
		if err != nil {
			return api.Internal("could not list the rules", err)
		}
		return e.JSON(200, map[string]any{"items": rules})
	}).Bind(api.RequireStaff())

	g.POST("/rules", func(e *core.RequestEvent) error {
		in, err := readRule(e)
		if err != nil {
			return err
		}
		now := m.opts.Now()
		r := Rule{ID: store.NewRecordID(), Enabled: true, Channels: JSONList{}, Keywords: JSONList{}}
		if in.Position == nil {
			var max int
			_ = m.app.DB().NewQuery("SELECT COALESCE(MAX(position), 0) FROM " + RulesCollection).Row(&max)
			p := max + 10
			in.Position = &p
		}
		if err := m.applyRule(&r, in); err != nil {
			return err
		}
		r.Created, r.Updated = store.FormatTime(now), store.FormatTime(now)
		if _, err := m.app.DB().Insert(RulesCollection, ruleParams(&r)).Execute(); err != nil {
			return api.Internal("could not save the rule", err)
		}
		return e.JSON(201, r)
	}).Bind(api.RequireOwner())

	g.PATCH("/rules/{id}", func(e *core.RequestEvent) error {
		id := e.Request.PathValue("id")
		var r Rule
		if err := m.app.DB().Select("*").From(RulesCollection).Where(dbx.HashExp{"id": id}).One(&r); err != nil {
			return api.Error(404, "There is no rule "+id+".")
		}
		in, err := readRule(e)
		if err != nil {
			return err
		}
		if err := m.applyRule(&r, in); err != nil {
			return err
		}
		r.Updated = store.FormatTime(m.opts.Now())
		p := ruleParams(&r)
		delete(p, "id")
		delete(p, "created")
		if _, err := m.app.DB().Update(RulesCollection, p, dbx.HashExp{"id": id}).Execute(); err != nil {
			return api.Internal("could not save the rule", err)
		}
		return e.JSON(200, r)
	}).Bind(api.RequireOwner())

	g.DELETE("/rules/{id}", func(e *core.RequestEvent) error {
		id := e.Request.PathValue("id")
		res, err := m.app.DB().Delete(RulesCollection, dbx.HashExp{"id": id}).Execute()
		if err != nil {
			return api.Internal("could not delete the rule", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return api.Error(404, "There is no rule "+id+".")
		}
		return e.NoContent(204)
	}).Bind(api.RequireOwner())
}

// readRule reads a rule body, refusing unknown fields.
func readRule(e *core.RequestEvent) (*ruleInput, error) {
	raw, err := io.ReadAll(io.LimitReader(e.Request.Body, 1<<16))
	if err != nil {
		return nil, api.BadRequest("name", "cannot read the body")
	}
	var in ruleInput
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&in); err != nil && !errors.Is(err, io.EOF) {
		field := "name"
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			field = ute.Field
		}
		return nil, api.BadRequest(field, "the body must be {name, enabled, position, channels, keywords, action, reply, value}: "+err.Error())
	}
	return &in, nil
}

// applyRule writes in over r and checks the result: a name, at least one
// keyword, a known action, a reply for reply rules (Liquid whose tags
// close; the gate renders it), a label or a staff member for label and
// assign rules, known channels.
func (m *Module) applyRule(r *Rule, in *ruleInput) error {
	if in.Name != nil {
		r.Name = strings.TrimSpace(*in.Name)
	}
	if in.Enabled != nil {
		r.Enabled = *in.Enabled
	}
	if in.Position != nil {
		r.Position = *in.Position
	}
	if in.Channels != nil {
		r.Channels = JSONList{}
		for _, c := range *in.Channels {
			if !validChannel(c) {
				return api.BadRequest("channels", c+" is not a channel ("+strings.Join(Channels, ", ")+")")
			}
			r.Channels = append(r.Channels, c)
		}
	}
	if in.Keywords != nil {
		kws, err := cleanKeywords(*in.Keywords)
		if err != nil {
			return api.BadRequest("keywords", err.Error())
		}
		r.Keywords = JSONList{}
		for _, k := range kws {
			r.Keywords = append(r.Keywords, k)
		}
	}
	if in.Action != nil {
		r.Action = *in.Action
	}
	if in.Reply != nil {
		r.Reply = strings.TrimSpace(*in.Reply)
	}
	if in.Value != nil {
		r.Value = strings.TrimSpace(*in.Value)
	}
	switch {
	case r.Name == "":
		return api.BadRequest("name", "a rule needs a name")
	case len(r.Name) > 200:
		return api.BadRequest("name", "at most 200 characters")
	case len(r.Keywords) == 0:
		return api.BadRequest("keywords", "give at least one word or phrase the rule answers")
	}
	known := false
	for _, a := range ruleActions {
		known = known || a == r.Action
	}
	if !known {
		return api.BadRequest("action", "must be one of "+strings.Join(ruleActions, ", "))
	}
	if len(r.Reply) > 10000 {
		return api.BadRequest("reply", "at most 10000 characters")
	}
	if r.Action == ActionReply && r.Reply == "" {
		return api.BadRequest("reply", "a reply rule needs the text to send")
	}
	if err := checkLiquid(r.Reply); err != nil {
		return api.BadRequest("reply", err.Error())
	}
	switch r.Action {
	case ActionLabel:
		if r.Value == "" {
			return api.BadRequest("value", "a label rule needs the label")
		}
	case ActionAssign:
		if r.Value == "" {
			return api.BadRequest("value", "an assign rule needs the staff member's id")
		}
		if _, err := m.app.FindRecordById("staff", r.Value); err != nil {
			return api.BadRequest("value", "there is no staff member "+r.Value)
		}
	}
	if len(r.Value) > 200 {
		return api.BadRequest("value", "at most 200 characters")
	}
	return nil
}

func ruleParams(r *Rule) dbx.Params {
	return dbx.Params{"id": r.ID, "name": r.Name, "enabled": r.Enabled, "position": r.Position, "channels": jsonText(r.Channels),
		"keywords": jsonText(r.Keywords), "action": r.Action, "reply": r.Reply, "value": r.Value, "created": r.Created, "updated": r.Updated}
}
