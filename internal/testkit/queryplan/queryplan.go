// Package queryplan reads SQLite's plan for a statement, for tests that
// check a query uses its index rather than scanning a table.
package queryplan

import (
	"testing"

	"github.com/pocketbase/dbx"
)

// Steps is SQLite's plan for q with params bound, one detail per step
// ("SEARCH events USING INDEX …", "SCAN profiles", …), in plan order. A
// statement SQLite cannot plan fails the test.
func Steps(tb testing.TB, db dbx.Builder, q string, params dbx.Params) []string {
	tb.Helper()
	var plan []struct {
		Detail string `db:"detail"`
	}
	if err := db.NewQuery("EXPLAIN QUERY PLAN " + q).Bind(params).All(&plan); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	steps := make([]string, len(plan))
	for i, p := range plan {
		steps[i] = p.Detail
	}
	return steps
}
