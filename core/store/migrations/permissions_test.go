package migrations_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/core/inbox"
	"github.com/omni/omni/core/journeys"
	"github.com/omni/omni/core/messaging"
	_ "github.com/omni/omni/core/messaging/templates" // its migration
	"github.com/omni/omni/core/metrics"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/webui"
)

// permissions is what each role may do through PocketBase's records API
// (/api/collections/{name}/records), one collection a line. Each string
// spells the five actions in the order L(ist) V(iew) C(reate) U(pdate)
// D(elete); a letter allows the action, "-" denies it. Superusers bypass
// rules and are not part of the matrix.
//
// Every collection in the database must have a line (except PocketBase's
// own, below): a module that adds a collection adds its line here, so its
// rules are decided on purpose rather than left at whatever they were.
var permissions = map[string]struct{ guest, agent, owner string }{
	"connectors":            {"-----", "-----", "LV---"}, // writes go through /api/v1/connectors (secrets are sealed there)
	"events":                {"-----", "LV---", "LV---"},
	"events_dead":           {"-----", "-----", "LV--D"}, // parked events; retries go through /api/v1/events/dead/retry
	"identities":            {"-----", "LV---", "LV---"},
	"profile_blocklist":     {"-----", "LV---", "LV---"}, // writes go through /api/v1/profiles/blocklist (entries are checked there)
	"profile_conflicts":     {"-----", "LV---", "LV-U-"},
	"profile_merges":        {"-----", "LV---", "LV---"}, // un-merges go through /api/v1/profiles/{id}/merges/{merge}/undo
	"profile_settings":      {"-----", "LV---", "LV---"}, // written by the profiles module only (the adopted base currency)
	"profile_tombstones":    {"-----", "-----", "LV---"},
	"profiles":              {"-----", "LV---", "LV---"},
	"segment_counts":        {"-----", "LV---", "LV---"},
	"segment_members":       {"-----", "LV---", "LV---"},
	"segments":              {"-----", "LV---", "LVCUD"},
	"sources":               {"-----", "-----", "LVCUD"}, // write keys are owner-only
	"staff":                 {"-----", "LV---", "LVCUD"}, // the target is another staff member; see TestStaffEscalation for one's own record
	"message_suppressions":  {"-----", "LV---", "LV--D"}, // written by the send gate from permanent failures; an owner clears a fixed address
	"outbox_held":           {"-----", "-----", "LV---"}, // messages waiting for a disabled connector; only the connector host writes
	"messages":              {"-----", "LV---", "LV---"}, // the send ledger: written only through /api/v1/messages and the gate
	"marketing_pauses":      {"-----", "LV---", "LV---"}, // written through /api/v1/profiles/{id}/marketing-pause (staff)
	"journeys":              {"-----", "LV---", "LV---"}, // owners edit through /api/v1/journeys, which validates the graph
	"journey_versions":      {"-----", "LV---", "LV---"}, // written by publishing; a version never changes
	"journey_runs":          {"-----", "LV---", "LV---"}, // written by the engine; runs are ended through /api/v1/journeys
	"journey_steps":         {"-----", "LV---", "LV---"}, // every step a run took, written by the engine
	"conversations":         {"-----", "LV---", "LV---"}, // written by the inbox; staff change them through /api/v1/conversations
	"conversation_messages": {"-----", "LV---", "LV---"}, // replies go through /api/v1/conversations/{id}/messages and the gate
	"inbox_settings":        {"-----", "LV---", "LV---"}, // owners write through /api/v1/inbox/settings/{key}, which checks each value
	"canned_responses":      {"-----", "LV---", "LVCUD"}, // agents use them; owners write
	"inbox_rules":           {"-----", "LV---", "LV---"}, // owners write through /api/v1/inbox/rules, which checks each rule
	"chat_widgets":          {"-----", "LV---", "LV---"}, // owners write through /api/v1/inbox/widgets (keys and origins are checked there)
	"chat_visitors":         {"-----", "-----", "-----"}, // widget tokens: the server only
	"inbox_agents":          {"-----", "LV---", "LV---"}, // presence and capacity, through /api/v1/inbox/agents
	"templates":             {"-----", "LV---", "LVCUD"}, // agents send with them; owners write (checked by a hook)
	"profile_notes":         {"-----", "LV---", "LV---"}, // writes go through /api/v1/profiles/{id}/notes (search index, timeline)
	"profile_tags":          {"-----", "LV---", "LV---"}, // writes go through /api/v1/profiles/{id}/tags (search index, segments)
	"metrics_daily":         {"-----", "LV---", "LV---"}, // rollups, written by the metrics module only
	"metrics_orders":        {"-----", "LV---", "LV---"}, // order facts, written by the metrics module only
	"metrics_customers":     {"-----", "LV---", "LV---"}, // per-customer rollups, written by the metrics module only
	"metrics_settings":      {"-----", "LV---", "LV---"}, // owners write through /api/v1/metrics/settings/{key}, which checks each value
	"users":                 {"-----", "-----", "-----"}, // PocketBase's default, locked by 0009 (no sign-up)

	// Written by un-merges that keep two customers apart.
	"profile_pair_blocks": {"-----", "LV---", "LV---"},

	// Attribution (core/metrics): touches, credits and their daily sums,
	// written by the metrics module only.
	"metrics_touches":           {"-----", "LV---", "LV---"},
	"metrics_credits":           {"-----", "LV---", "LV---"},
	"metrics_attribution_daily": {"-----", "LV---", "LV---"},
	"metrics_conversations":     {"-----", "LV---", "LV---"}, // inbox report rows, written by the metrics module only
	"metrics_inbox_days":        {"-----", "LV---", "LV---"}, // the inbox rows by day, written by the metrics module only
	// Funnels and cart abandonment (core/metrics/funnels.go).
	"metrics_funnels":        {"-----", "LV---", "LV---"}, // owners write through /api/v1/metrics/funnels, which checks each step
	"metrics_funnel_entries": {"-----", "LV---", "LV---"}, // customers' ways through funnels, written by the metrics module only
	"metrics_checkouts":      {"-----", "LV---", "LV---"}, // checkouts and their next order, written by the metrics module only
	"metrics_funnel_daily":   {"-----", "LV---", "LV---"}, // per-day entry counts, kept by triggers on metrics_funnel_entries
	"metrics_checkout_daily": {"-----", "LV---", "LV---"}, // per-day checkout counts, kept by triggers on metrics_checkouts
	// The journeys report's daily rollup of the send ledger and what it
	// has seen (core/metrics/journeys_rollup.go), written by the module only.
	"metrics_messages_daily": {"-----", "LV---", "LV---"},
	"metrics_messages_state": {"-----", "LV---", "LV---"},
	"metrics_holdout_daily":  {"-----", "LV---", "LV---"},
	"metrics_runs_daily":     {"-----", "LV---", "LV---"},
	// The sales report's sums of past months, worked out by the report and
	// forgotten by triggers on metrics_daily and metrics_orders.
	"metrics_sales_months": {"-----", "LV---", "LV---"},
}

// pocketBaseOwn are PocketBase's system collections. Their rules belong to
// PocketBase (superusers only, or the auth record's own rows) and are
// covered by its tests; nothing else is exempt from the matrix.
var pocketBaseOwn = map[string]bool{
	core.CollectionNameSuperusers:    true,
	core.CollectionNameExternalAuths: true,
	core.CollectionNameMFAs:          true,
	core.CollectionNameOTPs:          true,
	core.CollectionNameAuthOrigins:   true,
}

// sampleBodies gives valid bodies for collections whose values the generic
// generator cannot invent (a rule checked by a hook).
var sampleBodies = map[string]func(n string) map[string]any{
	"segments": func(n string) map[string]any {
		return map[string]any{"name": "matrix " + n, "rule": map[string]any{"trait": "email", "op": "exists"}}
	},
	"templates": func(n string) map[string]any {
		return map[string]any{"name": "matrix " + n, "channel": "sms", "body": "Hi {{ customer.first_name }}"}
	},
	// Server sources are made through /api/v1/sources, which shows the secret once.
	"sources": func(n string) map[string]any { return map[string]any{"name": "matrix-" + n, "kind": "browser"} },
}

const actions = "LVCUD"

func startAll(t *testing.T) *omnitest.Server {
	t.Helper()
	return omnitest.Start(t, omnitest.Options{Modules: func(o *app.Omni) []app.Module {
		return []app.Module{profiles.New(profiles.Options{}), messaging.New(messaging.Options{}), journeys.New(journeys.Options{}), inbox.New(inbox.Options{}), metrics.New(metrics.Options{}), connectors.New(connectors.Options{}), webui.New(nil)}
	}})
}

// staffToken creates a staff member and returns the record and its token.
func staffToken(t *testing.T, s *omnitest.Server, role string) (*core.Record, string) {
	t.Helper()
	col, err := s.PB.FindCollectionByNameOrId("staff")
	if err != nil {
		t.Fatal(err)
	}
	r := core.NewRecord(col)
	r.SetEmail(fmt.Sprintf("%s-%s@shop.test", role, uniq()))
	r.SetPassword("password-123456")
	r.Set("role", role)
	r.Set("name", role)
	if err := s.PB.Save(r); err != nil {
		t.Fatalf("create %s: %v", role, err)
	}
	tok, err := r.NewAuthToken()
	if err != nil {
		t.Fatal(err)
	}
	return r, tok
}

func TestPermissionMatrix(t *testing.T) {
	s := startAll(t)
	_, agent := staffToken(t, s, "agent")
	_, owner := staffToken(t, s, "owner")
	tokens := map[string]string{"guest": "", "agent": agent, "owner": owner}

	cols, err := s.PB.FindAllCollections()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range cols {
		if pocketBaseOwn[c.Name] {
			continue
		}
		seen[c.Name] = true
		want, ok := permissions[c.Name]
		if !ok {
			t.Errorf("collection %q has no line in permissions: decide what guest, agent and owner may do and add it", c.Name)
			continue
		}
		for _, role := range []string{"guest", "agent", "owner"} {
			allowed := map[string]string{"guest": want.guest, "agent": want.agent, "owner": want.owner}[role]
			if len(allowed) != len(actions) {
				t.Fatalf("permissions[%q].%s = %q: want five characters, one per action in %s", c.Name, role, allowed, actions)
			}
			t.Run(c.Name+"/"+role, func(t *testing.T) {
				checkRow(t, s, c, tokens[role], allowed)
			})
		}
	}
	for name := range permissions {
		if !seen[name] {
			t.Errorf("permissions has a line for %q, which is not a collection (renamed or dropped?)", name)
		}
	}
}

// checkRow runs the five actions as one role against a fresh record and
// checks both the answer and its effect in the database.
func checkRow(t *testing.T, s *omnitest.Server, c *core.Collection, token, allowed string) {
	target := seed(t, s, c)
	hdr := http.Header{}
	if token != "" {
		hdr.Set("Authorization", token)
	}
	base := "/api/collections/" + c.Name + "/records"
	may := func(action byte) bool { return strings.IndexByte(allowed, action) >= 0 }
	exists := func(id string) bool { r, _ := s.PB.FindRecordById(c, id); return r != nil }
	check := func(action string, ok bool, code int, body []byte, effect bool) {
		t.Helper()
		switch {
		case ok && (code < 200 || code > 299 || !effect):
			t.Errorf("%s should be allowed: %d (effect seen: %v) %.300s", action, code, effect, body)
		case !ok && (effect || code == http.StatusInternalServerError):
			t.Errorf("%s should be denied: %d (effect seen: %v) %.300s", action, code, effect, body)
		}
	}

	// List: a denied list is 403 (nil rule) or 200 without the record
	// (failing rule): PocketBase filters rather than refuses.
	code, body := s.Do(t, "GET", base+"?perPage=500&filter="+url.QueryEscape("id='"+target.Id+"'"), nil, hdr)
	var list struct {
		Items []map[string]any `json:"items"`
	}
	_ = json.Unmarshal(body, &list)
	listed := code == 200 && len(list.Items) == 1 && list.Items[0]["id"] == target.Id
	if !may('L') && code == 200 && len(list.Items) > 0 {
		listed = true
	}
	check("list", may('L'), code, body, listed)

	code, body = s.Do(t, "GET", base+"/"+target.Id, nil, hdr)
	check("view", may('V'), code, body, code == 200 && strings.Contains(string(body), target.Id))
	if !may('V') && code != 403 && code != 404 {
		t.Errorf("view denied with %d, want 403 or 404: %.200s", code, body)
	}

	before := count(t, s, c)
	code, body = s.Do(t, "POST", base, sample(t, s, c, true), hdr)
	check("create", may('C'), code, body, count(t, s, c) == before+1)
	if !may('C') && code != 400 && code != 403 {
		t.Errorf("create denied with %d, want 400 or 403: %.200s", code, body)
	}

	field, val := updatable(c)
	code, body = s.Do(t, "PATCH", base+"/"+target.Id, map[string]any{field: val}, hdr)
	after, _ := s.PB.FindRecordById(c, target.Id)
	changed := after != nil && after.GetString(field) != target.GetString(field)
	check("update", may('U'), code, body, changed)
	if !may('U') && code != 403 && code != 404 {
		t.Errorf("update denied with %d, want 403 or 404: %.200s", code, body)
	}

	code, body = s.Do(t, "DELETE", base+"/"+target.Id, nil, hdr)
	check("delete", may('D'), code, body, !exists(target.Id))
	if !may('D') && code != 403 && code != 404 {
		t.Errorf("delete denied with %d, want 403 or 404: %.200s", code, body)
	}
}

var counter atomic.Int64

func uniq() string { return fmt.Sprintf("%d%d", time.Now().UnixNano()%1e6, counter.Add(1)) }

// seed saves one record as a superuser would.
func seed(t *testing.T, s *omnitest.Server, c *core.Collection) *core.Record {
	t.Helper()
	r := core.NewRecord(c)
	for k, v := range sample(t, s, c, false) {
		r.Set(k, v)
	}
	if c.IsAuth() {
		r.SetPassword("password-123456")
	}
	if err := s.PB.Save(r); err != nil {
		t.Fatalf("seed %s: %v", c.Name, err)
	}
	// A fresh copy, so later comparisons see what is stored.
	saved, err := s.PB.FindRecordById(c, r.Id)
	if err != nil {
		t.Fatal(err)
	}
	return saved
}

// sample invents a valid body for c: every field that takes input gets a
// unique value of its type. forHTTP adds the password confirmation an auth
// collection's create wants.
func sample(t *testing.T, s *omnitest.Server, c *core.Collection, forHTTP bool) map[string]any {
	t.Helper()
	n := uniq()
	if f, ok := sampleBodies[c.Name]; ok {
		return f(n)
	}
	body := map[string]any{}
	for _, f := range c.Fields {
		if f.GetSystem() && f.GetName() != core.FieldNameEmail {
			continue
		}
		switch f := f.(type) {
		case *core.TextField:
			v := "m" + n
			if f.Max > 0 && len(v) > f.Max {
				v = v[len(v)-f.Max:]
			}
			body[f.Name] = v
		case *core.EmailField:
			body[f.Name] = "m" + n + "@matrix.test"
		case *core.URLField:
			body[f.Name] = "https://matrix.test/" + n
		case *core.EditorField:
			body[f.Name] = "<p>" + n + "</p>"
		case *core.NumberField:
			body[f.Name] = 1
		case *core.BoolField:
			body[f.Name] = true
		case *core.DateField:
			body[f.Name] = time.Now().UTC().Format("2006-01-02 15:04:05.000Z")
		case *core.SelectField:
			body[f.Name] = f.Values[len(f.Values)-1] // staff: "agent", never an owner
		case *core.JSONField:
			body[f.Name] = map[string]any{"matrix": n}
		case *core.RelationField:
			if f.Required {
				rel, err := s.PB.FindCollectionByNameOrId(f.CollectionId)
				if err != nil {
					t.Fatal(err)
				}
				body[f.Name] = seed(t, s, rel).Id
			}
		}
	}
	if c.IsAuth() && forHTTP {
		body["password"] = "password-123456"
		body["passwordConfirm"] = "password-123456"
	}
	return body
}

// updatable picks a field whose change the update check can see, with a
// new value for it.
func updatable(c *core.Collection) (string, any) {
	var names []string
	for _, f := range c.Fields {
		if _, ok := f.(*core.TextField); ok && !f.GetSystem() && !f.GetHidden() {
			names = append(names, f.GetName())
		}
	}
	if len(names) == 0 {
		panic(c.Name + " has no visible text field to update; give the permission test another way to see an update")
	}
	sort.Strings(names)
	return names[0], "u" + uniq()
}

func count(t *testing.T, s *omnitest.Server, c *core.Collection) int {
	t.Helper()
	n, err := s.PB.CountRecords(c)
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}
