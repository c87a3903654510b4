package inbox

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/relay"
)

// Events the inbound processor's parts stage during a batch reach the
// relay together when the batch ends, in the order staged; a failed batch
// stages nothing; outside a batch staging is immediate, as before.
func TestABatchStagesItsEventsAtItsEndInOrder(t *testing.T) {
	m := New(Options{})
	s := omnitest.Start(t, omnitest.Options{Modules: func(o *app.Omni) []app.Module {
		return []app.Module{profiles.New(profiles.Options{}), m}
	}})
	c := &Conversation{ID: "conv1", Profile: "prof1", Channel: "email"}
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	opened := conversationEvent(EventConversationOpened, c, at, nil)
	handoff := conversationEvent(EventConversationHandoff, c, at, nil)
	resolved := conversationEvent(events.ConversationResolved, c, at.Add(time.Minute), nil)
	late := conversationEvent(EventConversationOpened, c, at.Add(time.Hour), nil)
	pending := func(tx core.App) []string {
		var ids []string
		if err := tx.DB().NewQuery("SELECT event_id FROM " + relay.Table + " ORDER BY seq").Column(&ids); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	rollback := errors.New("rollback")
	err := s.PB.RunInTransaction(func(tx core.App) error {
		b := m.batch.begin(tx)
		if err := m.stage(tx, opened); err != nil {
			return err
		}
		if err := m.stage(tx, handoff); err != nil {
			return err
		}
		if got := pending(tx); len(got) != 0 {
			t.Errorf("staged before the batch ended: %v", got)
		}
		if q1, q2 := m.query(tx, "SELECT 1"), m.query(tx, "SELECT 1"); q1 != q2 {
			t.Error("a batch prepared the same statement twice")
		}
		if staged, err := m.batch.end(b, true); err != nil || !staged {
			t.Fatalf("end: staged=%v err=%v", staged, err)
		}
		if got, want := pending(tx), []string{opened.ID, handoff.ID}; !slices.Equal(got, want) {
			t.Errorf("after the batch: %v, want %v", got, want)
		}
		if m.batch.of(tx) != nil {
			t.Error("the batch is still current after it ended")
		}
		if err := m.stage(tx, resolved); err != nil { // no batch: at once
			return err
		}
		if got, want := pending(tx), []string{opened.ID, handoff.ID, resolved.ID}; !slices.Equal(got, want) {
			t.Errorf("outside a batch: %v, want %v", got, want)
		}
		b = m.batch.begin(tx)
		if err := m.stage(tx, late); err != nil {
			return err
		}
		if staged, err := m.batch.end(b, false); err != nil || staged {
			t.Fatalf("a failed batch: staged=%v err=%v", staged, err)
		}
		if got := pending(tx); len(got) != 3 {
			t.Errorf("a failed batch staged its events: %v", got)
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
}
