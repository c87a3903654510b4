package relay

import (
	"slices"
	"testing"

	"github.com/omni/omni/core/bus"
)

// Runs of derived events go as batch messages; profile.erased (which
// connectors' erasures pick out by subject), a lone event and rows for other
// streams go alone; covers counts the rows each message completes.
func TestDerivedEventsAreBatchedButErasuresGoAlone(t *testing.T) {
	rows := []row{
		{Seq: 1, EventID: "a", Subject: "omni.events.omni.segment.entered", Data: `{"id":"a"}`},
		{Seq: 2, EventID: "b", Subject: "omni.events.omni.segment.exited", Data: `{"id":"b"}`},
		{Seq: 3, EventID: "c", Subject: "omni.events.omni.profile.erased", Data: `{"id":"c"}`},
		{Seq: 4, EventID: "d", Subject: "omni.events.omni.segment.entered", Data: `{"id":"d"}`},
		{Seq: 5, EventID: "e", Subject: "omni.messaging.send", Data: `{"id":"e"}`},
		{Seq: 6, EventID: "f", Subject: "omni.events.omni.conversation.opened", Data: `{"id":"f"}`},
		{Seq: 7, EventID: "g", Subject: "omni.events.omni.segment.entered", Data: `{"id":"g"}`},
	}
	msgs, covers := (&Relay{}).messages(rows)
	if want := []int{2, 3, 4, 5, 7}; !slices.Equal(covers, want) {
		t.Fatalf("covers = %v, want %v", covers, want)
	}
	subjects := make([]string, len(msgs))
	for i, m := range msgs {
		subjects[i] = m.Subject
	}
	want := []string{bus.EventBatchSubject, "omni.events.omni.profile.erased", "omni.events.omni.segment.entered",
		"omni.messaging.send", bus.EventBatchSubject}
	if !slices.Equal(subjects, want) {
		t.Fatalf("subjects = %v, want %v", subjects, want)
	}
	if lines := bus.SplitEvents(msgs[4].Header, msgs[4].Data); len(lines) != 2 || string(lines[1]) != `{"id":"g"}` {
		t.Fatalf("last batch = %q", lines)
	}
	if msgs[1].ID != "c" || msgs[1].Header != nil {
		t.Fatalf("the erasure's message = %+v", msgs[1])
	}
}
