package messaging_test

import (
	"strings"
	"testing"
)

// The ledger's lookups on the events transaction's path use indexes.
func TestLedgerQueriesUseIndexes(t *testing.T) {
	e := start(t, envOptions{})
	for _, q := range []string{
		// applyStatus: a status event without Omni's id, found by the vendor's.
		"SELECT id FROM messages WHERE provider_id={:x} AND provider_id != '' LIMIT 1",
	} {
		var plan []struct {
			Detail string `db:"detail"`
		}
		if err := e.PB.DB().NewQuery("EXPLAIN QUERY PLAN " + q).Bind(map[string]any{"x": "p"}).All(&plan); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for _, p := range plan {
			if strings.HasPrefix(p.Detail, "SCAN messages") {
				t.Errorf("%s scans: %+v", q, plan)
			}
		}
	}
}
