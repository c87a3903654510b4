package profiles_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app/omnitest"
	_ "github.com/omni/omni/core/connectors" // its migrations: the connectors collection shop identifiers are read from
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
)

// liveProfiles counts profiles that were not merged into another.
func (e *env) liveProfiles(t *testing.T) int {
	return e.count(t, "SELECT COUNT(*) FROM profiles WHERE merged_into=''", nil)
}

// identifyBatch sends one identify per visitor over the tracking API and
// waits until they are stored.
func (e *env) identifyBatch(t *testing.T, prefix string, n int, msg func(i int) map[string]any) {
	t.Helper()
	var batch []map[string]any
	for i := 0; i < n; i++ {
		m := msg(i)
		m["type"], m["messageId"] = "identify", fmt.Sprintf("%s-%d", prefix, i)
		batch = append(batch, m)
	}
	if code, body := e.Track(t, "/v1/batch", map[string]any{"batch": batch}); code != 200 {
		t.Fatalf("batch: %d %s", code, body)
	}
	for _, m := range batch {
		e.waitStored(t, m["messageId"].(string))
	}
}

// waitStored waits until the tracking-API message is stored (and so
// resolved: both happen in one transaction). Counting events would not
// do: merges publish profile.merged events that are stored too.
func (e *env) waitStored(t *testing.T, messageID string) {
	t.Helper()
	e.WaitEvent(t, e.EventID(messageID))
}

// The scenario: ten different shoppers check out with the
// placeholder test@test.com. It is kept on each event but joins nobody:
// ten profiles, no email identity. Before the blocklist they became one.
func TestBlocklistedEmailOnTenBuyersMakesTenProfiles(t *testing.T) {
	e := start(t, profiles.Options{})
	e.identifyBatch(t, "tt", 10, func(i int) map[string]any {
		return map[string]any{"anonymousId": fmt.Sprintf("visitor-tt-%d", i), "traits": map[string]any{"email": "Test@Test.com", "name": fmt.Sprintf("Buyer %d", i)}}
	})
	if n := e.liveProfiles(t); n != 10 {
		t.Fatalf("%d profiles for 10 buyers sharing test@test.com, want 10", n)
	}
	if pid := e.profileOf(t, events.Email, "test@test.com"); pid != "" {
		t.Fatalf("the blocked email became an identity of %s", pid)
	}
	// Kept on the event, only not used to match.
	if n := e.count(t, "SELECT COUNT(*) FROM events WHERE json_extract(identities, '$.email')='test@test.com' AND profile != ''", nil); n != 10 {
		t.Fatalf("%d of 10 events keep the email and a profile", n)
	}
	d := e.detail(t, e.profileOf(t, events.AnonymousID, "visitor-tt-3"))
	if d.Email != "" || d.Name != "Buyer 3" {
		t.Fatalf("profile shows email %q name %q; want no email and its own name", d.Email, d.Name)
	}
}

// Junk device ids (Segment's list: ^[0-]*$, -1, null, anonymous,
// undefined) never join the people who send them.
func TestJunkAnonymousIDsNeverJoinPeople(t *testing.T) {
	e := start(t, profiles.Options{})
	junk := []string{"anonymous", "null", "undefined", "-1", "0", "00000000-0000-0000-0000-000000000000", "NULL"}
	e.identifyBatch(t, "junk", len(junk), func(i int) map[string]any {
		return map[string]any{"anonymousId": junk[i], "userId": fmt.Sprintf("member-%d", i)}
	})
	// The same junk ids again, now with two real people each.
	e.identifyBatch(t, "junk2", len(junk), func(i int) map[string]any {
		return map[string]any{"anonymousId": junk[i], "traits": map[string]any{"email": fmt.Sprintf("shopper%d@omni-shop.dev", i)}}
	})
	if n := e.liveProfiles(t); n != 2*len(junk) {
		t.Fatalf("%d profiles, want %d (no junk id joins anyone)", n, 2*len(junk))
	}
	if n := e.count(t, "SELECT COUNT(*) FROM identities WHERE kind='anonymous_id'", nil); n != 0 {
		t.Fatalf("%d junk anonymous ids stored as identities", n)
	}
	// An event with nothing but a junk id is kept, on no profile.
	e.identifyBatch(t, "only", 1, func(int) map[string]any { return map[string]any{"anonymousId": "undefined"} })
	if n := e.count(t, "SELECT COUNT(*) FROM events WHERE event_id={:id} AND profile=''", map[string]any{"id": e.EventID("only-0")}); n != 1 {
		t.Fatal("an event with only a junk id was not kept without a profile")
	}
	if n := e.liveProfiles(t); n != 2*len(junk) {
		t.Fatalf("an event with only a junk id made a profile: %d", n)
	}
}

// The shop's own phone and email (connector settings, saved or in
// omni.yaml) join no walk-in buyers; entries from omni.yaml too; and
// default_blocklist: false keeps only what the shop listed.
func TestShopIdentifiersFromConnectorSettingsAndConfig(t *testing.T) {
	e := start(t, profiles.Options{}, func(c *config.Config) {
		c.Profiles.Identity.Blocklist = []string{"*@mailinator.com", "/^guest-[0-9]+$/"}
		c.Profiles.Identity.DefaultBlocklist = false
		c.Connectors = map[string]map[string]any{"square": {"shop_phone": "(415) 555-0100"}}
	})
	// The WhatsApp connector saved in the admin: its business number; its
	// secret never counts, even if it looks like a phone.
	col, err := e.PB.FindCollectionByNameOrId("connectors")
	if err != nil {
		t.Fatal(err)
	}
	rec := core.NewRecord(col)
	rec.Set("name", "whatsapp")
	rec.Set("config", map[string]string{"business_phone": "+44 20 7946 0000", "verify_phone": "+1 212 555 0199", "phone_number_id": "106540352242922"})
	rec.Set("schema", []map[string]any{{"name": "business_phone"}, {"name": "verify_phone", "secret": true}, {"name": "phone_number_id"}})
	if err := e.PB.Save(rec); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []profiles.BlockEntry `json:"items"`
	}
	e.get(t, "/api/v1/profiles/blocklist", &list)
	got := map[string]string{}
	for _, it := range list.Items {
		got[it.Entry] = it.Origin
	}
	want := map[string]string{"*@mailinator.com": "config", "/^guest-[0-9]+$/": "config", "+14155550100": "connector:square", "+442079460000": "connector:whatsapp"}
	if len(got) != len(want) {
		t.Fatalf("list in force %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("list in force %v, want %v", got, want)
		}
	}
	// Five walk-in buyers given the shop's phones, a throwaway address, a
	// guest id; and two who share test@test.com, which is no longer blocked.
	e.identifyBatch(t, "walkin", 5, func(i int) map[string]any {
		tr := map[string]any{"phone": []string{"415-555-0100", "+442079460000", "+44 20 7946 0000", "4155550100", "415.555.0100"}[i],
			"email": fmt.Sprintf("x%d@Mailinator.com", i)}
		return map[string]any{"userId": fmt.Sprintf("guest-%d", i+1), "anonymousId": fmt.Sprintf("till-%d", i), "traits": tr}
	})
	if n := e.liveProfiles(t); n != 5 {
		t.Fatalf("%d profiles for 5 walk-in buyers given the shop's phones, want 5", n)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM identities WHERE kind IN ('phone','email','user_id')", nil); n != 0 {
		t.Fatalf("%d blocked identifiers stored as identities", n)
	}
	e.identifyBatch(t, "plain", 2, func(i int) map[string]any {
		return map[string]any{"anonymousId": fmt.Sprintf("web-%d", i), "traits": map[string]any{"email": "test@test.com"}}
	})
	if a, b := e.profileOf(t, events.AnonymousID, "web-0"), e.profileOf(t, events.AnonymousID, "web-1"); a == "" || a != b {
		t.Fatalf("with default_blocklist false, test@test.com should join as any email: %q %q", a, b)
	}

	// A new business number saved for the connector replaces the old one.
	rec.Set("config", map[string]string{"business_phone": "+44 20 7946 0999"})
	if err := e.PB.Save(rec); err != nil {
		t.Fatal(err)
	}
	var check struct {
		BlockedBy string `json:"blocked_by"`
	}
	if e.get(t, "/api/v1/profiles/blocklist?value=%2B442079460999", &check); check.BlockedBy != "+442079460999" {
		t.Fatalf("the new business number is not blocked: %q", check.BlockedBy)
	}
	if e.get(t, "/api/v1/profiles/blocklist?value=%2B442079460000", &check); check.BlockedBy != "" {
		t.Fatalf("the old business number is still blocked by %q", check.BlockedBy)
	}
}

// Owners add and remove entries in the admin; agents may only read; a bad
// entry is a 400 naming the field. An entry applies to the next events
// and removing it lets the identifier match again.
func TestBlocklistAdmin(t *testing.T) {
	e := start(t, profiles.Options{})
	post := func(tok string, body any) (int, []byte) {
		return e.Do(t, "POST", "/api/v1/profiles/blocklist", body, auth(tok))
	}
	if code, _ := e.Do(t, "GET", "/api/v1/profiles/blocklist", nil, nil); code != 401 {
		t.Fatalf("guest read: %d", code)
	}
	if code, body := e.Do(t, "GET", "/api/v1/profiles/blocklist?value=%2B1%20(415)%20555-0100", nil, auth(e.agent)); code != 200 {
		t.Fatalf("agent read: %d %s", code, body)
	}
	code, body := post(e.agent, map[string]any{"entry": "front@myshop.com"})
	omnitest.WantError(t, code, body, http.StatusForbidden)
	code, body = post(e.owner, map[string]any{"entry": "/guest-(/"})
	omnitest.WantFieldError(t, code, body, http.StatusBadRequest, "entry")
	code, body = post(e.owner, map[string]any{"entry": "  "})
	omnitest.WantFieldError(t, code, body, http.StatusBadRequest, "entry")
	code, body = post(e.owner, map[string]any{"entry": "NULL"}) // already built in
	omnitest.WantFieldError(t, code, body, http.StatusBadRequest, "entry")

	code, body = post(e.owner, map[string]any{"entry": "+1 (415) 555-0100", "note": "the shop's landline"})
	if code != 200 {
		t.Fatalf("add: %d %s", code, body)
	}
	var added profiles.BlockEntry
	_ = json.Unmarshal(body, &added)
	var check struct {
		BlockedBy string `json:"blocked_by"`
	}
	e.get(t, "/api/v1/profiles/blocklist?value=415-555-0100", &check)
	if added.ID == "" || added.Origin != "admin" || check.BlockedBy != "+1 (415) 555-0100" {
		t.Fatalf("added %+v; blocked_by %q", added, check.BlockedBy)
	}
	e.identifyBatch(t, "land", 2, func(i int) map[string]any {
		return map[string]any{"anonymousId": fmt.Sprintf("pos-%d", i), "traits": map[string]any{"phone": "+14155550100"}}
	})
	if a, b := e.profileOf(t, events.AnonymousID, "pos-0"), e.profileOf(t, events.AnonymousID, "pos-1"); a == "" || a == b {
		t.Fatalf("the blocked landline joined two buyers: %q %q", a, b)
	}

	code, _ = e.Do(t, "DELETE", "/api/v1/profiles/blocklist/"+added.ID, nil, auth(e.agent))
	if code != 403 {
		t.Fatalf("agent delete: %d", code)
	}
	code, body = e.Do(t, "DELETE", "/api/v1/profiles/blocklist/nope", nil, auth(e.owner))
	omnitest.WantError(t, code, body, http.StatusNotFound)
	if code, body := e.Do(t, "DELETE", "/api/v1/profiles/blocklist/"+added.ID, nil, auth(e.owner)); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	e.identifyBatch(t, "land2", 2, func(i int) map[string]any {
		return map[string]any{"anonymousId": fmt.Sprintf("pos2-%d", i), "traits": map[string]any{"phone": "+14155550100"}}
	})
	if a, b := e.profileOf(t, events.AnonymousID, "pos2-0"), e.profileOf(t, events.AnonymousID, "pos2-1"); a == "" || a != b {
		t.Fatalf("after removal the landline should match again: %q %q", a, b)
	}
}
