package profiles

import (
	"strings"
	"time"

	"github.com/omni/omni/core/segmentrule"
)

// Value implements segmentrule.Values: what a rule's SQL reads of p's
// row, read from p as the batch holds it. It answers only for a profile
// whose stored JSON is this process's encoding of what it holds (p.exact),
// so that the reading is the database's: a row written by an older
// version may lack a key that Computed then reads as its zero value.
func (p *profile) Value(r segmentrule.Read) (any, bool) {
	if !p.exact() {
		return nil, false
	}
	switch r.Source {
	case "column":
		switch r.Path {
		case "email":
			return p.email, true
		case "phone":
			return p.phone, true
		case "name":
			return p.name, true
		}
	case "computed":
		first, rest, _ := strings.Cut(r.Path, ".")
		v, ok := computedValue(p.comp, first)
		if !ok {
			return nil, false
		}
		return jsonPath(v, rest), true
	case "traits":
		if !shallow(p.traits, maxTraitsDepth) {
			return nil, false // SQLite reads traits nested that deep as absent
		}
		return jsonPath(map[string]any(p.traits), r.Path), true
	case "consent":
		e, ok := p.consent[r.Path]
		if !ok {
			return nil, true
		}
		if e.Status == "" {
			return nil, false // a status key or none: not told apart here
		}
		return e.Status, true
	}
	return nil, false
}

// EventCount implements segmentrule.EventCounter for a profile this batch
// made: it has no events of a type the batch brought none of. Anything
// else is counted by SQL.
func (p *profile) EventCount(typ string, _ *int, _ time.Time) (int, bool) {
	if !p.fresh || !p.exact() {
		return 0, false
	}
	if _, ok := p.newTypes[typ]; ok {
		return 0, false
	}
	return 0, true
}

// EventsAtLeast implements segmentrule.EventMinimum: an event of type typ
// the batch stored for p, inside the window (with a minute's margin for
// how the stored time rounds), is one the rule's count sees.
func (p *profile) EventsAtLeast(typ string, withinDays *int, now time.Time) int {
	latest, ok := p.newTypes[typ]
	if !ok {
		return 0
	}
	if withinDays != nil && latest.Before(now.Add(-time.Duration(*withinDays)*24*time.Hour+time.Minute)) {
		return 0
	}
	return 1
}

// exact reports whether p's stored traits, consent and computed JSON are
// this process's encodings of p's traits, consent and computed traits.
func (p *profile) exact() bool { return p.ownTraits && p.ownConsent && p.ownComputed }

// jsonPath follows a dotted path into v as json_extract's '$.a.b' does:
// through objects only, anything else on the way reads as absent.
func jsonPath(v any, path string) any {
	for path != "" {
		var k string
		k, path, _ = strings.Cut(path, ".")
		switch m := v.(type) {
		case map[string]any:
			v = m[k]
		case map[string]float64:
			v = numberAt(m, k)
		case map[string]int:
			v = numberAt(m, k)
		default:
			return nil
		}
	}
	switch m := v.(type) { // a whole object, as segmentrule.Values gives one
	case map[string]float64:
		return numberObject(m)
	case map[string]int:
		return numberObject(m)
	}
	return v
}

// numberAt is m[k] as a JSON number (float64), or nil when absent.
func numberAt[N int | float64](m map[string]N, k string) any {
	if x, ok := m[k]; ok {
		return float64(x)
	}
	return nil
}

// numberObject is m as the JSON object of numbers it is stored as.
func numberObject[N int | float64](m map[string]N) map[string]any {
	out := make(map[string]any, len(m))
	for k, x := range m {
		out[k] = float64(x)
	}
	return out
}

// computedValue is one computed trait as appendJSON stores it: nil where
// the key is left out (omitempty), numbers as float64.
func computedValue(c *Computed, name string) (any, bool) {
	str := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	num := func(f *float64) any {
		if f == nil {
			return nil
		}
		return *f
	}
	switch name {
	case "first_seen":
		return str(c.FirstSeen), true
	case "last_seen":
		return str(c.LastSeen), true
	case "orders_count":
		return float64(c.OrdersCount), true
	case "lifetime_value":
		if len(c.LifetimeValue) == 0 {
			return nil, true
		}
		return c.LifetimeValue, c.finite()
	case "orders_by_currency":
		if len(c.OrdersByCurrency) == 0 {
			return nil, true
		}
		return c.OrdersByCurrency, true
	case "average_order_value":
		if len(c.AverageOrderValue) == 0 {
			return nil, true
		}
		return c.AverageOrderValue, c.finite()
	case "lifetime_value_base":
		return num(c.LifetimeValueBase), c.finite()
	case "average_order_value_base":
		return num(c.AverageOrderValueBase), c.finite()
	case "base_currency":
		return str(c.BaseCurrency), true
	case "last_order_at":
		return str(c.LastOrderAt), true
	case "channels":
		if len(c.Channels) == 0 {
			return nil, true
		}
		out := make([]any, len(c.Channels))
		for i, s := range c.Channels {
			out[i] = s
		}
		return out, true
	case "preferred_channel":
		return str(c.PreferredChannel), true
	case "last_two_way_at":
		return str(c.LastTwoWayAt), true
	case "lifecycle_stage":
		return c.LifecycleStage, true // stored even when empty
	case "engagement_level":
		return c.EngagementLevel, true
	case "buying_stage":
		return str(c.BuyingStage), true
	}
	return nil, false
}

// maxTraitsDepth is below SQLite's JSON nesting limit (1,000 levels), past
// which json_valid fails and a rule reads the traits as absent.
const maxTraitsDepth = 900

// shallow reports whether v nests fewer than depth levels of objects and
// arrays (flat traits, the usual case, cost one look at each value).
func shallow(v any, depth int) bool {
	if depth <= 0 {
		return false
	}
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if !shallow(e, depth-1) {
				return false
			}
		}
	case []any:
		for _, e := range x {
			if !shallow(e, depth-1) {
				return false
			}
		}
	}
	return true
}
