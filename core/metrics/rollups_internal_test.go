package metrics

import (
	"encoding/json"
	"maps"
	"testing"
)

// The contribution is written and read by hand on the events path; what
// it writes must read back the same, also through encoding/json (rows
// stored before, escaped strings).
func TestContributionJSONRoundTrip(t *testing.T) {
	c := contribution{}
	c.add("orders", "2026-03-01", "", "GBP", 12.345678, 1)
	c.add("product_sales", "2026-03-01", `Mug "large" <red> & \ blue`, "", 0.000001, 2.5)
	c.add("product_sales", "2026-03-01", "Tasse à café", "", 1e21, 1)
	c.add("channel_orders", "2026-03-02", "pos", "", -3.5, -1)
	raw, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if got := parseContribution(string(raw)); !maps.Equal(got, c) {
		t.Fatalf("read back %v, want %v", got, c)
	}
	var rows [][]any
	if err := json.Unmarshal(raw, &rows); err != nil || len(rows) != len(c) {
		t.Fatalf("not JSON of %d rows: %s (%v)", len(c), raw, err)
	}
	// What encoding/json wrote (rows stored before) reads the same.
	old := make([][]any, 0, len(c))
	for _, k := range c.keys() {
		old = append(old, []any{k.metric, k.day, k.dim, k.currency, c[k][0], c[k][1]})
	}
	legacy, _ := json.Marshal(old)
	if got := parseContribution(string(legacy)); !maps.Equal(got, c) {
		t.Fatalf("legacy read back %v, want %v", got, c)
	}
	if got := parseContribution("[]"); len(got) != 0 {
		t.Fatalf("empty: %v", got)
	}
}
