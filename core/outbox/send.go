package outbox

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/plugins/sdk"
)

// Send requests: how a module that may not import the messaging gate
// (journeys, the inbox) asks it to send. The request goes on the MESSAGING
// stream; the gate's durable consumer runs it through the same checks as
// POST /api/v1/messages and records the outcome in the send ledger (the
// messages collection, row id = the request's ID), so a request is never
// lost and never sent twice.
const (
	SendStream  = bus.StreamMessaging
	SendSubject = "omni.messaging.send"
)

// SendRequest is one message to send through the gate. Channels lists
// channels to try in order (fallback); Template names a template record
// (id or name), or Body (and Subject) give the content; WATemplate is a
// WhatsApp approved template. Kind is marketing, transactional or
// conversation.
type SendRequest struct {
	// ID identifies the request; the same ID is sent at most once.
	ID           string         `json:"id"`
	Profile      string         `json:"profile"`
	Channels     []string       `json:"channels"`
	Kind         string         `json:"kind"`
	Template     string         `json:"template,omitempty"`
	Subject      string         `json:"subject,omitempty"`
	Body         string         `json:"body,omitempty"`
	HTML         string         `json:"html,omitempty"`
	WATemplate   *sdk.Template  `json:"wa_template,omitempty"`
	Event        map[string]any `json:"event,omitempty"`
	Conversation string         `json:"conversation,omitempty"`
	JourneyRun   string         `json:"journey_run,omitempty"`
	// Raw says Subject and Body are the final text, not Liquid: an
	// agent's reply is sent as typed ("{{" in it is not a template).
	Raw bool `json:"raw,omitempty"`
}

// RequestSend stores r on the MESSAGING stream and returns once it is
// durable. The gate decides asynchronously; read the ledger row r.ID (or
// the message.sent/failed events) for the outcome.
func RequestSend(ctx context.Context, b *bus.Bus, r *SendRequest) error {
	if r.ID == "" {
		return errors.New("send request: id is required (it makes the request idempotent)")
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = b.Publish(ctx, bus.Msg{Subject: SendSubject, Data: data, ID: "send:" + r.ID})
	return err
}
