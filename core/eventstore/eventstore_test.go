package eventstore_test

import (
	"fmt"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/store"
)

func TestRecordIDsArePocketBaseShapedAndTimeOrdered(t *testing.T) {
	pattern := regexp.MustCompile(`^[a-z0-9]{15}$`)
	var ids []string
	seen := map[string]bool{}
	for i := 0; i < 2000; i++ {
		id := store.NewRecordID()
		if !pattern.MatchString(id) {
			t.Fatalf("id %q is not a PocketBase id", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		ids = append(ids, id)
		if i == 1000 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	// ids made in a later millisecond sort after earlier ones
	if !(ids[0][:8] <= ids[1999][:8]) || ids[0][:8] == ids[1999][:8] {
		t.Fatalf("time prefix not increasing: %s … %s", ids[0], ids[1999])
	}
	prefixes := make([]string, len(ids))
	for i, id := range ids {
		prefixes[i] = id[:8]
	}
	if !sort.StringsAreSorted(prefixes) {
		t.Fatal("time prefixes out of order")
	}
}

func TestWriteBatchSkipsDuplicates(t *testing.T) {
	o := openApp(t)
	first, err := eventstore.WriteBatch(o.PB, sample(10, 0))
	if err != nil || len(first) != 10 {
		t.Fatalf("first write: %d %v", len(first), err)
	}
	// 5 already stored, 5 new: only the new ones come back
	again, err := eventstore.WriteBatch(o.PB, sample(10, 5))
	if err != nil || len(again) != 5 || again[0].Event.ID != "e-10" {
		t.Fatalf("second write: %d %v", len(again), err)
	}
	var n int
	if err := o.PB.DB().NewQuery("SELECT COUNT(*) FROM events").Row(&n); err != nil || n != 15 {
		t.Fatalf("rows = %d %v", n, err)
	}
	rec, err := o.PB.FindFirstRecordByData("events", "event_id", "e-3")
	if err != nil || rec.GetString("type") != "track" || rec.GetDateTime("occurred_at").IsZero() {
		t.Fatalf("stored row not readable as a record: %v %v", rec, err)
	}
}

// Batches span several multi-row INSERTs (full chunks and a shorter last
// one) with duplicates of stored events and repeats within the batch,
// with and without a processor that sees the new events first: exactly
// the new ones come back, in order, the first of repeats kept, and the
// stored rows hold what the event says.
func TestWriteBatchAcrossInsertChunks(t *testing.T) {
	for _, withBefore := range []bool{false, true} {
		o := openApp(t)
		var procs []eventstore.Processor
		if withBefore {
			procs = append(procs, profileSetter{})
		}
		if got, err := eventstore.WriteBatch(o.PB, sample(100, 0), procs...); err != nil || len(got) != 100 {
			t.Fatalf("before=%v: first write: %d %v", withBefore, len(got), err)
		}
		// 50..249 again, with 200..209 repeated once more (a changed name
		// marks the repeat, which must not be the one stored).
		batch := sample(200, 50)
		for _, ev := range sample(10, 200) {
			ev.Name = "repeat"
			batch = append(batch, ev)
		}
		got, err := eventstore.WriteBatch(o.PB, batch, procs...)
		if err != nil {
			t.Fatalf("before=%v: %v", withBefore, err)
		}
		if len(got) != 150 || got[0].Event.ID != "e-100" || got[149].Event.ID != "e-249" {
			t.Fatalf("before=%v: stored %d new", withBefore, len(got))
		}
		for i, s := range got {
			if want := fmt.Sprintf("e-%d", 100+i); s.Event.ID != want || s.Event.Name == "repeat" {
				t.Fatalf("before=%v: new event %d is %s %q, want %s", withBefore, i, s.Event.ID, s.Event.Name, want)
			}
		}
		var n, repeats int
		_ = o.PB.DB().NewQuery("SELECT COUNT(*) FROM events").Row(&n)
		_ = o.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE name='repeat'").Row(&repeats)
		if n != 250 || repeats != 0 {
			t.Fatalf("before=%v: rows %d, repeats stored %d", withBefore, n, repeats)
		}
		var row struct {
			ID         string `db:"id"`
			Identities string `db:"identities"`
			Properties string `db:"properties"`
			Context    string `db:"context"`
			Profile    string `db:"profile"`
		}
		if err := o.PB.DB().NewQuery("SELECT id, identities, properties, context, profile FROM events WHERE event_id='e-230'").One(&row); err != nil {
			t.Fatal(err)
		}
		wantProfile := ""
		if withBefore {
			wantProfile = "p-e-230"
		}
		if row.ID != got[130].RecordID || row.Identities != `{"user_id":"user-230"}` || row.Properties != `{"price":19.99,"sku":"SKU-230"}` ||
			row.Context != `{"channel":"server","page":{"url":"https://shop.example/p/230"}}` || row.Profile != wantProfile {
			t.Fatalf("before=%v: row %+v", withBefore, row)
		}
	}
}

// An event id JSON cannot carry byte for byte (invalid UTF-8) is still
// found by the dedupe look-up before the insert.
func TestWriteBatchDedupesIDsThatAreNotUTF8(t *testing.T) {
	o := openApp(t)
	evs := sample(3, 0)
	evs[1].ID = "bad-\xff-id"
	for round, want := range []int{3, 0} {
		got, err := eventstore.WriteBatch(o.PB, evs, profileSetter{})
		if err != nil || len(got) != want {
			t.Fatalf("round %d: stored %d, want %d (%v)", round, len(got), want, err)
		}
	}
}
