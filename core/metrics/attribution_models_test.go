package metrics

import (
	"math"
	"testing"
	"time"
)

// TestAttributionShares: the models' shares on paths of 1, 2 and 4
// touches, the lookback's edges and one visit per campaign session.
func TestAttributionShares(t *testing.T) {
	order := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	s := AttributionSettings{LookbackDays: 7, HalfLifeDays: 7, PositionFirst: 0.4, PositionLast: 0.4}
	at := func(h float64) time.Time { return order.Add(-time.Duration(h * float64(time.Hour))) }
	touches := []attrTouch{
		{At: at(7*24 + 1), Kind: attrKindOpened, Ref: "a"},            // 1 h before the lookback: out
		{At: at(7 * 24), Kind: attrKindOpened, Ref: "b"},              // exactly 7 days: in
		{At: at(48), Kind: attrKindVisit, Campaign: "x", Ref: "c"},    // a visit…
		{At: at(47.75), Kind: attrKindVisit, Campaign: "x", Ref: "d"}, // …15 min later: the same visit
		{At: at(47.25), Kind: attrKindVisit, Campaign: "x", Ref: "e"}, // 30 min after d: still the session
		{At: at(47.25), Kind: attrKindVisit, Campaign: "y", Ref: "f"}, // another campaign: a visit
		{At: at(0), Kind: attrKindAgentReply, Ref: "g"},               // at the order's instant: in
		{At: order.Add(time.Minute), Kind: attrKindOpened, Ref: "h"},  // after the order: out
	}
	path := attrPath(touches, order, s)
	var refs string
	for _, p := range path {
		refs += p.Ref
	}
	if refs != "bcfg" {
		t.Fatalf("path = %q, want b c f g", refs)
	}
	want := map[string][]float64{
		"first":    {1, 0, 0, 0},
		"last":     {0, 0, 0, 1},
		"linear":   {0.25, 0.25, 0.25, 0.25},
		"position": {0.4, 0.1, 0.1, 0.4}, // the middle 20% split between two
		// 2^(−168/168) = 0.5, 2^(−48/168) = 0.820335, 2^(−47.25/168) = 0.822878,
		// 2^0 = 1; sum 3.143213.
		"time_decay": {0.5 / 3.143213, 0.820335 / 3.143213, 0.822878 / 3.143213, 1 / 3.143213},
	}
	for model, w := range want {
		got := attrShares(model, path, order, s)
		for i := range w {
			if math.Abs(got[i]-w[i]) > 1e-6 {
				t.Errorf("%s shares = %v, want %v", model, got, w)
				break
			}
		}
	}
	for n, w := range map[int][]float64{1: {1}, 2: {0.5, 0.5}} {
		if got := attrShares("position", path[:n], order, s); len(got) != n || got[0] != w[0] || got[n-1] != w[n-1] {
			t.Errorf("position with %d touches = %v, want %v", n, got, w)
		}
	}
	if got := attrShares("linear", nil, order, s); len(got) != 0 {
		t.Errorf("no touches: %v", got)
	}
	// An order without touches is credited to direct, whole, under every model.
	cs := attrCreditsOf(nil, attrOrder{Amount: 50}, s)
	if len(cs) != 1 || cs[0].Channel != "direct" || cs[0].Kind != attrKindNone || cs[0].Shares != [5]float64{1, 1, 1, 1, 1} {
		t.Errorf("direct credits = %+v", cs)
	}
}
