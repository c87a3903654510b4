package profiles_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
)

// A vendor's erasure request (Shopify's customers/redact arrives as
// profile.erased from source shopify) erases the person in Omni, like an
// owner's DELETE: profile, events and identities gone, tombstones written,
// and Omni's own profile.erased published for the connectors. Before, the
// request was only stored as one more event on the profile.
func TestVendorErasureRequestErasesTheProfile(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	ids := events.Identities{events.Email: "redact@omni-shop.dev", events.ShopifyCustomer: "207119551"}
	e.publish(t,
		ev(events.OrderPlaced, "shopify", now.Add(-time.Hour), ids, map[string]any{"total": 10, "currency": "USD"}, "web"),
		ev(events.PageViewed, "website", now.Add(-time.Minute), events.Identities{events.Email: "redact@omni-shop.dev", events.AnonymousID: "anon-r"}, nil, "web"))
	pid := e.profileOf(t, events.Email, "redact@omni-shop.dev")
	if pid == "" {
		t.Fatal("no profile before the request")
	}
	erased := make(chan *nats.Msg, 4)
	sub, err := e.Bus.Conn.ChanSubscribe("omni.events.omni.profile.erased", erased)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	// Shopify names the customer by id and email only. The request and
	// what it erases leave the events table, so the wait is on a marker
	// event of someone else published after it.
	e.publish(t, ev(events.ProfileErased, "shopify", now, events.Identities{events.ShopifyCustomer: "207119551", events.Email: "redact@omni-shop.dev"},
		map[string]any{"reason": "shopify customers/redact"}, ""),
		ev(events.PageViewed, "website", now, events.Identities{events.AnonymousID: "marker-1"}, nil, "web"))

	omnitest.Eventually(t, 10*time.Second, func() bool {
		return e.count(t, "SELECT COUNT(*) FROM profiles WHERE id={:p}", map[string]any{"p": pid}) == 0
	}, "the profile to be erased")
	if n := e.count(t, "SELECT COUNT(*) FROM events WHERE profile={:p} OR identities LIKE '%redact@omni-shop.dev%' OR identities LIKE '%anon-r%'", map[string]any{"p": pid}); n != 0 {
		t.Fatalf("%d events of the erased person left", n)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM identities WHERE value IN ('redact@omni-shop.dev','207119551','anon-r')", nil); n != 0 {
		t.Fatalf("%d identities left", n)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_tombstones", nil); n != 3 {
		t.Fatalf("tombstones = %d, want 3", n)
	}
	select {
	case m := <-erased:
		got, _ := events.Unmarshal(m.Data)
		if got.Source != "omni" || got.Properties["profile_id"] != pid {
			t.Fatalf("profile.erased = %+v", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Omni published no profile.erased for connectors")
	}
	// A later event for the same customer does not bring the person back.
	e.publish(t, ev(events.OrderPlaced, "shopify", now.Add(time.Second), ids, map[string]any{"total": 5, "currency": "USD"}, "web"),
		ev(events.PageViewed, "website", now, events.Identities{events.AnonymousID: "marker-2"}, nil, "web"))
	if p := e.profileOf(t, events.Email, "redact@omni-shop.dev"); p != "" {
		t.Fatalf("profile %s re-created after the redaction", p)
	}
}
