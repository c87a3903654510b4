package config

import "time"

// QuietEnd is the quiet-hours rule the messaging gate applies (and the
// journeys backtest simulates): local is the time in the customer's zone,
// from/to the window from ParseQuietHours in minutes after midnight (from
// < 0: no quiet hours). Inside the window it returns when the window ends.
func QuietEnd(local time.Time, from, to int) (time.Time, bool) {
	if from < 0 {
		return time.Time{}, false
	}
	mins := local.Hour()*60 + local.Minute()
	var inside bool
	if from < to {
		inside = mins >= from && mins < to
	} else {
		inside = mins >= from || mins < to
	}
	if !inside {
		return time.Time{}, false
	}
	y, mo, d := local.Date()
	end := time.Date(y, mo, d, to/60, to%60, 0, 0, local.Location())
	if !end.After(local) {
		end = end.AddDate(0, 0, 1)
	}
	return end.UTC(), true
}
