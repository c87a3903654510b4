package metrics

import "testing"

func TestWholeMonths(t *testing.T) {
	for _, c := range []struct{ from, to, lo, hi, after string }{
		{"2025-06-16", "2026-06-15", "2025-07-01", "2026-05-01", "2026-06-01"}, // a year to a mid-month day
		{"2026-02-01", "2026-02-28", "2026-02-01", "2026-02-01", "2026-03-01"}, // exactly one month
		{"2026-02-01", "2026-02-27", "", "", ""},                               // a month less a day
		{"2026-01-31", "2026-03-30", "2026-02-01", "2026-02-01", "2026-03-01"}, // February whole only
		{"2026-05-17", "2026-06-15", "", "", ""},                               // 30 days across two months
		{"2024-01-01", "2024-12-31", "2024-01-01", "2024-12-01", "2025-01-01"},
	} {
		lo, hi, after := wholeMonths(c.from, c.to)
		if lo != c.lo || hi != c.hi || after != c.after {
			t.Errorf("wholeMonths(%s, %s) = %q %q %q, want %q %q %q", c.from, c.to, lo, hi, after, c.lo, c.hi, c.after)
		}
	}
}
