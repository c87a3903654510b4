package connectors_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/plugins/sdk"
)

// heldCount is how many messages of connector wait in outbox_held.
func (e *env) heldCount(t *testing.T, connector string) int {
	t.Helper()
	n, err := e.mod.HeldCounts()
	if err != nil {
		t.Fatal(err)
	}
	return n[connector]
}

func (e *env) enqueue(t *testing.T, connector, id string) {
	t.Helper()
	if err := connectors.Enqueue(context.Background(), e.Bus, connector, &sdk.OutboundMessage{ID: id, Channel: "sms", To: map[string]string{"phone": "+14155550100"}, Text: "hi"}); err != nil {
		t.Fatal(err)
	}
}

// Messages queued for a connector that is installed but disabled outnumber
// the outbox consumer's unacknowledged slots; another connector's message
// still goes out, and the disabled one's are held, then delivered once
// each when it is enabled. Before holding, the waiting messages kept every
// slot and the enabled connector's message was never delivered.
func TestDisabledConnectorsMessagesDoNotStallOtherSends(t *testing.T) {
	e := start(t, connectors.Options{MaxAckPending: 4}, nil)
	e.enable(t, "example", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url})
	e.waitState(t, "example", "running", 10*time.Second)
	const queued = 12 // three times MaxAckPending
	for n := range queued {
		e.enqueue(t, "crashy", fmt.Sprintf("wait-%d", n)) // crashy is installed, never enabled
	}
	e.enqueue(t, "example", "through-1")
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.api.count("through-1") == 1 },
		"the enabled connector's message to be delivered past the disabled one's")
	omnitest.Eventually(t, 10*time.Second, func() bool { return e.heldCount(t, "crashy") == queued },
		"the disabled connector's messages to be held")
	if _, recorded := e.api.inFlight(); recorded != 1 {
		t.Fatalf("the vendor recorded %d messages; only through-1 may have gone out", recorded)
	}
	// The owner sees what waits: on the connector and in health.
	if _, v := e.call(t, "GET", "/api/v1/connectors/crashy", nil); v["held"] != float64(queued) {
		t.Fatalf("connector view held = %v, want %d", v["held"], queued)
	}
	_, health := e.call(t, "GET", "/api/v1/health", nil)
	if comp := fmt.Sprint(health["connectors"]); !strings.Contains(comp, "12 messages waiting until crashy is enabled and running") {
		t.Fatalf("health: %s", comp)
	}

	e.enable(t, "crashy", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url})
	omnitest.Eventually(t, 30*time.Second, func() bool {
		for n := range queued {
			if e.api.count(fmt.Sprintf("wait-%d", n)) != 1 {
				return false
			}
		}
		return e.heldCount(t, "crashy") == 0
	}, "the held messages to be delivered after the connector is enabled")
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return e.countWhere(t, "type = 'message.sent' AND properties LIKE '%%\"connector\":\"crashy\"%%'") == queued
	}, "one message.sent per held message")
	if _, recorded := e.api.inFlight(); recorded != queued+1 {
		t.Fatalf("the vendor recorded %d distinct messages, want %d", recorded, queued+1)
	}
}

// Held messages survive a restart and are delivered when the connector is
// enabled afterwards.
func TestHeldMessagesSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	inDir := func(c *config.Config) { c.DataDir = dir }
	e := start(t, connectors.Options{}, inDir)
	e.enqueue(t, "crashy", "kept-1")
	e.enqueue(t, "crashy", "kept-2")
	omnitest.Eventually(t, 10*time.Second, func() bool { return e.heldCount(t, "crashy") == 2 }, "the messages to be held")
	e.Stop()

	e2 := start(t, connectors.Options{}, inDir)
	e2.api = e.api
	if n := e2.heldCount(t, "crashy"); n != 2 {
		t.Fatalf("%d messages held after the restart, want 2", n)
	}
	e2.enable(t, "crashy", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url})
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return e.api.count("kept-1") == 1 && e.api.count("kept-2") == 1 && e2.heldCount(t, "crashy") == 0
	}, "the messages held before the restart to be delivered")
}

// A message held longer than GiveUpAfter is recorded as message.failed,
// like a send that kept failing, and is not sent when the connector comes
// back.
func TestHeldMessagesAreGivenUpAfterGiveUpAfter(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Now()
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := start(t, connectors.Options{Now: clock}, nil)
	e.enqueue(t, "crashy", "old-1")
	omnitest.Eventually(t, 10*time.Second, func() bool { return e.heldCount(t, "crashy") == 1 }, "the message to be held")
	if n := e.countWhere(t, "event_id = 'message.failed:old-1'"); n != 0 {
		t.Fatalf("given up before GiveUpAfter: %d message.failed", n)
	}
	mu.Lock()
	now = now.Add(24*time.Hour + time.Minute)
	mu.Unlock()
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return e.countWhere(t, "event_id = 'message.failed:old-1' AND properties LIKE '%%connector_unavailable%%' AND properties LIKE '%%\"permanent\":false%%'") == 1 &&
			e.heldCount(t, "crashy") == 0
	}, "message.failed recorded for the message held too long")
	e.enable(t, "crashy", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url})
	e.waitState(t, "crashy", "running", 10*time.Second)
	e.enqueue(t, "crashy", "new-1")
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.api.count("new-1") == 1 }, "a new message to go out")
	if n := e.api.count("old-1"); n != 0 {
		t.Fatalf("the message given up was sent %d times", n)
	}
}

// A crash after a message is held and before its bus message is
// acknowledged redelivers it and holds it again: it stays one held message
// and is delivered once.
func TestHoldingTheSameMessageTwiceKeepsOne(t *testing.T) {
	e := start(t, connectors.Options{}, nil)
	out := &sdk.OutboundMessage{ID: "twice-1", Channel: "sms", To: map[string]string{"phone": "+14155550100"}, Text: "hi"}
	for range 2 {
		if err := e.mod.Hold("crashy", out, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.heldCount(t, "crashy"); n != 1 {
		t.Fatalf("%d held messages, want 1", n)
	}
	e.enable(t, "crashy", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url})
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return e.countWhere(t, "event_id = 'message.sent:twice-1'") == 1 && e.heldCount(t, "crashy") == 0
	}, "the held message to be sent")
	if n := e.api.count("twice-1"); n != 1 {
		t.Fatalf("sent %d times, want 1", n)
	}
}
