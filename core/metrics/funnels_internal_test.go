package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/store"
)

// funnelSnapshot lists every funnel entry and per-day count, in a fixed
// order, without the entries' ids.
func funnelSnapshot(t testing.TB, app core.App) []string {
	t.Helper()
	var rows []string
	if err := app.DB().NewQuery("SELECT funnel || '|' || profile || '|' || entered_at || '|' || day || '|' || channel || '|' || reached || '|' || step_at || '|' || convert_secs FROM " +
		FunnelEntriesCollection + " ORDER BY 1").Column(&rows); err != nil {
		t.Fatal(err)
	}
	var days []string
	if err := app.DB().NewQuery("SELECT funnel || '|' || day || '|' || channel || '|' || reached || '|' || n FROM " + FunnelDailyCollection + " WHERE n != 0 ORDER BY 1").Column(&days); err != nil {
		t.Fatal(err)
	}
	return append(rows, days...)
}

// checkoutSnapshot lists every checkout and per-day checkout count, in a
// fixed order, without the checkouts' ids.
func checkoutSnapshot(t testing.TB, app core.App) []string {
	t.Helper()
	var rows []string
	if err := app.DB().NewQuery("SELECT key || '|' || profile || '|' || event || '|' || started_at || '|' || day || '|' || channel || '|' || COALESCE(order_at, '') || '|' || " +
		"order_event || '|' || order_total || '|' || order_currency || '|' || order_after || '|' || recovered_run FROM " + CheckoutsCollection + " ORDER BY 1").Column(&rows); err != nil {
		t.Fatal(err)
	}
	var days []string
	if err := app.DB().NewQuery("SELECT day || '|' || channel || '|' || started || '|' || completed FROM " + CheckoutDailyCollection + " WHERE started != 0 ORDER BY 1").Column(&days); err != nil {
		t.Fatal(err)
	}
	return append(rows, days...)
}

// The entries and checkouts kept as events are stored, in batches and out
// of time order (late deliveries, customers with no first step, orders
// before and after their checkouts), over two
// funnels, are the ones a derivation from all the stored events (rebuild,
// backfill) gives.
func TestFunnelStreamMatchesDerivation(t *testing.T) {
	e := attrStart(t, nil)
	// A second funnel whose steps are other types than the default one's.
	code, body := e.s.Do(t, "POST", "/api/v1/metrics/funnels", map[string]any{"name": "Email to order", "window_days": 3, "steps": []map[string]any{
		{"event": events.EmailOpened}, {"event": events.OrderPlaced}}}, e.owner)
	if code != 201 {
		t.Fatalf("POST funnel: %d %s", code, body)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool { return len(e.m.funnels.readyFunnels()) == 2 }, "two funnels ready")
	rnd := rand.New(rand.NewPCG(7, 9))
	base := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var evs []*events.Event
	for c := range 60 {
		for k := range 12 {
			typ := []string{events.PageViewed, events.PageViewed, events.CheckoutStarted, events.OrderPlaced, events.EmailOpened}[rnd.IntN(5)]
			if c%5 == 0 && typ == events.PageViewed { // customers who never enter
				typ = events.OrderPlaced
			}
			at := base.Add(time.Duration(rnd.IntN(20*24)) * time.Hour)
			if c%3 == 0 { // in time order
				at = base.Add(time.Duration(k*30) * time.Hour)
			}
			if c%7 == 1 { // several events at one time
				at = base.Add(time.Duration(rnd.IntN(4)) * 24 * time.Hour)
			}
			props := map[string]any{"checkout_token": fmt.Sprintf("t%d-%d", c, k), "total": 10.5, "currency": "EUR"}
			evs = append(evs, attrEvent(fmt.Sprintf("fs-%d-%d", c, k), typ, "shop", at,
				events.Identities{events.Email: fmt.Sprintf("fs%d@omni-shop.dev", c)}, props,
				events.Context{Channel: []string{"web", "pos"}[c%2], Page: &events.Page{Path: "/p"}}))
		}
	}
	// Each customer's first event opens the profile; the rest in random order.
	rnd.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	for i := 0; i < len(evs); i += 40 {
		e.publish(evs[i:min(i+40, len(evs))]...)
	}
	streamed := funnelSnapshot(t, e.s.PB)
	if len(streamed) == 0 {
		t.Fatal("no funnel entries kept from the stream")
	}
	var fns []string
	if err := e.s.PB.DB().NewQuery("SELECT DISTINCT funnel FROM " + FunnelEntriesCollection).Column(&fns); err != nil || len(fns) != 2 {
		t.Fatalf("entries of %d funnels (%v), want 2", len(fns), err)
	}
	streamedCheckouts := checkoutSnapshot(t, e.s.PB)
	var withOrder int
	if err := e.s.PB.DB().NewQuery("SELECT COUNT(*) FROM " + CheckoutsCollection + " WHERE order_after >= 0").Row(&withOrder); err != nil || withOrder == 0 {
		t.Fatalf("%d checkouts followed by an order (%v)", withOrder, err)
	}

	var profiles []string
	if err := e.s.PB.DB().NewQuery("SELECT DISTINCT profile FROM events WHERE profile != ''").Column(&profiles); err != nil {
		t.Fatal(err)
	}
	if err := e.s.PB.RunInTransaction(func(tx core.App) error {
		if err := e.m.funnels.rederiveCheckouts(tx, profiles); err != nil {
			return err
		}
		return e.m.funnels.rederive(tx, e.m.funnels.readyFunnels(), profiles)
	}); err != nil {
		t.Fatal(err)
	}
	derived := funnelSnapshot(t, e.s.PB)
	if !slices.Equal(streamed, derived) {
		t.Errorf("streamed entries differ from derived ones:\nstreamed %q\nderived  %q", streamed, derived)
	}
	if derived := checkoutSnapshot(t, e.s.PB); !slices.Equal(streamedCheckouts, derived) {
		t.Errorf("streamed checkouts differ from derived ones:\nstreamed %q\nderived  %q", streamedCheckouts, derived)
	}
}

// A late event re-derives a customer from its time on, starting from the
// entry latest there with its later steps taken back; of two entries that
// began at one time (the first converted at once), the later is that
// entry. The result is the one a derivation from all the events gives.
func TestFunnelLateEventDerivesFromItsTime(t *testing.T) {
	m := New(Options{})
	s := omnitest.Start(t, omnitest.Options{Modules: func(*app.Omni) []app.Module { return []app.Module{m} }})
	if err := m.funnels.ensureLoaded(s.PB); err != nil {
		t.Fatal(err)
	}
	// The default funnel is ready once its (empty) backfill has run.
	omnitest.Eventually(t, 60*time.Second, func() bool { return len(m.funnels.readyFunnels()) == 1 }, "the default funnel ready")
	fns := m.funnels.readyFunnels()
	if len(fns) != 1 || len(fns[0].Steps) != 3 {
		t.Fatalf("want the default funnel of 3 steps, got %d funnels", len(fns))
	}
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	// Ids order the events of one time as a derivation does.
	insert := func(tx core.App, id, typ string, when time.Time) error {
		_, err := tx.DB().NewQuery("INSERT INTO events (id, event_id, type, source, channel, occurred_at, received_at, identities, properties, context, profile) " +
			"VALUES ({:id}, {:id}, {:type}, 'shop', 'web', {:at}, {:at}, '{}', '{}', '{\"channel\":\"web\"}', 'cust1')").
			Bind(dbx.Params{"id": id, "type": typ, "at": store.FormatTime(when)}).Execute()
		return err
	}
	entries := func() []string {
		var rows []string
		if err := s.PB.DB().NewQuery("SELECT entered_at || ' ' || reached || ' ' || step_at FROM " + FunnelEntriesCollection + " ORDER BY 1").Column(&rows); err != nil {
			t.Fatal(err)
		}
		return rows
	}
	err := s.PB.RunInTransaction(func(tx core.App) error {
		for _, e := range []struct {
			id, typ string
			at      time.Time
		}{
			{"e1", events.PageViewed, at}, {"e2", events.CheckoutStarted, at}, {"e3", events.OrderPlaced, at},
			{"e4", events.PageViewed, at}, {"e5", events.CheckoutStarted, at}, {"e6", events.OrderPlaced, at.Add(2 * time.Hour)},
			{"e7", events.PageViewed, at.Add(9 * 24 * time.Hour)},
		} {
			if err := insert(tx, e.id, e.typ, e.at); err != nil {
				return err
			}
		}
		return m.funnels.rederive(tx, fns, []string{"cust1"})
	})
	if err != nil {
		t.Fatal(err)
	}
	before := entries()
	if len(before) != 3 {
		t.Fatalf("entries before the late event: %q", before)
	}
	// An order an hour after the second entry's checkout: it converts
	// there, not at the later order.
	err = s.PB.RunInTransaction(func(tx core.App) error {
		if err := insert(tx, "e8", events.OrderPlaced, at.Add(time.Hour)); err != nil {
			return err
		}
		return m.funnels.rederiveSince(tx, fns, []string{"cust1"}, map[string]time.Time{"cust1": at.Add(time.Hour)})
	})
	if err != nil {
		t.Fatal(err)
	}
	late := entries()
	if slices.Equal(late, before) {
		t.Fatalf("the late order changed nothing: %q", late)
	}
	if err := s.PB.RunInTransaction(func(tx core.App) error { return m.funnels.rederive(tx, fns, []string{"cust1"}) }); err != nil {
		t.Fatal(err)
	}
	if all := entries(); !slices.Equal(late, all) {
		t.Errorf("derived from the late event's time:\n%q\nfrom all the events:\n%q", late, all)
	}

	// An entry whose steps cannot be read does not stop the derivation:
	// it is dropped, and the late event's customer derived from there.
	err = s.PB.RunInTransaction(func(tx core.App) error {
		if _, err := tx.DB().NewQuery("UPDATE " + FunnelEntriesCollection + " SET step_at = 'not json'").Execute(); err != nil {
			return err
		}
		if err := insert(tx, "e9", events.OrderPlaced, at.Add(9*24*time.Hour+time.Hour)); err != nil {
			return err
		}
		return m.funnels.rederiveSince(tx, fns, []string{"cust1"}, map[string]time.Time{"cust1": at.Add(3 * time.Hour)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := entries(); len(got) != 1 || !strings.Contains(got[0], "2026-05-13 10:00:00.000Z") {
		t.Errorf("after unreadable entries, want the one entry from the late event's time on, got %q", got)
	}
}

// BenchmarkFunnelRebuildPass times the rebuild's funnel pass (every
// customer derived again from their events after the replay) over 2,000
// customers with 10 events each, seeded straight into the events table.
//
//	go test ./core/metrics/ -run '^$' -bench FunnelRebuildPass -benchtime 3x
func BenchmarkFunnelRebuildPass(b *testing.B) {
	const customers = 2000
	m := New(Options{})
	s := omnitest.Start(b, omnitest.Options{Modules: func(*app.Omni) []app.Module { return []app.Module{m} }})
	seedFunnelEvents(b, s.PB, customers, 10)
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		if err := s.PB.RunInTransaction(func(tx core.App) error {
			if err := m.funnels.reset(tx); err != nil {
				return err
			}
			return m.funnels.holdForRebuild(tx)
		}); err != nil {
			b.Fatal(err)
		}
		if err := m.funnels.held(s.PB); err != nil {
			b.Fatal(err)
		}
		c0 := cpuNow()
		if err := m.funnels.rebuildEntries(context.Background(), s.PB, nil); err != nil {
			b.Fatal(err)
		}
		cpu += cpuNow() - c0
	}
	var n int
	_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM " + FunnelEntriesCollection).Row(&n)
	if n == 0 {
		b.Fatal("no entries derived")
	}
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N*customers), "cpu-ms/customer")
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// seedFunnelEvents writes customers × perCustomer events of the default
// funnel's types and others straight into the events table.
func seedFunnelEvents(tb testing.TB, app core.App, customers, perCustomer int) {
	tb.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	base := time.Now().UTC().AddDate(0, -6, 0)
	typs := []string{events.PageViewed, events.PageViewed, events.PageViewed, events.EmailOpened, events.CheckoutStarted, events.OrderPlaced}
	err := app.RunInTransaction(func(tx core.App) error {
		ins, err := store.Executor(tx).Prepare("INSERT INTO events (id, event_id, type, name, source, channel, occurred_at, received_at, identities, properties, context, profile) VALUES (?, ?, ?, '', 'shop', 'web', ?, ?, '{}', '{\"total\":12.5}', '{\"channel\":\"web\",\"page\":{\"path\":\"/p\",\"title\":\"Shoes\"}}', ?)")
		if err != nil {
			return err
		}
		for c := range customers {
			for k := range perCustomer {
				at := store.FormatTime(base.Add(time.Duration(rnd.IntN(180*24)) * time.Hour))
				if _, err := ins.Exec(store.NewRecordID(), fmt.Sprintf("seed-%d-%d", c, k), typs[rnd.IntN(len(typs))], at, at, fmt.Sprintf("cust%06d", c)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkFunnelProcess times funnelPart.process alone on bench/metrics'
// storefront mix (per 10 events 1 order, 2 checkouts, 7 page views; 5,000
// customers, in time order), each batch stored in the events table first
// as the events writer does, at the events writer's batch size (100) and
// at the follower's (2,000). Reports process's CPU per event.
//
//	go test ./core/metrics/ -run '^$' -bench FunnelProcess -benchtime 40x -cpuprofile /tmp/fu.prof
func BenchmarkFunnelProcess(b *testing.B) {
	for _, size := range []int{100, 2000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			m := New(Options{})
			s := omnitest.Start(b, omnitest.Options{Modules: func(*app.Omni) []app.Module { return []app.Module{m} }})
			base := time.Now().UTC().AddDate(0, -1, 0)
			var n int
			var cpu time.Duration
			b.ResetTimer()
			for range b.N {
				batch := make([]*eventstore.Stored, size)
				for i := range batch {
					n++
					ev := &events.Event{ID: fmt.Sprintf("ev-%d", n), Source: "shop", OccurredAt: base.Add(time.Duration(n) * time.Second),
						Context: events.Context{Channel: "web"}}
					switch n % 10 {
					case 0:
						ev.Type, ev.Properties = events.OrderPlaced, map[string]any{"order_id": fmt.Sprint(n), "revenue": float64(20 + n%80), "currency": "EUR"}
					case 1, 2:
						ev.Type, ev.Properties = events.CheckoutStarted, map[string]any{"revenue": float64(20 + n%80)}
					default:
						ev.Type, ev.Name = events.PageViewed, "Product"
						ev.Context.Page = &events.Page{URL: fmt.Sprintf("https://omni-shop.dev/p/%d", n%200)}
					}
					batch[i] = &eventstore.Stored{RecordID: store.NewRecordID(), Event: ev, Profile: fmt.Sprintf("cust%06d", n%5000)}
				}
				if err := s.PB.RunInTransaction(func(tx core.App) error {
					ins, err := store.Executor(tx).Prepare("INSERT INTO events (id, event_id, type, name, source, channel, occurred_at, received_at, identities, properties, context, profile) " +
						"VALUES (?, ?, ?, ?, 'shop', 'web', ?, ?, '{}', ?, ?, ?)")
					if err != nil {
						return err
					}
					defer ins.Close()
					for _, st := range batch {
						props, _ := json.Marshal(st.Event.Properties)
						ctx, _ := json.Marshal(st.Event.Context)
						at := store.FormatTime(st.Event.OccurredAt)
						if _, err := ins.Exec(st.RecordID, st.Event.ID, st.Event.Type, st.Event.Name, at, at, string(props), string(ctx), st.Profile); err != nil {
							return err
						}
					}
					c0 := cpuNow()
					err = m.funnels.process(tx, batch)
					cpu += cpuNow() - c0
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
			var entries, checkouts int
			_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM " + FunnelEntriesCollection).Row(&entries)
			_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM " + CheckoutsCollection).Row(&checkouts)
			if entries == 0 || checkouts != n/5 {
				b.Fatalf("%d entries, %d checkouts of %d events", entries, checkouts, n)
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
		})
	}
}
