package profiles_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
)

type consentAnswer struct {
	EventID string                `json:"event_id"`
	Applied bool                  `json:"applied"`
	Channel string                `json:"channel"`
	Consent profiles.ConsentEntry `json:"consent"`
}

func (e *env) setConsent(t *testing.T, token, id string, body any) consentAnswer {
	t.Helper()
	code, raw := e.Do(t, "POST", "/api/v1/profiles/"+id+"/consent", body, auth(token))
	if code != 200 {
		t.Fatalf("set consent %v: %d %s", body, code, raw)
	}
	var a consentAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestStaffConsentChange: an owner or an agent changes consent with a
// reason; it goes through the events path (a consent.changed event from
// source "staff" on the timeline, the ledger, segments) and the ledger
// says who, when and why. Without a reason it is a 400 naming reason.
func TestStaffConsentChange(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	e.publish(t, ev(events.OrderPlaced, "shopify", now.Add(-48*time.Hour),
		events.Identities{events.Email: "cleo@omni-shop.dev", events.Phone: "+14155550101"}, map[string]any{"total": 5}, events.ChannelWeb))
	pid := e.profileOf(t, events.Email, "cleo@omni-shop.dev")
	smsOK := e.createSegment(t, "SMS ok", `{"consent":"sms","status":"subscribed"}`)
	lastSeen := e.detail(t, pid).Computed.LastSeen

	// Bad input: each names its field; nothing is published.
	for _, c := range []struct {
		body  any
		field string
	}{
		{map[string]string{"channel": "sms", "status": "subscribed"}, "reason"},
		{map[string]string{"channel": "sms", "status": "subscribed", "reason": "   "}, "reason"},
		{map[string]string{"channel": "fax", "status": "subscribed", "reason": "x"}, "channel"},
		{map[string]string{"channel": "sms", "status": "maybe", "reason": "x"}, "status"},
		{`[1]`, "body"},
	} {
		code, body := e.Do(t, "POST", "/api/v1/profiles/"+pid+"/consent", c.body, auth(e.agent))
		omnitest.WantFieldError(t, code, body, 400, c.field)
	}
	code, body := e.Do(t, "POST", "/api/v1/profiles/"+pid+"/consent", map[string]string{"channel": "sms", "status": "subscribed", "reason": "x"}, nil)
	omnitest.WantError(t, code, body, 401)
	code, body = e.Do(t, "POST", "/api/v1/profiles/nope/consent", map[string]string{"channel": "sms", "status": "subscribed", "reason": "x"}, auth(e.owner))
	omnitest.WantError(t, code, body, 404)
	if n := e.count(t, "SELECT COUNT(*) FROM events WHERE type='consent.changed'", nil); n != 0 {
		t.Fatalf("%d consent events stored by refused requests", n)
	}

	// The owner records an opt-in made at the till.
	e.clock.Advance(time.Minute)
	a := e.setConsent(t, e.owner, pid, map[string]string{"channel": "SMS", "status": "subscribed", "reason": "Signed up at the till"})
	if !a.Applied || a.Channel != "sms" || a.Consent.Status != profiles.ConsentSubscribed || a.Consent.Source != "staff" ||
		a.Consent.By == nil || a.Consent.By.Name != "owner" || a.Consent.Reason != "Signed up at the till" {
		t.Fatalf("owner's change: %+v by %+v", a, a.Consent.By)
	}
	if !profiles.CanContact(e.PB, pid, events.ChannelSMS) || e.members(t, smsOK) != 1 {
		t.Fatalf("after opt-in: can contact=%v members=%d", profiles.CanContact(e.PB, pid, events.ChannelSMS), e.members(t, smsOK))
	}

	// An agent (not only owners) records that the customer asked by phone to stop.
	e.clock.Advance(time.Minute)
	a = e.setConsent(t, e.agent, pid, map[string]string{"channel": "sms", "status": "unsubscribed", "reason": "Customer asked by phone"})
	var agentID string
	_ = e.PB.DB().NewQuery("SELECT id FROM staff WHERE email='agent@omni-shop.dev'").Row(&agentID)
	got, err := profiles.Consent(e.PB, pid, events.ChannelSMS)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != profiles.ConsentUnsubscribed || got.Reason != "Customer asked by phone" || got.Source != "staff" ||
		got.By == nil || got.By.ID != agentID || got.By.Name != "agent" || got.EventID != a.EventID ||
		got.At != e.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z") {
		t.Fatalf("ledger after the agent's change: %+v by %+v", got, got.By)
	}
	if profiles.CanContact(e.PB, pid, events.ChannelSMS) || e.members(t, smsOK) != 0 {
		t.Fatalf("after opt-out: the messaging gate or segment still sees the customer as subscribed")
	}
	if d := e.detail(t, pid); d.Consent["sms"].By == nil || d.Consent["sms"].By.Name != "agent" {
		t.Errorf("profile detail consent: %+v", d.Consent)
	}

	// Both changes are on the timeline as consent.changed events from staff,
	// and acting for the customer does not make them "seen".
	var tl struct {
		Items []profiles.TimelineEvent `json:"items"`
	}
	e.get(t, "/api/v1/profiles/"+pid+"/timeline?type=consent.changed", &tl)
	if len(tl.Items) != 2 {
		t.Fatalf("timeline consent events: %d", len(tl.Items))
	}
	var props struct {
		Reason string             `json:"reason"`
		By     profiles.ConsentBy `json:"by"`
	}
	_ = json.Unmarshal(tl.Items[0].Properties, &props)
	if tl.Items[0].Source != "staff" || props.Reason != "Customer asked by phone" || props.By.ID != agentID {
		t.Errorf("newest timeline entry: %s %s", tl.Items[0].Source, tl.Items[0].Properties)
	}
	if d := e.detail(t, pid); d.Computed.LastSeen != lastSeen {
		t.Errorf("last_seen moved from %s to %s by a staff change", lastSeen, d.Computed.LastSeen)
	}
}

// TestConsentByOnlyFromStaff: a consent event from any other source
// cannot claim a staff member in the ledger.
func TestConsentByOnlyFromStaff(t *testing.T) {
	e := start(t, profiles.Options{})
	e.publish(t, ev(events.ConsentChanged, "klaviyo", e.clock.Now(), events.Identities{events.Email: "dan@omni-shop.dev"},
		map[string]any{"channel": "email", "status": "subscribed", "reason": "form", "by": map[string]any{"id": "x", "name": "Olga Owner"}}, ""))
	got, err := profiles.Consent(e.PB, e.profileOf(t, events.Email, "dan@omni-shop.dev"), events.ChannelEmail)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != profiles.ConsentSubscribed || got.By != nil {
		t.Fatalf("ledger: %+v by %+v", got, got.By)
	}
}
