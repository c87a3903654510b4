// Package outbox is the wire format of the OUTBOX stream: the subject of a
// connector's outbound messages and how one is enqueued. It is shared
// plumbing, so the connector host (which delivers) and the messaging gate
// (which sends) agree on it without importing each other.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/plugins/sdk"
)

// Prefix starts every OUTBOX subject.
const Prefix = "omni.outbox."

// Subject is the subject of a connector's outbound messages.
func Subject(connector string) string { return Prefix + connector }

// Webchat is the OUTBOX "connector" of the website chat: no plugin sends
// these, the inbox delivers them to the visitor's live stream. The
// connector host leaves its subject alone (Internal), and no connector
// may take the name.
const Webchat = "webchat"

// Internal reports whether an OUTBOX subject is delivered inside Omni
// rather than by a connector.
func Internal(subject string) bool { return subject == Subject(Webchat) }

// ValidName reports whether n can name a connector: lower-case letters,
// digits (not first), '_' and '-', at most 60 characters.
func ValidName(n string) bool {
	if n == "" || len(n) > 60 {
		return false
	}
	for i, r := range n {
		if !(r >= 'a' && r <= 'z' || r == '_' || r == '-' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Enqueue stores msg on the OUTBOX stream for connector and returns once it
// is durable. msg.ID is the dedupe id (set to a new UUID when empty); the
// same ID enqueued twice within the dedupe window is delivered once, and
// message.sent / message.failed events carry it.
func Enqueue(ctx context.Context, b *bus.Bus, connector string, msg *sdk.OutboundMessage) error {
	if !ValidName(connector) {
		return fmt.Errorf("connector: %q is not a valid connector name", connector)
	}
	if msg.ID == "" {
		msg.ID = uuid.NewString()
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	_, err = b.Publish(ctx, bus.Msg{Subject: Subject(connector), Data: data, ID: msg.ID})
	return err
}
