package connectors_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/plugins/sdk"
)

// A send that is in flight when Omni stops and then succeeds is recorded
// (message.sent) and acknowledged, so the restart does not send it again.
// Before the fix the shutdown check ran before the success check and the
// outcome was published with the already-cancelled context.
func TestOutboxRecordsSendThatSucceedsDuringShutdown(t *testing.T) {
	var (
		mu       sync.Mutex
		received = map[string]int{}
	)
	arrived, release := make(chan struct{}), make(chan struct{})
	var arrivedOnce sync.Once
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m sdk.OutboundMessage
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		received[m.ID]++
		mu.Unlock()
		arrivedOnce.Do(func() { close(arrived) })
		<-release
		_, _ = w.Write([]byte(`{"id":"prov-` + m.ID + `"}`))
	}))
	defer vendor.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	e := start(t, connectors.Options{}, nil)
	e.enable(t, "example", map[string]string{"webhook_secret": whSecret, "api_url": vendor.URL})
	e.waitState(t, "example", "running", 10*time.Second)
	if err := connectors.Enqueue(context.Background(), e.Bus, "example", &sdk.OutboundMessage{ID: "slow-1", Channel: "sms", To: map[string]string{"phone": "+14155550100"}, Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the send never reached the vendor")
	}

	stopped := make(chan struct{})
	go func() { e.mod.Stop(context.Background()); close(stopped) }()
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(e.logs.String(), "outbox: stopping; waiting for in-flight sends")
	}, "the outbox to wait for the send in flight")
	close(release)
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("connectors module did not stop")
	}

	cons, err := e.Bus.JS.Consumer(context.Background(), bus.StreamOutbox, connectors.OutboxConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 {
		t.Fatalf("the sent message was not acknowledged: %d ack pending, %d pending", info.NumAckPending, info.NumPending)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return e.countWhere(t, "event_id = 'message.sent:slow-1' AND properties LIKE '%%prov-slow-1%%'") == 1
	}, "message.sent recorded for the send that finished during shutdown")
	mu.Lock()
	defer mu.Unlock()
	if received["slow-1"] != 1 {
		t.Fatalf("vendor received slow-1 %d times", received["slow-1"])
	}
}

// A plugin coming up (or a sync) after stopAll must not start a backfill
// that nothing would stop.
func TestNoBackfillStartsAfterStop(t *testing.T) {
	e := start(t, connectors.Options{}, nil)
	e.enable(t, "example", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url})
	e.waitState(t, "example", "running", 10*time.Second)
	e.mod.Stop(context.Background())
	e.mod.StartBackfill("example")
	if e.mod.BackfillRunning("example") {
		t.Fatal("a backfill started after the module stopped")
	}
}

// An outgoing message's outcome keeps what was said, bounded, so the
// customer's timeline shows the text of the message and not only that one
// was sent.
func TestOutcomeEventKeepsTheMessageText(t *testing.T) {
	out := &sdk.OutboundMessage{ID: "m-1", Channel: "whatsapp", To: map[string]string{"phone": "+16135550123"},
		Text: "Your order #1086 is ready " + strings.Repeat("é", 3000), Subject: "Ready for pickup"}
	ev := connectors.OutcomeEvent("whatsapp", out, &sdk.SendResult{ProviderMessageID: "wamid.1"}, nil, time.Now())
	text, _ := ev.Properties["text"].(string)
	if !strings.HasPrefix(text, "Your order #1086 is ready") || len(text) > 4000+len("…") || ev.Properties["subject"] != "Ready for pickup" {
		t.Fatalf("outcome properties: text %d bytes %q…, subject %v", len(text), text[:min(40, len(text))], ev.Properties["subject"])
	}
	if ev.Properties["provider_message_id"] != "wamid.1" {
		t.Fatalf("provider id: %v", ev.Properties["provider_message_id"])
	}
}

// A burst larger than a connector's send cap waits in the connector's own
// queue and goes as its sends finish: every message is delivered by the
// bus once, and reaches the vendor once. Past the queue, messages go back
// to the stream and come again: they are still sent, once each.
func TestBurstBeyondTheSendCapQueuesInsteadOfRedelivering(t *testing.T) {
	// Two sends at a time, and 40 unacknowledged messages on the consumer:
	// a connector's queue holds max(4 per slot, a quarter of 40) = 10.
	const cap = 2
	e := start(t, connectors.Options{SendsPerConnector: cap, MaxAckPending: 40}, nil)
	e.api.mu.Lock()
	e.api.delay = 20 * time.Millisecond
	e.api.mu.Unlock()
	e.enable(t, "example", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url})
	e.waitState(t, "example", "running", 10*time.Second)
	cons, err := e.Bus.JS.Consumer(context.Background(), bus.StreamOutbox, connectors.OutboxConsumer)
	if err != nil {
		t.Fatal(err)
	}
	deliveries := func() uint64 {
		t.Helper()
		info, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.Delivered.Consumer // every delivery, a redelivery too
	}
	burst := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			if err := connectors.Enqueue(context.Background(), e.Bus, "example", &sdk.OutboundMessage{ID: fmt.Sprintf("%s-%d", prefix, i),
				Channel: "sms", To: map[string]string{"phone": "+14155550100"}, Text: "hi"}); err != nil {
				t.Fatal(err)
			}
		}
		omnitest.Eventually(t, 30*time.Second, func() bool {
			return e.countWhere(t, "type = 'message.sent' AND event_id LIKE %s", "'message.sent:"+prefix+"-%'") == n
		}, "the %s burst sent", prefix)
	}

	// The cap and the queue hold the whole burst.
	before := deliveries()
	burst("a", cap*(1+4))
	if got := deliveries() - before; got != cap*(1+4) {
		t.Fatalf("%d deliveries for %d messages: the burst did not wait in the queue", got, cap*(1+4))
	}

	// Three times that: the rest comes again from the stream.
	burst("b", 3*cap*(1+4))
	e.api.mu.Lock()
	defer e.api.mu.Unlock()
	received := e.api.received
	for id, n := range received {
		if n != 1 {
			t.Fatalf("the vendor received %s %d times", id, n)
		}
	}
	if len(received) != cap*(1+4)+3*cap*(1+4) {
		t.Fatalf("the vendor received %d messages", len(received))
	}
}
