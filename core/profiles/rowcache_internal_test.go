package profiles

import (
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
)

// A cached row decodes to exactly the profile SQL reads back: customers
// made, identified, merged, ordering in two currencies and changing
// consent, with the decoded profiles started over between rounds so later
// rounds resolve from rows. Each round touches enough customers for the
// rows to be decoded and prepared in parts (inParts).
func TestRowCacheHoldsTheStoredRow(t *testing.T) {
	mod, s := startUnlimited(t) // no row is dropped for the budget
	const customers = 2 * 2 * minPart
	at := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Millisecond)
	n := 0
	mk := func(typ string, ids events.Identities, props map[string]any) *events.Event {
		n++
		return &events.Event{ID: fmt.Sprintf("row-%d", n), Type: typ, Source: "test", OccurredAt: at.Add(time.Duration(n) * time.Second),
			ReceivedAt: time.Now(), Identities: ids, Properties: props, Context: events.Context{Channel: "web"}}
	}
	publish := func(evs []*events.Event) {
		t.Helper()
		for i, err := range ingest.Publish(t.Context(), s.Bus, evs) {
			if err != nil {
				t.Fatalf("publish %s: %v", evs[i].ID, err)
			}
		}
		s.WaitEvents(t, n)
		// What the next round resolves comes from rows, not decoded profiles.
		mod.cacheMu.Lock()
		mod.cache.resetDecoded()
		mod.cacheMu.Unlock()
	}
	email := func(c int) string { return fmt.Sprintf("row%d@omni-shop.dev", c) }
	anon := func(c int) string { return fmt.Sprintf("row-anon-%d", c) }
	var round []*events.Event
	// Round 1: anonymous visitors, and the same people by email alone: two
	// profiles each.
	for c := range customers {
		round = append(round, mk(events.PageViewed, events.Identities{events.AnonymousID: anon(c)}, nil),
			mk(events.EmailOpened, events.Identities{events.Email: email(c)}, nil))
	}
	publish(round)
	// Round 2: an identify links both (a merge), with traits and a phone.
	round = nil
	for c := range customers {
		round = append(round, mk(events.Identify, events.Identities{events.AnonymousID: anon(c), events.Email: email(c), events.Phone: fmt.Sprintf("+1415555%04d", c)},
			map[string]any{"traits": map[string]any{"first_name": "Row", "last_name": fmt.Sprintf("C%d", c), "plan": map[string]any{"tier": c % 3}}}))
	}
	publish(round)
	// Round 3: orders in two currencies, consent for half of them.
	round = nil
	for c := range customers {
		round = append(round, mk(events.OrderPlaced, events.Identities{events.Email: email(c)}, map[string]any{"total": 20.0 + float64(c), "currency": "USD", "order_id": fmt.Sprintf("r%d-1", c)}),
			mk(events.OrderPlaced, events.Identities{events.AnonymousID: anon(c)}, map[string]any{"total": 15.5, "currency": "EUR", "order_id": fmt.Sprintf("r%d-2", c)}))
		if c%2 == 0 {
			round = append(round, mk(events.ConsentChanged, events.Identities{events.Email: email(c)}, map[string]any{"channel": "email", "status": "subscribed", "reason": "checkout"}))
		}
	}
	publish(round)
	// Round 4: one more event each, resolved from the rows round 3 left.
	round = nil
	for c := range customers {
		round = append(round, mk(events.PageViewed, events.Identities{events.AnonymousID: anon(c)}, nil))
	}
	publish(round)

	var live []string
	if err := s.PB.DB().NewQuery("SELECT id FROM profiles WHERE merged_into = ''").Column(&live); err != nil {
		t.Fatal(err)
	}
	if len(live) != customers {
		t.Fatalf("%d live profiles, want %d (one per customer after the merges)", len(live), customers)
	}
	checked, subscribed := 0, 0
	// cacheMu is taken inside a transaction, never around one.
	err := s.PB.RunInTransaction(func(tx core.App) error {
		mod.cacheMu.Lock()
		defer mod.cacheMu.Unlock()
		b := mod.newBatch(tx, false) // reads with SQL: no rows
		defer b.close()
		compareRows(t, mod, b, live, &checked, &subscribed)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked != customers {
		t.Fatalf("%d of %d customers have a cached row", checked, customers)
	}
	if subscribed != customers/2 {
		t.Fatalf("%d cached rows hold email consent, want %d", subscribed, customers/2)
	}
}

// compareRows compares each live profile's cached row, decoded, with the
// profile read back with SQL.
func compareRows(t *testing.T, mod *Module, b *batch, live []string, checked, subscribed *int) {
	for _, id := range live {
		r := mod.cache.rows.get(id)
		if r == nil {
			continue
		}
		got, err := b.fromRow(id, r)
		if err != nil {
			t.Fatalf("row of %s: %v", id, err)
		}
		want, err := b.load(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []*profile{got, want} {
			for _, vs := range p.ids {
				slices.Sort(vs) // SQL returns a kind's values in its own order
			}
		}
		for _, f := range []struct {
			name      string
			got, want any
		}{
			{"name, email, phone, created", []string{got.name, got.email, got.phone, got.created}, []string{want.name, want.email, want.phone, want.created}},
			{"traits", got.traits, want.traits},
			{"computed", got.comp, want.comp},
			{"consent", got.consent, want.consent},
			{"identities", got.ids, want.ids},
			{"plain columns", *got.saved, *want.saved},
			{"stored JSON", []string{got.rawTraits, got.rawConsent}, []string{want.rawTraits, want.rawConsent}},
			{"what segments read", got.segState, want.segState},
		} {
			if !reflect.DeepEqual(f.got, f.want) {
				t.Errorf("profile %s, %s: from its row %+v, read back %+v", id, f.name, f.got, f.want)
			}
		}
		// The rows are the last rounds' (not an early state the SQL
		// read would match by chance had nothing been written since).
		if got.comp.OrdersCount != 2 || len(got.comp.LifetimeValue) != 2 {
			t.Errorf("profile %s: %d orders in %v, want 2 in USD and EUR", id, got.comp.OrdersCount, got.comp.LifetimeValue)
		}
		if got.consent[events.ChannelEmail].Status == ConsentSubscribed {
			*subscribed++
		}
		*checked++
	}
}

// Past its budget the row cache drops rows at random down to nine tenths
// of it, and keeps the rest.
func TestRowCacheStaysInItsBudget(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	debug.SetMemoryLimit(8 << 20)
	budget := rowBudget()
	if budget != 8<<20/5 {
		t.Fatalf("budget %d, want a fifth of the limit", budget)
	}
	c := rowCache{budget: budget} // as newBatch sets it
	row := func(i int) *storedRow {
		return &storedRow{created: "2026-12-01 10:00:00.000Z", computed: fmt.Sprintf(`{"orders_count":%d,"lifecycle_stage":"new","engagement_level":"new"}`, i),
			traits: "{}", consent: "{}", saved: savedColumns{email: fmt.Sprintf("c%d@omni-shop.dev", i)}, ids: []string{events.Email, fmt.Sprintf("c%d@omni-shop.dev", i)}}
	}
	per := row(0).size()
	total := 3 * budget / per
	for i := range total {
		c.put(fmt.Sprint(i), row(i))
		if c.bytes > budget {
			t.Fatalf("after %d rows: %d bytes held, budget %d", i+1, c.bytes, budget)
		}
	}
	sum := 0
	for _, r := range c.rows {
		sum += r.size()
	}
	if sum != c.bytes {
		t.Fatalf("counted %d bytes, rows hold %d", c.bytes, sum)
	}
	if kept := len(c.rows); kept < budget/per*8/10 || kept >= total {
		t.Fatalf("kept %d of %d rows; want most of the %d the budget holds", kept, total, budget/per)
	}
	if c.get(fmt.Sprint(total-1)) == nil {
		t.Fatal("the row just put was dropped")
	}
	c.drop(fmt.Sprint(total - 1))
	if c.get(fmt.Sprint(total-1)) != nil {
		t.Fatal("a dropped row is still there")
	}
}
