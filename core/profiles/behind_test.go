package profiles_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/store"
)

const dbTime = "2006-01-02 15:04:05.000Z"

// A page view after the first event changes only what events derive: it
// waits (the row keeps the earlier last seen, profile_behind lists it),
// the customer page and store.SyncProfiles write it, and otherwise it is
// written by the first events batch after its window (5 s) or, with no
// batch coming, by the writer's idle pass.
func TestWaitingRowLandsWhenAskedOrWhenItsWindowEnds(t *testing.T) {
	// A base currency is set: adopting the first order's writes every row.
	e := start(t, profiles.Options{Currency: &profiles.Currency{Base: "USD"}})
	base := e.clock.Now().Add(-time.Hour)
	email := "wait@omni-shop.dev"
	ids := events.Identities{events.Email: email}
	e.publish(t, ev(events.Identify, "web", base, ids, map[string]any{"traits": map[string]any{"first_name": "Ada"}}, "web"))
	pid := e.profileOf(t, events.Email, email)
	if pid == "" {
		t.Fatal("no profile")
	}
	first := e.storedRow(t, pid)
	if first.LastSeen != base.UTC().Format(dbTime) || first.Name != "Ada" {
		t.Fatalf("a new profile is written at once: %+v", first)
	}
	waiting := func() int {
		return e.count(t, "SELECT COUNT(*) FROM profile_behind WHERE profile={:p}", map[string]any{"p": pid})
	}

	// 1. Held back; the customer page shows it and writes it.
	seen := base.Add(10 * time.Minute)
	held0, written0 := e.mod.RowWrites()
	e.publish(t, ev(events.PageViewed, "web", seen, ids, nil, "web"))
	if r := e.storedRow(t, pid); r.LastSeen != first.LastSeen || waiting() != 1 || profiles.WaitingForTest(e.mod) != 1 {
		t.Fatalf("the page view was written at once (last_seen %q, listed %d)", r.LastSeen, waiting())
	}
	if held, written := e.mod.RowWrites(); held != held0+1 || written != written0 {
		t.Fatalf("counted %d held back, %d written; want %d and %d", held, written, held0+1, written0)
	}
	if h := e.health(t); h["rows_waiting"] != 1.0 || h["changes_held_back"] != float64(held0+1) {
		t.Fatalf("health: %v", h)
	}
	if d := e.detail(t, pid); d.Computed.LastSeen == "" || !sameInstant(t, d.Computed.LastSeen, seen) {
		t.Fatalf("customer page last seen %q, want %s", d.Computed.LastSeen, seen)
	}
	if r := e.storedRow(t, pid); r.LastSeen != seen.UTC().Format(dbTime) || waiting() != 0 {
		t.Fatalf("after the customer page: last_seen %q, listed %d", r.LastSeen, waiting())
	}
	if _, written := e.mod.RowWrites(); written != written0+1 {
		t.Fatalf("counted %d rows written after the customer page; want %d", written, written0+1)
	}

	// 2. store.SyncProfiles, as other modules call it.
	seen = seen.Add(10 * time.Minute)
	e.publish(t, ev(events.OrderPlaced, "shopify", seen, ids, map[string]any{"total": 30.0, "currency": "USD"}, ""))
	if r := e.storedRow(t, pid); r.Orders != 0 {
		t.Fatalf("the order was written at once: %+v", r)
	}
	if err := store.SyncProfiles(e.PB, pid); err != nil {
		t.Fatal(err)
	}
	if r := e.storedRow(t, pid); r.Orders != 1 || r.LastSeen != seen.UTC().Format(dbTime) || waiting() != 0 {
		t.Fatalf("after SyncProfiles: %+v, listed %d", r, waiting())
	}

	// 3. Written by the first batch after the window, whoever it is for.
	seen = seen.Add(10 * time.Minute)
	e.publish(t, ev(events.PageViewed, "web", seen, ids, nil, "web"))
	e.clock.Advance(4 * time.Second)
	e.publish(t, ev(events.PageViewed, "web", seen, events.Identities{events.Email: "other@omni-shop.dev"}, nil, "web"))
	if r := e.storedRow(t, pid); r.LastSeen == seen.UTC().Format(dbTime) {
		t.Fatal("written before its window ended")
	}
	e.clock.Advance(2 * time.Second)
	e.publish(t, ev(events.PageViewed, "web", seen, events.Identities{events.Email: "third@omni-shop.dev"}, nil, "web"))
	if r := e.storedRow(t, pid); r.LastSeen != seen.UTC().Format(dbTime) || waiting() != 0 {
		t.Fatalf("after its window: last_seen %q, listed %d", r.LastSeen, waiting())
	}

	// 4. With no batch coming, the idle pass writes it.
	seen = seen.Add(10 * time.Minute)
	e.publish(t, ev(events.PageViewed, "web", seen, ids, nil, "web"))
	if waiting() != 1 {
		t.Fatal("not held back")
	}
	e.clock.Advance(6 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for e.storedRow(t, pid).LastSeen != seen.UTC().Format(dbTime) {
		if time.Now().After(deadline) {
			t.Fatal("the idle pass did not write the row")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if waiting() != 0 {
		t.Fatal("written but still listed")
	}
}

func sameInstant(t *testing.T, s string, want time.Time) bool {
	t.Helper()
	got, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return got.Equal(want)
}

// After a crash the waiting changes are lost from memory, not from the
// events: the next start recomputes the rows profile_behind lists.
func TestRowsLeftWaitingByACrashAreRecomputedAtStart(t *testing.T) {
	e := start(t, profiles.Options{Currency: &profiles.Currency{Base: "USD"}})
	base := e.clock.Now().Add(-2 * time.Hour)
	ids := events.Identities{events.Email: "crash@omni-shop.dev"}
	e.publish(t, ev(events.Identify, "web", base, ids, map[string]any{"traits": map[string]any{"first_name": "Cy"}}, "web"))
	e.publish(t,
		ev(events.OrderPlaced, "shopify", base.Add(time.Hour), ids, map[string]any{"total": 20.0, "currency": "USD"}, ""),
		ev(events.OrderPlaced, "shopify", base.Add(90*time.Minute), ids, map[string]any{"total": 22.5, "currency": "USD"}, ""))
	pid := e.profileOf(t, events.Email, "crash@omni-shop.dev")
	if r := e.storedRow(t, pid); r.Orders != 0 {
		t.Fatalf("orders written at once: %+v", r)
	}
	profiles.LoseWaitingForTest(e.mod)
	if err := profiles.RecoverWaitingForTest(e.mod); err != nil {
		t.Fatal(err)
	}
	r := e.storedRow(t, pid)
	if r.Orders != 2 || r.LastSeen != base.Add(90*time.Minute).UTC().Format(dbTime) || r.Name != "Cy" {
		t.Fatalf("recomputed row: %+v", r)
	}
	d := e.detail(t, pid)
	if d.Computed.LifetimeValue["USD"] != 42.5 {
		t.Fatalf("lifetime value %v", d.Computed.LifetimeValue)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_behind", nil); n != 0 {
		t.Fatalf("%d rows still listed", n)
	}
}

// The same events leave the same rows whether derived changes wait (the
// default) or are written every batch, once what waits is written: random
// rounds of identifies, orders, page views and consent changes for 30
// customers, with the clock moving 0–8 s between rounds (so windows end
// at random points) and the cache dropped now and then (so profiles are
// decoded from waiting rows).
func TestWaitingRowsEndAsRowsWrittenEveryBatch(t *testing.T) {
	waits := start(t, profiles.Options{})
	through := start(t, profiles.Options{WriteDelay: -1})
	through.clock.mu.Lock()
	through.clock.t = waits.clock.Now()
	through.clock.mu.Unlock()
	base := waits.clock.Now().Add(-40 * 24 * time.Hour)
	const customers = 30
	// Rules that read computed values, and with them event counts that only
	// SQL answers: memberships must follow the values as they stand.
	rules := map[string]string{
		"lapsing": `{"and":[{"trait":"orders_count","op":"gte","value":1},{"event":"order.placed","op":"eq","count":0,"within_days":10}]}`,
		"big":     `{"and":[{"trait":"lifetime_value.USD","op":"gte","value":150},{"event":"page.viewed","op":"gte","count":2}]}`,
		"recent":  `{"trait":"last_seen","op":"within_days","value":7}`,
	}
	for name, rule := range rules {
		waits.createSegment(t, name, rule)
		through.createSegment(t, name, rule)
	}
	members := func(e *env) map[string]string {
		var rows []struct {
			Seg   string `db:"seg"`
			Email string `db:"email"`
		}
		if err := e.PB.DB().NewQuery(`SELECT s.name AS seg, i.value AS email FROM segment_members m JOIN segments s ON s.id = m.segment
JOIN identities i ON i.profile = m.profile AND i.kind = 'email' ORDER BY s.name, i.value`).All(&rows); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, r := range rows {
			out[r.Seg] += r.Email + " "
		}
		return out
	}
	round := func(rng *rand.Rand, r int) []*events.Event {
		var evs []*events.Event
		for i := range 12 {
			c := rng.IntN(customers)
			ids := events.Identities{events.Email: fmt.Sprintf("c%d@omni-shop.dev", c)}
			at := base.Add(time.Duration(rng.IntN(40*24)) * time.Hour)
			id := fmt.Sprintf("same-%d-%d", r, i)
			var e *events.Event
			switch rng.IntN(5) {
			case 0:
				e = ev(events.Identify, "web", at, ids, map[string]any{"traits": map[string]any{"first_name": fmt.Sprintf("N%d", rng.IntN(3))}}, "web")
			case 1:
				e = ev(events.OrderPlaced, "shopify", at, ids, map[string]any{"total": float64(rng.IntN(20000)) / 100, "currency": "USD"}, "")
			case 2:
				e = ev(events.ConsentChanged, "shopify", at, ids, map[string]any{"channel": "email", "status": []string{"subscribed", "unsubscribed"}[rng.IntN(2)]}, "")
			default:
				e = ev(events.PageViewed, "web", at, ids, nil, []string{"web", "email", "pos"}[rng.IntN(3)])
			}
			e.ID = id
			evs = append(evs, e)
		}
		return evs
	}
	rngA, rngB := rand.New(rand.NewPCG(3, 5)), rand.New(rand.NewPCG(3, 5))
	step := rand.New(rand.NewPCG(8, 1))
	held := 0
	for r := range 12 {
		waits.publish(t, round(rngA, r)...)
		through.publish(t, round(rngB, r)...)
		held = max(held, profiles.WaitingForTest(waits.mod))
		// Memberships are never late, whatever waits.
		if a, b := members(waits), members(through); fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("round %d: members\n waited  %v\n through %v", r, a, b)
		}
		d := time.Duration(step.IntN(9)) * time.Second
		waits.clock.Advance(d)
		through.clock.Advance(d)
		if r%4 == 3 {
			profiles.ForgetCacheForTest(waits.mod)
		}
	}
	if held == 0 {
		t.Fatal("no change ever waited: the comparison says nothing")
	}
	if err := waits.mod.CatchUp(waits.PB); err != nil {
		t.Fatal(err)
	}
	compared := 0
	for c := range customers {
		email := fmt.Sprintf("c%d@omni-shop.dev", c)
		a, b := waits.profileOf(t, events.Email, email), through.profileOf(t, events.Email, email)
		if (a == "") != (b == "") {
			t.Fatalf("%s: profile %q against %q", email, a, b)
		}
		if a == "" {
			continue
		}
		ra, rb := waits.storedRow(t, a), through.storedRow(t, b)
		ra.Updated, rb.Updated = "", "" // when each server wrote, not what
		if ra != rb {
			t.Errorf("%s:\n waited  %+v\n through %+v", email, ra, rb)
		}
		compared++
	}
	if compared < customers/2 {
		t.Fatalf("only %d customers compared", compared)
	}
	t.Logf("%d customers compared; up to %d rows waited at once", compared, held)
}

// Another writer can run between an events batch's commit and the events
// path confirming it. It settles whether that batch committed by its
// probe row: a batch that did commit leaves the cache as it is (dropping
// it cost every cached customer a re-read, and the segment answers the
// rows carry); one that did not drops it.
func TestAWriterBeforeTheCommitIsConfirmedKeepsWhatCommitted(t *testing.T) {
	e := start(t, profiles.Options{})
	base := e.clock.Now().Add(-time.Hour)
	ids := events.Identities{events.Email: "settle@omni-shop.dev"}
	e.publish(t, ev(events.Identify, "web", base, ids, map[string]any{"traits": map[string]any{"first_name": "Sé"}}, "web"))
	pid := e.profileOf(t, events.Email, "settle@omni-shop.dev")
	view := func(at time.Time) {
		t.Helper()
		e.publish(t, ev(events.PageViewed, "web", at, ids, nil, "web"))
		if profiles.WaitingForTest(e.mod) != 1 {
			t.Fatal("the page view was not held back")
		}
	}
	view(base.Add(time.Minute))
	cached := profiles.CachedRowsForTest(e.mod)
	if cached == 0 {
		t.Fatal("no row cached")
	}
	var stored string
	if err := e.PB.DB().NewQuery("SELECT id FROM events WHERE type='page.viewed' LIMIT 1").Row(&stored); err != nil {
		t.Fatal(err)
	}

	profiles.UnconfirmedForTest(e.mod, stored)
	if err := store.SyncProfiles(e.PB, pid); err != nil {
		t.Fatal(err)
	}
	if got := profiles.CachedRowsForTest(e.mod); got != cached {
		t.Fatalf("settling a committed batch left %d cached rows of %d", got, cached)
	}
	if r := e.storedRow(t, pid); r.LastSeen != base.Add(time.Minute).UTC().Format(dbTime) {
		t.Fatalf("not written: last_seen %q", r.LastSeen)
	}

	view(base.Add(2 * time.Minute))
	profiles.UnconfirmedForTest(e.mod, "no-such-event")
	if err := store.SyncProfiles(e.PB, pid); err != nil {
		t.Fatal(err)
	}
	if got := profiles.CachedRowsForTest(e.mod); got != 0 {
		t.Fatalf("settling a batch that did not commit kept %d cached rows", got)
	}
}
