package bus

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"testing"
)

func encodedEvents(n, size int) []Msg {
	out := make([]Msg, n)
	for i := range out {
		e := []byte(fmt.Sprintf(`{"id":"e%d","pad":"`, i))
		e = append(e, bytes.Repeat([]byte("x"), max(size-len(e)-2, 0))...)
		out[i] = Msg{Subject: "omni.events.test.track", ID: fmt.Sprintf("e%d", i), Data: append(e, '"', '}')}
	}
	return out
}

// Events are joined into messages no larger than the limit, in order, each
// event in exactly one, and a message splits back into the same bytes.
func TestEventBatchesStayUnderTheLimitAndSplitBack(t *testing.T) {
	evs := encodedEvents(25, 100)
	batches := eventBatches(evs, 1000) // nine events of 100 bytes and their line breaks
	if len(batches) != 3 {
		t.Fatalf("%d messages, want 3 (9 + 9 + 7 events)", len(batches))
	}
	from := 0
	for _, b := range batches {
		if len(b.msg.Data) > 1000 {
			t.Errorf("message of %d bytes over the limit", len(b.msg.Data))
		}
		if b.to <= from {
			t.Fatalf("batch covers %d–%d", from, b.to)
		}
		if b.msg.Subject != EventBatchSubject || b.msg.Header.Get(EventCountHeader) != strconv.Itoa(b.to-from) || b.msg.ID != "" {
			t.Fatalf("message = %s %v id %q", b.msg.Subject, b.msg.Header, b.msg.ID)
		}
		lines := SplitEvents(b.msg.Header, b.msg.Data)
		if len(lines) != b.to-from {
			t.Fatalf("%d lines, want %d", len(lines), b.to-from)
		}
		for i, l := range lines {
			if !bytes.Equal(l, evs[from+i].Data) {
				t.Fatalf("line %d = %s, want %s", i, l, evs[from+i].Data)
			}
		}
		if h := b.msg.natsMsg().Header; h.Get(EventIDHeader) != "" || h.Get("Nats-Msg-Id") != "" {
			t.Fatalf("a batch message carries an id of its own: %v", h)
		}
		from = b.to
	}
	if from != len(evs) {
		t.Fatalf("batches end at %d of %d events", from, len(evs))
	}

	// An event larger than the limit still goes, alone.
	big := eventBatches(encodedEvents(3, 2000), 1000)
	if len(big) != 3 {
		t.Fatalf("three events over the limit made %d messages, want one each", len(big))
	}
	// A message without the header is one event, whatever its bytes.
	if got := SplitEvents(nil, []byte("a\nb")); len(got) != 1 || string(got[0]) != "a\nb" {
		t.Fatalf("a single event's message split into %q", got)
	}
}

// Runs of events go as batch messages; profile.erased (which connectors'
// erasures pick out by subject), a lone event and messages for other
// streams go as they are; covers counts the events each message completes.
func TestJoinEventsBatchesRunsButErasuresGoAlone(t *testing.T) {
	single := []Msg{
		{ID: "a", Subject: "omni.events.omni.segment.entered", Data: []byte(`{"id":"a"}`)},
		{ID: "b", Subject: "omni.events.omni.segment.exited", Data: []byte(`{"id":"b"}`)},
		{ID: "c", Subject: "omni.events.omni.profile.erased", Data: []byte(`{"id":"c"}`)},
		{ID: "d", Subject: "omni.events.omni.segment.entered", Data: []byte(`{"id":"d"}`)},
		{ID: "e", Subject: "omni.messaging.send", Data: []byte(`{"id":"e"}`)},
		{ID: "f", Subject: "omni.events.omni.conversation.opened", Data: []byte(`{"id":"f"}`)},
		{ID: "g", Subject: "omni.events.omni.segment.entered", Data: []byte(`{"id":"g"}`)},
	}
	msgs, covers := (*Bus)(nil).JoinEvents(single)
	if want := []int{2, 3, 4, 5, 7}; !slices.Equal(covers, want) {
		t.Fatalf("covers = %v, want %v", covers, want)
	}
	subjects := make([]string, len(msgs))
	for i, m := range msgs {
		subjects[i] = m.Subject
	}
	want := []string{EventBatchSubject, "omni.events.omni.profile.erased", "omni.events.omni.segment.entered",
		"omni.messaging.send", EventBatchSubject}
	if !slices.Equal(subjects, want) {
		t.Fatalf("subjects = %v, want %v", subjects, want)
	}
	if lines := SplitEvents(msgs[4].Header, msgs[4].Data); len(lines) != 2 || string(lines[1]) != `{"id":"g"}` {
		t.Fatalf("last batch = %q", lines)
	}
	if msgs[1].ID != "c" || msgs[1].Header != nil {
		t.Fatalf("the erasure's message = %+v", msgs[1])
	}
}
