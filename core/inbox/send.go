package inbox

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/outbox"
	"github.com/omni/omni/plugins/sdk"
)

// sender puts replies on the bus for the messaging gate. A reply is first
// a conversation_messages row with send_state "pending", written in the
// transaction that decided it (an agent's post, the bot, a CSAT question);
// the sender publishes it once that commits and marks it "requested". A
// crash in between leaves it pending, and the next round sends it: the
// request id is the row id, so the gate decides it once even if it is
// published twice.
type sender struct {
	m       *Module
	wake    chan struct{}
	pending atomic.Bool
}

func newSender(m *Module) *sender { return &sender{m: m, wake: make(chan struct{}, 1)} }

func (s *sender) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// drain publishes every pending reply.
func (s *sender) drain(ctx context.Context) {
	s.pending.Store(false)
	m := s.m
	for ctx.Err() == nil {
		var rows []struct {
			Message
			Channel string `db:"channel"`
			Subject string `db:"subject"`
		}
		err := m.app.DB().Select("cm.*", "c.channel AS channel", "c.subject AS subject").From(MessagesCollection+" cm").
			InnerJoin(ConversationsCollection+" c", dbx.NewExp("c.id = cm.conversation")).
			Where(dbx.HashExp{"cm.send_state": "pending"}).OrderBy("cm.created").Limit(100).All(&rows)
		if err != nil {
			m.log.Warn("inbox: reading replies to send", "error", err)
			return
		}
		if len(rows) == 0 {
			return
		}
		for _, r := range rows {
			req := sendRequest(&r.Message, r.Channel, r.Subject)
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := outbox.RequestSend(pctx, m.bus, req)
			cancel()
			if err != nil {
				m.log.Warn("inbox: a reply could not reach the bus; it is sent on the next round", "message", r.ID, "error", err)
				return
			}
			if _, err := m.app.DB().Update(MessagesCollection, dbx.Params{"send_state": "requested"}, dbx.HashExp{"id": r.ID}).Execute(); err != nil {
				m.log.Warn("inbox: marking a reply requested", "message", r.ID, "error", err)
				return
			}
		}
		if len(rows) < 100 {
			return
		}
	}
}

// sendRequest is the gate's request for a reply: kind conversation (a
// marketing unsubscribe does not stop a reply), on the conversation's
// channel, threaded under it, sent as typed (Raw) unless it names a
// template or is an owner's Liquid text (Send["liquid"]).
func sendRequest(msg *Message, channel, subject string) *outbox.SendRequest {
	req := &outbox.SendRequest{ID: msg.ID, Profile: msg.Profile, Channels: []string{channel}, Kind: "conversation",
		Body: msg.Text, Raw: true, Conversation: msg.Conversation}
	if ch, _ := msg.Send["channel"].(string); ch != "" {
		req.Channels = []string{ch}
	}
	if req.Channels[0] == "email" {
		req.Subject = replySubject(subject)
		if s, _ := msg.Send["subject"].(string); s != "" {
			req.Subject = s // the first mail of a thread an agent started
		}
	}
	if liquid, _ := msg.Send["liquid"].(bool); liquid {
		req.Raw = false // an owner's text (a bot rule, the away message): the gate renders its customer variables
	}
	if t, _ := msg.Send["template"].(string); t != "" {
		req.Template, req.Body, req.Subject, req.Raw = t, "", "", false
	}
	if wa, ok := msg.Send["wa_template"].(map[string]any); ok {
		var t sdk.Template
		if b, err := json.Marshal(wa); err == nil && json.Unmarshal(b, &t) == nil && t.Name != "" {
			req.WATemplate = &t
			if req.Body == "" {
				req.Raw = false
			}
		}
	}
	return req
}

// replySubject is "Re: <subject>", once.
func replySubject(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "Re: your message"
	}
	if strings.HasPrefix(strings.ToLower(s), "re:") {
		return s
	}
	return "Re: " + s
}

// noticeDecided pushes replies the gate has decided since the last look:
// the gate writes its ledger row (queued, scheduled or suppressed) without
// an event, so the inbox looks for requested replies that have one, marks
// them decided and tells staff (and the visitor) what became of them.
func (m *Module) noticeDecided() {
	var rows []struct {
		ID           string `db:"id"`
		Conversation string `db:"conversation"`
	}
	err := m.app.DB().Select("cm.id", "cm.conversation").From(MessagesCollection+" cm").
		InnerJoin("messages l", dbx.NewExp("l.id = cm.id")).
		Where(dbx.HashExp{"cm.send_state": "requested"}).Limit(500).All(&rows)
	if err != nil || len(rows) == 0 {
		return
	}
	ids := make([]any, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	if _, err := m.app.DB().Update(MessagesCollection, dbx.Params{"send_state": "decided"}, dbx.In("id", ids...)).Execute(); err != nil {
		m.log.Warn("inbox: marking replies decided", "error", err)
		return
	}
	for _, r := range rows {
		m.live.touch(r.Conversation, r.ID)
	}
	m.afterCommit()
}
