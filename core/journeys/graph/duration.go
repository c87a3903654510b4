package graph

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Day, Week and Month are the calendar-free units a journey's durations
// accept besides Go's (a month is 30 days: waits are about pacing, not
// calendars; "until" waits use the customer's calendar).
const (
	Day   = 24 * time.Hour
	Week  = 7 * Day
	Month = 30 * Day
)

// MinDuration and MaxDuration bound every wait, timeout and goal window.
const (
	MinDuration = time.Second
	MaxDuration = 2 * 365 * Day
)

// ParseDuration reads a Go duration ("90s", "1h30m") or a whole number of
// days, weeks or months ("7d", "2w", "3mo"), from 1s up to two years.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("is required: a duration such as 30m, 24h, 7d, 2w or 3mo")
	}
	var d time.Duration
	unit := map[string]time.Duration{"mo": Month, "w": Week, "d": Day}
	parsed := false
	for _, suf := range []string{"mo", "w", "d"} {
		if n, ok := strings.CutSuffix(s, suf); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 {
				return 0, fmt.Errorf("%q is not a duration: use a whole number before %q, such as 7d, 2w or 3mo", s, suf)
			}
			d, parsed = time.Duration(v)*unit[suf], true
			break
		}
	}
	if !parsed {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration: use 30s, 15m, 24h, 7d, 2w or 3mo", s)
		}
	}
	if d < MinDuration {
		return 0, fmt.Errorf("%q is shorter than 1s", s)
	}
	if d > MaxDuration {
		return 0, fmt.Errorf("%q is longer than two years", s)
	}
	return d, nil
}
