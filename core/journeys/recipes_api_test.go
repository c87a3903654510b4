package journeys

import (
	"encoding/json"
	"testing"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/journeys/graph"
)

// TestRecipes: every recipe creates a draft with its templates and
// publishes as is; a second journey from a recipe reuses the templates;
// params fill the graph; wrong params and unknown recipes are 400s naming
// the field.
func TestRecipes(t *testing.T) {
	e := startAPI(t)
	var list struct{ Items []Recipe }
	e.call(t, e.agent, "GET", "/api/v1/journeys/recipes", nil, 200, &list)
	want := []string{"abandoned_checkout", "browse_abandonment", "welcome_series", "post_purchase", "win_back", "birthday", "back_in_stock"}
	if len(list.Items) != len(want) {
		t.Fatalf("recipes: %+v", list.Items)
	}
	for i, r := range list.Items {
		if r.ID != want[i] || r.Name == "" || r.Description == "" || len(r.Needs) == 0 || r.Params == nil {
			t.Fatalf("recipe %d: %+v", i, r)
		}
	}

	templates := func() int {
		var n int
		_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM templates").Row(&n)
		return n
	}
	for _, id := range want {
		t.Run(id, func(t *testing.T) {
			var j journeyJSON
			e.call(t, e.owner, "POST", "/api/v1/journeys", map[string]any{"recipe": id}, 201, &j)
			if j.Recipe != id || j.Status != StatusDraft || len(j.Problems) != 0 || j.Graph["layout"] == nil {
				t.Fatalf("from recipe: %+v", j)
			}
			n := templates()
			var pub PublishResult
			e.call(t, e.owner, "POST", "/api/v1/journeys/"+j.ID+"/publish", nil, 200, &pub)
			if pub.Version != 1 {
				t.Fatalf("publish: %+v", pub)
			}
			// Again, under another name: the templates are reused.
			var again journeyJSON
			e.call(t, e.owner, "POST", "/api/v1/journeys", map[string]any{"recipe": id, "name": "Second " + id}, 201, &again)
			if again.Name != "Second "+id || templates() != n || len(again.Problems) != 0 {
				t.Fatalf("second from recipe: %+v, templates %d → %d", again, n, templates())
			}
		})
	}

	// Recipes send marketing only: consent decides who gets them.
	var notMarketing int
	_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM templates WHERE kind != 'marketing'").Row(&notMarketing)
	if templates() == 0 || notMarketing != 0 {
		t.Fatalf("recipe templates: %d, not marketing %d", templates(), notMarketing)
	}

	// Params fill the graph.
	var j journeyJSON
	e.call(t, e.owner, "POST", "/api/v1/journeys", map[string]any{"recipe": "abandoned_checkout",
		"params": map[string]any{"wait": "30m", "min_total": 50, "whatsapp_template": "cart_reminder"}}, 201, &j)
	raw := e.call(t, e.agent, "GET", "/api/v1/journeys/"+j.ID, nil, 200, nil)
	var full struct{ Graph graph.Graph }
	if err := json.Unmarshal(raw, &full); err != nil {
		t.Fatal(err)
	}
	g := full.Graph
	if g.Nodes["wait_order"].Timeout != "30m" || g.Trigger.Where == nil || g.Trigger.Where.Value != 50.0 ||
		g.Nodes["remind"].WATemplate == nil || g.Nodes["remind"].WATemplate.Name != "cart_reminder" ||
		g.Nodes["wait_order"].Match[0] != "checkout_token" || g.Goal == nil || !g.Goal.Exit {
		t.Fatalf("abandoned checkout with params: %+v", g)
	}

	// The owner's settings win over the recipe's, key by key.
	e.call(t, e.owner, "POST", "/api/v1/journeys", map[string]any{"recipe": "abandoned_checkout",
		"settings": map[string]any{"cooldown": "3d", "skip_after_bad_csat": "off"}}, 201, &j)
	if j.Settings["reentry"] != "cooldown" || j.Settings["cooldown"] != "3d" || j.Settings["skip_after_bad_csat"] != "off" {
		t.Fatalf("recipe settings: %v", j.Settings)
	}

	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"recipe": "nope"}, "recipe"},
		{map[string]any{"recipe": "abandoned_checkout", "params": map[string]any{"wait": "soon"}}, "params.wait"},
		{map[string]any{"recipe": "abandoned_checkout", "params": map[string]any{"discount_code": "10% {{ off }}"}}, "params.discount_code"},
		{map[string]any{"recipe": "abandoned_checkout", "params": map[string]any{"colour": "red"}}, "params.colour"},
		{map[string]any{"recipe": "win_back", "params": map[string]any{"after_days": 1.5}}, "params.after_days"},
		{map[string]any{"recipe": "birthday", "graph": map[string]any{}}, "graph"},
		{map[string]any{"recipe": "birthday", "settings": map[string]any{"reentry": 1}}, "settings"},
	} {
		code, body := e.Do(t, "POST", "/api/v1/journeys", c.body, e.owner)
		omnitest.WantFieldError(t, code, body, 400, c.field)
	}
	code, body := e.Do(t, "POST", "/api/v1/journeys", map[string]any{"recipe": "birthday"}, e.agent)
	omnitest.WantError(t, code, body, 403)
}
