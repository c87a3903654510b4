package eventstore_test

import (
	"fmt"
	"testing"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/eventstore"
)

// resolver sets each event's profile before its row is written and, after,
// reads back what was stored.
type resolver struct {
	before, after []string
	rows          map[string]string // event id → profile column, read in ProcessBatch
}

func (r *resolver) BeforeInsert(tx core.App, batch []*eventstore.Stored) error {
	for _, s := range batch {
		var n int
		if err := tx.DB().NewQuery("SELECT COUNT(*) FROM events WHERE event_id={:e}").Bind(dbx.Params{"e": s.Event.ID}).Row(&n); err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%s is already a row before the insert", s.Event.ID)
		}
		r.before = append(r.before, s.Event.ID)
		s.Profile = "p-" + s.Event.ID
	}
	return nil
}

func (r *resolver) ProcessBatch(tx core.App, batch []*eventstore.Stored) error {
	for _, s := range batch {
		var profile string
		if err := tx.DB().NewQuery("SELECT profile FROM events WHERE id={:id}").Bind(dbx.Params{"id": s.RecordID}).Row(&profile); err != nil {
			return err
		}
		r.after = append(r.after, s.Event.ID)
		r.rows[s.Event.ID] = profile
	}
	return nil
}

func TestBeforeInsertSeesOnlyNewEventsAndRowsCarryItsProfile(t *testing.T) {
	o := openApp(t)
	r := &resolver{rows: map[string]string{}}
	if _, err := eventstore.WriteBatch(o.PB, sample(10, 0), r); err != nil {
		t.Fatal(err)
	}
	// 5 stored already, 5 new, and one new event repeated in the batch.
	evs := append(sample(10, 5), sample(1, 12)...)
	r.before, r.after = nil, nil
	stored, err := eventstore.WriteBatch(o.PB, evs, r)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"e-10", "e-11", "e-12", "e-13", "e-14"}
	if fmt.Sprint(r.before) != fmt.Sprint(want) || fmt.Sprint(r.after) != fmt.Sprint(want) || len(stored) != len(want) {
		t.Fatalf("before insert %v, after %v, stored %d; want %v", r.before, r.after, len(stored), want)
	}
	for _, id := range want {
		if r.rows[id] != "p-"+id {
			t.Fatalf("row %s stored with profile %q, want %q", id, r.rows[id], "p-"+id)
		}
	}
	var n int
	if err := o.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE profile LIKE 'p-%'").Row(&n); err != nil || n != 15 {
		t.Fatalf("rows with a profile = %d %v, want 15", n, err)
	}
}
