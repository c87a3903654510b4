package webui

import (
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/subscriptions"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/eventstore"
)

// LiveTopic is the realtime topic the dashboard subscribes to. Events are
// written with batched SQL (no record hooks), so PocketBase would not
// broadcast them itself; this tells signed-in staff that figures changed.
const LiveTopic = "omni/dashboard"

// notifier coalesces committed batches into at most one message a second.
type notifier struct {
	app     core.App
	log     *slog.Logger
	pending atomic.Int64
	done    chan struct{}
}

func startNotifier(app core.App, log *slog.Logger) *notifier {
	n := &notifier{app: app, log: log, done: make(chan struct{})}
	go n.loop()
	return n
}

func (n *notifier) onCommit(batch []*eventstore.Stored) { n.pending.Add(int64(len(batch))) }

func (n *notifier) stop() {
	select {
	case <-n.done:
	default:
		close(n.done)
	}
}

func (n *notifier) loop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
			if c := n.pending.Swap(0); c > 0 {
				n.broadcast(c)
			}
		}
	}
}

func (n *notifier) broadcast(count int64) {
	data, _ := json.Marshal(map[string]any{"events": count})
	msg := subscriptions.Message{Name: LiveTopic, Data: data}
	for _, c := range n.app.SubscriptionsBroker().Clients() {
		if !c.HasSubscription(LiveTopic) {
			continue
		}
		// Custom topics are open to anyone; only staff get the message.
		auth, _ := c.Get(apis.RealtimeClientAuthKey).(*core.Record)
		if !api.IsStaffRecord(auth) {
			continue
		}
		go c.Send(msg) // Send blocks until the client's stream takes it
	}
}
