package profiles_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
)

const sharedPhone = "+447700900777"

// undo un-merges as the owner and decodes the answer.
func (e *env) undo(t *testing.T, profileID, mergeID string, body any) *profiles.Unmerged {
	t.Helper()
	code, raw := e.Do(t, "POST", "/api/v1/profiles/"+profileID+"/merges/"+mergeID+"/undo", body, auth(e.owner))
	if code != 200 {
		t.Fatalf("undo %s: %d %s", mergeID, code, raw)
	}
	var out profiles.Unmerged
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	// profile.unmerged goes out through the relay and is stored like any
	// event: wait for it, so publish's count of stored events stays true.
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return e.count(t, "SELECT COUNT(*) FROM events WHERE event_id={:id} AND type='profile.unmerged' AND profile={:p}",
			map[string]any{"id": "unmerge:" + mergeID, "p": out.Survivor.ID}) == 1
	}, "profile.unmerged of %s stored", mergeID)
	return &out
}

func (e *env) eventsOf(t *testing.T, pid string) []string {
	t.Helper()
	var ids []string
	if err := e.PB.DB().NewQuery("SELECT event_id FROM events WHERE profile={:p} AND type NOT LIKE 'profile.%' AND type NOT LIKE 'segment.%' ORDER BY event_id").
		Bind(map[string]any{"p": pid}).Column(&ids); err != nil {
		t.Fatal(err)
	}
	return ids
}

func sameSet(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	for _, w := range want {
		if !seen[w] {
			return false
		}
	}
	return true
}

// TestUnmergeSharedPhone: Ann (Shopify, by email) and Bob (Square, by a
// phone) become one when a Shopify order carries Ann's email and the phone
// Bob gave. The owner un-merges: Bob returns under his old id with his
// phone and his order, both lifetime values are recomputed, the ledger
// says who undid it, profile.unmerged is published, and the next order
// carrying Ann's email and that phone does not join them again.
func TestUnmergeSharedPhone(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	bigSpenders := e.createSegment(t, "spent 60+", `{"trait":"lifetime_value.GBP","op":"gte","value":60}`)
	annOrder := ev(events.OrderPlaced, "shopify", now.Add(-5*time.Hour), events.Identities{events.Email: "ann@omni-shop.dev"},
		map[string]any{"order_name": "#2001", "total": 30, "currency": "GBP"}, events.ChannelWeb)
	annName := ev(events.CustomerUpdated, "shopify", now.Add(-5*time.Hour+time.Minute), events.Identities{events.Email: "ann@omni-shop.dev"},
		map[string]any{"first_name": "Ann", "last_name": "Lee"}, "")
	bobName := ev(events.CustomerUpdated, "square", now.Add(-4*time.Hour), events.Identities{events.Phone: sharedPhone},
		map[string]any{"first_name": "Bob", "last_name": "Stone"}, "")
	bobOrder := ev(events.OrderPlaced, "square", now.Add(-4*time.Hour+time.Minute), events.Identities{events.Phone: sharedPhone},
		map[string]any{"order_id": "sq-1", "total": 45, "currency": "GBP"}, events.ChannelPOS)
	e.publish(t, annOrder, annName, bobName, bobOrder)
	ann, bob := e.profileOf(t, events.Email, "ann@omni-shop.dev"), e.profileOf(t, events.Phone, sharedPhone)
	if ann == "" || bob == "" || ann == bob {
		t.Fatalf("want two profiles: %q %q", ann, bob)
	}
	joining := ev(events.OrderPlaced, "shopify", now.Add(-3*time.Hour), events.Identities{events.Email: "ann@omni-shop.dev", events.Phone: sharedPhone},
		map[string]any{"order_name": "#2002", "total": 20, "currency": "GBP"}, events.ChannelWeb)
	e.publish(t, joining)
	if e.profileOf(t, events.Phone, sharedPhone) != ann {
		t.Fatal("the order carrying both did not merge them")
	}
	if d := e.detail(t, ann); d.Computed.LifetimeValue["GBP"] != 95 || d.Computed.OrdersCount != 3 {
		t.Fatalf("merged: %+v", d.Computed)
	}
	if e.members(t, bigSpenders) != 1 {
		t.Fatal("the merged customer (95) is not in the 60+ segment")
	}
	mg := e.mergesOf(t, ann)
	if len(mg) != 1 || mg[0].Loser != bob {
		t.Fatalf("merges: %+v", mg)
	}
	path := "/api/v1/profiles/" + ann + "/merges/" + mg[0].ID + "/undo"

	// Agents may not; a bad body names its field; an unknown merge is a 404.
	code, body := e.Do(t, "POST", path, map[string]any{}, auth(e.agent))
	omnitest.WantError(t, code, body, 403)
	code, body = e.Do(t, "POST", path, map[string]any{"block_identifier": "yes"}, auth(e.owner))
	omnitest.WantFieldError(t, code, body, 400, "block_identifier")
	code, body = e.Do(t, "POST", path, map[string]any{"block_identfier": true}, auth(e.owner))
	omnitest.WantFieldError(t, code, body, 400, "block_identfier")
	code, body = e.Do(t, "POST", path, "[true]", auth(e.owner))
	omnitest.WantFieldError(t, code, body, 400, "body")
	code, body = e.Do(t, "POST", "/api/v1/profiles/"+ann+"/merges/nomerge/undo", nil, auth(e.owner))
	omnitest.WantError(t, code, body, 404)
	code, body = e.Do(t, "POST", "/api/v1/profiles/nobody/merges/"+mg[0].ID+"/undo", nil, auth(e.owner))
	omnitest.WantError(t, code, body, 404)
	if e.profileOf(t, events.Phone, sharedPhone) != ann {
		t.Fatal("a refused un-merge changed something")
	}

	// From Bob's old id too: it resolves to Ann, whose merge it is.
	out := e.undo(t, bob, mg[0].ID, map[string]any{"block_identifier": true})
	if out.Restored.ID != bob || out.Survivor.ID != ann || out.Restored.Name != "Bob Stone" || out.Survivor.Name != "Ann Lee" || !out.PairBlocked {
		t.Fatalf("answer: %+v", out)
	}
	if out.Merge.UndoneBy != "owner" || out.Merge.UndoneAt == "" {
		t.Errorf("ledger in the answer: %+v", out.Merge)
	}
	if e.profileOf(t, events.Phone, sharedPhone) != bob || e.profileOf(t, events.Email, "ann@omni-shop.dev") != ann {
		t.Fatal("identities not split back")
	}
	if got, want := e.eventsOf(t, ann), []string{annOrder.ID, annName.ID, joining.ID}; !sameSet(got, want) {
		t.Errorf("Ann's events = %v, want %v", got, want)
	}
	if got, want := e.eventsOf(t, bob), []string{bobName.ID, bobOrder.ID}; !sameSet(got, want) {
		t.Errorf("Bob's events = %v, want %v", got, want)
	}
	da, db := e.detail(t, ann), e.detail(t, bob)
	if da.ID != ann || da.Computed.LifetimeValue["GBP"] != 50 || da.Computed.OrdersCount != 2 || da.Name != "Ann Lee" || da.Phone != "" {
		t.Errorf("Ann after: %s %q %q %+v", da.ID, da.Name, da.Phone, da.Computed)
	}
	if db.ID != bob || db.Computed.LifetimeValue["GBP"] != 45 || db.Computed.OrdersCount != 1 || db.Name != "Bob Stone" || db.Phone != sharedPhone {
		t.Errorf("Bob after: %s %q %q %+v", db.ID, db.Name, db.Phone, db.Computed)
	}
	// Neither has spent 60 on their own.
	if n := e.members(t, bigSpenders); n != 0 {
		t.Errorf("%d members of the 60+ segment after the un-merge, want 0", n)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.segEvents(t, "segment.exited", bigSpenders) == 1 }, "segment.exited stored")
	// Both pages show the merge as undone, by whom.
	for _, id := range []string{ann, bob} {
		got := e.mergesOf(t, id)
		if len(got) != 1 || got[0].UndoneBy != "owner" || got[0].UndoneAt == "" || !got[0].PairBlocked {
			t.Errorf("merges of %s after: %+v", id, got)
		}
	}
	// Twice is a 409 that says so.
	code, body = e.Do(t, "POST", path, nil, auth(e.owner))
	if apiErr := omnitest.WantError(t, code, body, 409); !strings.Contains(apiErr.Message, "already un-merged by owner") {
		t.Errorf("409 message: %q", apiErr.Message)
	}

	// The next order with Ann's email and that phone stays Ann's and does
	// not join them; one with the phone alone is Bob's.
	again := ev(events.OrderPlaced, "shopify", now.Add(-2*time.Hour), events.Identities{events.Email: "ann@omni-shop.dev", events.Phone: sharedPhone},
		map[string]any{"order_name": "#2003", "total": 10, "currency": "GBP"}, events.ChannelWeb)
	phoneOnly := ev(events.MessageReceived, "whatsapp", now.Add(-time.Hour), events.Identities{events.Phone: sharedPhone},
		map[string]any{"text": "where is my order?"}, events.ChannelWhatsApp)
	e.publish(t, again, phoneOnly)
	if e.profileOf(t, events.Phone, sharedPhone) != bob || len(e.mergesOf(t, ann)) != 1 {
		t.Fatal("the pair was merged again")
	}
	if got := e.eventsOf(t, bob); !sameSet(got, []string{bobName.ID, bobOrder.ID, phoneOnly.ID}) {
		t.Errorf("Bob's events after: %v", got)
	}
	if d := e.detail(t, ann); d.Computed.OrdersCount != 3 {
		t.Errorf("Ann's orders after the next order: %d", d.Computed.OrdersCount)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_conflicts WHERE reason='kept_apart_by_owner'", nil); n != 1 {
		t.Errorf("kept-apart conflicts: %d", n)
	}
}

// TestUnmergeWithoutKeepingApart: without block_identifier the next event
// carrying both identifiers joins the two again (a new ledger row).
func TestUnmergeWithoutKeepingApart(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	e.publish(t, ev(events.Identify, "web", now.Add(-3*time.Hour), events.Identities{events.Email: "cy@omni-shop.dev"}, nil, events.ChannelWeb),
		ev(events.MessageReceived, "whatsapp", now.Add(-2*time.Hour), events.Identities{events.Phone: sharedPhone}, nil, events.ChannelWhatsApp))
	both := func() *events.Event {
		return ev(events.Identify, "web", now.Add(-time.Hour), events.Identities{events.Email: "cy@omni-shop.dev", events.Phone: sharedPhone}, nil, events.ChannelWeb)
	}
	e.publish(t, both())
	cy := e.profileOf(t, events.Email, "cy@omni-shop.dev")
	mg := e.mergesOf(t, cy)
	out := e.undo(t, cy, mg[0].ID, nil)
	if out.PairBlocked || e.profileOf(t, events.Phone, sharedPhone) == cy {
		t.Fatalf("undo: %+v", out)
	}
	e.publish(t, both())
	// Merged again (which survives depends on creation order, equal here).
	if e.profileOf(t, events.Phone, sharedPhone) != e.profileOf(t, events.Email, "cy@omni-shop.dev") || len(e.mergesOf(t, cy)) != 2 {
		t.Fatal("without keeping them apart the next event should merge them again")
	}
}

// TestUnmergeStacked: Dee's visitor profile was merged into Bea (beneath),
// then Bea into Al (by phone), then Cal into Al (by user id, on top).
// Un-merging Bea while Cal's merge is on top is refused with a message
// naming it; un-merging Cal first, then Bea, gives three customers, and
// Dee's old id still resolves to Bea.
func TestUnmergeStacked(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	at := func(h int) time.Time { return now.Add(time.Duration(h-10) * time.Hour) }
	e.publish(t, ev(events.Identify, "web", at(0), events.Identities{events.Email: "al@omni-shop.dev"}, map[string]any{"traits": map[string]any{"name": "Al"}}, events.ChannelWeb))
	e.publish(t, ev(events.Identify, "web", at(1), events.Identities{events.Phone: sharedPhone}, map[string]any{"traits": map[string]any{"name": "Bea"}}, events.ChannelWeb))
	e.publish(t, ev(events.Identify, "web", at(2), events.Identities{events.UserID: "cal-1"}, map[string]any{"traits": map[string]any{"name": "Cal"}}, events.ChannelWeb))
	deeView := ev("page.viewed", "web", at(3), events.Identities{events.AnonymousID: "anon-dee"}, nil, events.ChannelWeb)
	e.publish(t, deeView)
	al, bea, cal, dee := e.profileOf(t, events.Email, "al@omni-shop.dev"), e.profileOf(t, events.Phone, sharedPhone),
		e.profileOf(t, events.UserID, "cal-1"), e.profileOf(t, events.AnonymousID, "anon-dee")
	e.publish(t, ev(events.Identify, "web", at(4), events.Identities{events.Phone: sharedPhone, events.AnonymousID: "anon-dee"}, nil, events.ChannelWeb))
	e.publish(t, ev(events.Identify, "web", at(5), events.Identities{events.Email: "al@omni-shop.dev", events.Phone: sharedPhone}, nil, events.ChannelWeb))
	e.publish(t, ev(events.Identify, "web", at(6), events.Identities{events.Email: "al@omni-shop.dev", events.UserID: "cal-1"}, nil, events.ChannelWeb))
	for _, id := range []string{bea, cal, dee} {
		if e.profileOf(t, events.Email, "al@omni-shop.dev") != al || e.detail(t, id).ID != al {
			t.Fatalf("%s not merged into Al", id)
		}
	}
	mg := e.mergesOf(t, al)
	if len(mg) != 3 || mg[0].Loser != dee || mg[1].Loser != bea || mg[2].Loser != cal {
		t.Fatalf("merges: %+v", mg)
	}
	code, body := e.Do(t, "POST", "/api/v1/profiles/"+al+"/merges/"+mg[1].ID+"/undo", nil, auth(e.owner))
	apiErr := omnitest.WantError(t, code, body, 409)
	if !strings.Contains(apiErr.Message, "Al and Cal") || !strings.Contains(apiErr.Message, "Un-merge that one first") {
		t.Errorf("refusal: %q", apiErr.Message)
	}
	if e.profileOf(t, events.Phone, sharedPhone) != al {
		t.Fatal("the refused un-merge changed something")
	}
	e.undo(t, al, mg[2].ID, nil)
	out := e.undo(t, al, mg[1].ID, nil)
	if out.Restored.ID != bea || out.Restored.Name != "Bea" {
		t.Fatalf("restored: %+v", out.Restored)
	}
	if e.profileOf(t, events.UserID, "cal-1") != cal || e.profileOf(t, events.Phone, sharedPhone) != bea ||
		e.profileOf(t, events.AnonymousID, "anon-dee") != bea || e.profileOf(t, events.Email, "al@omni-shop.dev") != al {
		t.Fatal("identities not back on three customers")
	}
	if d := e.detail(t, dee); d.ID != bea {
		t.Errorf("Dee's old id resolves to %s, want Bea %s", d.ID, bea)
	}
	if got := e.eventsOf(t, bea); !contains(got, deeView.ID) || len(got) != 3 {
		t.Errorf("Bea's events: %v", got)
	}
	if got := e.eventsOf(t, cal); len(got) != 2 { // its own and the one that also carried its user id
		t.Errorf("Cal's events: %v", got)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestUnmergeIsOneTransaction: when the last step of an un-merge fails (a
// trigger refuses the ledger update), nothing of it stays: identities,
// events, both profiles and the ledger are as before, and a later try
// works. Erasing a customer kept apart also deletes the pair block, which
// names the identifier.
func TestUnmergeIsOneTransaction(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	e.publish(t, ev(events.OrderPlaced, "shopify", now.Add(-3*time.Hour), events.Identities{events.Email: "dee@omni-shop.dev"}, map[string]any{"total": 5}, events.ChannelWeb))
	e.publish(t, ev(events.OrderPlaced, "square", now.Add(-2*time.Hour), events.Identities{events.Phone: sharedPhone}, map[string]any{"total": 7}, events.ChannelPOS))
	e.publish(t, ev(events.Identify, "web", now.Add(-time.Hour), events.Identities{events.Email: "dee@omni-shop.dev", events.Phone: sharedPhone}, nil, events.ChannelWeb))
	dee := e.profileOf(t, events.Email, "dee@omni-shop.dev")
	mg := e.mergesOf(t, dee)
	if len(mg) != 1 {
		t.Fatalf("merges: %+v", mg)
	}
	snapshot := func() string {
		var rows []string
		for _, q := range []string{
			"SELECT group_concat(kind || '=' || value || '@' || profile, ',') FROM (SELECT * FROM identities ORDER BY kind, value)",
			"SELECT group_concat(event_id || '@' || profile, ',') FROM (SELECT * FROM events WHERE type NOT LIKE 'profile.%' ORDER BY event_id)",
			"SELECT group_concat(id || '>' || merged_into || ':' || orders_count, ',') FROM (SELECT * FROM profiles ORDER BY id)",
			"SELECT group_concat(id || ':' || undone_at, ',') FROM profile_merges",
		} {
			var s string
			if err := e.PB.DB().NewQuery(q).Row(&s); err != nil {
				t.Fatal(err)
			}
			rows = append(rows, s)
		}
		return strings.Join(rows, "\n")
	}
	before := snapshot()
	if _, err := e.PB.DB().NewQuery(`CREATE TRIGGER refuse_undo BEFORE UPDATE OF undone_at ON profile_merges
BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`).Execute(); err != nil {
		t.Fatal(err)
	}
	code, body := e.Do(t, "POST", "/api/v1/profiles/"+dee+"/merges/"+mg[0].ID+"/undo", map[string]any{"block_identifier": true}, auth(e.owner))
	omnitest.WantError(t, code, body, 500)
	if after := snapshot(); after != before {
		t.Fatalf("a failed un-merge left changes:\nbefore %s\nafter  %s", before, after)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_pair_blocks", nil); n != 0 {
		t.Fatalf("%d pair blocks after a failed un-merge", n)
	}
	if _, err := e.PB.DB().NewQuery("DROP TRIGGER refuse_undo").Execute(); err != nil {
		t.Fatal(err)
	}
	out := e.undo(t, dee, mg[0].ID, map[string]any{"block_identifier": true})
	if e.detail(t, out.Restored.ID).Computed.OrdersCount != 1 || e.detail(t, dee).Computed.OrdersCount != 1 {
		t.Fatal("the retried un-merge did not split the orders")
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_pair_blocks", nil); n != 1 {
		t.Fatalf("pair blocks after keeping them apart: %d", n)
	}
	if code, body := e.Do(t, "DELETE", "/api/v1/profiles/"+out.Restored.ID, nil, auth(e.owner)); code != 200 {
		t.Fatalf("erase: %d %s", code, body)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_pair_blocks", nil); n != 0 {
		t.Errorf("the pair block (it names the phone) survived erasing one of the pair: %d", n)
	}
}

// TestUnmergeSplitsSearch: after an un-merge each customer is found by
// their own name, order number, tag and note again, and not the other's
// (the merge had moved all of those words to the survivor).
func TestUnmergeSplitsSearch(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	e.publish(t,
		ev(events.CustomerUpdated, "shopify", now.Add(-5*time.Hour), events.Identities{events.Email: "dee@omni-shop.dev"},
			map[string]any{"first_name": "Dee", "last_name": "Marlow"}, ""),
		ev(events.OrderPlaced, "shopify", now.Add(-5*time.Hour+time.Minute), events.Identities{events.Email: "dee@omni-shop.dev"},
			map[string]any{"order_name": "#3101", "total": 10, "currency": "GBP"}, events.ChannelWeb),
		ev(events.CustomerUpdated, "square", now.Add(-4*time.Hour), events.Identities{events.Phone: sharedPhone},
			map[string]any{"first_name": "Eli", "last_name": "Quarry"}, ""),
		ev(events.OrderPlaced, "square", now.Add(-4*time.Hour+time.Minute), events.Identities{events.Phone: sharedPhone},
			map[string]any{"order_name": "#3202", "total": 12, "currency": "GBP"}, events.ChannelPOS),
	)
	dee, eli := e.profileOf(t, events.Email, "dee@omni-shop.dev"), e.profileOf(t, events.Phone, sharedPhone)
	if dee == "" || eli == "" || dee == eli {
		t.Fatalf("want two profiles: %q %q", dee, eli)
	}
	for path, body := range map[string]any{"/tags": map[string]any{"tag": "wholesale"}, "/notes": map[string]any{"text": "asked about bulk zircons"}} {
		if code, raw := e.Do(t, "POST", "/api/v1/profiles/"+eli+path, body, auth(e.owner)); code/100 != 2 {
			t.Fatalf("POST %s: %d %s", path, code, raw)
		}
	}
	e.publish(t, ev(events.OrderPlaced, "shopify", now.Add(-3*time.Hour), events.Identities{events.Email: "dee@omni-shop.dev", events.Phone: sharedPhone},
		map[string]any{"order_name": "#3303", "total": 5, "currency": "GBP"}, events.ChannelWeb))
	find := func(q string) []string {
		t.Helper()
		var out struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		e.get(t, "/api/v1/profiles?who=all&q="+strings.ReplaceAll(q, "#", "%23"), &out)
		var ids []string
		for _, it := range out.Items {
			ids = append(ids, it.ID)
		}
		return ids
	}
	for _, q := range []string{"Quarry", "#3202", "wholesale", "zircons", "Marlow"} {
		if got := find(q); !sameSet(got, []string{dee}) {
			t.Fatalf("merged: %q finds %v, want the merged customer %s", q, got, dee)
		}
	}
	mg := e.mergesOf(t, dee)
	if len(mg) != 1 {
		t.Fatalf("merges: %+v", mg)
	}
	e.undo(t, dee, mg[0].ID, map[string]any{"block_identifier": true})
	for q, want := range map[string]string{"Quarry": eli, "#3202": eli, "wholesale": eli, "zircons": eli, "Marlow": dee, "#3101": dee} {
		if got := find(q); !sameSet(got, []string{want}) {
			t.Fatalf("un-merged: %q finds %v, want only %s (Dee %s, Eli %s)", q, got, want, dee, eli)
		}
	}
}
