package profiles_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/deadletter"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/profiles"
)

// A superuser deletes a profile at /_/; its identities stay behind. The
// next event for that email must land on a live profile, not fail for ever.
func TestEventForADeletedProfileDetachesTheIdentity(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	e.publish(t, ev("identify", "website", now, events.Identities{"email": "gone@omni-shop.dev"}, map[string]any{"plan": "pro"}, "web"))
	old := e.profileOf(t, "email", "gone@omni-shop.dev")
	if old == "" {
		t.Fatal("no profile")
	}
	rec, err := e.PB.FindRecordById("profiles", old)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.PB.Delete(rec); err != nil { // what the admin at /_/ does
		t.Fatal(err)
	}

	e.publish(t, ev("track", "website", now.Add(time.Second), events.Identities{"email": "gone@omni-shop.dev"}, nil, "web"),
		ev("track", "website", now.Add(2*time.Second), events.Identities{"email": "other@omni-shop.dev"}, nil, "web"))
	fresh := e.profileOf(t, "email", "gone@omni-shop.dev")
	if fresh == "" || fresh == old {
		t.Fatalf("identity still points at the deleted profile %q (now %q)", old, fresh)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profiles WHERE id={:id}", map[string]any{"id": fresh}); n != 1 {
		t.Fatalf("new profile %s not stored", fresh)
	}
	if n, _ := deadletter.Count(e.PB); n != 0 {
		t.Fatalf("%d events parked; the missing profile should have been detached", n)
	}
}

// With a segment on a custom trait, one identify whose traits are nested
// 1,500 deep used to make SQLite's JSON functions fail the segment check
// and wedge the consumer, across restarts. Such an event reaches the
// consumer only past the ingest bounds (e.g. an old message in the
// stream); it must be stored (its traits unreadable to rules) or parked,
// never stop the others.
func TestDeeplyNestedTraitsDoNotWedge(t *testing.T) {
	dir := t.TempDir()
	mod := profiles.New(profiles.Options{Interval: -1})
	s := omnitest.Start(t, omnitest.Options{DataDir: dir, Modules: modules(mod)})
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	if code, body := s.Do(t, "POST", "/api/collections/segments/records", `{"name":"Pro","rule":{"trait":"plan","op":"eq","value":"pro"}}`, auth(owner)); code != 200 {
		t.Fatalf("segment: %d %s", code, body)
	}
	deep := map[string]any{}
	cur := deep
	for i := 0; i < 1500; i++ {
		next := map[string]any{}
		cur["a"] = next
		cur = next
	}
	now := time.Now().UTC()
	bad := &events.Event{ID: "deep-1", Type: "identify", Source: "website", OccurredAt: now, ReceivedAt: now,
		Identities: events.Identities{"email": "deep@omni-shop.dev"}, Properties: map[string]any{"traits": map[string]any{"nest": deep, "plan": "pro"}}}
	good := &events.Event{ID: "fine-1", Type: "identify", Source: "website", OccurredAt: now, ReceivedAt: now,
		Identities: events.Identities{"email": "fine@omni-shop.dev"}, Properties: map[string]any{"traits": map[string]any{"plan": "pro"}}}
	for _, err := range ingest.Publish(context.Background(), s.Bus, []*events.Event{bad, good}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	count := func(q string) int {
		var n int
		_ = s.PB.DB().NewQuery(q).Row(&n)
		return n
	}
	omnitest.Eventually(t, 60*time.Second, func() bool {
		dead, _ := deadletter.Count(s.PB)
		return count("SELECT COUNT(*) FROM events WHERE event_id='fine-1'") == 1 &&
			count("SELECT COUNT(*) FROM events WHERE event_id='deep-1'")+dead == 1
	}, "the good event stored and the deep one stored or parked")
	if n := count("SELECT COUNT(*) FROM segment_members"); n != 1 {
		t.Fatalf("segment members = %d, want the readable profile only", n)
	}

	// After a restart the consumer is not wedged again.
	s.Stop()
	mod = profiles.New(profiles.Options{Interval: -1})
	s = omnitest.Start(t, omnitest.Options{DataDir: dir, Modules: modules(mod)})
	if code, body := s.Track(t, "/v1/identify", map[string]any{"userId": "u9", "traits": map[string]any{"email": "later@omni-shop.dev"}}); code != 200 {
		t.Fatalf("identify: %d %s", code, body)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool {
		var n int
		_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM identities WHERE value='later@omni-shop.dev'").Row(&n)
		return n == 1
	}, "later event resolved after restart")
}

// Stored traits that do not parse are never silently replaced by {}: the
// event is parked and the stored value is left as it was.
func TestMalformedStoredTraitsAreKeptAndTheEventParked(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	e.publish(t, ev("identify", "website", now, events.Identities{"email": "keep@omni-shop.dev"}, map[string]any{"traits": map[string]any{"plan": "pro"}}, "web"))
	pid := e.profileOf(t, "email", "keep@omni-shop.dev")
	const broken = `{"plan": "pro", "vip": tru`
	if _, err := e.PB.DB().NewQuery("UPDATE profiles SET traits={:t} WHERE id={:id}").Bind(map[string]any{"t": broken, "id": pid}).Execute(); err != nil {
		t.Fatal(err)
	}
	// Any edit through PocketBase drops the resolution cache, so the next
	// event reads the profile row again.
	idRec, err := e.PB.FindFirstRecordByData("identities", "value", "keep@omni-shop.dev")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.PB.Save(idRec); err != nil {
		t.Fatal(err)
	}

	e.publish(t, ev("track", "website", now.Add(time.Second), events.Identities{"email": "other@omni-shop.dev"}, nil, "web"))
	for _, err := range ingest.Publish(context.Background(), e.Bus, []*events.Event{
		ev("track", "website", now.Add(2*time.Second), events.Identities{"email": "keep@omni-shop.dev"}, nil, "web")}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	omnitest.Eventually(t, 60*time.Second, func() bool { n, _ := deadletter.Count(e.PB); return n == 1 }, "event parked")
	var traits string
	_ = e.PB.DB().NewQuery("SELECT traits FROM profiles WHERE id={:id}").Bind(map[string]any{"id": pid}).Row(&traits)
	if traits != broken {
		t.Fatalf("stored traits were rewritten to %q", traits)
	}
	dead, _ := deadletter.List(e.PB, "", 1)
	if !strings.Contains(dead[0].Error, "traits are not valid JSON") {
		t.Fatalf("error = %q", dead[0].Error)
	}
}

func modules(ms ...app.Module) func(*app.Omni) []app.Module {
	return func(*app.Omni) []app.Module { return ms }
}
