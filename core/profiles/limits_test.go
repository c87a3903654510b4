package profiles_test

import (
	"encoding/json"
	"testing"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
)

// Before an owner changes profiles.identity_cap, the preview says what the
// new cap would have done to today's customers: a lower one names who
// holds more identities than it allows, a higher one counts the refused
// merges and attachments it would let through.
func TestIdentityCapPreview(t *testing.T) {
	e := start(t, profiles.Options{IdentityCap: 2})
	now := e.clock.Now()
	ids := func(kv ...string) events.Identities {
		out := events.Identities{}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	e.publish(t,
		ev("customer.updated", "shopify", now, ids(events.UserID, "u-ann", events.Email, "ann1@omni-shop.dev"), map[string]any{"name": "Ann Lee"}, "web"),
		ev("customer.updated", "shopify", now, ids(events.UserID, "u-ann", events.Email, "ann2@omni-shop.dev"), nil, "web"),
	)
	// A third email for Ann is refused (cap 2): an attachment conflict.
	e.publish(t, ev("customer.updated", "shopify", now, ids(events.UserID, "u-ann", events.Email, "ann3@omni-shop.dev"), nil, "web"))
	// Cal has his own email and a phone; an event with Ann's email and
	// Cal's phone would give one profile three emails: a refused merge.
	e.publish(t, ev("customer.updated", "square", now, ids(events.Email, "cal@omni-shop.dev", events.Phone, "+14155550111"), map[string]any{"name": "Cal Diaz"}, "pos"))
	e.publish(t, ev("order.placed", "square", now, ids(events.Email, "ann1@omni-shop.dev", events.Phone, "+14155550111"), map[string]any{"total": 5.0, "currency": "USD"}, "pos"))
	if n := e.count(t, "SELECT COUNT(*) FROM profile_conflicts WHERE reason='identity_cap'", nil); n != 2 {
		t.Fatalf("%d identity_cap conflicts, want 2 (one attachment, one merge)", n)
	}

	preview := func(tok string, body any) (int, profiles.LimitsPreview) {
		t.Helper()
		code, raw := e.Do(t, "POST", "/api/v1/profiles/limits/preview", body, auth(tok))
		var p profiles.LimitsPreview
		if code == 200 {
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("preview: %v %s", err, raw)
			}
		}
		return code, p
	}

	code, up := preview(e.owner, map[string]any{"identity_cap": 3})
	if code != 200 || up.Current != 2 || up.Proposed != 3 || up.WouldJoin != 2 || up.OverCap != 0 {
		t.Fatalf("cap 3: %d %+v; want both refused joins allowed", code, up)
	}
	names := map[string]bool{}
	for _, x := range up.WouldJoinExamples {
		names[x.AName+"+"+x.BName] = true
	}
	if !names["Ann Lee+"] || !(names["Ann Lee+Cal Diaz"] || names["Cal Diaz+Ann Lee"]) {
		t.Fatalf("examples %+v; want Ann's refused email and Ann with Cal", up.WouldJoinExamples)
	}

	// Three emails only fit a cap of 3: at 2 nothing changes.
	if _, same := preview(e.owner, map[string]any{"identity_cap": 2}); same.WouldJoin != 0 || same.OverCap != 0 {
		t.Fatalf("cap 2 (the current one): %+v", same)
	}
	_, down := preview(e.owner, map[string]any{"identity_cap": 1})
	if down.OverCap != 1 || len(down.OverCapExamples) != 1 || down.OverCapExamples[0].Name != "Ann Lee" ||
		down.OverCapExamples[0].Kind != events.Email || down.OverCapExamples[0].Count != 2 {
		t.Fatalf("cap 1: %+v; want Ann with two emails", down)
	}

	if code, _ := preview(e.agent, map[string]any{"identity_cap": 3}); code != 403 {
		t.Fatalf("agent: %d, want 403", code)
	}
	for _, bad := range []any{map[string]any{}, map[string]any{"identity_cap": 0}, "nope"} {
		code, raw := e.Do(t, "POST", "/api/v1/profiles/limits/preview", bad, auth(e.owner))
		if code != 400 || !json.Valid(raw) || !containsField(raw, "identity_cap", "body") {
			t.Fatalf("bad body %v: %d %s", bad, code, raw)
		}
	}
}

// containsField reports whether a PocketBase error names one of fields.
func containsField(raw []byte, fields ...string) bool {
	var e struct {
		Data map[string]any `json:"data"`
	}
	if json.Unmarshal(raw, &e) != nil {
		return false
	}
	for _, f := range fields {
		if _, ok := e.Data[f]; ok {
			return true
		}
	}
	return false
}
