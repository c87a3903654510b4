package profiles

import (
	"encoding/json"
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
