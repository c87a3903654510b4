package profiles

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"

	"github.com/omni/omni/internal/jsonenc"
)

// appendJSON appends c as encoding/json would marshal it (same fields,
// order, omitempty and number and string forms; computed_json_test.go
// checks), without reflection: the writer marshals every changed
// profile's computed traits, once per event on a busy shop.
func (c *Computed) appendJSON(b []byte) []byte {
	if !c.finite() {
		j, _ := json.Marshal(c) // the error case stays what json.Marshal does
		return append(b, j...)
	}
	b = append(b, '{')
	str := func(name, v string) {
		if v != "" {
			b = appendKey(b, name)
			b = jsonenc.String(b, v)
		}
	}
	strs := func(name string, vs []string) {
		if len(vs) == 0 {
			return
		}
		b = appendKey(b, name)
		b = append(b, '[')
		for i, v := range vs {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.String(b, v)
		}
		b = append(b, ']')
	}
	floats := func(name string, m map[string]float64) {
		if len(m) == 0 {
			return
		}
		b = appendKey(b, name)
		b = append(b, '{')
		for i, k := range sortedKeys(m) {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.String(b, k)
			b = append(b, ':')
			b, _ = jsonenc.Float(b, m[k]) // finite: checked above
		}
		b = append(b, '}')
	}
	str("first_seen", c.FirstSeen)
	str("last_seen", c.LastSeen)
	b = appendKey(b, "orders_count")
	b = strconv.AppendInt(b, int64(c.OrdersCount), 10)
	floats("lifetime_value", c.LifetimeValue)
	if len(c.OrdersByCurrency) > 0 {
		b = appendKey(b, "orders_by_currency")
		b = append(b, '{')
		for i, k := range sortedKeys(c.OrdersByCurrency) {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.String(b, k)
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(c.OrdersByCurrency[k]), 10)
		}
		b = append(b, '}')
	}
	floats("average_order_value", c.AverageOrderValue)
	if c.LifetimeValueBase != nil {
		b = appendKey(b, "lifetime_value_base")
		b, _ = jsonenc.Float(b, *c.LifetimeValueBase) // finite: checked above
	}
	if c.AverageOrderValueBase != nil {
		b = appendKey(b, "average_order_value_base")
		b, _ = jsonenc.Float(b, *c.AverageOrderValueBase) // finite: checked above
	}
	str("base_currency", c.BaseCurrency)
	strs("unconverted_currencies", c.Unconverted)
	str("last_order_at", c.LastOrderAt)
	strs("recent_orders", c.RecentOrders)
	strs("channels", c.Channels)
	str("preferred_channel", c.PreferredChannel)
	str("last_two_way_at", c.LastTwoWayAt)
	strs("active_days", c.ActiveDays)
	if c.Identified {
		b = appendKey(b, "identified")
		b = append(b, "true"...)
	}
	if c.Checkout {
		b = appendKey(b, "checkout_started")
		b = append(b, "true"...)
	}
	b = appendKey(b, "lifecycle_stage")
	b = jsonenc.String(b, c.LifecycleStage)
	str("buying_stage", c.BuyingStage)
	b = appendKey(b, "engagement_level")
	b = jsonenc.String(b, c.EngagementLevel)
	return append(b, '}')
}

// finite is false when a figure is NaN or infinite (json.Marshal fails).
func (c *Computed) finite() bool {
	ok := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	for _, m := range []map[string]float64{c.LifetimeValue, c.AverageOrderValue} {
		for _, v := range m {
			if !ok(v) {
				return false
			}
		}
	}
	return (c.LifetimeValueBase == nil || ok(*c.LifetimeValueBase)) && (c.AverageOrderValueBase == nil || ok(*c.AverageOrderValueBase))
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// appendKey appends a field name (plain ASCII) and its colon, after a
// comma unless it is the object's first.
func appendKey(b []byte, name string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}
