package messaging_test

import (
	"strings"
	"testing"

	"github.com/omni/omni/internal/testkit/queryplan"
)

// The ledger's lookups on the events transaction's path use indexes.
func TestLedgerQueriesUseIndexes(t *testing.T) {
	e := start(t, envOptions{})
	for _, q := range []string{
		// applyStatus: a status event without Omni's id, found by the vendor's.
		"SELECT id FROM messages WHERE provider_id={:x} AND provider_id != '' LIMIT 1",
	} {
		plan := queryplan.Steps(t, e.PB.DB(), q, map[string]any{"x": "p"})
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN messages") {
				t.Errorf("%s scans: %q", q, plan)
			}
		}
	}
}
