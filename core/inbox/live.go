package inbox

import (
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/subscriptions"

	"github.com/omni/omni/core/api"
)

// LiveTopic is the realtime topic the agents' inbox subscribes to
// (pb.realtime.subscribe("omni/inbox")). Conversations are written with
// plain SQL (no record hooks), so the inbox tells staff itself, as soon as
// each change commits: one message per changed conversation,
// {"conversation": Conversation, "messages": [MessageView]} with the
// messages added or changed since the last push.
const LiveTopic = "omni/inbox"

// Push is one conversation's change.
type Push struct {
	Conversation *Conversation `json:"conversation"`
	Messages     []MessageView `json:"messages"`
}

// live collects what changed in a transaction and pushes it after commit.
type live struct {
	app     core.App
	mu      sync.Mutex
	touched map[string]map[string]bool // conversation → message ids
	staged  atomic.Bool                // relay events staged
	// visitors receive pushes for their chat conversation (widget.go).
	visitors func(p Push)
	// mentions tells mentioned agents (api.go).
	extra []func(p Push)
}

func newLive() *live { return &live{touched: map[string]map[string]bool{}} }

// touch marks a conversation (and a message of it, "" for none) changed.
func (l *live) touch(conversation, message string) {
	if conversation == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ms := l.touched[conversation]
	if ms == nil {
		ms = map[string]bool{}
		l.touched[conversation] = ms
	}
	if message != "" {
		ms[message] = true
	}
}

func (l *live) take() map[string]map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.touched
	l.touched = map[string]map[string]bool{}
	return t
}

// afterCommit pushes what the committed transaction changed, kicks the
// relay for staged events and the sender for replies. Call it after every
// transaction that changed conversations (the events consumer does).
func (m *Module) afterCommit() {
	if m.live.staged.Swap(false) && m.o != nil && m.o.Relay != nil {
		m.o.Relay.Kick()
	}
	if m.sender != nil && m.sender.pending.Load() {
		m.sender.kick()
	}
	touched := m.live.take()
	if len(touched) == 0 || !m.anyoneListening() {
		return // nobody to tell: skip reading what changed
	}
	db := m.app.DB()
	for conv, msgs := range touched {
		c, err := loadConversation(db, conv)
		if err != nil {
			continue
		}
		p := Push{Conversation: c, Messages: []MessageView{}}
		if len(msgs) > 0 {
			ids := make([]any, 0, len(msgs))
			for id := range msgs {
				ids = append(ids, id)
			}
			if p.Messages, err = messageViews(db, dbx.In("cm.id", ids...), 0); err != nil {
				m.log.Warn("inbox: reading messages to push", "conversation", conv, "error", err)
			}
		}
		m.broadcast(p)
		if m.live.visitors != nil {
			m.live.visitors(p)
		}
		for _, f := range m.live.extra {
			f(p)
		}
	}
}

// anyoneListening reports whether a push could reach someone: a realtime
// client on the inbox or mentions topic, or an open chat widget stream.
// Without one, afterCommit reads nothing (a busy events path files
// thousands of messages while no agent has the inbox open).
func (m *Module) anyoneListening() bool {
	if m.widget != nil && m.widget.streams.any() {
		return true
	}
	broker := m.app.SubscriptionsBroker()
	if broker.TotalClients() == 0 {
		return false
	}
	for _, c := range broker.Clients() {
		if c.HasSubscription(LiveTopic) || c.HasSubscription(MentionsTopic) {
			return true
		}
	}
	return false
}

// broadcast sends p to every signed-in staff client subscribed to
// LiveTopic. Custom topics are open to anyone; only staff get the message.
func (m *Module) broadcast(p Push) {
	data, err := json.Marshal(p)
	if err != nil {
		return
	}
	msg := subscriptions.Message{Name: LiveTopic, Data: data}
	for _, c := range m.app.SubscriptionsBroker().Clients() {
		if !c.HasSubscription(LiveTopic) {
			continue
		}
		auth, _ := c.Get(apis.RealtimeClientAuthKey).(*core.Record)
		if !api.IsStaffRecord(auth) {
			continue
		}
		go c.Send(msg) // Send blocks until the client's stream takes it
	}
}
