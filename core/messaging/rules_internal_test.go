package messaging

import (
	"testing"
	"time"

	"github.com/omni/omni/config"
)

func TestQuietEndWrapsMidnightInTheCustomersZone(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	from, to := 21*60, 8*60
	cases := []struct {
		local time.Time
		quiet bool
		end   time.Time
	}{
		{time.Date(2026, 3, 7, 22, 15, 0, 0, ny), true, time.Date(2026, 3, 8, 8, 0, 0, 0, ny)}, // across the DST change: 08:00 local
		{time.Date(2026, 3, 8, 6, 59, 0, 0, ny), true, time.Date(2026, 3, 8, 8, 0, 0, 0, ny)},
		{time.Date(2026, 3, 8, 8, 0, 0, 0, ny), false, time.Time{}},
		{time.Date(2026, 3, 8, 20, 59, 0, 0, ny), false, time.Time{}},
		{time.Date(2026, 3, 8, 21, 0, 0, 0, ny), true, time.Date(2026, 3, 9, 8, 0, 0, 0, ny)},
	}
	for _, c := range cases {
		end, quiet := config.QuietEnd(c.local, from, to)
		if quiet != c.quiet || !end.Equal(c.end) {
			t.Errorf("%s: quiet %v until %s, want %v until %s", c.local, quiet, end, c.quiet, c.end)
		}
	}
	// A daytime window (13:00-14:00) and none at all.
	if end, quiet := config.QuietEnd(time.Date(2026, 1, 1, 13, 30, 0, 0, time.UTC), 13*60, 14*60); !quiet || end.Hour() != 14 {
		t.Errorf("daytime window: %v %s", quiet, end)
	}
	if _, quiet := config.QuietEnd(time.Date(2026, 1, 1, 23, 0, 0, 0, time.UTC), -1, -1); quiet {
		t.Error("no quiet hours configured, yet quiet")
	}
}

func TestCapReasonNamesThePeriodAsConfigured(t *testing.T) {
	for d, want := range map[time.Duration]string{24 * time.Hour: "24h", 7 * 24 * time.Hour: "7d", 90 * time.Minute: "1h30m", 12 * time.Hour: "12h"} {
		if got := periodName(d); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
}

func TestLedgerIDIsStablePerRequest(t *testing.T) {
	a, b := ledgerID("journey:run-1:step-2"), ledgerID("journey:run-1:step-2")
	if a != b || len(a) != 15 || ledgerID("journey:run-1:step-3") == a {
		t.Fatalf("ids %q %q", a, b)
	}
	if id := ledgerID("abcdefghij12345"); id != "abcdefghij12345" {
		t.Fatalf("a record id is kept: %q", id)
	}
}
