package profiles_test

import (
	"slices"
	"testing"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
)

// A customer browsing with Segment's browser library (no channel sent):
// page, track and identify are all web, so the profile's channels read
// "web" rather than "server, web"; and the page call's name is the event's
// name on the timeline.
func TestSegmentBrowserClientChannelsOverHTTP(t *testing.T) {
	e := start(t, profiles.Options{})
	lib := map[string]any{"library": map[string]any{"name": "analytics.js", "version": "next-1.70.0"}, "userAgent": "Mozilla/5.0"}
	batch := []map[string]any{
		{"type": "page", "anonymousId": "anon-ch-1", "messageId": "ch-p", "name": "Product", "context": lib},
		{"type": "track", "anonymousId": "anon-ch-1", "messageId": "ch-t", "event": "Product Viewed", "context": lib},
		{"type": "identify", "anonymousId": "anon-ch-1", "messageId": "ch-i", "traits": map[string]any{"email": "maya@omni-shop.dev"}, "context": lib},
		// The same person later, from the shop's app.
		{"type": "track", "userId": "maya-1", "anonymousId": "anon-ch-1", "messageId": "ch-a", "event": "Wishlist Viewed",
			"context": map[string]any{"library": map[string]any{"name": "analytics-ios"}}},
	}
	if code, body := e.Track(t, "/v1/batch", map[string]any{"batch": batch}); code != 200 {
		t.Fatalf("batch: %d %s", code, body)
	}
	for _, m := range batch {
		e.waitStored(t, m["messageId"].(string))
	}
	d := e.detail(t, e.profileOf(t, events.AnonymousID, "anon-ch-1"))
	if !slices.Equal(d.Computed.Channels, []string{"app", "web"}) {
		t.Fatalf("channels %v, want [app web]", d.Computed.Channels)
	}
	var name string
	_ = e.PB.DB().NewQuery("SELECT name FROM events WHERE event_id={:id}").Bind(map[string]any{"id": e.EventID("ch-p")}).Row(&name)
	if name != "Product" {
		t.Fatalf("page event name %q, want Product", name)
	}
}

// Segment's alias links previousId to userId (Segment's spec): an
// anonymous browser and a signed-in account become one person; a
// previousId that is another account's userId is refused by the usual
// guard (two user ids never merge) and recorded as a conflict; a junk
// previousId links nothing; an unknown one is the browser's anonymous id.
func TestSegmentAliasLinksPreviousIDToUserID(t *testing.T) {
	e := start(t, profiles.Options{})
	send := func(msgs ...map[string]any) {
		t.Helper()
		if code, body := e.Track(t, "/v1/batch", map[string]any{"batch": msgs}); code != 200 {
			t.Fatalf("batch: %d %s", code, body)
		}
		for _, m := range msgs {
			e.waitStored(t, m["messageId"].(string))
		}
	}
	send(
		map[string]any{"type": "page", "anonymousId": "anon-al-1", "messageId": "al-p1", "name": "Home"},
		map[string]any{"type": "identify", "userId": "user-al-1", "messageId": "al-i1", "traits": map[string]any{"email": "ravi@omni-shop.dev"}},
		map[string]any{"type": "identify", "userId": "user-al-old", "messageId": "al-i2", "traits": map[string]any{"email": "other@omni-shop.dev"}},
	)
	anon, user, other := e.profileOf(t, events.AnonymousID, "anon-al-1"), e.profileOf(t, events.UserID, "user-al-1"), e.profileOf(t, events.UserID, "user-al-old")
	if anon == "" || user == "" || anon == user || other == user {
		t.Fatalf("setup: anon %q user %q other %q", anon, user, other)
	}

	send(map[string]any{"type": "alias", "previousId": "anon-al-1", "userId": "user-al-1", "messageId": "al-a1"})
	if a, u := e.profileOf(t, events.AnonymousID, "anon-al-1"), e.profileOf(t, events.UserID, "user-al-1"); a != u {
		t.Fatalf("alias did not link the anonymous browser to the account: %q %q", a, u)
	}
	if n := e.liveProfiles(t); n != 2 {
		t.Fatalf("%d profiles after alias, want 2", n)
	}

	send(map[string]any{"type": "alias", "previousId": "user-al-old", "userId": "user-al-1", "messageId": "al-a2"})
	if e.profileOf(t, events.UserID, "user-al-old") == e.profileOf(t, events.UserID, "user-al-1") {
		t.Fatal("alias merged two accounts with different user ids")
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_conflicts WHERE reason='distinct_user_id' AND event_id={:e}", map[string]any{"e": e.EventID("al-a2")}); n != 1 {
		t.Fatalf("no conflict recorded for the refused alias (%d)", n)
	}

	send(map[string]any{"type": "alias", "previousId": "null", "userId": "user-al-1", "messageId": "al-a3"},
		map[string]any{"type": "alias", "previousId": "anon-al-2", "userId": "user-al-1", "messageId": "al-a4"})
	if pid := e.profileOf(t, events.AnonymousID, "null"); pid != "" {
		t.Fatal("a junk previousId was linked")
	}
	send(map[string]any{"type": "page", "anonymousId": "anon-al-2", "messageId": "al-p2", "name": "Cart"})
	if e.profileOf(t, events.AnonymousID, "anon-al-2") != e.profileOf(t, events.UserID, "user-al-1") {
		t.Fatal("the aliased browser's next page view did not land on the account")
	}
}
