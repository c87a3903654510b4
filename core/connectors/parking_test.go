package connectors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/core/deadletter"
	"github.com/omni/omni/plugins/example"
	"github.com/omni/omni/plugins/sdk"
)

// deadRow returns the parked row of consumer and event id, or nil.
func deadRow(t *testing.T, e *env, consumer, eventID string) *deadletter.Entry {
	t.Helper()
	rows, err := deadletter.List(e.PB, consumer, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.EventID == eventID {
			return &r
		}
	}
	return nil
}

// setDeadData replaces a parked row's data, as a superuser can at /_/.
func setDeadData(t *testing.T, e *env, id, data string) {
	t.Helper()
	if _, err := e.PB.DB().Update(deadletter.Collection, dbx.Params{"data": data}, dbx.HashExp{"id": id}).Execute(); err != nil {
		t.Fatal(err)
	}
}

// requestRetry marks one parked row for a retry, as `omni events
// retry-dead ID` and POST /api/v1/events/dead/retry do.
func requestRetry(t *testing.T, e *env, id string) {
	t.Helper()
	if marked, err := deadletter.RequestRetry(e.PB, id); err != nil || len(marked) != 1 {
		t.Fatalf("request retry of %s: %v %v", id, marked, err)
	}
}

// outboxSettled reports whether the outbox consumer has nothing left
// pending or unacknowledged.
func outboxSettled(t *testing.T, e *env) bool {
	t.Helper()
	cons, err := e.Bus.JS.Consumer(context.Background(), bus.StreamOutbox, connectors.OutboxConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumAckPending == 0 && info.NumPending == 0
}

// A message on OUTBOX that is not an OutboundMessage is parked in
// events_dead (raw data, subject, why) and acknowledged, never silently
// dropped; the rest flows on. A retry of it as it is fails with the same
// reason (the row stays); fixed by a superuser, it is republished and sent.
// Before the fix the message was Term()ed and only logged.
func TestOutboxParksUndecodableMessage(t *testing.T) {
	e := start(t, connectors.Options{}, nil)
	e.enable(t, "example", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url})
	e.waitState(t, "example", "running", 10*time.Second)

	ctx := context.Background()
	if _, err := e.Bus.Publish(ctx, bus.Msg{Subject: connectors.OutboxSubject("example"), Data: []byte(`{"id": "garbage-1", "to": 42`), ID: "garbage-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Bus.Publish(ctx, bus.Msg{Subject: connectors.OutboxSubject("example"), Data: []byte(`{"channel":"sms","text":"no id"}`), ID: "no-id-1"}); err != nil {
		t.Fatal(err)
	}
	if err := connectors.Enqueue(ctx, e.Bus, "example", &sdk.OutboundMessage{ID: "after-1", Channel: "sms", To: map[string]string{"phone": "+14155550100"}, Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	omnitest.Eventually(t, 15*time.Second, func() bool { return e.api.count("after-1") == 1 }, "the next message to be sent")
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return deadRow(t, e, connectors.OutboxDeadConsumer, "garbage-1") != nil && deadRow(t, e, connectors.OutboxDeadConsumer, "no-id-1") != nil
	}, "both unsendable messages to be parked")
	omnitest.Eventually(t, 10*time.Second, func() bool { return outboxSettled(t, e) }, "the outbox to have acknowledged everything")

	row := deadRow(t, e, connectors.OutboxDeadConsumer, "garbage-1")
	if row.Subject != "omni.outbox.example" || row.Data != `{"id": "garbage-1", "to": 42` || !strings.Contains(row.Error, "not an OutboundMessage") || row.Attempts != 1 {
		t.Fatalf("parked row: %+v", row)
	}
	if r := deadRow(t, e, connectors.OutboxDeadConsumer, "no-id-1"); !strings.Contains(r.Error, "id is required") {
		t.Fatalf("message without id parked with %q", r.Error)
	}

	// Retried as it is: still undecodable, so the retry fails and the row stays.
	requestRetry(t, e, row.ID)
	omnitest.Eventually(t, 15*time.Second, func() bool {
		r := deadRow(t, e, connectors.OutboxDeadConsumer, "garbage-1")
		return r != nil && r.Attempts == 2 && !r.RetryRequested
	}, "the retry to be answered")
	if r := deadRow(t, e, connectors.OutboxDeadConsumer, "garbage-1"); r.ID != row.ID || !strings.Contains(r.Error, "not an OutboundMessage") {
		t.Fatalf("after the retry: %+v", r)
	}

	// Fixed, then retried: sent once, recorded, and the row is gone.
	setDeadData(t, e, row.ID, `{"id":"garbage-1","channel":"sms","to":{"phone":"+14155550100"},"text":"fixed"}`)
	requestRetry(t, e, row.ID)
	omnitest.Eventually(t, 15*time.Second, func() bool { return e.api.count("garbage-1") == 1 }, "the fixed message to be sent")
	omnitest.Eventually(t, 10*time.Second, func() bool {
		_, err := deadletter.Get(e.PB, row.ID)
		return errors.Is(err, deadletter.ErrNotFound)
	}, "the row of the sent message to be removed")
	omnitest.Eventually(t, 10*time.Second, func() bool { return e.countWhere(t, "event_id = 'message.sent:garbage-1'") == 1 }, "message.sent recorded")
}

// A message that crashes the connector at every attempt is given up after
// GiveUpAfter and recorded as message.failed, and the connector's other
// messages go out. Before the fix a transport error was retried for ever,
// taking the connector down at each attempt.
func TestOutboxGivesUpOnMessageThatCrashesConnector(t *testing.T) {
	e := start(t, connectors.Options{GiveUpAfter: 2 * time.Second}, nil)
	e.enable(t, "crashy", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url})
	e.waitState(t, "crashy", "running", 10*time.Second)

	ctx := context.Background()
	if err := connectors.Enqueue(ctx, e.Bus, "crashy", &sdk.OutboundMessage{ID: "boom-1", Channel: "sms", To: map[string]string{"phone": "+14155550100"}, Text: "crash"}); err != nil {
		t.Fatal(err)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool {
		return e.countWhere(t, "event_id = 'message.failed:boom-1' AND properties LIKE '%%gave up after retrying%%' AND properties LIKE '%%connector_failed%%'") == 1
	}, "message.failed for the message that crashes the connector")
	if err := connectors.Enqueue(ctx, e.Bus, "crashy", &sdk.OutboundMessage{ID: "calm-1", Channel: "sms", To: map[string]string{"phone": "+14155550100"}, Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.api.count("calm-1") == 1 }, "the next message to be sent")
	omnitest.Eventually(t, 10*time.Second, func() bool { return outboxSettled(t, e) }, "the outbox to have acknowledged everything")
}

// A connector's refusal with an enormous reason is still recorded: the
// reason is cut to a bounded length so the outcome event fits on the bus.
// Before the fix the outcome (over 2 MB) could never be published, so the
// message was sent again every second for ever.
func TestOutboxRecordsRefusalWithHugeReason(t *testing.T) {
	e := start(t, connectors.Options{}, nil)
	e.enable(t, "wordy", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url})
	e.waitState(t, "wordy", "running", 10*time.Second)
	if err := connectors.Enqueue(context.Background(), e.Bus, "wordy", &sdk.OutboundMessage{ID: "big-1", Channel: "sms", To: map[string]string{"phone": "+14155550100"}, Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool { return e.countWhere(t, "event_id = 'message.failed:big-1'") == 1 }, "message.failed recorded")
	var reason string
	if err := e.PB.DB().NewQuery("SELECT json_extract(properties, '$.error') FROM events WHERE event_id = 'message.failed:big-1'").Row(&reason); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(reason, "xxxx") || len(reason) > 2100 {
		t.Fatalf("recorded reason: %d bytes, starting %.20q", len(reason), reason)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool { return outboxSettled(t, e) }, "the outbox to have acknowledged the message")
}

// A backfill skips an event that fails validation: it is parked in
// events_dead (the event, the error naming the field), counted in the
// backfill status, and the import carries on to the end. A retry of the
// row validates it again: still invalid, the retry fails with the reason;
// valid (here: fixed by a superuser), it is imported and the row removed.
// Before the fix the backfill failed at that event, and every resume failed
// at it again.
func TestBackfillSkipsInvalidEvent(t *testing.T) {
	at := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	future := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page := map[string]any{"total": 4}
		switch r.URL.Query().Get("cursor") {
		case "":
			page["events"] = []example.Payload{
				{ID: "bf-a", Type: "order.placed", Email: "a@example.com", OccurredAt: at},
				{ID: "bf-bad", Type: "order.placed", Email: "bad@example.com", OccurredAt: future},
			}
			page["next_cursor"] = "p2"
		default:
			page["events"] = []example.Payload{
				{ID: "bf-b", Type: "order.placed", Email: "b@example.com", OccurredAt: at},
				{ID: "bf-c", Type: "order.placed", Email: "c@example.com", OccurredAt: at},
			}
		}
		_ = json.NewEncoder(w).Encode(page)
	}))
	defer vendor.Close()

	e := start(t, connectors.Options{}, nil)
	e.enable(t, "example", map[string]string{"webhook_secret": whSecret, "api_url": vendor.URL})
	e.waitState(t, "example", "running", 10*time.Second)
	backfill := func() map[string]any {
		_, out := e.call(t, "GET", "/api/v1/connectors/example/backfill", nil)
		return out
	}
	if st, out := e.call(t, "POST", "/api/v1/connectors/example/backfill", map[string]string{"since": "2025-01-01"}); st != 202 {
		t.Fatalf("start: %d %v", st, out)
	}
	omnitest.Eventually(t, 20*time.Second, func() bool { s := backfill()["state"]; return s == "done" || s == "failed" }, "the backfill to end")
	out := backfill()
	if out["state"] != "done" || out["skipped"] != float64(1) || !strings.Contains(fmt.Sprint(out["last_skipped"]), "occurred_at") {
		t.Fatalf("backfill status: %v", out)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return e.countWhere(t, "event_id IN ('example:bf-a', 'example:bf-b', 'example:bf-c')") == 3
	}, "the 3 valid events stored")
	if n := e.countWhere(t, "event_id = 'example:bf-bad'"); n != 0 {
		t.Fatalf("the invalid event was stored %d times", n)
	}
	row := deadRow(t, e, connectors.BackfillDeadConsumer, "example:bf-bad")
	if row == nil || row.Subject != "omni.backfill.example" || row.Type != "order.placed" || !strings.Contains(row.Error, "occurred_at") || !strings.Contains(row.Data, `"bad@example.com"`) {
		t.Fatalf("parked row: %+v", row)
	}
	// The connector card carries the same status.
	if _, card := e.call(t, "GET", "/api/v1/connectors/example", nil); fmt.Sprint(card["backfill"].(map[string]any)["skipped"]) != "1" {
		t.Fatalf("connector card: %v", card["backfill"])
	}

	// Retried as it is: still invalid, so the retry fails with the reason.
	requestRetry(t, e, row.ID)
	omnitest.Eventually(t, 15*time.Second, func() bool {
		r := deadRow(t, e, connectors.BackfillDeadConsumer, "example:bf-bad")
		return r != nil && !r.RetryRequested
	}, "the retry to be answered")
	if r := deadRow(t, e, connectors.BackfillDeadConsumer, "example:bf-bad"); r.Attempts != 2 || !strings.Contains(r.Error, "still invalid") || !strings.Contains(r.Error, "occurred_at") {
		t.Fatalf("after the retry: %+v", r)
	}

	// Fixed, then retried: imported, and the skipped count drops.
	setDeadData(t, e, row.ID, strings.Replace(row.Data, "2100-01-01", "2025-03-02", 1))
	requestRetry(t, e, row.ID)
	omnitest.Eventually(t, 15*time.Second, func() bool { return e.countWhere(t, "event_id = 'example:bf-bad'") == 1 }, "the fixed event to be imported")
	omnitest.Eventually(t, 10*time.Second, func() bool { return backfill()["skipped"] == float64(0) }, "no skipped events left")
}
