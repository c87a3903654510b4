package profiles_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
)

// The writer keeps profiles between batches and writes only what changed
// since it last wrote them, or since it read them back when they were not
// cached: each later batch must still land every change (traits, consent,
// name, times, counters, search words) and keep what did not change.
func TestCachedProfileLandsEveryChangeOfLaterBatches(t *testing.T) {
	t.Run("cached", func(t *testing.T) { landsEveryChange(t, false) })
	t.Run("read back", func(t *testing.T) { landsEveryChange(t, true) })
}

func landsEveryChange(t *testing.T, readBack bool) {
	e := start(t, profiles.Options{})
	publish := func(t *testing.T, x *events.Event) {
		t.Helper()
		if readBack {
			profiles.ForgetCacheForTest(e.mod)
		}
		e.publish(t, x)
	}
	base := e.clock.Now().Add(-2 * time.Hour)
	email, phone := "flush-ada@omni-shop.dev", "+14155550111"
	row := func() storedRow {
		t.Helper()
		if err := e.mod.CatchUp(e.PB); err != nil { // what waits to be written (behind.go)
			t.Fatal(err)
		}
		return e.storedRow(t, e.profileOf(t, events.Email, email))
	}
	traits := func(r storedRow) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(r.Traits), &m); err != nil {
			t.Fatalf("traits %q: %v", r.Traits, err)
		}
		return m
	}
	found := func(q string) bool {
		t.Helper()
		var out struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		e.get(t, "/api/v1/profiles?q="+q, &out)
		return len(out.Items) == 1 && out.Items[0].ID == e.profileOf(t, events.Email, email)
	}

	publish(t, ev(events.Identify, "web", base, events.Identities{events.Email: email},
		map[string]any{"traits": map[string]any{"plan": "gold", "first_name": "Ada", "last_name": "Okafor"}}, "web"))
	r := row()
	if r.Name != "Ada Okafor" || traits(r)["plan"] != "gold" || !r.Known || r.Stage != profiles.StageConsideration {
		t.Fatalf("after identify: %+v", r)
	}

	// A page view: times and computed change; traits, consent and name stay.
	seen := base.Add(30 * time.Minute)
	publish(t, ev(events.PageViewed, "web", seen, events.Identities{events.Email: email}, nil, "web"))
	r2 := row()
	if r2.LastSeen != seen.UTC().Format("2006-01-02 15:04:05.000Z") || r2.FirstSeen != r.FirstSeen {
		t.Fatalf("last_seen %q first_seen %q, want %s and %q", r2.LastSeen, r2.FirstSeen, seen, r.FirstSeen)
	}
	if r2.Traits != r.Traits || r2.Consent != r.Consent || r2.Name != r.Name {
		t.Fatalf("unchanged columns changed: %+v then %+v", r, r2)
	}
	var comp profiles.Computed
	if err := json.Unmarshal([]byte(r2.Computed), &comp); err != nil || comp.LastSeen == "" || comp.LastSeen[:19] != seen.UTC().Format("2006-01-02T15:04:05") {
		t.Fatalf("computed %s (%v)", r2.Computed, err)
	}

	// A page view that changes nothing the row holds (older than the last
	// one, on a day and a channel already counted) leaves the row
	// unwritten: updated stays although the clock moved.
	e.clock.Advance(time.Second)
	publish(t, ev(events.PageViewed, "web", base.Add(10*time.Minute), events.Identities{events.Email: email}, nil, "web"))
	if r := row(); r != r2 {
		t.Fatalf("a page view that changes nothing rewrote the row:\n%+v\nthen\n%+v", r2, r)
	}

	// Consent, then an order, then new traits, a new name and a phone.
	publish(t, ev(events.ConsentChanged, "web", seen.Add(time.Minute), events.Identities{events.Email: email},
		map[string]any{"channel": "email", "status": profiles.ConsentSubscribed}, "web"))
	r3 := row()
	if !strings.Contains(r3.Consent, `"status":"subscribed"`) || r3.Traits != r.Traits || r3.Updated <= r2.Updated {
		t.Fatalf("after consent: consent %s traits %s updated %s (before %s)", r3.Consent, r3.Traits, r3.Updated, r2.Updated)
	}
	publish(t, ev(events.OrderPlaced, "shop", seen.Add(2*time.Minute), events.Identities{events.Email: email},
		map[string]any{"total": 40.0, "currency": "USD"}, "web"))
	r4 := row()
	// The purchase stage ends 30 days after the order: the scheduled pass
	// must come by then (an earlier due time that was already set stands).
	purchaseEnds := seen.Add(2*time.Minute + 30*24*time.Hour).UTC().Format("2006-01-02 15:04:05.000Z")
	if r4.Orders != 1 || r4.Stage != profiles.StagePurchase || r4.Due == "" || r4.Due > purchaseEnds || r4.Consent != r3.Consent {
		t.Fatalf("after order: %+v (before %+v)", r4, r3)
	}
	if !found("okafor") {
		t.Fatal("not found by the name it had")
	}
	publish(t, ev(events.Identify, "web", seen.Add(3*time.Minute), events.Identities{events.Email: email, events.Phone: phone},
		map[string]any{"traits": map[string]any{"plan": "platinum", "name": "Zara Bell"}}, "web"))
	r5 := row()
	if r5.Name != "Zara Bell" || traits(r5)["plan"] != "platinum" || traits(r5)["first_name"] != "Ada" || r5.Phone != phone || r5.Orders != 1 {
		t.Fatalf("after second identify: %+v", r5)
	}
	if !found("zara") || !found("bell") || !found("4155550111") || found("okafor") {
		t.Fatal("search words not rewritten for the new name and phone")
	}
}

// traits_due_at does not follow every event that moves last_seen: an
// earlier due time stands, the scheduled pass visits the profile then,
// finds nothing changed and schedules the real next change, at which the
// pass changes the trait on time.
func TestEarlierDueTimeStandsAndThePassLandsTheChangeOnTime(t *testing.T) {
	e := start(t, profiles.Options{})
	start := e.clock.Now()
	email := "due-ada@omni-shop.dev"
	first, second := start.Add(-2*time.Hour), start.Add(-time.Hour)
	due := func() string {
		t.Helper()
		var d string
		if err := e.PB.DB().NewQuery("SELECT traits_due_at FROM profiles WHERE id={:id}").
			Bind(map[string]any{"id": e.profileOf(t, events.Email, email)}).Row(&d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	engagement := func() string {
		t.Helper()
		return e.detail(t, e.profileOf(t, events.Email, email)).Computed.EngagementLevel
	}
	at := func(x time.Time) string { return x.UTC().Format("2006-01-02 15:04:05.000Z") }
	const month = 30 * 24 * time.Hour

	e.publish(t, ev(events.PageViewed, "web", first, events.Identities{events.Email: email}, nil, "web"))
	if d := due(); d != at(first.Add(month)) {
		t.Fatalf("due %q after the first visit, want %s", d, at(first.Add(month)))
	}
	e.publish(t, ev(events.PageViewed, "web", second, events.Identities{events.Email: email}, nil, "web"))
	if d := due(); d != at(first.Add(month)) {
		t.Fatalf("due %q after the second visit, want the earlier %s to stand", d, at(first.Add(month)))
	}

	// The early visit: still engaged (seen 30 days less an hour ago), and
	// the real next change is scheduled.
	e.clock.Advance(month - 2*time.Hour + time.Minute)
	if err := e.mod.Reevaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := engagement(); got != profiles.EngagementNormal {
		t.Fatalf("engagement %q at the early visit, want %q", got, profiles.EngagementNormal)
	}
	if d := due(); d != at(second.Add(month)) {
		t.Fatalf("due %q after the early visit, want %s", d, at(second.Add(month)))
	}

	// 30 days after the last visit: less engaged.
	e.clock.Advance(time.Hour)
	if err := e.mod.Reevaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := engagement(); got != profiles.EngagementLess {
		t.Fatalf("engagement %q 30 days after the last visit, want %q", got, profiles.EngagementLess)
	}
}
