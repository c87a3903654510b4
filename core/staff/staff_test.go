package staff_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/profiles"
)

type env struct {
	*omnitest.Server
	t *testing.T
}

func start(t *testing.T) *env {
	s := omnitest.Start(t, omnitest.Options{Modules: func(o *app.Omni) []app.Module {
		return []app.Module{profiles.New(profiles.Options{})}
	}})
	return &env{Server: s, t: t}
}

// member creates a staff member and returns its id and token.
func (e *env) member(email, role string) (string, http.Header) {
	e.t.Helper()
	col, err := e.PB.FindCollectionByNameOrId("staff")
	if err != nil {
		e.t.Fatal(err)
	}
	r := core.NewRecord(col)
	r.SetEmail(email)
	r.SetPassword("password-123456")
	r.Set("role", role)
	if err := e.PB.Save(r); err != nil {
		e.t.Fatalf("create %s: %v", email, err)
	}
	tok, err := r.NewAuthToken()
	if err != nil {
		e.t.Fatal(err)
	}
	return r.Id, http.Header{"Authorization": {tok}}
}

func (e *env) role(id string) string {
	e.t.Helper()
	r, err := e.PB.FindRecordById("staff", id)
	if err != nil {
		return "(gone)"
	}
	return r.GetString("role")
}

// refusedNaming checks a 4xx in PocketBase's error shape whose message and
// data both name field (PocketBase capitalises the message).
func refusedNaming(t *testing.T, what string, code, want int, body []byte, field string) {
	t.Helper()
	var apiErr struct {
		Status  int            `json:"status"`
		Message string         `json:"message"`
		Data    map[string]any `json:"data"`
	}
	_ = json.Unmarshal(body, &apiErr)
	if code != want || apiErr.Status != want || !strings.Contains(strings.ToLower(apiErr.Message), field) || apiErr.Data[field] == nil {
		t.Errorf("%s: %d %s, want %d with a message and data naming %q", what, code, body, want, field)
	}
}

// The reported attack: an agent made itself owner, then read write keys
// and erased a customer.
func TestAgentCannotMakeItselfOwner(t *testing.T) {
	e := start(t)
	e.member("owner@shop.test", "owner")
	agentID, agent := e.member("agent@shop.test", "agent")

	code, body := e.Do(t, "PATCH", "/api/collections/staff/records/"+agentID, map[string]any{"role": "owner"}, agent)
	refusedNaming(t, "agent PATCHes its own role", code, 403, body, "role")
	if got := e.role(agentID); got != "agent" {
		t.Fatalf("agent's role is now %q", got)
	}

	// Its own record stays editable, role included when unchanged (a
	// client sending the whole record back).
	code, body = e.Do(t, "PATCH", "/api/collections/staff/records/"+agentID, map[string]any{"name": "Arno", "role": "agent"}, agent)
	if code != 200 || !strings.Contains(string(body), `"Arno"`) {
		t.Errorf("agent renames itself: %d %s", code, body)
	}

	// What the escalated agent did next stays out of reach.
	if code, b := e.Track(t, "/v1/identify", map[string]any{"userId": "u1", "traits": map[string]any{"email": "jane@example.com"}}); code != 200 {
		t.Fatalf("identify: %d %s", code, b)
	}
	e.WaitEvents(t, 1)
	var profileID string
	if err := e.PB.DB().NewQuery("SELECT id FROM profiles LIMIT 1").Row(&profileID); err != nil {
		t.Fatalf("profile: %v", err)
	}
	if code, body := e.Do(t, "DELETE", "/api/v1/profiles/"+profileID, nil, agent); code != 403 {
		t.Errorf("agent erases a customer: %d %s", code, body)
	}
	_, body = e.Do(t, "GET", "/api/collections/sources/records", nil, agent)
	if strings.Contains(string(body), e.WriteKey) {
		t.Errorf("agent reads write keys: %s", body)
	}
}

func TestOnlyOwnersChangeRoles(t *testing.T) {
	e := start(t)
	ownerID, owner := e.member("owner@shop.test", "owner")
	_, agent := e.member("agent@shop.test", "agent")
	otherID, _ := e.member("other@shop.test", "agent")

	// Another member's role: the update rule hides the record (404).
	code, body := e.Do(t, "PATCH", "/api/collections/staff/records/"+otherID, map[string]any{"role": "owner"}, agent)
	if code != 404 || e.role(otherID) != "agent" {
		t.Errorf("agent promotes another: %d %s (role %s)", code, body, e.role(otherID))
	}
	// Demoting the owner is no better.
	code, body = e.Do(t, "PATCH", "/api/collections/staff/records/"+ownerID, map[string]any{"role": "agent"}, agent)
	if code != 404 || e.role(ownerID) != "owner" {
		t.Errorf("agent demotes the owner: %d %s (role %s)", code, body, e.role(ownerID))
	}
	// Creating an owner, or anyone.
	before, _ := e.PB.CountRecords("staff")
	code, body = e.Do(t, "POST", "/api/collections/staff/records", map[string]any{
		"email": "mallory@shop.test", "password": "password-123456", "passwordConfirm": "password-123456", "role": "owner",
	}, agent)
	if after, _ := e.PB.CountRecords("staff"); code < 400 || code > 403 || after != before {
		t.Errorf("agent creates an owner: %d %s (staff %d → %d)", code, body, before, after)
	}
	// An owner does all of it.
	code, body = e.Do(t, "PATCH", "/api/collections/staff/records/"+otherID, map[string]any{"role": "owner"}, owner)
	if code != 200 || e.role(otherID) != "owner" {
		t.Errorf("owner promotes an agent: %d %s", code, body)
	}
}

func TestLastOwnerStays(t *testing.T) {
	e := start(t)
	ownerID, owner := e.member("owner@shop.test", "owner")
	agentID, _ := e.member("agent@shop.test", "agent")

	code, body := e.Do(t, "PATCH", "/api/collections/staff/records/"+ownerID, map[string]any{"role": "agent"}, owner)
	refusedNaming(t, "last owner demotes itself", code, 400, body, "role")
	code, body = e.Do(t, "DELETE", "/api/collections/staff/records/"+ownerID, nil, owner)
	refusedNaming(t, "last owner deletes itself", code, 400, body, "role")
	if e.role(ownerID) != "owner" {
		t.Fatalf("the last owner is now %q", e.role(ownerID))
	}
	// Superusers and Go code meet the same guard.
	rec, _ := e.PB.FindRecordById("staff", ownerID)
	if err := e.PB.Delete(rec); err == nil || !strings.Contains(err.Error(), "last owner") {
		t.Errorf("app.Delete of the last owner: %v", err)
	}
	rec.Set("role", "agent")
	if err := e.PB.Save(rec); err == nil || e.role(ownerID) != "owner" {
		t.Errorf("app.Save demoting the last owner: %v (role %s)", err, e.role(ownerID))
	}

	// With a second owner, the first may step down and then leave.
	if code, body := e.Do(t, "PATCH", "/api/collections/staff/records/"+agentID, map[string]any{"role": "owner"}, owner); code != 200 {
		t.Fatalf("promote: %d %s", code, body)
	}
	if code, body := e.Do(t, "PATCH", "/api/collections/staff/records/"+ownerID, map[string]any{"role": "agent"}, owner); code != 200 || e.role(ownerID) != "agent" {
		t.Errorf("owner steps down beside another owner: %d %s", code, body)
	}
	rec, _ = e.PB.FindRecordById("staff", ownerID)
	if err := e.PB.Delete(rec); err != nil {
		t.Errorf("delete a former owner: %v", err)
	}
}

// Two owners demoting each other at once: the count and the write share a
// transaction, so one of them stays owner whatever the interleaving.
func TestTwoOwnersCannotDemoteEachOtherAtOnce(t *testing.T) {
	e := start(t)
	aID, a := e.member("a@shop.test", "owner")
	bID, b := e.member("b@shop.test", "owner")
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, req := range []struct {
		target string
		as     http.Header
	}{{bID, a}, {aID, b}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = e.Do(t, "PATCH", "/api/collections/staff/records/"+req.target, map[string]any{"role": "agent"}, req.as)
		}()
	}
	wg.Wait()
	var owners int
	if err := e.PB.DB().NewQuery("SELECT COUNT(*) FROM staff WHERE role = 'owner'").Row(&owners); err != nil {
		t.Fatal(err)
	}
	if owners != 1 {
		t.Errorf("owners left: %d (answers %v), want exactly 1", owners, codes)
	}
}
