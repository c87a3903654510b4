package backtest

import (
	"fmt"
	"strings"
	"time"

	"github.com/omni/omni/core/journeys/graph"
)

// DateEntries walks the days of [from, to) for one customer's date trait
// (value, in the customer's zone loc) and returns when a date trigger
// would have enrolled them: on the day the trait, moved by the offset,
// falls on (every year for a yearly trigger), at the trigger's time of day.
func DateEntries(dt *graph.DateTrigger, profile string, value time.Time, loc *time.Location, from, to time.Time) []Entry {
	if loc == nil {
		loc = time.UTC
	}
	offsetDays := 0
	if off := strings.TrimSpace(dt.Offset); off != "" {
		neg := strings.HasPrefix(off, "-")
		if d, err := graph.ParseDuration(strings.TrimPrefix(off, "-")); err == nil {
			offsetDays = int(d / graph.Day)
			if neg {
				offsetDays = -offsetDays
			}
		}
	}
	hh, mm := 9, 0
	if dt.At != "" {
		fmt.Sscanf(dt.At, "%d:%d", &hh, &mm)
	}
	v := value.In(loc)
	on := func(y int, mo time.Month, d int) time.Time {
		return time.Date(y, mo, d+offsetDays, hh, mm, 0, 0, loc)
	}
	var out []Entry
	add := func(t time.Time) {
		if !t.Before(from) && t.Before(to) {
			out = append(out, Entry{Profile: profile, At: t})
		}
	}
	if !dt.Yearly {
		add(on(v.Year(), v.Month(), v.Day()))
		return out
	}
	for y := from.In(loc).Year() - 1; y <= to.In(loc).Year()+1; y++ {
		add(on(y, v.Month(), v.Day()))
	}
	return out
}

// ParseDate reads a date trait: a day ("1990-05-17", in the customer's
// zone) or a time (RFC 3339 or the database's format).
func ParseDate(v any, loc *time.Location) (time.Time, bool) {
	s, ok := v.(string)
	if !ok || s == "" {
		return time.Time{}, false
	}
	if loc == nil {
		loc = time.UTC
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, true
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.000Z", "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
