package eventstore_test

import (
	"fmt"
	"testing"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
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

// scrubber omits one event's row and stores another without one of its
// identities, before the insert.
type scrubber struct{ seen []string }

func (s *scrubber) BeforeInsert(tx core.App, batch []*eventstore.Stored) error {
	for _, st := range batch {
		switch st.Event.ID {
		case "e-1":
			st.Omit = true
		case "e-2":
			st.Identities = events.Identities{"anonymous_id": "kept"}
		}
	}
	return nil
}

func (s *scrubber) ProcessBatch(tx core.App, batch []*eventstore.Stored) error {
	for _, st := range batch {
		s.seen = append(s.seen, st.Event.ID)
	}
	return nil
}

func TestBeforeInsertOmitsAndScrubsRowsButProcessorsSeeEveryEvent(t *testing.T) {
	o := openApp(t)
	evs := sample(3, 0)
	evs[2].Identities = events.Identities{"anonymous_id": "kept", "email": "erased@omni-shop.dev"}
	s := &scrubber{}
	stored, err := eventstore.WriteBatch(o.PB, evs, s)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(s.seen) != "[e-0 e-1 e-2]" || len(stored) != 3 {
		t.Fatalf("processors saw %v, %d returned; want all three", s.seen, len(stored))
	}
	var rows []struct {
		EventID    string `db:"event_id"`
		Identities string `db:"identities"`
	}
	if err := o.PB.DB().NewQuery("SELECT event_id, identities FROM events ORDER BY event_id").All(&rows); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rows) != `[{e-0 `+rowIdentities(t, evs[0])+`} {e-2 {"anonymous_id":"kept"}}]` {
		t.Fatalf("stored rows %v; want e-0 as sent, e-2 scrubbed, no e-1", rows)
	}
	if evs[2].Identities["email"] == "" {
		t.Fatal("the event itself was changed; only its row should be")
	}
}

func rowIdentities(t *testing.T, ev *events.Event) string {
	t.Helper()
	b, idsEnd, _ := ev.ColumnsJSON(nil)
	return string(b[:idsEnd])
}
