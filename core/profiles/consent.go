package profiles

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
)

// SourceStaff is the source of events staff make in the admin (a consent
// change a customer asked for by phone). Tracking sources may not take the
// name (core/ingest), so only Omni's own API writes it.
const SourceStaff = "staff"

// ConsentBy is the staff member who changed consent by hand.
type ConsentBy struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// maxConsentReason bounds the reason kept in the ledger.
const maxConsentReason = 500

// consentWait bounds how long the API waits for its event to be stored.
const consentWait = 15 * time.Second

// handleSetConsent records a consent change made by staff:
//
//	POST /api/v1/profiles/{id}/consent {"channel": "sms", "status": "unsubscribed", "reason": "asked by phone"}
//
// It goes through the same path as any consent.changed event (published,
// stored, folded into the ledger by the events processor), so segments and
// sends see it like a connector's, and answers once it is applied.
func (m *Module) handleSetConsent(e *core.RequestEvent) error {
	var body struct {
		Channel string `json:"channel"`
		Status  string `json:"status"`
		Reason  string `json:"reason"`
	}
	if err := e.BindBody(&body); err != nil {
		return api.BadRequest("body", `must be JSON like {"channel": "email", "status": "unsubscribed", "reason": "…"}`)
	}
	ch := strings.ToLower(strings.TrimSpace(body.Channel))
	st := strings.ToLower(strings.TrimSpace(body.Status))
	reason := strings.TrimSpace(body.Reason)
	switch {
	case !validConsentChannel(ch):
		return api.BadRequest("channel", "must be email, sms or whatsapp")
	case st != ConsentSubscribed && st != ConsentUnsubscribed:
		return api.BadRequest("status", "must be subscribed or unsubscribed")
	case reason == "":
		return api.BadRequest("reason", "is required: say why consent changes (e.g. the customer asked by phone)")
	case len([]rune(reason)) > maxConsentReason:
		return api.BadRequest("reason", "must be at most 500 characters")
	}
	row, err := findProfile(e.App, e.Request.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		return noProfile(e)
	}
	if err != nil {
		return api.Internal("Could not load the profile.", err)
	}
	kind, value, err := strongestIdentity(e.App, row.ID)
	if err != nil {
		return api.Internal("Could not load the profile.", err)
	}
	if kind == "" {
		return api.Error(http.StatusConflict, "This customer has no identity left to record consent against.")
	}

	now := m.now().UTC()
	by := ConsentBy{ID: e.Auth.Id, Name: e.Auth.GetString("name")}
	if by.Name == "" {
		by.Name = e.Auth.Email()
	}
	ev := &events.Event{ID: "staff:consent:" + newID(), Type: events.ConsentChanged, Source: SourceStaff,
		OccurredAt: now, ReceivedAt: now, Identities: events.Identities{kind: value},
		Properties: map[string]any{"channel": ch, "status": st, "reason": reason,
			"by": map[string]any{"id": by.ID, "name": by.Name}}}
	if err := ev.Validate(now); err != nil {
		return api.Internal("Could not record the change.", err)
	}

	stored := m.waiters.Add(ev.ID)
	defer m.waiters.Drop(ev.ID)
	for _, err := range ingest.Publish(e.Request.Context(), m.bus, []*events.Event{ev}) {
		if err != nil {
			m.log.Error("consent change: could not publish", "error", err)
			e.Response.Header().Set("Retry-After", "1")
			return api.Error(http.StatusServiceUnavailable, "The change could not be recorded right now; try again.")
		}
	}
	ctx, cancel := context.WithTimeout(e.Request.Context(), consentWait)
	defer cancel()
	select {
	case <-stored:
	case <-ctx.Done():
		// On the stream, so it will be applied; say so rather than fail.
		return e.JSON(http.StatusAccepted, map[string]any{"event_id": ev.ID, "applied": false,
			"message": "The change is recorded and will show in a moment."})
	}
	entry, err := Consent(e.App, row.ID, ch)
	if err != nil {
		return api.Internal("Could not load the consent ledger.", err)
	}
	return e.JSON(http.StatusOK, map[string]any{"event_id": ev.ID, "applied": true, "channel": ch, "consent": entry})
}

// strongestIdentity returns the identity a staff event about the profile
// carries, so it resolves to that profile and joins nothing else.
func strongestIdentity(app core.App, profileID string) (string, string, error) {
	var rows []events.KindValue
	if err := app.DB().NewQuery("SELECT kind, value FROM identities WHERE profile={:p} ORDER BY created").
		Bind(dbx.Params{"p": profileID}).All(&rows); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", "", err
	}
	s, _ := events.Strongest(rows)
	return s.Kind, s.Value, nil
}

// consentBy reads who made a staff consent change; other sources cannot
// claim a staff member.
func consentBy(ev *events.Event) *ConsentBy {
	if ev.Source != SourceStaff {
		return nil
	}
	by, _ := ev.Properties["by"].(map[string]any)
	id, _ := by["id"].(string)
	name, _ := by["name"].(string)
	if id == "" && name == "" {
		return nil
	}
	return &ConsentBy{ID: id, Name: name}
}
