package profiles_test

import (
	"context"
	"testing"
	"time"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
)

func (e *env) base(t *testing.T) profiles.BaseCurrency {
	t.Helper()
	var b profiles.BaseCurrency
	e.get(t, "/api/v1/profiles/currency", &b)
	return b
}

// Without profiles.base_currency, lifetime_value_base used to be silently
// empty. The shop's currency, from the first order a connector reports,
// becomes the base currency; profiles with earlier orders get their base
// figures on the next scheduled pass; segment rules on it then match.
func TestBaseCurrencyFromTheFirstConnectorOrder(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	if b := e.base(t); b.Code != "" || b.Origin != "" {
		t.Fatalf("base before any order: %+v", b)
	}
	big := e.createSegment(t, "Spent 10+", `{"trait":"lifetime_value_base","op":"gte","value":10}`)

	// An order through the tracking API does not set the shop's currency.
	web := ev(events.OrderPlaced, "site", now.Add(-2*time.Hour), events.Identities{events.Email: "early@omni-shop.dev"},
		map[string]any{"order_id": "w1", "total": 12.0, "currency": "CAD"}, events.ChannelWeb)
	web.ID = events.TrackingID("src1", "w1")
	e.publish(t, web)
	if b := e.base(t); b.Code != "" {
		t.Fatalf("a tracking order set the base currency: %+v", b)
	}

	shop := ev(events.OrderPlaced, "shopify", now.Add(-time.Hour), events.Identities{events.Email: "first@omni-shop.dev"},
		map[string]any{"order_id": "5600001086", "order_name": "#1086", "total": 30.0, "currency": "cad"}, events.ChannelWeb)
	e.publish(t, shop)
	if b := e.base(t); b.Code != "CAD" || b.Origin != "connector" || b.Note == "" {
		t.Fatalf("base after the first Shopify order: %+v", b)
	}
	first := e.detail(t, e.profileOf(t, events.Email, "first@omni-shop.dev"))
	if first.Computed.LifetimeValueBase == nil || *first.Computed.LifetimeValueBase != 30 || first.Computed.BaseCurrency != "CAD" {
		t.Fatalf("first buyer's base figures: %+v", first.Computed)
	}
	early := e.profileOf(t, events.Email, "early@omni-shop.dev")
	if err := e.mod.Reevaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := e.detail(t, early).Computed; c.LifetimeValueBase == nil || *c.LifetimeValueBase != 12 {
		t.Fatalf("earlier buyer after the scheduled pass: %+v", c)
	}
	if n := e.members(t, big); n != 2 {
		t.Fatalf("segment on lifetime_value_base has %d members, want 2", n)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_settings WHERE key = 'base_currency' AND value = 'CAD'", nil); n != 1 {
		t.Fatalf("the adopted base currency is not remembered (%d rows)", n)
	}
}

// omni.yaml's base currency always wins over the shop's.
func TestConfiguredBaseCurrencyWins(t *testing.T) {
	e := start(t, profiles.Options{}, func(c *config.Config) { c.Profiles.BaseCurrency = "USD" })
	e.publish(t, ev(events.OrderPlaced, "square", e.clock.Now().Add(-time.Hour), events.Identities{events.Email: "pos@omni-shop.dev"},
		map[string]any{"order_id": "sq1", "total": 5.0, "currency": "GBP"}, events.ChannelPOS))
	if b := e.base(t); b.Code != "USD" || b.Origin != "config" {
		t.Fatalf("base: %+v", b)
	}
}

// Buying stages read as a shop owner says them, and saved rules on the
// older lifecycle_stage keep matching the same people.
func TestBuyingStageAndLifecycleRules(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	loyalOld := e.createSegment(t, "Loyal (lifecycle)", `{"trait":"lifecycle_stage","op":"eq","value":"loyal"}`)
	loyalNew := e.createSegment(t, "Loyal (buying stage)", `{"trait":"buying_stage","op":"eq","value":"loyal"}`)
	firstBuy := e.createSegment(t, "First purchase", `{"trait":"buying_stage","op":"eq","value":"first_purchase"}`)
	atRisk := e.createSegment(t, "At risk", `{"trait":"buying_stage","op":"eq","value":"at_risk"}`)
	order := func(email, id string, ago time.Duration) *events.Event {
		return ev(events.OrderPlaced, "shopify", now.Add(-ago), events.Identities{events.Email: email},
			map[string]any{"order_id": id, "total": 10.0, "currency": "EUR"}, events.ChannelWeb)
	}
	e.publish(t,
		order("loyal@omni-shop.dev", "1", 200*24*time.Hour), order("loyal@omni-shop.dev", "2", 40*24*time.Hour), order("loyal@omni-shop.dev", "2b", 24*time.Hour),
		order("twice@omni-shop.dev", "5", 30*24*time.Hour), order("twice@omni-shop.dev", "6", 3*24*time.Hour),
		order("once@omni-shop.dev", "3", 2*24*time.Hour),
		order("lapsed@omni-shop.dev", "4", 200*24*time.Hour),
		ev(events.Identify, "site", now.Add(-time.Hour), events.Identities{events.Email: "looking@omni-shop.dev"}, map[string]any{"traits": map[string]any{"name": "Lu"}}, events.ChannelWeb),
	)
	stage := func(email string) string {
		return e.detail(t, e.profileOf(t, events.Email, email)).Computed.BuyingStage
	}
	for email, want := range map[string]string{"loyal@omni-shop.dev": "loyal", "twice@omni-shop.dev": "repeat", "once@omni-shop.dev": "first_purchase",
		"lapsed@omni-shop.dev": "at_risk", "looking@omni-shop.dev": "browsing"} {
		if got := stage(email); got != want {
			t.Errorf("%s: buying stage %q, want %q", email, got, want)
		}
	}
	// lifecycle_stage keeps its own meaning (two orders within a year).
	if e.members(t, loyalOld) != 2 || e.members(t, loyalNew) != 1 || e.members(t, firstBuy) != 1 || e.members(t, atRisk) != 1 {
		t.Errorf("members: loyal(lifecycle)=%d loyal=%d first=%d at risk=%d", e.members(t, loyalOld), e.members(t, loyalNew), e.members(t, firstBuy), e.members(t, atRisk))
	}
	// 90 days on, the one-time buyer is at risk: the scheduled pass moves them.
	e.clock.Advance(89 * 24 * time.Hour)
	if err := e.mod.Reevaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := stage("once@omni-shop.dev"); got != "at_risk" {
		t.Errorf("one-time buyer after 91 days: %q", got)
	}
	if got := stage("twice@omni-shop.dev"); got != "at_risk" {
		t.Errorf("repeat buyer after 92 days without an order: %q", got)
	}
	if n := e.members(t, atRisk); n != 3 {
		t.Errorf("at risk after 91 days: %d members, want 3", n)
	}
}
