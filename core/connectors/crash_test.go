package connectors_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/plugins/sdk"
)

// kill -9 the plugin while webhooks and sends flow: the server keeps
// serving, webhooks get 503 while it is down, it is back within 5 s, every
// accepted webhook is stored exactly once and every message is sent. Each
// kill lands while the vendor holds a send, so queued messages are
// acknowledged by the bus and not yet sent.
func TestKillPluginUnderLoad(t *testing.T) {
	e := start(t, connectors.Options{}, nil)
	e.enable(t, "example", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url})
	e.waitState(t, "example", "running", 10*time.Second)

	var (
		mu        sync.Mutex
		accepted  = map[string]bool{}
		refused   int
		badStatus []int
		enqueued  []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // webhooks, one after another
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("load-%d", n)
			st, _ := e.webhook(t, "", whSecret, []byte(`{"id":"`+id+`","type":"order.placed","email":"load@example.com"}`))
			mu.Lock()
			switch st {
			case 200:
				accepted[id] = true
			case 503:
				refused++
			default:
				badStatus = append(badStatus, st)
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	go func() { // sends
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("out-%d", n)
			if err := connectors.Enqueue(context.Background(), e.Bus, "example", &sdk.OutboundMessage{ID: id, Channel: "sms", To: map[string]string{"phone": "+14155550100"}, Text: "hi"}); err == nil {
				mu.Lock()
				enqueued = append(enqueued, id)
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	t.Cleanup(e.api.releaseSends) // before the vendor's server closes, which waits for held sends
	const kills = 2
	for k := 0; k < kills; k++ {
		e.api.holdSends()
		// Sends cannot be recorded while held and enqueuing goes on, so
		// once this holds it still holds at the kill.
		omnitest.Eventually(t, 30*time.Second, func() bool {
			held, sent := e.api.inFlight()
			mu.Lock()
			defer mu.Unlock()
			return held > 0 && len(enqueued) > 0 && sent < len(enqueued)
		}, "a send held at the vendor with messages queued behind it (kill %d)", k+1)
		pid := e.mod.PID("example")
		if pid == 0 {
			t.Fatal("no plugin pid")
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Back (a new process, running) within 5 s.
		omnitest.Eventually(t, 5*time.Second, func() bool {
			p := e.mod.PID("example")
			s, _ := e.state(t, "example")
			return p != 0 && p != pid && s == "running"
		}, "plugin back after kill %d", k+1)
		e.api.releaseSends()
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(badStatus) > 0 {
		t.Fatalf("webhooks got statuses other than 200/503: %v", badStatus)
	}
	if refused == 0 {
		t.Fatal("no webhook was refused with 503 while the plugin was down")
	}
	if len(accepted) == 0 || len(enqueued) == 0 {
		t.Fatalf("no load: %d webhooks, %d sends", len(accepted), len(enqueued))
	}
	// Every accepted webhook stored exactly once (unique ids; nothing extra).
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return e.countWhere(t, "event_id LIKE 'example:load-%%'") >= len(accepted)
	}, "%d accepted webhooks stored", len(accepted))
	var stored []string
	if err := e.PB.DB().NewQuery("SELECT event_id FROM events WHERE event_id LIKE 'example:load-%'").Column(&stored); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, id := range stored {
		seen[id]++
	}
	for id := range accepted {
		if seen["example:"+id] != 1 {
			t.Fatalf("accepted webhook %s stored %d times", id, seen["example:"+id])
		}
	}
	// Every message sent and recorded once as message.sent.
	omnitest.Eventually(t, 60*time.Second, func() bool {
		return e.countWhere(t, "type = 'message.sent' AND event_id LIKE 'message.sent:out-%%'") == len(enqueued)
	}, "%d message.sent events", len(enqueued))
	dups := 0
	for _, id := range enqueued {
		n := e.api.count(id)
		if n == 0 {
			t.Fatalf("message %s never reached the provider", id)
		}
		dups += n - 1
	}
	// A duplicate is only possible for a send in flight when the plugin died.
	if dups > kills*32 {
		t.Fatalf("%d duplicate sends for %d kills", dups, kills)
	}
	t.Logf("%d webhooks accepted, %d refused with 503, %d messages sent, %d duplicates at the provider", len(accepted), refused, len(enqueued), dups)
}
