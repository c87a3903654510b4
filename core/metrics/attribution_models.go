package metrics

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// The five attribution models, in the order the report lists them.
var attrModels = []string{"first", "last", "linear", "position", "time_decay"}


const (
	attrDefaultLookbackDays = 7
	attrDefaultHalfLifeDays = 7
	attrMaxDays             = 90
	// attrVisitSession: page views of one campaign closer together than
	// this are one visit (a touch), not one touch per page.
	attrVisitSession = 30 * time.Minute
)

// attrSettings is the attribution setting in force (defaults filled in).
func (m *Module) attrSettings() AttributionSettings {
	s := AttributionSettings{LookbackDays: attrDefaultLookbackDays, HalfLifeDays: attrDefaultHalfLifeDays, PositionFirst: 0.4, PositionLast: 0.4}
	if m.settings != nil {
		m.settings.get("attribution", &s)
	}
	if s.LookbackDays <= 0 || s.LookbackDays > attrMaxDays {
		s.LookbackDays = attrDefaultLookbackDays
	}
	if s.HalfLifeDays <= 0 || s.HalfLifeDays > attrMaxDays {
		s.HalfLifeDays = attrDefaultHalfLifeDays
	}
	return s
}

// CheckAttributionSettings says what is wrong with an "attribution"
// setting an owner sends, naming the field; nil when it is fine. The
// settings route calls it before storing the value, then re-credits every
// order (attribution.recreditAll), since both numbers change past credits.
func CheckAttributionSettings(s AttributionSettings) (field string, err error) {
	if s.LookbackDays <= 0 || s.LookbackDays > attrMaxDays {
		return "lookback_days", fmt.Errorf("lookback_days: expected a number of days above 0 and up to %d, got %v", attrMaxDays, s.LookbackDays)
	}
	if s.HalfLifeDays <= 0 || s.HalfLifeDays > attrMaxDays {
		return "half_life_days", fmt.Errorf("half_life_days: expected a number of days above 0 and up to %d, got %v", attrMaxDays, s.HalfLifeDays)
	}
	return "", nil
}

func (s AttributionSettings) lookback() time.Duration {
	return time.Duration(s.LookbackDays * float64(24*time.Hour))
}

// attrTouch is one touch on a customer's path.
type attrTouch struct {
	At                                      time.Time
	Kind, Channel, Campaign, Journey, Agent string
	Ref                                     string
}

// attrPath is the touches that count for an order at orderAt: those in
// the lookback window [orderAt − lookback, orderAt], oldest first, with a
// campaign's page views within a session of each other kept as one visit.
func attrPath(touches []attrTouch, orderAt time.Time, s AttributionSettings) []attrTouch {
	from := orderAt.Add(-s.lookback())
	var in []attrTouch
	for _, t := range touches {
		if !t.At.Before(from) && !t.At.After(orderAt) {
			in = append(in, t)
		}
	}
	slices.SortStableFunc(in, func(a, b attrTouch) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		if a.Ref < b.Ref {
			return -1
		}
		if a.Ref > b.Ref {
			return 1
		}
		return 0
	})
	var path []attrTouch
	lastVisit := map[string]time.Time{} // campaign → its session's latest page view
	for _, t := range in {
		if t.Kind == attrKindVisit {
			prev, ok := lastVisit[t.Campaign]
			lastVisit[t.Campaign] = t.At
			if ok && t.At.Sub(prev) <= attrVisitSession {
				continue
			}
		}
		path = append(path, t)
	}
	return path
}

// attrShares is each touch's share of the order under model (summing to
// 1), for a path of touches oldest first.
func attrShares(model string, path []attrTouch, orderAt time.Time, s AttributionSettings) []float64 {
	n := len(path)
	w := make([]float64, n)
	if n == 0 {
		return w
	}
	switch model {
	case "first":
		w[0] = 1
	case "last":
		w[n-1] = 1
	case "linear":
		for i := range w {
			w[i] = 1 / float64(n)
		}
	case "position": // 40% first, 40% last (settings), the rest shared by the ones between
		switch n {
		case 1:
			w[0] = 1
		case 2: // no middle: first and last share in their own proportion
			if f, l := s.PositionFirst, s.PositionLast; f+l > 0 {
				w[0], w[1] = f/(f+l), l/(f+l)
			} else {
				w[0], w[1] = 0.5, 0.5
			}
		default:
			w[0], w[n-1] = s.PositionFirst, s.PositionLast
			for i := 1; i < n-1; i++ {
				w[i] = (1 - s.PositionFirst - s.PositionLast) / float64(n-2)
			}
		}
	case "time_decay": // 2^(−age/half-life), normalised
		half := s.HalfLifeDays * 24 * float64(time.Hour)
		var sum float64
		for i, t := range path {
			w[i] = math.Exp2(-float64(orderAt.Sub(t.At)) / half)
			sum += w[i]
		}
		for i := range w {
			w[i] /= sum
		}
	}
	return w
}
