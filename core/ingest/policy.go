package ingest

import (
	"fmt"
	"strings"

	"github.com/omni/omni/core/events"
)

// optOut is the only consent status a browser source may record.
const optOut = "unsubscribed"

// applyKind enforces what a source of its kind may say, after validation.
// A browser source's write key is public, so anyone can send as it: it may
// record an opt-out (the person can always say no), but not grant consent
// nor record channel messages,
// and the consent it records is attributed to itself, whatever source the
// event claims. Server sources are trusted like connectors. No tracking
// event removes an erasure tombstone whatever its kind (only an owner can,
// see core/profiles).
func applyKind(src *source, ev *events.Event) *events.FieldError {
	if !src.browser() {
		return nil
	}
	// Messages on a channel come from the connector that carried them (or
	// the chat widget): a public key must not put words in a customer's
	// mouth in the inbox, nor fake a delivery.
	if strings.HasPrefix(ev.Type, "message.") {
		return &events.FieldError{Field: "event", Message: fmt.Sprintf(
			"a browser source may not record %s: messages come from the connectors and the chat widget (use a server source to import them)", ev.Type)}
	}
	if ev.Type != events.ConsentChanged {
		return nil
	}
	st, _ := ev.Properties["status"].(string)
	if strings.ToLower(strings.TrimSpace(st)) != optOut {
		return &events.FieldError{Field: "properties.status", Message: fmt.Sprintf(
			"a browser source may only record opt-outs (status %q); grant consent from a server source or a connector", optOut)}
	}
	ev.Properties["source"] = src.name
	return nil
}
