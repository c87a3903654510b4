package eventstore_test

import (
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
