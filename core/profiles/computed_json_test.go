package profiles

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// appendJSON must write exactly what json.Marshal writes, for every shape
// of computed traits: empty, full, odd strings and extreme numbers.
func TestComputedAppendJSONIsJSONMarshal(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	cases := []*Computed{
		{},
		{FirstSeen: "2026-01-02T03:04:05.000Z", LastSeen: "2026-01-03T03:04:05.000Z", OrdersCount: 3,
			LifetimeValue:    map[string]float64{"USD": 120.5, "EUR": -3.25, "JPY": 1e21, "X": 1e-7, "Z": 0},
			OrdersByCurrency: map[string]int{"USD": 2, "EUR": 1}, AverageOrderValue: map[string]float64{"USD": 60.25},
			LifetimeValueBase: f(0.000001), AverageOrderValueBase: f(123456789.125), BaseCurrency: "USD",
			Unconverted: []string{"JPY"}, LastOrderAt: "2026-01-03T03:04:05.000Z", RecentOrders: []string{"a", "b"},
			Channels: []string{"web", "<script>&", "café", "tab\there", `quote"back\slash`, "\u2028"}, PreferredChannel: "whatsapp",
			LastTwoWayAt: "x", ActiveDays: []string{"2026-01-02"}, Identified: true, Checkout: true,
			LifecycleStage: StageLoyal, BuyingStage: BuyingRepeat, EngagementLevel: EngagementHigh},
		{Unconverted: []string{}, RecentOrders: []string{}, LifetimeValue: map[string]float64{}, LifecycleStage: "a\x00b"},
		{LifetimeValue: map[string]float64{"USD": math.Inf(1)}},
		{LifetimeValueBase: f(math.NaN())},
	}
	rng := rand.New(rand.NewPCG(7, 9))
	for range 500 {
		v := rng.NormFloat64() * math.Pow(10, float64(rng.IntN(50)-25))
		cases = append(cases, &Computed{OrdersCount: rng.IntN(1000) - 500, LifetimeValue: map[string]float64{"USD": v, "EUR": round2(v)},
			LifetimeValueBase: f(-v), EngagementLevel: EngagementDormant})
	}
	for i, c := range cases {
		want, _ := json.Marshal(c)
		if got := c.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// computedState tells computed values apart exactly as their JSON does:
// two values with the same encoding store the same JSON (else a segment
// that reads the trait would miss the change), and values whose JSON
// differs encode differently (else it would miss it too).
func TestComputedStateMatchesJSON(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	groups := [][]any{
		{"", "loyal", "loyal ", "2026-11-02T03:07:32.402Z"},
		{0, 1, -1, 12, 100},
		{true, false},
		{(*float64)(nil), f(0), f(1), f(0.1 + 0.2), f(0.3), f(25)},
		{[]string(nil), []string{"a", "b"}, []string{"ab"}, []string{"a:b"}, []string{"1:a"}, []string{"b", "a"}, []string{"", "a"}},
		{map[string]float64(nil), map[string]float64{"USD": 50}, map[string]float64{"USD": 50, "EUR": 10}, map[string]float64{"EUR": 10, "USD": 50.5}, map[string]float64{"USD5": 0}},
		{map[string]int(nil), map[string]int{"USD": 2}, map[string]int{"USD": 2, "EUR": 1}, map[string]int{"USD2": 0}},
	}
	for _, g := range groups {
		for _, a := range g {
			for _, b := range g {
				sameState := computedState(a, enc) == computedState(b, enc)
				sameJSON := enc(a) == enc(b)
				if sameState != sameJSON {
					t.Errorf("%#v and %#v: same encoding %v, same JSON %v (%s, %s)", a, b, sameState, sameJSON, enc(a), enc(b))
				}
			}
		}
	}
	// The same map built in another order encodes the same.
	a, b := map[string]float64{}, map[string]float64{}
	for i := range 20 {
		a[fmt.Sprint("C", i)] = float64(i)
		b[fmt.Sprint("C", 19-i)] = float64(19 - i)
	}
	if computedState(a, enc) != computedState(b, enc) {
		t.Error("the encoding depends on the map's order")
	}
}
