package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/deadletter"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/outbox"
	"github.com/omni/omni/core/store"
	"github.com/omni/omni/plugins/sdk"
)

// The website chat widget. A visitor's browser holds a token (minted by
// /widget/{key}/session, only its hash kept in chat_visitors); their
// messages become message.received events on channel "chat" with the
// page's Segment anonymousId, so the chat lands on the profile of their
// browsing. A chat conversation's address is the visitor's id: only that
// visitor reads it and gets its replies. Replies go through the gate like
// any other (channel chat: the gate queues them on omni.outbox.webchat)
// and this part delivers them to the visitor's open streams, answering the
// ledger with message.sent (and message.delivered when a stream took it).
// A visitor who left an email and is not connected gets replies by email.

// WebchatConsumer is the durable consumer delivering chat replies.
const WebchatConsumer = "inbox-webchat"

// widgetPart is the part's state on the module.
type widgetPart struct {
	consumer jetstream.Consumer
	cc       jetstream.ConsumeContext
	streams  *visitorStreams
	limits   *widgetLimits
}

func (m *Module) initWidget(s *app.Setup) error {
	m.widget = &widgetPart{streams: newVisitorStreams(), limits: newWidgetLimits()}
	m.live.visitors = m.pushToVisitors
	c, err := s.Consumer(bus.StreamOutbox, jetstream.ConsumerConfig{
		Durable: WebchatConsumer, FilterSubject: outbox.Subject(outbox.Webchat), AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 30 * time.Second, MaxDeliver: -1, MaxAckPending: 64,
	})
	if err != nil {
		return err
	}
	m.widget.consumer = c
	return nil
}

func (m *Module) startWidget(ctx context.Context) error {
	cc, err := bus.Consume(m.widget.consumer, m.deliverChat, 32, func(err error) { m.log.Debug("webchat consumer", "error", err) })
	if err != nil {
		return fmt.Errorf("inbox: webchat consume: %w", err)
	}
	m.widget.cc = cc
	return nil
}

func (m *Module) stopWidget(ctx context.Context) {
	if m.widget == nil {
		return
	}
	if m.widget.cc != nil {
		m.widget.cc.Stop()
	}
	m.widget.streams.closeAll() // open SSE responses end; browsers reconnect
}

// widgetRoutes: the owners' widget settings under /api/v1/inbox/widgets
// (widget_api.go) and the public script and visitor routes under /widget
// (widget_public.go).
func (m *Module) widgetRoutes(se *core.ServeEvent, g *router.RouterGroup[*core.RequestEvent]) {
	m.widgetAdminRoutes(g)
	m.widgetPublicRoutes(se)
}

// widgetOnInbound notes which profile a chat visitor turned out to be.
func (m *Module) widgetOnInbound(tx core.App, f *Filed, ev *events.Event) error {
	if f.Conversation.Channel != "chat" || f.Conversation.Address == "" {
		return nil
	}
	_, err := tx.DB().NewQuery("UPDATE " + VisitorsCollection + " SET profile = {:p}, last_seen = {:at} WHERE id = {:id}").
		Bind(dbx.Params{"p": f.Conversation.Profile, "at": store.FormatTime(f.Message.createdAt()), "id": f.Conversation.Address}).Execute()
	return err
}

func (msg *Message) createdAt() time.Time {
	t, err := parseTime(msg.Created)
	if err != nil {
		return time.Now()
	}
	return t
}

// chatRoute picks the channel of a reply in a chat conversation: the chat
// itself while the visitor has the widget open (or left no email), email
// when they are gone and left one (the widget said replies come by email).
func (m *Module) chatRoute(tx core.App, c *Conversation, send map[string]any) map[string]any {
	if m.widget == nil || c.Address == "" {
		return send
	}
	if ch, _ := send["channel"].(string); ch != "" {
		return send
	}
	if m.widget.streams.has(c.Address) {
		return send
	}
	var email string
	if err := tx.DB().Select("email").From(VisitorsCollection).Where(dbx.HashExp{"id": c.Address}).Row(&email); err != nil || email == "" {
		return send
	}
	out := make(map[string]any, len(send)+1)
	for k, v := range send {
		out[k] = v
	}
	out["channel"] = "email"
	return out
}

// VisitorMessage is a conversation message as the visitor sees it: no
// private notes, no staff ids or emails, the agent's first name only.
type VisitorMessage struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id,omitempty"` // the widget's own id for a message the visitor sent
	From     string `json:"from"`                // visitor | agent | bot | shop
	Name     string `json:"name,omitempty"`
	Text     string `json:"text"`
	At       string `json:"at"`            // RFC 3339
	Via      string `json:"via,omitempty"` // "email" when the reply went by email
}

// visibleToVisitor: the customer's own messages, and replies that went
// out (live: once the gate let them out; history: unless refused).
func visibleToVisitor(v MessageView, live bool) bool {
	if v.Private || v.Direction == DirectionNote {
		return false
	}
	if v.Direction == DirectionIn {
		return true
	}
	switch v.Status {
	case "sent", "delivered", "read":
		return true
	case "failed", "suppressed":
		return false
	}
	return !live
}

// toVisitor turns message views into what the visitor may see.
func toVisitor(db dbx.Builder, views []MessageView, live bool) []VisitorMessage {
	out := []VisitorMessage{}
	staff := []any{}
	for _, v := range views {
		if visibleToVisitor(v, live) && v.AuthorStaff != "" {
			staff = append(staff, v.AuthorStaff)
		}
	}
	names := map[string]string{}
	if len(staff) > 0 {
		var rows []struct {
			ID   string `db:"id"`
			Name string `db:"name"`
		}
		_ = db.Select("id", "name").From("staff").Where(dbx.In("id", staff...)).All(&rows)
		for _, r := range rows {
			if f := strings.Fields(r.Name); len(f) > 0 {
				names[r.ID] = f[0]
			}
		}
	}
	for _, v := range views {
		if !visibleToVisitor(v, live) {
			continue
		}
		vm := VisitorMessage{ID: v.ID, Text: v.Text, At: rfc3339(v.Created)}
		switch {
		case v.Direction == DirectionIn:
			vm.From = "visitor"
			if rest, ok := strings.CutPrefix(v.Event, "chat:"); ok {
				if i := strings.LastIndexByte(rest, ':'); i >= 0 {
					vm.ClientID = rest[i+1:]
				}
			}
		case v.Author == AuthorAgent:
			vm.From, vm.Name = "agent", names[v.AuthorStaff]
		case v.Author == AuthorBot:
			vm.From = "bot"
		default:
			vm.From = "shop"
		}
		if v.Direction == DirectionOut && v.Channel == "email" {
			vm.Via = "email"
		}
		out = append(out, vm)
	}
	return out
}

func rfc3339(stored string) string {
	t, err := parseTime(stored)
	if err != nil {
		return stored
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// pushToVisitors is the live hook: a chat conversation's new messages go
// to its visitor's open streams.
func (m *Module) pushToVisitors(p Push) {
	c := p.Conversation
	if m.widget == nil || c == nil || c.Channel != "chat" || c.Address == "" || !m.widget.streams.has(c.Address) {
		return
	}
	for _, vm := range toVisitor(m.app.DB(), p.Messages, true) {
		m.widget.streams.send(c.Address, "message", vm)
	}
	m.widget.streams.send(c.Address, "conversation", map[string]any{"id": c.ID, "status": c.Status})
	m.widget.streams.send(c.Address, "presence", map[string]any{"online": m.agentsOnline()})
}

// deliverChat delivers one chat reply the gate queued: the reply is the
// conversation message with the same id, so delivery is a push to the
// visitor's streams, then message.sent (and message.delivered when a
// stream took it) for the ledger. A reply whose conversation is gone
// fails with the reason.
func (m *Module) deliverChat(msg jetstream.Msg) {
	var out sdk.OutboundMessage
	if err := json.Unmarshal(msg.Data(), &out); err != nil || out.ID == "" {
		if err == nil {
			err = errors.New("no message id")
		}
		if perr := deadletter.Park(m.app, deadletter.Failure{Consumer: WebchatConsumer, EventID: deadletter.MessageID(msg),
			Subject: msg.Subject(), Data: msg.Data(), Err: fmt.Errorf("chat reply cannot be read: %w", err)}); perr != nil {
			_ = msg.NakWithDelay(30 * time.Second)
			return
		}
		_ = msg.Ack()
		return
	}
	db := m.app.DB()
	now := m.opts.Now().UTC()
	var evs []*events.Event
	views, err := messageViews(db, dbx.HashExp{"cm.id": out.ID}, 1)
	if err != nil {
		_ = msg.NakWithDelay(5 * time.Second)
		return
	}
	var c *Conversation
	if len(views) == 1 && !views[0].Private {
		if c, err = loadConversation(db, views[0].Conversation); err != nil && !errors.Is(err, ErrNotFound) {
			_ = msg.NakWithDelay(5 * time.Second)
			return
		}
	}
	if c == nil || c.Channel != "chat" {
		evs = append(evs, chatOutcome(db, events.MessageFailed, &out, "", now,
			map[string]any{"error": "the chat conversation this reply belongs to does not exist", "error_code": "no_conversation"}))
	} else {
		views[0].Status, views[0].Channel = "sent", "chat"
		delivered := false
		for _, vm := range toVisitor(db, views, true) {
			delivered = m.widget.streams.send(c.Address, "message", vm) || delivered
		}
		if delivered {
			m.widget.streams.send(c.Address, "presence", map[string]any{"online": m.agentsOnline()})
		}
		evs = append(evs, chatOutcome(db, events.MessageSent, &out, c.Profile, now, nil))
		if delivered {
			evs = append(evs, chatOutcome(db, events.MessageDelivered, &out, c.Profile, now, nil))
		}
	}
	for _, err := range ingest.Publish(context.Background(), m.bus, evs) {
		if err != nil {
			m.log.Warn("inbox: recording a chat reply's delivery; retrying", "message", out.ID, "error", err)
			_ = msg.NakWithDelay(5 * time.Second)
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = msg.DoubleAck(ctx)
}

// chatOutcome is a status event of a chat reply, on the customer's
// profile (their strongest identity), with an id derived from the reply's
// so a redelivery records it once.
func chatOutcome(db dbx.Builder, typ string, out *sdk.OutboundMessage, profile string, now time.Time, extra map[string]any) *events.Event {
	props := map[string]any{"message_id": out.ID, "connector": outbox.Webchat, "conversation_id": out.ConversationID}
	if typ == events.MessageSent && out.Text != "" {
		props["text"] = clip(out.Text, 4000)
	}
	for k, v := range extra {
		props[k] = v
	}
	ids := events.Identities{}
	if profile != "" {
		props["profile_id"] = profile
		var rows []events.KindValue
		_ = db.Select("kind", "value").From("identities").Where(dbx.HashExp{"profile": profile}).OrderBy("created").All(&rows)
		if s, ok := events.Strongest(rows); ok {
			ids = events.Identities{s.Kind: s.Value}
		}
	}
	if len(ids) == 0 {
		ids[events.AnonymousID] = "outbox:" + out.ID
	}
	return &events.Event{ID: typ + ":" + out.ID, Type: typ, Source: outbox.Webchat, OccurredAt: now, ReceivedAt: now,
		Identities: ids, Properties: props, Context: events.Context{Channel: "chat"}}
}

// visitorStreams are the open SSE streams, by visitor id.
type visitorStreams struct {
	mu        sync.Mutex
	byVisitor map[string]map[chan []byte]struct{}
	closed    bool
}

func newVisitorStreams() *visitorStreams {
	return &visitorStreams{byVisitor: map[string]map[chan []byte]struct{}{}}
}

// maxStreamsPerVisitor bounds one visitor's open streams (tabs).
const maxStreamsPerVisitor = 8

var (
	errTooManyStreams = errors.New("too many open streams")
	errStreamsClosed  = errors.New("streams closed")
)

// add opens a stream for visitor.
func (s *visitorStreams) add(visitor string) (chan []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errStreamsClosed
	}
	if len(s.byVisitor[visitor]) >= maxStreamsPerVisitor {
		return nil, errTooManyStreams
	}
	ch := make(chan []byte, 64)
	if s.byVisitor[visitor] == nil {
		s.byVisitor[visitor] = map[chan []byte]struct{}{}
	}
	s.byVisitor[visitor][ch] = struct{}{}
	return ch, nil
}

func (s *visitorStreams) remove(visitor string, ch chan []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if set := s.byVisitor[visitor]; set != nil {
		if _, ok := set[ch]; ok {
			delete(set, ch)
			close(ch)
		}
		if len(set) == 0 {
			delete(s.byVisitor, visitor)
		}
	}
}

// any: some visitor has a stream open.
func (s *visitorStreams) any() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byVisitor) > 0
}

func (s *visitorStreams) has(visitor string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byVisitor[visitor]) > 0
}

// send queues one SSE event on each of the visitor's streams, without
// waiting: a stream too far behind misses it and reloads the history when
// it reconnects. True when at least one stream took it.
func (s *visitorStreams) send(visitor, event string, v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		return false
	}
	frame := []byte("event: " + event + "\ndata: " + string(data) + "\n\n")
	s.mu.Lock()
	defer s.mu.Unlock()
	took := false
	for ch := range s.byVisitor[visitor] {
		select {
		case ch <- frame:
			took = true
		default:
		}
	}
	return took
}

func (s *visitorStreams) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for v, set := range s.byVisitor {
		for ch := range set {
			close(ch)
		}
		delete(s.byVisitor, v)
	}
}

// VisitorConnected reports whether a chat visitor has the widget open (a
// live stream): replies to them go on the chat, not by email.
func (m *Module) VisitorConnected(visitor string) bool {
	return m.widget != nil && m.widget.streams.has(visitor)
}
