package messaging_test

import (
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/signedlink"
)

// Staff pause marketing for one customer: the gate refuses marketing with
// the pause's end, while replies (kind conversation) and transactional
// messages still go; ending the pause lets marketing through again, and
// {{ nps_url }} renders the customer's signed NPS survey link.
func TestMarketingPauseRefusesMarketingOnly(t *testing.T) {
	e := start(t, envOptions{})
	e.owner = e.Staff(t, "owner@omni-shop.dev", "owner")
	e.agent = e.Staff(t, "agent@omni-shop.dev", "agent")
	ann := e.customer(t, "ann")
	e.enableRecorder(t)
	e.consent(t, ann, "email", "subscribed")

	pause := "/api/v1/profiles/" + ann + "/marketing-pause"
	if code, _ := e.Do(t, "POST", pause, map[string]any{"days": 14}, nil); code != 401 {
		t.Fatalf("guest pause: %d, want 401", code)
	}
	for field, body := range map[string]map[string]any{
		"days":  {"days": 0},
		"until": {"until": "yesterday"},
	} {
		code, raw := e.Do(t, "POST", pause, body, omnitest.Auth(e.agent))
		omnitest.WantFieldError(t, code, raw, 400, field)
	}
	if code, _ := e.Do(t, "POST", "/api/v1/profiles/nobody/marketing-pause", map[string]any{"days": 3}, omnitest.Auth(e.agent)); code != 404 {
		t.Fatalf("unknown customer: %d, want 404", code)
	}
	code, raw := e.Do(t, "POST", pause, map[string]any{"days": 14, "reason": "complaint in the inbox"}, omnitest.Auth(e.agent))
	if code != 200 || !strings.Contains(string(raw), `"until":"2026-06-15T12:00:00Z"`) {
		t.Fatalf("pause: %d %s", code, raw)
	}

	code, r := e.send(t, e.agent, map[string]any{"profile": ann, "channel": "email", "kind": "marketing", "subject": "Sale", "body": "Sale!"})
	if code != 409 || r.MessageStatus != "suppressed" || r.Reason != "marketing paused for this customer until 2026-06-15 12:00 UTC" {
		t.Fatalf("marketing while paused: %d %+v", code, r)
	}
	if row := e.row(t, r.ID); row.Status != "suppressed" || !strings.Contains(row.Reason, "marketing paused") {
		t.Fatalf("ledger: %+v", row)
	}
	for _, kind := range []string{"conversation", "transactional"} {
		code, r := e.send(t, e.agent, map[string]any{"profile": ann, "channel": "email", "kind": kind, "subject": "Re: your order", "body": "Here is your answer"})
		if code != 202 || r.Status != "queued" {
			t.Fatalf("%s while paused: %d %+v", kind, code, r)
		}
	}

	if code, raw := e.Do(t, "DELETE", pause, nil, omnitest.Auth(e.agent)); code != 204 {
		t.Fatalf("unpause: %d %s", code, raw)
	}
	code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "email", "kind": "marketing", "subject": "Sale",
		"body": "How likely are you to recommend us? {{ nps_url }}"})
	if code != 202 {
		t.Fatalf("marketing after the pause: %d %+v", code, r)
	}
	var body string
	omnitest.Eventually(t, 30*time.Second, func() bool { m, ok := e.vendor.message(r.ID); body = m.Text; return ok }, "the message at the vendor")
	_, link, ok := strings.Cut(body, "https://shop.omni-shop.dev/survey/")
	if !ok {
		t.Fatalf("no NPS link in %q", body)
	}
	signer, err := signedlink.Open(e.Config.DataDir, "https://shop.omni-shop.dev")
	if err != nil {
		t.Fatal(err)
	}
	survey, who, err := signer.VerifySurvey(strings.TrimSpace(link), time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC))
	if err != nil || survey != "nps" || who != ann {
		t.Fatalf("NPS link names %q %q (%v)", survey, who, err)
	}
}
