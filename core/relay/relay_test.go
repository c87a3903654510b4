package relay_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/logging"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/relay"
	"github.com/omni/omni/core/store"
)

func derived(ids ...string) []*events.Event {
	now := time.Now().UTC()
	var out []*events.Event
	for _, id := range ids {
		out = append(out, &events.Event{ID: id, Type: events.SegmentEntered, Source: "omni", OccurredAt: now, ReceivedAt: now,
			Identities: events.Identities{events.Email: "relay@example.com"}, Properties: map[string]any{"segment": "vip"}})
	}
	return out
}

func pending(t *testing.T, a core.App) int {
	t.Helper()
	var n int
	if err := a.DB().NewQuery("SELECT COUNT(*) FROM " + relay.Table).Row(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func stored(t *testing.T, s *omnitest.Server, id string) int {
	t.Helper()
	var n int
	if err := s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE event_id = {:id}").Bind(map[string]any{"id": id}).Row(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStagedEventsSurviveACrashBeforePublish stages events in a committed
// transaction while no relay runs (as if the process died right after the
// commit), then starts Omni: the events reach the bus and are stored once.
func TestStagedEventsSurviveACrashBeforePublish(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	o := app.New(cfg, logging.New(io.Discard, "error", "text"))
	if err := o.Open(); err != nil {
		t.Fatal(err)
	}
	err := o.PB.RunInTransaction(func(tx core.App) error {
		return relay.Stage(tx, derived("seg:vip:1", "seg:vip:2", "seg:vip:1")) // a repeat of one id too
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := pending(t, o.PB); n != 3 {
		t.Fatalf("staged %d rows, want 3", n)
	}
	_ = o.PB.ResetBootstrapState()

	s := omnitest.Start(t, omnitest.Options{DataDir: dir})
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return stored(t, s, "seg:vip:1") == 1 && stored(t, s, "seg:vip:2") == 1 && pending(t, s.PB) == 0
	}, "staged events published and stored")
}

// TestRolledBackStagingPublishesNothing: events staged in a transaction
// that fails never reach the bus.
func TestRolledBackStagingPublishesNothing(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	_ = s.PB.RunInTransaction(func(tx core.App) error {
		if err := relay.Stage(tx, derived("seg:rolled-back")); err != nil {
			return err
		}
		return fmt.Errorf("state change failed")
	})
	if err := s.PB.RunInTransaction(func(tx core.App) error { return relay.Stage(tx, derived("seg:kept")) }); err != nil {
		t.Fatal(err)
	}
	s.Relay.Kick()
	// The published row is deleted by a later events transaction, or by the
	// relay itself within a second or so.
	omnitest.Eventually(t, 30*time.Second, func() bool { return stored(t, s, "seg:kept") == 1 && pending(t, s.PB) == 0 },
		"committed event stored and its row deleted")
	if stored(t, s, "seg:rolled-back") != 0 {
		t.Fatal("rolled-back staging reached the bus")
	}
}

// Published rows are deleted by the next transaction that stores events
// (the relay is one of its processors), not by a transaction of their
// own; one that rolls back leaves them for the next. Rows that wait too
// long are deleted by the relay itself, and a drain never publishes a row
// again while it waits.
func TestPublishedRowsAreDeletedByTheNextEventsTransaction(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.Relay.Stop(ctx) // the server's own relay would drain these rows too
	r := relay.New(s.PB, s.Bus, logging.New(io.Discard, "error", "text"))

	stage := func(ids ...string) {
		t.Helper()
		if err := s.PB.RunInTransaction(func(tx core.App) error { return relay.Stage(tx, derived(ids...)) }); err != nil {
			t.Fatal(err)
		}
	}
	stage("del:a", "del:b")
	r.Drain(ctx)
	if got := r.Waiting(); got != 2 || pending(t, s.PB) != 2 {
		t.Fatalf("after publishing: %d waiting, %d rows; want 2 and 2 (deleted later, not by a transaction of their own)", got, pending(t, s.PB))
	}
	stage("del:c")
	r.Drain(ctx)
	if got := r.Waiting(); got != 3 {
		t.Fatalf("after a second drain %d rows wait, want 3 (the first two not published again)", got)
	}

	_ = s.PB.RunInTransaction(func(tx core.App) error {
		if err := r.ProcessBatch(tx, nil); err != nil {
			return err
		}
		return fmt.Errorf("the batch failed")
	})
	if n := pending(t, s.PB); n != 3 || r.Waiting() != 3 {
		t.Fatalf("after a rolled-back batch: %d rows, %d waiting; want 3 and 3", n, r.Waiting())
	}
	if err := s.PB.RunInTransaction(func(tx core.App) error { return r.ProcessBatch(tx, nil) }); err != nil {
		t.Fatal(err)
	}
	r.Committed(nil)
	if n := pending(t, s.PB); n != 0 || r.Waiting() != 0 {
		t.Fatalf("after a committed batch: %d rows, %d waiting; want none", n, r.Waiting())
	}
	for _, id := range []string{"del:a", "del:b", "del:c"} {
		omnitest.Eventually(t, 30*time.Second, func() bool { return stored(t, s, id) == 1 }, id+" stored")
	}

	// No events transaction comes: the relay deletes the row itself.
	stage("del:d")
	r.Drain(ctx)
	if n := pending(t, s.PB); n != 1 {
		t.Fatalf("%d rows right after publishing, want 1", n)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool {
		r.Drain(ctx) // what the relay's loop does every half second while rows wait
		return pending(t, s.PB) == 0 && r.Waiting() == 0
	}, "a published row that waited deleted by the relay")
}

// Staged events are published in the order they were staged, even when
// they share a millisecond (record ids then sort at random).
func TestStagedEventsArePublishedInStagingOrder(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	var ids []string
	for i := 0; i < 300; i++ {
		ids = append(ids, fmt.Sprintf("ord:%03d", i))
	}
	if err := s.PB.RunInTransaction(func(tx core.App) error {
		// One Stage per event (as merges do) and many per Stage (as a
		// batch's segment changes do): sizes around the rows of one
		// INSERT statement.
		for i, n := 0, 0; i < len(ids); i += n {
			n = min([]int{1, 37, 16, 1, 15, 17, 32, 2}[i%8], len(ids)-i)
			if err := relay.Stage(tx, derived(ids[i:i+n]...)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The stream keeps messages by interest: a consumer of our own, made
	// before the relay publishes, sees them in stream order.
	cons, err := s.Bus.JS.CreateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{
		Durable: "order-test", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: bus.EventsSubject})
	if err != nil {
		t.Fatal(err)
	}
	s.Relay.Kick()
	var got []string
	for len(got) < len(ids) {
		m, err := cons.Next(jetstream.FetchMaxWait(20 * time.Second))
		if err != nil {
			t.Fatalf("after %d events: %v", len(got), err)
		}
		_ = m.Ack()
		// Runs of derived events travel as batch messages, in order.
		for _, data := range bus.SplitEvents(m.Headers(), m.Data()) {
			ev, err := events.Unmarshal(data)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ev.ID)
		}
	}
	for i := range ids {
		if got[i] != ids[i] {
			t.Fatalf("published out of order at %d: %v …", i, got[max(0, i-2):min(len(got), i+3)])
		}
	}
}

// TestStagedProfileEventsCarryTheStrongestIdentity: StageForProfiles gives
// each event its customer's strongest identity (in the order of
// events.IdentityKinds), so that profiles resolves it back to the same
// customer when it returns from the bus; a customer with no identity
// leaves the event as it was. Of two identities of the strongest kind the
// earliest wins, whatever order the rows are stored in.
func TestStagedProfileEventsCarryTheStrongestIdentity(t *testing.T) {
	o := omnitest.Start(t, omnitest.Options{Modules: func(*app.Omni) []app.Module {
		return []app.Module{profiles.New(profiles.Options{})} // the identities
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o.Relay.Stop(ctx) // the staged rows stay to be read
	now := store.FormatTime(time.Now())
	later := store.FormatTime(time.Now().Add(time.Hour))
	// pa's second email, added an hour after the first, is stored first.
	if _, err := o.PB.DB().NewQuery("INSERT INTO identities (id, kind, value, profile, created) VALUES ('identlater', 'email', 'a2@example.com', 'pa', {:at})").
		Bind(map[string]any{"at": later}).Execute(); err != nil {
		t.Fatal(err)
	}
	for i, id := range [][3]string{
		{"pa", events.AnonymousID, "anon-a"},
		{"pa", events.Phone, "+15550000001"},
		{"pa", events.Email, "a@example.com"},
		{"pb", events.WhatsAppID, "15550000002"},
		{"pb", events.Phone, "+15550000002"},
		{"pb", "unknown_kind", "ignored"},
	} {
		if _, err := o.PB.DB().NewQuery("INSERT INTO identities (id, kind, value, profile, created) VALUES ({:id}, {:k}, {:v}, {:p}, {:now})").
			Bind(map[string]any{"id": fmt.Sprintf("ident%010d", i), "k": id[1], "v": id[2], "p": id[0], "now": now}).Execute(); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Now().UTC()
	ev := func(id, profile string, ids events.Identities) *events.Event {
		return &events.Event{ID: id, Type: events.SegmentEntered, Source: "omni", OccurredAt: at, ReceivedAt: at,
			Identities: ids, Properties: map[string]any{"profile_id": profile}}
	}
	evs := []*events.Event{
		ev("a1", "pa", events.Identities{}),
		ev("b1", "pb", nil),
		ev("a2", "pa", events.Identities{}),
		ev("c1", "pc", events.Identities{}),
	}
	if err := o.PB.RunInTransaction(func(tx core.App) error { return relay.StageForProfiles(tx, evs) }); err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		EventID string `db:"event_id"`
		Data    string `db:"data"`
	}
	if err := o.PB.DB().NewQuery("SELECT event_id, data FROM " + relay.Table + " ORDER BY seq").All(&rows); err != nil {
		t.Fatal(err)
	}
	want := map[string]events.Identities{
		"a1": {events.Email: "a@example.com"},
		"b1": {events.Phone: "+15550000002"},
		"a2": {events.Email: "a@example.com"},
		"c1": {},
	}
	if len(rows) != len(want) {
		t.Fatalf("staged %d rows, want %d", len(rows), len(want))
	}
	for i, r := range rows {
		if r.EventID != evs[i].ID {
			t.Errorf("row %d is %s, want %s (staging order)", i, r.EventID, evs[i].ID)
		}
		got, err := events.Unmarshal([]byte(r.Data))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(map[string]string(got.Identities)) != fmt.Sprint(map[string]string(want[r.EventID])) {
			t.Errorf("%s: identities %v, want %v", r.EventID, got.Identities, want[r.EventID])
		}
	}
}

// TestRowsStagedBeforeTheSeqTableArePublishedInOrder: an install whose
// relay_pending is still the collection of migrations 0007 and 0008, with
// rows staged and not yet published, upgrades to the plain table keyed by
// seq: the rows keep their order, new rows come after them, and all are
// published and stored once.
func TestRowsStagedBeforeTheSeqTableArePublishedInOrder(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	open := func() *app.Omni {
		t.Helper()
		o := app.New(cfg, logging.New(io.Discard, "error", "text"))
		if err := o.Open(); err != nil {
			t.Fatal(err)
		}
		return o
	}
	const file = "0011_relay_seq_table.go"
	var mig *core.Migration
	for _, m := range core.AppMigrations.Items() {
		if m.File == file {
			mig = m
		}
	}
	if mig == nil {
		t.Fatalf("migration %s is not registered", file)
	}

	o := open()
	if err := mig.Down(o.PB); err != nil {
		t.Fatal(err)
	}
	col, err := o.PB.FindCollectionByNameOrId(relay.Table)
	if err != nil {
		t.Fatal(err)
	}
	old := []string{"old:c", "old:a", "old:b"} // record ids sort in no particular order; seq is the order
	for i, id := range old {
		ev := derived(id)[0]
		data, err := ev.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		r := core.NewRecord(col)
		r.Set("event_id", id)
		r.Set("subject", ev.Subject())
		r.Set("data", string(data))
		r.Set("seq", i+1)
		if err := o.PB.Save(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := o.PB.DB().NewQuery("DELETE FROM _migrations WHERE file = {:f}").Bind(map[string]any{"f": file}).Execute(); err != nil {
		t.Fatal(err)
	}
	_ = o.PB.ResetBootstrapState()

	o = open() // applies the migration again
	if _, err := o.PB.FindCollectionByNameOrId(relay.Table); err == nil {
		t.Fatal("relay_pending is still a collection after the migration")
	}
	if err := o.PB.RunInTransaction(func(tx core.App) error { return relay.Stage(tx, derived("new:d")) }); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := o.PB.DB().NewQuery("SELECT event_id FROM " + relay.Table + " ORDER BY seq").Column(&got); err != nil {
		t.Fatal(err)
	}
	if want := append(append([]string(nil), old...), "new:d"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("staged rows in seq order %v, want %v", got, want)
	}
	_ = o.PB.ResetBootstrapState()

	s := omnitest.Start(t, omnitest.Options{DataDir: dir})
	omnitest.Eventually(t, 30*time.Second, func() bool {
		for _, id := range append(old, "new:d") {
			if stored(t, s, id) != 1 {
				return false
			}
		}
		return pending(t, s.PB) == 0
	}, "rows staged before and after the migration published and stored")
}
