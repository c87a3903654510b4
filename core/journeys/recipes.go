package journeys

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/journeys/graph"
)

// Recipes are journeys that work out of the box with the built-in
// connectors: a graph, its settings and the templates it sends, filled
// from a few parameters. Creating a journey from a recipe creates the
// templates it needs (unless templates of those names exist, which it then
// uses) and a draft the owner can publish as is (recipes_defs.go).

// Recipe is a starting point for a journey.
type Recipe struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Params      []RecipeParam `json:"params"`
	// Needs lists the channels its sends use.
	Needs []string `json:"needs"`

	build func(p recipeParams) recipeDraft
}

// RecipeParam is a value the owner may change before creating.
type RecipeParam struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	// Type is duration ("1h", "7d"), number, days (a whole number), code
	// (letters, digits, _ and -: a discount code) or text.
	Type    string `json:"type"`
	Default any    `json:"default"`
	Help    string `json:"help,omitempty"`
}

// recipeDraft is what a recipe builds: send nodes name their template by
// its name in Templates; creation swaps in the template's id.
type recipeDraft struct {
	Graph     *graph.Graph
	Settings  graph.Settings
	Templates []recipeTemplate
}

// recipeTemplate is a template a recipe sends (a templates record).
type recipeTemplate struct {
	Name, Channel, Kind, Subject, Body string
}

// recipeParams are the owner's values over the defaults.
type recipeParams map[string]any

func (p recipeParams) str(name string) string { s, _ := p[name].(string); return s }

func (p recipeParams) num(name string) float64 { f, _ := p[name].(float64); return f }

func recipeByID(id string) *Recipe {
	for _, r := range recipes {
		if r.ID == id {
			return r
		}
	}
	return nil
}

func (m *Module) handleRecipes(e *core.RequestEvent) error {
	return e.JSON(http.StatusOK, map[string]any{"items": recipes})
}

var codeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,50}$`)

// params checks the owner's values (400 naming params.<name>) and fills
// the defaults.
func (r *Recipe) params(raw json.RawMessage) (recipeParams, error) {
	given := map[string]any{}
	if !isJSONNull(raw) {
		if err := json.Unmarshal(raw, &given); err != nil {
			return nil, api.BadRequest("params", "must be an object of parameter names and values")
		}
	}
	out := recipeParams{}
	known := map[string]bool{}
	for _, p := range r.Params {
		known[p.Name] = true
		v, ok := given[p.Name]
		if !ok || v == nil {
			out[p.Name] = p.Default
			continue
		}
		field := "params." + p.Name
		switch p.Type {
		case "duration":
			s, _ := v.(string)
			if _, err := graph.ParseDuration(s); err != nil {
				return nil, api.BadRequest(field, err.Error())
			}
		case "number":
			f, ok := v.(float64)
			if !ok || f < 0 {
				return nil, api.BadRequest(field, "must be a number, 0 or more")
			}
		case "days":
			f, ok := v.(float64)
			if !ok || f != float64(int(f)) || f < 1 || f > 730 {
				return nil, api.BadRequest(field, "must be a whole number of days from 1 to 730")
			}
		case "code":
			if s, _ := v.(string); !codeRE.MatchString(s) {
				return nil, api.BadRequest(field, "must be 1–50 letters, digits, _ or -")
			}
		default:
			s, ok := v.(string)
			if !ok || len(s) > 200 || strings.ContainsAny(s, "{}%") {
				return nil, api.BadRequest(field, "must be text of at most 200 characters, without {, } or %")
			}
		}
		out[p.Name] = v
	}
	names := make([]string, 0, len(given))
	for k := range given {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !known[k] {
			return nil, api.BadRequest("params."+k, fmt.Sprintf("is not a parameter of the %s recipe", r.ID))
		}
	}
	return out, nil
}

// createFromRecipe answers POST /api/v1/journeys {recipe, params, name?}.
func (m *Module) createFromRecipe(e *core.RequestEvent, in journeyInput) error {
	r := recipeByID(in.Recipe)
	if r == nil {
		ids := make([]string, 0, len(recipes))
		for _, r := range recipes {
			ids = append(ids, r.ID)
		}
		return api.BadRequest("recipe", "is not a recipe: use one of "+strings.Join(ids, ", "))
	}
	if in.Graph != nil {
		return api.BadRequest("graph", "give a recipe or a graph, not both")
	}
	p, err := r.params(in.Params)
	if err != nil {
		return err
	}
	rd := r.build(p)
	if in.Settings != nil {
		// The owner's settings win over the recipe's, key by key.
		dec := json.NewDecoder(bytes.NewReader(in.Settings))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rd.Settings); err != nil {
			return api.BadRequest("settings", "cannot be read: "+strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	if in.Name == nil || strings.TrimSpace(*in.Name) == "" {
		name := r.Name
		in.Name = &name
	}
	if in.Description == nil {
		desc := r.Description
		in.Description = &desc
	}
	var rec *core.Record
	err = e.App.RunInTransaction(func(tx core.App) error {
		ids, err := ensureTemplates(tx, rd.Templates)
		if err != nil {
			return err
		}
		for _, n := range rd.Graph.Nodes {
			if n.Type == graph.Send {
				n.Template = ids[n.Template]
			}
		}
		rec, err = m.saveNew(tx, e, in, &journeyDraft{graph: rd.Graph, settings: rd.Settings}, r.ID)
		return err
	})
	if err != nil {
		return saveError(err, "Could not create the journey from the recipe.")
	}
	return m.respond(e, http.StatusCreated, rec)
}

// ensureTemplates creates the templates a recipe sends unless templates of
// those names exist, and maps each name to its record id. Templates are
// saved as records, so messaging's template checks run on them.
func ensureTemplates(tx core.App, ts []recipeTemplate) (map[string]string, error) {
	ids := map[string]string{}
	for _, t := range ts {
		var id string
		err := tx.DB().NewQuery("SELECT id FROM templates WHERE name={:n}").Bind(dbx.Params{"n": t.Name}).Row(&id)
		if err == nil && id != "" {
			ids[t.Name] = id
			continue
		}
		col, err := tx.FindCollectionByNameOrId("templates")
		if err != nil {
			return nil, api.Internal("Templates are not available: the messaging module is not running.", err)
		}
		rec := core.NewRecord(col)
		rec.Set("name", t.Name)
		rec.Set("channel", t.Channel)
		rec.Set("kind", t.Kind)
		rec.Set("subject", t.Subject)
		rec.Set("body", t.Body)
		if err := tx.Save(rec); err != nil {
			return nil, api.Internal(fmt.Sprintf("Could not create the template %q.", t.Name), err)
		}
		ids[t.Name] = rec.Id
	}
	return ids, nil
}
