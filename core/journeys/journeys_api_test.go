package journeys

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/store"
)

// apiEnv is a real Omni with profiles, messaging and journeys, an owner
// and an agent.
type apiEnv struct {
	*omnitest.Server
	mod          *Module
	owner, agent http.Header
}

func startAPI(t *testing.T) *apiEnv {
	t.Helper()
	mod := New(Options{})
	s := omnitest.Start(t, omnitest.Options{Modules: func(o *app.Omni) []app.Module {
		return []app.Module{profiles.New(profiles.Options{}), messaging.New(messaging.Options{}), mod}
	}})
	return &apiEnv{Server: s, mod: mod,
		owner: omnitest.Auth(s.Staff(t, "owner@omni-shop.dev", "owner")),
		agent: omnitest.Auth(s.Staff(t, "agent@omni-shop.dev", "agent"))}
}

// call sends a request and decodes a 2xx answer into out (nil: ignore).
func (e *apiEnv) call(t *testing.T, who http.Header, method, path string, body any, want int, out any) []byte {
	t.Helper()
	code, b := e.Do(t, method, path, body, who)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
	}
	if out != nil {
		// Decode into a zero value: omitted keys must not keep old values.
		reflect.ValueOf(out).Elem().SetZero()
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return b
}

// template creates an email template record.
func (e *apiEnv) template(t *testing.T, name string) string {
	t.Helper()
	col, err := e.PB.FindCollectionByNameOrId("templates")
	if err != nil {
		t.Fatal(err)
	}
	r := core.NewRecord(col)
	r.Set("name", name)
	r.Set("channel", "email")
	r.Set("subject", "Hello")
	r.Set("body", "Hi {{ customer.first_name }}")
	if err := e.PB.Save(r); err != nil {
		t.Fatalf("template %s: %v", name, err)
	}
	return r.Id
}

// enrolNow puts profile into a live journey, as a trigger would.
func (e *apiEnv) enrolNow(t *testing.T, journey, profile string) string {
	t.Helper()
	c, ok := e.mod.live.get(journey)
	if !ok {
		t.Fatalf("journey %s is not live", journey)
	}
	var id string
	err := e.PB.RunInTransaction(func(tx core.App) error {
		var err error
		id, err = enrol(tx, Enrolment{Journey: c, Profile: profile, Context: RunContext{Source: "manual"}, At: e.mod.opts.Now()})
		return err
	})
	if err != nil {
		t.Fatalf("enrol %s: %v", profile, err)
	}
	return id
}

// park puts a run in a wait at node, as the engine would.
func (e *apiEnv) park(t *testing.T, run, node, event string) {
	t.Helper()
	_, err := e.PB.DB().NewQuery("UPDATE journey_runs SET node={:n}, status='waiting', wait_event={:ev}, due_at='2030-01-01 10:00:00.000Z' WHERE id={:id}").
		Bind(dbx.Params{"n": node, "ev": event, "id": run}).Execute()
	if err != nil {
		t.Fatal(err)
	}
}

func (e *apiEnv) run(t *testing.T, id string) Run {
	t.Helper()
	var r Run
	if err := e.PB.DB().NewQuery("SELECT " + RunColumns + " FROM journey_runs WHERE id={:id}").Bind(dbx.Params{"id": id}).One(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// cartGraph is the example journey around template tpl.
func cartGraph(tpl string) map[string]any {
	return map[string]any{
		"trigger": map[string]any{"event": "checkout.started", "where": map[string]any{"property": "total", "op": "gt", "value": 50}},
		"goal":    map[string]any{"event": "order.placed", "within": "7d", "exit": true},
		"start":   "w1",
		"nodes": map[string]any{
			"w1":  map[string]any{"type": "wait_for_event", "event": "order.placed", "timeout": "1h", "next": map[string]any{"happened": "end", "timed_out": "s1"}},
			"s1":  map[string]any{"type": "send", "channels": []string{"whatsapp", "email"}, "template": tpl, "kind": "marketing", "next": map[string]any{"sent": "end", "suppressed": "end"}},
			"end": map[string]any{"type": "exit"},
		},
	}
}

func problemOn(ps []struct{ Node, Field, Message string }, node, field string) bool {
	for _, p := range ps {
		if p.Node == node && p.Field == field {
			return true
		}
	}
	return false
}

type journeyJSON struct {
	ID           string                                  `json:"id"`
	Name         string                                  `json:"name"`
	Status       string                                  `json:"status"`
	Version      int                                     `json:"version"`
	Recipe       string                                  `json:"recipe"`
	Graph        map[string]any                          `json:"graph"`
	Settings     map[string]any                          `json:"settings"`
	Problems     []struct{ Node, Field, Message string } `json:"problems"`
	DraftChanged bool                                    `json:"draft_changed"`
}

// TestJourneyCRUD: a blank draft lists what it lacks; a graph naming a
// template that does not exist is saved with a problem on that node, gone
// once the template exists; a graph that cannot be read is a 400 naming
// graph; owners edit, agents read, guests get 401.
func TestJourneyCRUD(t *testing.T) {
	e := startAPI(t)

	var blank journeyJSON
	e.call(t, e.owner, "POST", "/api/v1/journeys", map[string]any{"name": "Blank"}, 201, &blank)
	if blank.Status != StatusDraft || blank.Version != 0 || !blank.DraftChanged || !problemOn(blank.Problems, "", "trigger") || !problemOn(blank.Problems, "", "nodes") {
		t.Fatalf("blank draft: %+v", blank)
	}
	code, body := e.Do(t, "POST", "/api/v1/journeys", map[string]any{"description": "no name"}, e.owner)
	omnitest.WantFieldError(t, code, body, 400, "name")

	var j journeyJSON
	e.call(t, e.owner, "POST", "/api/v1/journeys", map[string]any{"name": "Cart", "graph": cartGraph("Cart reminder")}, 201, &j)
	if len(j.Problems) != 1 || !problemOn(j.Problems, "s1", "template") || !strings.Contains(j.Problems[0].Message, "Cart reminder") {
		t.Fatalf("missing template: %+v", j.Problems)
	}
	e.template(t, "Cart reminder")
	e.call(t, e.agent, "GET", "/api/v1/journeys/"+j.ID, nil, 200, &j)
	if len(j.Problems) != 0 || j.Settings["reentry"] != "once" {
		t.Fatalf("with the template: problems %+v, settings %v", j.Problems, j.Settings)
	}

	// The draft is saved as the owner works, problems and all: a branch
	// on a segment that does not exist, and a step nothing leads to.
	g := cartGraph("Cart reminder")
	nodes := g["nodes"].(map[string]any)
	nodes["b1"] = map[string]any{"type": "branch", "rule": map[string]any{"segment": "nosuchsegment00"}, "next": map[string]any{"yes": "end"}}
	e.call(t, e.owner, "PATCH", "/api/v1/journeys/"+j.ID, map[string]any{"graph": g, "name": "Cart v2"}, 200, &j)
	if j.Name != "Cart v2" || !problemOn(j.Problems, "b1", "id") {
		t.Fatalf("unreachable step: %+v", j.Problems)
	}
	nodes["s1"].(map[string]any)["next"] = map[string]any{"sent": "b1", "suppressed": "end"}
	e.call(t, e.owner, "PATCH", "/api/v1/journeys/"+j.ID, map[string]any{"graph": g}, 200, &j)
	if len(j.Problems) != 1 || !problemOn(j.Problems, "b1", "rule") || j.Graph["nodes"].(map[string]any)["b1"] == nil {
		t.Fatalf("unknown segment: %+v", j.Problems)
	}

	// Unreadable graphs and settings are refused, naming the field.
	code, body = e.Do(t, "PATCH", "/api/v1/journeys/"+j.ID, `{"graph": {"start": "w1", "nodes": {}, "colour": "red"}}`, e.owner)
	omnitest.WantFieldError(t, code, body, 400, "graph")
	code, body = e.Do(t, "PATCH", "/api/v1/journeys/"+j.ID, `{"graph": {"start": 7}}`, e.owner)
	omnitest.WantFieldError(t, code, body, 400, "graph")
	code, body = e.Do(t, "PATCH", "/api/v1/journeys/"+j.ID, `{"settings": {"reentry": 3}}`, e.owner)
	omnitest.WantFieldError(t, code, body, 400, "settings")
	// A settings value that reads but is wrong is a problem, not a 400.
	e.call(t, e.owner, "PATCH", "/api/v1/journeys/"+j.ID, map[string]any{"settings": map[string]any{"reentry": "sometimes"}}, 200, &j)
	if !problemOn(j.Problems, "", "settings.reentry") {
		t.Fatalf("settings problem: %+v", j.Problems)
	}

	// Roles.
	for _, c := range []struct {
		who    http.Header
		method string
		path   string
		want   int
	}{
		{nil, "GET", "/api/v1/journeys", 401},
		{nil, "GET", "/api/v1/journeys/" + j.ID, 401},
		{nil, "GET", "/api/v1/journeys/recipes", 401},
		{nil, "POST", "/api/v1/journeys", 401},
		{nil, "GET", "/api/v1/journeys/runs?profile=x", 401},
		{nil, "GET", "/api/v1/journeys/" + j.ID + "/versions", 401},
		{nil, "GET", "/api/v1/journeys/" + j.ID + "/runs", 401},
		{e.agent, "POST", "/api/v1/journeys", 403},
		{e.agent, "PATCH", "/api/v1/journeys/" + j.ID, 403},
		{e.agent, "POST", "/api/v1/journeys/" + j.ID + "/publish", 403},
		{e.agent, "POST", "/api/v1/journeys/" + j.ID + "/archive", 403},
		{e.agent, "GET", "/api/v1/journeys", 200},
		{e.agent, "GET", "/api/v1/journeys/recipes", 200},
		{e.owner, "GET", "/api/v1/journeys/nosuchjourney00", 404},
		{e.owner, "PATCH", "/api/v1/journeys/nosuchjourney00", 404},
	} {
		code, body := e.Do(t, c.method, c.path, map[string]any{"name": "x"}, c.who)
		if c.want == 200 {
			if code != 200 {
				t.Fatalf("%s %s: %d %s", c.method, c.path, code, body)
			}
			continue
		}
		omnitest.WantError(t, code, body, c.want)
	}

	var list struct{ Items []JourneyItem }
	e.call(t, e.agent, "GET", "/api/v1/journeys?status=draft", nil, 200, &list)
	if len(list.Items) != 2 {
		t.Fatalf("drafts: %+v", list.Items)
	}
	for _, it := range list.Items {
		if it.ID == j.ID && it.TriggerSummary != "when checkout.started happens with total > 50" {
			t.Fatalf("summary: %q", it.TriggerSummary)
		}
	}
	code, body = e.Do(t, "GET", "/api/v1/journeys?status=gone", nil, e.agent)
	omnitest.WantFieldError(t, code, body, 400, "status")
}

// TestPublishAndVersions: publishing refuses a draft with problems (400
// with data.graph and data.problems); a publish freezes a version, runs
// keep the version they entered with, and map moves runs at an old node to
// the new version.
func TestPublishAndVersions(t *testing.T) {
	e := startAPI(t)
	var j journeyJSON
	e.call(t, e.owner, "POST", "/api/v1/journeys", map[string]any{"name": "Cart", "graph": cartGraph("Cart reminder")}, 201, &j)

	code, body := e.Do(t, "POST", "/api/v1/journeys/"+j.ID+"/publish", nil, e.owner)
	var refused struct {
		Message string
		Data    struct {
			Graph    struct{ Code, Message string }
			Problems []struct{ Node, Field, Message string }
		}
	}
	if code != 400 || json.Unmarshal(body, &refused) != nil || !strings.HasPrefix(refused.Message, "graph: ") ||
		refused.Data.Graph.Code == "" || len(refused.Data.Problems) != 1 || refused.Data.Problems[0].Node != "s1" {
		t.Fatalf("publish with a missing template: %d %s", code, body)
	}

	e.template(t, "Cart reminder")
	var pub PublishResult
	e.call(t, e.owner, "POST", "/api/v1/journeys/"+j.ID+"/publish", map[string]any{"note": "first"}, 200, &pub)
	if pub.Version != 1 || pub.Status != StatusLive || pub.Moved != 0 {
		t.Fatalf("publish: %+v", pub)
	}
	e.call(t, e.agent, "GET", "/api/v1/journeys/"+j.ID, nil, 200, &j)
	if j.Status != StatusLive || j.Version != 1 || j.DraftChanged {
		t.Fatalf("after publish: %+v", j)
	}

	// Two customers inside version 1, both waiting at w1.
	ann, bob := store.NewRecordID(), store.NewRecordID()
	runA, runB := e.enrolNow(t, j.ID, ann), e.enrolNow(t, j.ID, bob)
	e.park(t, runA, "w1", "order.placed")
	e.park(t, runB, "w1", "order.placed")

	// Version 2 renames w1 to wait1: without a map, runs keep version 1.
	g := cartGraph("Cart reminder")
	nodes := g["nodes"].(map[string]any)
	nodes["wait1"] = nodes["w1"]
	delete(nodes, "w1")
	g["start"] = "wait1"
	e.call(t, e.owner, "PATCH", "/api/v1/journeys/"+j.ID, map[string]any{"graph": g}, 200, &j)
	if !j.DraftChanged {
		t.Fatal("an edited draft is not marked changed")
	}
	code, body = e.Do(t, "POST", "/api/v1/journeys/"+j.ID+"/publish", map[string]any{"map": map[string]string{"w1": "w1"}}, e.owner)
	omnitest.WantFieldError(t, code, body, 400, "map.w1")
	e.call(t, e.owner, "POST", "/api/v1/journeys/"+j.ID+"/publish", nil, 200, &pub)
	if pub.Version != 2 || pub.Moved != 0 || e.run(t, runA).Version != 1 {
		t.Fatalf("publish v2: %+v, run %+v", pub, e.run(t, runA))
	}

	// Version 3 maps w1 → wait1: both runs move and arrive there now.
	e.call(t, e.owner, "PATCH", "/api/v1/journeys/"+j.ID, map[string]any{"description": "v3"}, 200, nil)
	e.call(t, e.owner, "POST", "/api/v1/journeys/"+j.ID+"/publish", map[string]any{"map": map[string]string{"w1": "wait1"}, "note": "rename"}, 200, &pub)
	if pub.Version != 3 || pub.Moved != 2 {
		t.Fatalf("publish v3 with map: %+v", pub)
	}
	// The engine may already have stepped it: arrived at wait1 and waiting
	// for the order there.
	r := e.run(t, runA)
	if r.Version != 3 || r.Node != "wait1" || (r.Status != RunActive && r.Status != RunWaiting) {
		t.Fatalf("moved run: %+v", r)
	}
	var detail string
	_ = e.PB.DB().NewQuery("SELECT detail FROM journey_steps WHERE run={:r} AND node='w1' AND exit=''").Bind(dbx.Params{"r": runA}).Row(&detail)
	if !strings.Contains(detail, `"moved_to":{"node":"wait1","version":3}`) || !strings.Contains(detail, "arrived_at") {
		t.Fatalf("moved step row: %q", detail)
	}

	var versions struct{ Items []VersionItem }
	e.call(t, e.agent, "GET", "/api/v1/journeys/"+j.ID+"/versions", nil, 200, &versions)
	if len(versions.Items) != 3 || versions.Items[0].Version != 3 || versions.Items[0].Note != "rename" || versions.Items[2].Note != "first" || versions.Items[0].PublishedBy == "" {
		t.Fatalf("versions: %+v", versions.Items)
	}
	var v1 struct {
		Version int
		Graph   map[string]any
	}
	e.call(t, e.agent, "GET", "/api/v1/journeys/"+j.ID+"/versions/1", nil, 200, &v1)
	if v1.Version != 1 || v1.Graph["start"] != "w1" {
		t.Fatalf("version 1: %+v", v1)
	}
	code, body = e.Do(t, "GET", "/api/v1/journeys/"+j.ID+"/versions/9", nil, e.agent)
	omnitest.WantError(t, code, body, 404)
}

// TestPauseResumeArchive: statuses move only as allowed (409 otherwise);
// archiving ends every active run "archived" with a step row saying so,
// and an archived journey cannot be edited.
func TestPauseResumeArchive(t *testing.T) {
	e := startAPI(t)
	e.template(t, "Cart reminder")
	var j journeyJSON
	e.call(t, e.owner, "POST", "/api/v1/journeys", map[string]any{"name": "Cart", "graph": cartGraph("Cart reminder")}, 201, &j)
	base := "/api/v1/journeys/" + j.ID
	for _, p := range []string{"/pause", "/resume"} {
		code, body := e.Do(t, "POST", base+p, nil, e.owner)
		omnitest.WantError(t, code, body, 409)
	}
	e.call(t, e.owner, "POST", base+"/publish", nil, 200, nil)
	e.call(t, e.owner, "POST", base+"/pause", nil, 200, nil)
	if c, ok := e.mod.live.get(j.ID); !ok || c.Status != StatusPaused {
		t.Fatalf("paused journey in the live set: %+v %v", c, ok)
	}
	code, body := e.Do(t, "POST", base+"/pause", nil, e.owner)
	omnitest.WantError(t, code, body, 409)
	e.call(t, e.owner, "POST", base+"/resume", nil, 200, nil)
	e.call(t, e.agent, "GET", base, nil, 200, &j)
	if j.Status != StatusLive {
		t.Fatalf("resumed: %s", j.Status)
	}

	waiting := e.enrolNow(t, j.ID, store.NewRecordID())
	e.park(t, waiting, "w1", "order.placed")
	active := e.enrolNow(t, j.ID, store.NewRecordID())
	var out struct {
		Status string
		Ended  int
	}
	e.call(t, e.owner, "POST", base+"/archive", nil, 200, &out)
	if out.Status != StatusArchived || out.Ended != 2 {
		t.Fatalf("archive: %+v", out)
	}
	for _, id := range []string{waiting, active} {
		r := e.run(t, id)
		var step struct {
			ID     string `db:"id"`
			Type   string `db:"type"`
			Detail string `db:"detail"`
		}
		_ = e.PB.DB().NewQuery("SELECT id, type, detail FROM journey_steps WHERE run={:r} AND exit=''").Bind(dbx.Params{"r": id}).One(&step)
		if r.Status != RunExited || r.ExitReason != "archived" || r.EndedAt == "" || r.DueAt != "" || step.Type != "wait_for_event" ||
			len(step.ID) != 15 || !strings.Contains(step.Detail, `"ended":"archived"`) || !strings.Contains(step.Detail, `"arrived_at":"`+r.EnteredAt+`"`) {
			t.Fatalf("archived run: %+v, step %+v", r, step)
		}
	}
	if _, ok := e.mod.live.get(j.ID); ok {
		t.Fatal("an archived journey is still in the live set")
	}
	for _, c := range []struct{ method, path string }{{"POST", base + "/archive"}, {"POST", base + "/publish"}, {"PATCH", base}, {"POST", base + "/resume"}} {
		code, body := e.Do(t, c.method, c.path, map[string]any{"name": "again"}, e.owner)
		omnitest.WantError(t, code, body, 409)
	}
}

// TestRunsAPI: a customer's runs across journeys, with the journey's name,
// the step's name and the state in words; one run with its history;
// ending a run by hand (owners only, once).
func TestRunsAPI(t *testing.T) {
	e := startAPI(t)
	e.template(t, "Cart reminder")
	var cart, other journeyJSON
	e.call(t, e.owner, "POST", "/api/v1/journeys", map[string]any{"name": "Abandoned cart", "graph": cartGraph("Cart reminder")}, 201, &cart)
	e.call(t, e.owner, "POST", "/api/v1/journeys", map[string]any{"name": "Other", "graph": cartGraph("Cart reminder")}, 201, &other)
	e.call(t, e.owner, "POST", "/api/v1/journeys/"+cart.ID+"/publish", nil, 200, nil)
	e.call(t, e.owner, "POST", "/api/v1/journeys/"+other.ID+"/publish", nil, 200, nil)

	ann, bob := store.NewRecordID(), store.NewRecordID()
	annCart := e.enrolNow(t, cart.ID, ann)
	e.park(t, annCart, "w1", "order.placed")
	annOther := e.enrolNow(t, other.ID, ann)
	e.enrolNow(t, cart.ID, bob)

	var runs struct{ Items []RunView }
	e.call(t, e.agent, "GET", "/api/v1/journeys/runs?profile="+ann, nil, 200, &runs)
	if len(runs.Items) != 2 {
		t.Fatalf("ann's runs: %+v", runs.Items)
	}
	var got RunView
	for _, r := range runs.Items {
		if r.ID == annCart {
			got = r
		}
	}
	if got.JourneyName != "Abandoned cart" || got.NodeName != "Wait up to 1h for order.placed" || got.NodeType != "wait_for_event" ||
		got.State != "waiting for order.placed until 2030-01-01T10:00:00Z" || got.Profile != ann {
		t.Fatalf("ann's cart run: %+v", got)
	}
	code, body := e.Do(t, "GET", "/api/v1/journeys/runs", nil, e.agent)
	omnitest.WantFieldError(t, code, body, 400, "profile")
	// A merged-away id lists the survivor's runs.
	ann2 := store.NewRecordID()
	for _, p := range [][2]string{{ann, ""}, {ann2, ann}} {
		if _, err := e.PB.DB().NewQuery(`INSERT INTO profiles (id, merged_into, traits, computed, consent, created, updated)
			VALUES ({:id}, {:into}, '{}', '{}', '{}', {:now}, {:now})`).
			Bind(dbx.Params{"id": p[0], "into": p[1], "now": fmtT(time.Now())}).Execute(); err != nil {
			t.Fatal(err)
		}
	}
	// Ann is known by her email (the journey events Omni derives about her
	// carry it, so they land on her).
	if _, err := e.PB.DB().NewQuery(`INSERT INTO identities (id, kind, value, profile, created)
		VALUES ({:id}, 'email', 'ann-runs@omni-shop.dev', {:p}, {:now})`).
		Bind(dbx.Params{"id": store.NewRecordID(), "p": ann, "now": fmtT(time.Now())}).Execute(); err != nil {
		t.Fatal(err)
	}
	e.call(t, e.agent, "GET", "/api/v1/journeys/runs?profile="+ann2, nil, 200, &runs)
	if len(runs.Items) != 2 || runs.Items[0].Profile != ann {
		t.Fatalf("runs by a merged-away id: %+v", runs.Items)
	}

	e.call(t, e.agent, "GET", "/api/v1/journeys/"+cart.ID+"/runs", nil, 200, &runs)
	if len(runs.Items) != 2 {
		t.Fatalf("cart runs: %+v", runs.Items)
	}
	e.call(t, e.agent, "GET", "/api/v1/journeys/"+cart.ID+"/runs?status=waiting&profile="+ann, nil, 200, &runs)
	if len(runs.Items) != 1 || runs.Items[0].ID != annCart {
		t.Fatalf("filtered runs: %+v", runs.Items)
	}
	code, body = e.Do(t, "GET", "/api/v1/journeys/"+cart.ID+"/runs?limit=0", nil, e.agent)
	omnitest.WantFieldError(t, code, body, 400, "limit")

	// Ending by hand.
	end := "/api/v1/journeys/" + cart.ID + "/runs/" + annCart + "/end"
	code, body = e.Do(t, "POST", end, nil, e.agent)
	omnitest.WantError(t, code, body, 403)
	var ended RunView
	e.call(t, e.owner, "POST", end, nil, 200, &ended)
	if ended.Status != RunExited || ended.ExitReason != "manual" || ended.State != "exited: manual" {
		t.Fatalf("ended: %+v", ended)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		var n int
		_ = e.PB.DB().NewQuery(`SELECT COUNT(*) FROM events WHERE type = 'journey.exited' AND profile = {:p}
			AND json_extract(properties, '$.run') = {:r} AND json_extract(properties, '$.reason') = 'manual'`).
			Bind(dbx.Params{"p": ann, "r": annCart}).Row(&n)
		return n == 1
	}, "journey.exited (manual) on the customer's timeline")
	code, body = e.Do(t, "POST", end, nil, e.owner)
	omnitest.WantError(t, code, body, 409)
	// A run of another journey is not found under this one.
	code, body = e.Do(t, "POST", "/api/v1/journeys/"+cart.ID+"/runs/"+annOther+"/end", nil, e.owner)
	omnitest.WantError(t, code, body, 404)

	var one struct {
		RunView
		Steps []StepView
	}
	e.call(t, e.agent, "GET", "/api/v1/journeys/"+cart.ID+"/runs/"+annCart, nil, 200, &one)
	if one.ID != annCart || len(one.Steps) != 1 || one.Steps[0].Node != "w1" || one.Steps[0].Exit != "" ||
		!strings.Contains(string(one.Steps[0].Detail), `"ended":"manual"`) || one.Steps[0].NodeName != "Wait up to 1h for order.placed" {
		t.Fatalf("run with steps: %+v", one)
	}
	var list struct{ Items []JourneyItem }
	e.call(t, e.agent, "GET", "/api/v1/journeys?status=live", nil, 200, &list)
	for _, it := range list.Items {
		if it.ID == cart.ID && (it.RunsTotal != 2 || it.RunsActive != 1) {
			t.Fatalf("cart counts: %+v", it)
		}
	}
}
