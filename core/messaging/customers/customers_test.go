package customers_test

import (
	"testing"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/messaging/customers"
	"github.com/omni/omni/core/messaging/internal/msgtest"
	"github.com/omni/omni/core/messaging/render"
	"github.com/omni/omni/core/profiles"
)

// TestCustomerVariables: a customer's template variables come from the
// profile, its traits and its computed traits, as docs/messaging.md lists.
func TestCustomerVariables(t *testing.T) {
	e := msgtest.Start(t, profiles.New(profiles.Options{}))
	ids := events.Identities{events.Email: "eve@omni-shop.dev", events.Phone: "+14155550103"}
	pid := e.Customer(t, ids, map[string]any{"name": "Eve Moneypenny", "city": "Leeds", "favorite_tea": "assam"})
	e.Event(t, events.OrderPlaced, ids, map[string]any{"order_id": "1001", "total": 42.5, "currency": "GBP"})

	c, err := customers.Load(e.PB, pid)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": pid, "first_name": "Eve", "last_name": "Moneypenny", "name": "Eve Moneypenny",
		"email": "eve@omni-shop.dev", "phone": "+14155550103", "city": "Leeds", "favorite_tea": "assam",
		"lifetime_value": 42.5, "currency": "GBP", "orders_count": float64(1)}
	for k, v := range want {
		if c.Vars[k] != v {
			t.Errorf("%s = %#v, want %#v", k, c.Vars[k], v)
		}
	}
	got, err := render.Render(`{{ customer.first_name }} spent {{ customer.lifetime_value | money: customer.currency }} over {{ customer.orders_count | pluralize: "order", "orders" }}`,
		render.Vars(c.Vars, nil, render.Shop{}, "", ""))
	if err != nil || got != "Eve spent £42.50 over order" {
		t.Fatalf("%q %v", got, err)
	}
	if kind, value, err := customers.Identity(e.PB, pid); err != nil || kind != events.Email || value != "eve@omni-shop.dev" {
		t.Fatalf("identity: %s %s %v", kind, value, err)
	}
	if _, err := customers.Load(e.PB, "nosuchprofile"); err != customers.ErrNotFound {
		t.Fatalf("unknown profile: %v", err)
	}
	names, err := customers.TraitNames(e.PB)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range names {
		found = found || n == "favorite_tea"
	}
	if !found {
		t.Fatalf("trait names %v lack favorite_tea", names)
	}
}
