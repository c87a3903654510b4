package profiles

import (
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
)

func order(at time.Time, total any, cur string) *events.Event {
	props := map[string]any{"total": total}
	if cur != "" {
		props["currency"] = cur
	}
	return &events.Event{Type: events.OrderPlaced, OccurredAt: at, Properties: props, Context: events.Context{Channel: "web"}}
}

func TestLifecycleAndEngagementRules(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	cur := Currency{Base: "USD", Rates: map[string]float64{"EUR": 1.1}}
	c := &Computed{}
	c.apply(&events.Event{Type: events.PageViewed, OccurredAt: now.Add(-100 * day)}, cur)
	c.derive(now, cur)
	if c.LifecycleStage != StageAwareness || c.EngagementLevel != EngagementDormant {
		t.Fatalf("anonymous: %s %s", c.LifecycleStage, c.EngagementLevel)
	}
	c.Identified = true
	c.apply(&events.Event{Type: events.PageViewed, OccurredAt: now.Add(-20 * day)}, cur)
	c.derive(now, cur)
	if c.LifecycleStage != StageConsideration || c.EngagementLevel != EngagementNormal {
		t.Fatalf("identified: %s %s", c.LifecycleStage, c.EngagementLevel)
	}
	c.apply(order(now.Add(-400*day), "100", "eur"), cur)
	due := c.derive(now, cur)
	if c.LifecycleStage != StagePostPurchase {
		t.Fatalf("old order: %s", c.LifecycleStage)
	}
	c.apply(order(now.Add(-2*day), 50.0, "USD"), cur)
	due = c.derive(now, cur)
	if c.LifecycleStage != StagePurchase || !due.Equal(now.Add(-2*day).Add(purchaseWindow)) {
		t.Fatalf("recent order: %s due %v", c.LifecycleStage, due)
	}
	c.apply(order(now.Add(-1*day), 10, "GBP"), cur)
	for i := 0; i < 3; i++ {
		c.apply(&events.Event{Type: events.PageViewed, OccurredAt: now.Add(-time.Duration(i) * day)}, cur)
	}
	due = c.derive(now, cur)
	if c.LifecycleStage != StageLoyal || c.EngagementLevel != EngagementHigh {
		t.Fatalf("two orders in a year: %s %s", c.LifecycleStage, c.EngagementLevel)
	}
	if c.OrdersCount != 3 || c.LifetimeValue["EUR"] != 100 || c.LifetimeValue["USD"] != 50 || *c.LifetimeValueBase != 160 ||
		len(c.Unconverted) != 1 || c.Unconverted[0] != "GBP" || c.AverageOrderValue["EUR"] != 100 {
		t.Fatalf("money: %+v base=%v", c, *c.LifetimeValueBase)
	}
	c.apply(&events.Event{Type: events.OrderRefunded, OccurredAt: now, Properties: map[string]any{"amount": "-25", "currency": "USD"}}, cur)
	c.derive(now, cur)
	if c.LifetimeValue["USD"] != 25 || c.OrdersCount != 3 {
		t.Fatalf("refund: %+v", c.LifetimeValue)
	}
	// Loyalty lasts until the second most recent order is a year old.
	later := now.Add(-2 * day).Add(loyalWindow).Add(time.Hour)
	c.derive(later, cur)
	if c.LifecycleStage != StagePostPurchase || c.EngagementLevel != EngagementDormant {
		t.Fatalf("a year later: %s %s", c.LifecycleStage, c.EngagementLevel)
	}
}

func TestPreferredChannelIsLatestTwoWay(t *testing.T) {
	c := &Computed{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.apply(&events.Event{Type: events.MessageReceived, OccurredAt: t0.Add(time.Hour), Context: events.Context{Channel: "sms"}}, Currency{})
	c.apply(&events.Event{Type: events.EmailClicked, OccurredAt: t0, Context: events.Context{Channel: "email"}}, Currency{}) // older, late
	c.apply(&events.Event{Type: events.MessageSent, OccurredAt: t0.Add(2 * time.Hour), Context: events.Context{Channel: "whatsapp"}}, Currency{})
	if c.PreferredChannel != "sms" {
		t.Fatalf("preferred = %q", c.PreferredChannel)
	}
	if c.LastSeen != fmtT(t0.Add(time.Hour)) {
		t.Fatalf("an outbound message counted as activity: %s", c.LastSeen)
	}
}

func TestRuleValidationMessages(t *testing.T) {
	for raw, want := range map[string]string{
		`[]`: "must be an object",
		`{"trait":"a","op":"eq","value":1,"event":"x.y"}`:                `has both "event" and "trait"`,
		`{"and":[{"trait":"orders count","op":"eq","value":1}]}`:         "and[0].trait: must be a trait name",
		`{"or":[{"event":"order.placed","count":-1}]}`:                   "or[0].count: must be a whole number",
		`{"not":{"trait":"plan","op":"in","value":[]}}`:                  "not.value: must be a non-empty array",
		`{"event":"order.placed","within_days":0}`:                       "within_days: must be a whole number of days",
		`{"consent":"email","status":"maybe"}`:                           "status: must be subscribed, unsubscribed or unknown",
		`{"trait":"plan","op":"eq","value":"x","extra":1}`:               `extra: is not allowed in a "trait" node`,
		`{"trait":"last_seen","op":"within_days","value":7,"foo":"bar"}`: `foo: is not allowed`,
		`{"segment":""}`: "segment: must be a segment id",
		`{"trait":"plan","op":"exists","value":1}`: "value: is not used with op",
	} {
		_, err := ParseRule([]byte(raw))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", raw, err, want)
		}
	}
	if _, err := ParseRule([]byte(`{"and":[{"trait":"lifetime_value.EUR","op":"gte","value":100},{"not":{"event":"order.placed","op":"gte","count":1,"within_days":90}},{"consent":"sms","status":"unknown"}]}`)); err != nil {
		t.Fatal(err)
	}
}
