package profiles

import (
	"encoding/json"

	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/subscriptions"

	"github.com/omni/omni/core/api"
)

// RealtimeTopic is the PocketBase realtime topic on which staff clients
// hear which profiles changed (profiles are written with plain SQL, so
// PocketBase's own record events do not fire for them).
const RealtimeTopic = "omni/profiles"

// notify tells subscribed staff which profiles changed. Sends may block on
// slow clients, so it runs on its own goroutine.
func (m *Module) notify(ids []string) {
	if len(ids) == 0 || m.app == nil {
		return
	}
	chunks := m.app.SubscriptionsBroker().ChunkedClients(300)
	if len(chunks) == 0 {
		return
	}
	var msgs []subscriptions.Message
	for start := 0; start < len(ids); start += 500 {
		data, _ := json.Marshal(map[string]any{"action": "update", "ids": ids[start:min(start+500, len(ids))]})
		msgs = append(msgs, subscriptions.Message{Name: RealtimeTopic, Data: data})
	}
	go func() {
		for _, chunk := range chunks {
			for _, c := range chunk {
				if !c.HasSubscription(RealtimeTopic) {
					continue
				}
				auth, _ := c.Get(apis.RealtimeClientAuthKey).(*core.Record)
				if !api.IsStaffRecord(auth) {
					continue // custom topics are open to guests; profiles are not
				}
				for _, msg := range msgs {
					c.Send(msg)
				}
			}
		}
	}()
}
