package profiles_test

import (
	"strings"
	"testing"

	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/internal/testkit/queryplan"
)

// The hot-path and merge statements (with bound parameters, as they run)
// must use indexes; a full scan of
// events or profiles here is what makes merges cost milliseconds at scale.
func TestQueryPlansUseIndexes(t *testing.T) {
	if testing.Short() {
		t.Skip("query plans, not concurrency: the full run checks them, -short (the race run) skips")
	}
	e := start(t, profiles.Options{})
	for _, q := range []string{
		"SELECT profile FROM identities WHERE kind={:x} AND value={:x}",
		// A batch's prefetch (store.InList) and segment evaluation.
		"SELECT value, profile FROM identities WHERE kind={:x} AND value IN (SELECT value FROM json_each({:l}))",
		"SELECT id FROM profiles WHERE id IN (SELECT value FROM json_each({:l}))",
		// relay.StageForProfiles: the strongest identity of each customer.
		"SELECT profile, kind, value FROM identities WHERE profile IN (SELECT value FROM json_each({:l}))",
		"SELECT kind, value FROM identities WHERE profile={:x}",
		"UPDATE identities SET profile={:x} WHERE profile={:x}",
		"UPDATE events SET profile={:x} WHERE profile={:x}",
		"UPDATE profiles SET merged_into={:x} WHERE merged_into={:x} AND merged_into != ''",
		"DELETE FROM segment_members WHERE profile={:x}",
		// The merge ledger's earlier event (ledger.go earlierEvent).
		"SELECT event_id FROM events WHERE profile={:x} AND event_id != {:x} AND json_extract(identities, '$.phone') = {:x} ORDER BY occurred_at, id LIMIT 1",
		"SELECT type FROM events WHERE event_id={:x}",
		"SELECT COUNT(*) FROM events e WHERE e.profile = {:x} AND +e.type = {:x} AND e.occurred_at >= {:x}",
		"SELECT id FROM profiles WHERE traits_due_at != '' AND traits_due_at <= {:x} AND merged_into = '' LIMIT 10",
		// The search index (search.go) and the customers list's default view.
		"DELETE FROM profile_search WHERE profile={:x} AND origin={:x}",
		"UPDATE OR IGNORE profile_search SET profile={:x} WHERE profile={:x}",
		"SELECT profile FROM profile_search WHERE token >= {:x} AND token < {:x}",
		"SELECT COUNT(*) FROM profiles p WHERE p.merged_into = '' AND p.known = 1",
		"SELECT p.id FROM profiles p WHERE p.merged_into = '' AND p.known = 1 ORDER BY p.last_seen DESC, p.id DESC LIMIT 25",
	} {
		s := queryPlan(t, e, q, map[string]any{"x": "p", "l": `["p","q"]`})
		if strings.Contains(s, "SCAN ") && !strings.Contains(s, "USING") {
			t.Errorf("full scan: %s\n  plan: %s", q, s)
		}
	}
}

// TestProfileIdentitiesReadFromTheIndexAlone: reading a profile's
// identities back (each profile a batch loads, the customer page) needs no
// table row, one per identity otherwise.
func TestProfileIdentitiesReadFromTheIndexAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("query plans, not concurrency: the full run checks them, -short (the race run) skips")
	}
	e := start(t, profiles.Options{})
	for _, q := range []string{
		"SELECT profile, kind, value FROM identities WHERE profile IN ({:x}, {:y})",
		"SELECT profile, kind, value FROM identities WHERE profile IN (SELECT value FROM json_each({:l}))",
		"SELECT kind, value FROM identities WHERE profile={:x}",
	} {
		if s := queryPlan(t, e, q, map[string]any{"x": "p", "y": "q", "l": `["p","q"]`}); !strings.HasPrefix(s, "SEARCH identities USING COVERING INDEX idx_identities_profile") {
			t.Errorf("%s: want the covering index idx_identities_profile, plan: %s", q, s)
		}
	}
}

// TestSearchPlanStartsFromTheIndex: a search reads the profiles the index
// finds (one primary-key lookup each), never every profile.
func TestSearchPlanStartsFromTheIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("query plans, not concurrency: the full run checks them, -short (the race run) skips")
	}
	e := start(t, profiles.Options{})
	s := queryPlan(t, e, profiles.SearchSQLForTest(e.mod, "jane doh"), profiles.SearchParamsForTest(e.mod, "jane doh"))
	if !strings.Contains(s, "USING PRIMARY KEY (token>? AND token<?)") || !strings.Contains(s, "SEARCH p USING INDEX") || strings.Contains(s, "SCAN p") {
		t.Errorf("search plan: %s", s)
	}
}

// queryPlan is SQLite's plan for q with params, its steps joined by "; ".
func queryPlan(t *testing.T, e *env, q string, params map[string]any) string {
	t.Helper()
	return strings.Join(queryplan.Steps(t, e.PB.DB(), q, params), "; ")
}
