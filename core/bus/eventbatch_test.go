package bus

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
)

func encodedEvents(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		e := []byte(fmt.Sprintf(`{"id":"e%d","pad":"`, i))
		e = append(e, bytes.Repeat([]byte("x"), max(size-len(e)-2, 0))...)
		out[i] = append(e, '"', '}')
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
	next := 0
	for _, b := range batches {
		if len(b.Msg.Data) > 1000 {
			t.Errorf("message of %d bytes over the limit", len(b.Msg.Data))
		}
		if b.From != next || b.To <= b.From {
			t.Fatalf("batch covers %d–%d, want it to start at %d", b.From, b.To, next)
		}
		next = b.To
		if b.Msg.Subject != EventBatchSubject || b.Msg.Header.Get(EventCountHeader) != strconv.Itoa(b.To-b.From) || b.Msg.ID != "" {
			t.Fatalf("message = %s %v id %q", b.Msg.Subject, b.Msg.Header, b.Msg.ID)
		}
		lines := SplitEvents(b.Msg.Header, b.Msg.Data)
		if len(lines) != b.To-b.From {
			t.Fatalf("%d lines, want %d", len(lines), b.To-b.From)
		}
		for i, l := range lines {
			if !bytes.Equal(l, evs[b.From+i]) {
				t.Fatalf("line %d = %s, want %s", i, l, evs[b.From+i])
			}
		}
		if h := b.Msg.natsMsg().Header; h.Get(EventIDHeader) != "" || h.Get("Nats-Msg-Id") != "" {
			t.Fatalf("a batch message carries an id of its own: %v", h)
		}
	}
	if next != len(evs) {
		t.Fatalf("batches end at %d of %d events", next, len(evs))
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
