package metrics

import (
	"testing"
	"time"
)

// In a zone whose offset is not whole hours, the ledger is grouped by
// quarter hours so that each group falls in one day of the shop.
func TestGrainFollowsTheShopsOffset(t *testing.T) {
	for _, c := range []struct {
		zone, layout string
	}{
		{"Europe/Paris", "2006-01-02 15"},
		{"Asia/Kolkata", "2006-01-02 15:04"},   // +05:30
		{"Asia/Kathmandu", "2006-01-02 15:04"}, // +05:45
	} {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2026, 11, 10, 0, 0, 0, 0, loc)
		q := Query{Loc: loc, Start: start, End: start.AddDate(0, 0, 7), Bucket: "day"}
		if g := grainOf(q, "m.created"); g.layout != c.layout {
			t.Errorf("%s: grain %q, want %q", c.zone, g.layout, c.layout)
		}
	}
}

// The gate's sentences become the short keys the tables show.
func TestRefusalReasonKeys(t *testing.T) {
	for reason, want := range map[string]string{
		"no marketing consent on email (unsubscribed)":  "consent",
		"frequency cap: 3 marketing messages in 7 days": "frequency_cap",
		"something new": "other",
	} {
		if got := refusalReason(reason); got != want {
			t.Errorf("refusalReason(%q) = %q, want %q", reason, got, want)
		}
	}
}
