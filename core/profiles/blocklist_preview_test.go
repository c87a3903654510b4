package profiles_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
)

const frontDesk = "+14155550100"

// TestBlocklistPreviewMatchesRecheck: a clerk typed the shop's front-desk
// phone on three buyers' orders, which merged them into Ann; meanwhile Ann
// also signed in with her user id (a merge by another identifier on top of
// the first one). Previewing the phone as a blocklist entry says one merge
// would split (Cy's, the newest) and one stays (Bo's: the sign-in merge
// sits on it); adding it with re-check does exactly that.
func TestBlocklistPreviewMatchesRecheck(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	at := func(m int) time.Time { return now.Add(time.Duration(m-60) * time.Minute) }
	for i, name := range []string{"ann", "bo", "cy"} {
		e.publish(t, ev(events.CustomerUpdated, "shopify", at(i), events.Identities{events.Email: name + "@omni-shop.dev"},
			map[string]any{"first_name": name}, ""))
	}
	e.publish(t, ev(events.Identify, "web", at(3), events.Identities{events.UserID: "ann-1"}, nil, events.ChannelWeb))
	order := func(name string, m int) *events.Event {
		return ev(events.OrderPlaced, "square", at(m), events.Identities{events.Email: name + "@omni-shop.dev", events.Phone: frontDesk},
			map[string]any{"total": 10}, events.ChannelPOS)
	}
	e.publish(t, order("ann", 10))
	e.publish(t, order("bo", 11)) // Bo joins Ann by the phone
	e.publish(t, ev(events.Identify, "web", at(12), events.Identities{events.UserID: "ann-1", events.Email: "ann@omni-shop.dev"}, nil, events.ChannelWeb))
	e.publish(t, order("cy", 13)) // Cy joins Ann by the phone
	ann := e.profileOf(t, events.Email, "ann@omni-shop.dev")
	if len(e.mergesOf(t, ann)) != 3 || e.profileOf(t, events.Email, "cy@omni-shop.dev") != ann {
		t.Fatalf("setup: merges %+v", e.mergesOf(t, ann))
	}
	before := e.liveProfiles(t)

	// Owners only; the entry is checked and named.
	code, body := e.Do(t, "POST", "/api/v1/profiles/blocklist/preview", map[string]any{"entry": frontDesk}, auth(e.agent))
	omnitest.WantError(t, code, body, 403)
	code, body = e.Do(t, "POST", "/api/v1/profiles/blocklist/preview", map[string]any{"entry": "/[/"}, auth(e.owner))
	omnitest.WantFieldError(t, code, body, 400, "entry")
	code, body = e.Do(t, "POST", "/api/v1/profiles/blocklist/preview", map[string]any{}, auth(e.owner))
	omnitest.WantFieldError(t, code, body, 400, "entry")

	code, body = e.Do(t, "POST", "/api/v1/profiles/blocklist/preview", map[string]any{"entry": frontDesk}, auth(e.owner))
	var pv profiles.BlockPreview
	if code != 200 || json.Unmarshal(body, &pv) != nil {
		t.Fatalf("preview: %d %s", code, body)
	}
	if pv.Identities != 1 || pv.Profiles != 1 || pv.Splits != 1 || pv.Stuck != 1 || pv.AlreadyBlockedBy != "" {
		t.Fatalf("preview: %s", body)
	}
	if p := pv.SplitExamples[0]; p.Loser != "cy" || p.Survivor != "ann" || p.Value != frontDesk {
		t.Errorf("split example: %+v", p)
	}
	if p := pv.StuckExamples[0]; p.Loser != "bo" {
		t.Errorf("stuck example: %+v", p)
	}
	if len(pv.ProfileExamples) != 1 || pv.ProfileExamples[0] != "ann" {
		t.Errorf("profile examples: %v", pv.ProfileExamples)
	}
	if e.liveProfiles(t) != before || e.profileOf(t, events.Email, "cy@omni-shop.dev") != ann {
		t.Fatal("the preview changed something")
	}

	code, body = e.Do(t, "POST", "/api/v1/profiles/blocklist", map[string]any{"entry": frontDesk, "recheck": true}, auth(e.owner))
	var applied struct {
		ID      string            `json:"id"`
		Resplit *profiles.Resplit `json:"resplit"`
	}
	if code != 200 || json.Unmarshal(body, &applied) != nil || applied.Resplit == nil {
		t.Fatalf("add with re-check: %d %s", code, body)
	}
	if applied.Resplit.Split != pv.Splits || applied.Resplit.Stuck != pv.Stuck || applied.Resplit.Error != "" {
		t.Errorf("applied %+v, previewed %+v", applied.Resplit, pv)
	}
	if got := e.liveProfiles(t); got != before+pv.Splits {
		t.Errorf("live profiles %d, want %d", got, before+pv.Splits)
	}
	cy := e.profileOf(t, events.Email, "cy@omni-shop.dev")
	if cy == ann || e.profileOf(t, events.Email, "bo@omni-shop.dev") != ann {
		t.Errorf("cy %s, bo %s, ann %s", cy, e.profileOf(t, events.Email, "bo@omni-shop.dev"), ann)
	}
	// Cy's order is Cy's again (her email outranks the blocked phone).
	if d := e.detail(t, cy); d.Computed.OrdersCount != 1 {
		t.Errorf("Cy's orders: %d", d.Computed.OrdersCount)
	}
	// Previewing again: the entry is in force and nothing is left to split.
	code, body = e.Do(t, "POST", "/api/v1/profiles/blocklist/preview", map[string]any{"entry": frontDesk}, auth(e.owner))
	if code != 200 || json.Unmarshal(body, &pv) != nil || pv.AlreadyBlockedBy == "" || pv.Splits != 0 || pv.Stuck != 1 {
		t.Errorf("preview after: %d %s", code, body)
	}
}
