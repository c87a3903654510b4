package messaging_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/store"
)

// The ledger keeps when each email was first opened and first clicked:
// an email.opened or email.clicked naming the message (outbound_id, or
// message_id) on the same customer, at or after the message was created.
// An open that arrives late but happened earlier moves opened_at back; a
// click is an open too; another customer's event naming the message, an
// event from before the message, and one naming no message change
// nothing. GET /api/v1/messages shows both times.
func TestLedgerRecordsEmailOpensAndClicks(t *testing.T) {
	e := start(t, envOptions{})
	e.owner = e.Staff(t, "owner@omni-shop.dev", "owner")
	ann := e.customer(t, "ann")
	e.customer(t, "bob")
	e.enableRecorder(t)
	code, r := e.send(t, e.owner, map[string]any{"profile": ann, "channel": "email", "kind": "transactional", "subject": "Order", "body": "Thanks"})
	if code != 202 {
		t.Fatalf("send: %d %+v", code, r)
	}
	e.waitStatus(t, r.ID, "sent")
	var created string
	if err := e.PB.DB().NewQuery("SELECT created FROM messages WHERE id={:id}").Bind(dbx.Params{"id": r.ID}).Row(&created); err != nil {
		t.Fatal(err)
	}
	base, err := time.Parse("2006-01-02 15:04:05.000Z", created)
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) time.Time { return base.Add(d) }
	emitAt := func(id, typ, email string, when time.Time, props map[string]any) {
		t.Helper()
		now := time.Now().UTC()
		ev := &events.Event{ID: id, Type: typ, Source: "test", OccurredAt: when, ReceivedAt: now,
			Identities: events.Identities{events.Email: email}, Properties: props, Context: events.Context{Channel: events.ChannelEmail}}
		if err := ev.Validate(now); err != nil {
			t.Fatal(err)
		}
		for _, err := range ingest.Publish(context.Background(), e.Bus, []*events.Event{ev}) {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	named := map[string]any{"outbound_id": r.ID}
	// In the order they arrive:
	emitAt("o-bob", events.EmailOpened, "bob@omni-shop.dev", at(time.Second), named)   // someone else's
	emitAt("o-before", events.EmailOpened, "ann@omni-shop.dev", at(-time.Hour), named) // before the message
	emitAt("o-none", events.EmailOpened, "ann@omni-shop.dev", at(time.Second), nil)    // names no message
	emitAt("o-2", events.EmailOpened, "ann@omni-shop.dev", at(2*time.Minute), named)   // the first open to arrive
	emitAt("o-1", events.EmailOpened, "ann@omni-shop.dev", at(time.Minute), named)     // earlier, arriving late
	emitAt("c-3", events.EmailClicked, "ann@omni-shop.dev", at(3*time.Minute), map[string]any{"message_id": r.ID, "url": "https://shop.omni-shop.dev/"})
	omnitest.Eventually(t, 30*time.Second, func() bool {
		var n int
		_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE event_id IN ('o-bob', 'o-before', 'o-none', 'o-2', 'o-1', 'c-3')").Row(&n)
		return n == 6
	}, "the six events stored")

	code, body := e.Do(t, "GET", "/api/v1/messages?profile="+ann, nil, omnitest.Auth(e.owner))
	if code != 200 {
		t.Fatalf("list: %d %s", code, body)
	}
	var list struct {
		Items []struct {
			ID        string `json:"id"`
			OpenedAt  string `json:"opened_at"`
			ClickedAt string `json:"clicked_at"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Items) != 1 || list.Items[0].ID != r.ID {
		t.Fatalf("list: %v %s", err, body)
	}
	got := list.Items[0]
	if got.OpenedAt != store.FormatTime(at(time.Minute)) || got.ClickedAt != store.FormatTime(at(3*time.Minute)) {
		t.Fatalf("opened_at %q clicked_at %q, want %q and %q", got.OpenedAt, got.ClickedAt,
			store.FormatTime(at(time.Minute)), store.FormatTime(at(3*time.Minute)))
	}

	// A click alone is an open as well.
	code, r2 := e.send(t, e.owner, map[string]any{"profile": ann, "channel": "email", "kind": "transactional", "subject": "Again", "body": "Hi"})
	if code != 202 {
		t.Fatalf("send: %d %+v", code, r2)
	}
	e.waitStatus(t, r2.ID, "sent")
	click := time.Now().UTC()
	emitAt("c-only", events.EmailClicked, "ann@omni-shop.dev", click, map[string]any{"outbound_id": r2.ID})
	omnitest.Eventually(t, 30*time.Second, func() bool {
		var o, c string
		_ = e.PB.DB().NewQuery("SELECT opened_at, clicked_at FROM messages WHERE id={:id}").Bind(dbx.Params{"id": r2.ID}).Row(&o, &c)
		return o == store.FormatTime(click) && c == o
	}, "a click recorded as an open and a click")
}
