package inbox

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Business hours: the "hours" setting says when people answer, in the
// shop's time zone, with an optional week per channel (WhatsApp answered
// longer than email, say). Outside them a customer who writes gets the
// away message once per conversation opening; the conversation still goes
// to the queue for the morning.

// Hours is the "hours" setting. An empty week means always open.
type Hours struct {
	Timezone    string                  `json:"timezone"`
	Week        Week                    `json:"week"`
	Channels    map[string]ChannelHours `json:"channels,omitempty"`
	AwayMessage string                  `json:"away_message"`
}

// ChannelHours overrides the week for one channel.
type ChannelHours struct {
	Week Week `json:"week"`
}

// Week maps "mon".."sun" to the day's open intervals.
type Week map[string][]Interval

// Interval is open from From to To, "HH:MM" local time, To after From
// ("24:00" for midnight). An interval past midnight is two intervals.
type Interval struct {
	From string `json:"from"`
	To   string `json:"to"`
}

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"} // time.Weekday order

func defaultHours() any { return Hours{Timezone: "UTC", Week: Week{}, AwayMessage: ""} }

func checkHours(raw json.RawMessage) (any, error) {
	var h Hours
	if err := strictJSON(raw, &h); err != nil {
		return nil, fieldErr("hours", err.Error())
	}
	if h.Timezone == "" {
		h.Timezone = "UTC"
	}
	if _, err := time.LoadLocation(h.Timezone); err != nil {
		return nil, fieldErr("hours.timezone", fmt.Sprintf("%q is not an IANA time zone (such as Europe/London)", h.Timezone))
	}
	if err := checkWeek("hours.week", h.Week); err != nil {
		return nil, err
	}
	if h.Week == nil {
		h.Week = Week{}
	}
	for ch, ov := range h.Channels {
		if !validChannel(ch) {
			return nil, fieldErr("hours.channels."+ch, "is not a channel ("+strings.Join(Channels, ", ")+")")
		}
		if err := checkWeek("hours.channels."+ch+".week", ov.Week); err != nil {
			return nil, err
		}
	}
	h.AwayMessage = strings.TrimSpace(h.AwayMessage)
	if err := checkLiquid(h.AwayMessage); err != nil {
		return nil, fieldErr("hours.away_message", err.Error())
	}
	return h, nil
}

func checkWeek(field string, w Week) error {
	for day, ivs := range w {
		if dayIndex(day) < 0 {
			return fieldErr(field+"."+day, "is not a day (mon, tue, wed, thu, fri, sat, sun)")
		}
		for i, iv := range ivs {
			f := fmt.Sprintf("%s.%s.%d", field, day, i)
			from, ok := minutes(iv.From)
			if !ok {
				return fieldErr(f+".from", fmt.Sprintf("%q is not a time of day (HH:MM)", iv.From))
			}
			to, ok := minutes(iv.To)
			if !ok {
				return fieldErr(f+".to", fmt.Sprintf("%q is not a time of day (HH:MM, 24:00 for midnight)", iv.To))
			}
			if to <= from {
				return fieldErr(f+".to", "must be after from (split an interval past midnight in two)")
			}
		}
	}
	return nil
}

func dayIndex(day string) int {
	for i, d := range weekdays {
		if d == day {
			return i
		}
	}
	return -1
}

// minutes reads "HH:MM" as minutes after midnight (24:00 allowed).
func minutes(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	h, err1 := strconv.Atoi(s[:2])
	m, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, false
	}
	return h*60 + m, true
}

func (m *Module) hours() Hours {
	h := Hours{Timezone: "UTC"}
	m.setting("hours", &h)
	return h
}

// Open reports whether people answer channel at t.
func (h Hours) Open(channel string, t time.Time) bool {
	week := h.Week
	if ov, ok := h.Channels[channel]; ok && len(ov.Week) > 0 {
		week = ov.Week
	}
	any := false
	for _, ivs := range week {
		any = any || len(ivs) > 0
	}
	if !any {
		return true // no hours set: always open
	}
	loc, err := time.LoadLocation(h.Timezone)
	if err != nil {
		loc = time.UTC
	}
	local := t.In(loc)
	now := local.Hour()*60 + local.Minute()
	for _, iv := range week[weekdays[local.Weekday()]] {
		from, ok1 := minutes(iv.From)
		to, ok2 := minutes(iv.To)
		if ok1 && ok2 && now >= from && now < to {
			return true
		}
	}
	return false
}

// checkLiquid is a light check of a Liquid text an owner saves (the gate
// renders it, and refuses what does not parse): every {{ and {% closed.
func checkLiquid(s string) error {
	for _, pair := range [][2]string{{"{{", "}}"}, {"{%", "%}"}} {
		rest := s
		for {
			i := strings.Index(rest, pair[0])
			if i < 0 {
				break
			}
			j := strings.Index(rest[i+2:], pair[1])
			if j < 0 {
				return fmt.Errorf("%s is not closed by %s", pair[0], pair[1])
			}
			if k := strings.Index(rest[i+2:i+2+j], pair[0]); k >= 0 {
				return fmt.Errorf("%s is not closed by %s before the next %s", pair[0], pair[1], pair[0])
			}
			rest = rest[i+2+j+2:]
		}
		if strings.Count(s, pair[1]) > strings.Count(s, pair[0]) {
			return fmt.Errorf("%s without an opening %s", pair[1], pair[0])
		}
	}
	return nil
}
