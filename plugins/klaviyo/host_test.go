package klaviyo

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/plugins/internal/hosttest"
	"github.com/omni/omni/plugins/sdk"
)

// startOmniWith boots a real Omni whose connector host runs this test
// binary as the named built-in plugin subprocess, configured by settings
// from the config file, and enables it.
func startOmniWith(t *testing.T, name string, newC func() sdk.Connector, settings map[string]any) *omnitest.Server {
	t.Helper()
	s := hosttest.Start(t, name, newC, settings)
	hosttest.Enable(t, s, name)
	return s
}

type storedEvent struct {
	Type       string
	Source     string
	Identities map[string]string
	Properties map[string]any
}

func storedEvents(t *testing.T, s *omnitest.Server, source string) []storedEvent {
	t.Helper()
	var rows []struct {
		Type       string `db:"type"`
		Source     string `db:"source"`
		Identities string `db:"identities"`
		Properties string `db:"properties"`
	}
	if err := s.PB.DB().NewQuery("SELECT type, source, identities, properties FROM events WHERE source = {:s} ORDER BY occurred_at").
		Bind(map[string]any{"s": source}).All(&rows); err != nil {
		t.Fatal(err)
	}
	out := make([]storedEvent, 0, len(rows))
	for _, r := range rows {
		e := storedEvent{Type: r.Type, Source: r.Source}
		_ = json.Unmarshal([]byte(r.Identities), &e.Identities)
		_ = json.Unmarshal([]byte(r.Properties), &e.Properties)
		out = append(out, e)
	}
	return out
}

// Klaviyo through the real Omni host: backfill and the poll loop store
// engagement events, a signed system webhook is stored, and an outbox
// email becomes a metric event at the fake Klaviyo plus message.sent.
func TestEndToEndUnderOmniHost(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Omni and a plugin subprocess")
	}
	fake := newFakeKlaviyo(t)
	total := seedEngagement(t, fake)
	var vec webhookVector
	if err := json.Unmarshal(readFixture(t, "signature_test_vector.computed.json"), &vec); err != nil {
		t.Fatal(err)
	}
	s := startOmniWith(t, "klaviyo", New, map[string]any{"api_key": fake.key, "base_url": fake.URL,
		"webhook_secret": vec.Secret, "poll_interval": "1s", "poll_lookback": "1m"})

	// Backfill from the host: every page of history is stored.
	rec, err := s.PB.FindFirstRecordByData(connectors.Collection, "name", "klaviyo")
	if err != nil {
		t.Fatal(err)
	}
	if err := connectors.RequestBackfillRecord(s.PB, rec, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool {
		r, err := s.PB.FindFirstRecordByData(connectors.Collection, "name", "klaviyo")
		return err == nil && r.GetString("backfill_state") == "done"
	}, "backfill done")
	s.WaitEvents(t, total)
	got := storedEvents(t, s, "klaviyo")
	types := map[string]int{}
	for _, e := range got {
		types[e.Type]++
		if e.Identities["klaviyo_profile_id"] == "" || e.Identities["email"] == "" {
			t.Errorf("event without klaviyo_profile_id/email: %+v", e)
		}
	}
	if len(got) != total || types["email.opened"] != 5 || types["email.clicked"] != 3 || types["consent.changed"] != 1 {
		t.Fatalf("after backfill: %d events %v", len(got), types)
	}

	// The poll loop picks up an open that happens now.
	fake.addEvent("open-live", "OpnEml", "01M1PA9KFVRQEFP614XWVXGVY7", time.Now().Add(-5*time.Second), map[string]any{"Subject": "Live"})
	s.WaitEvents(t, total+1)

	// Signed system webhook over HTTP.
	hdr := http.Header{"Content-Type": {"application/json"}}
	for k, v := range vec.Headers {
		hdr.Set(k, v)
	}
	bad := hdr.Clone()
	bad.Set(TimestampHeader, "2026-04-13T22:49:37+00:00")
	if code, _ := s.Do(t, "POST", "/webhooks/klaviyo", vec.RawBody, bad); code != 401 {
		t.Fatalf("bad signature: %d", code)
	}
	if code, body := s.Do(t, "POST", "/webhooks/klaviyo", vec.RawBody, hdr); code != 200 {
		t.Fatalf("webhook: %d %s", code, body)
	}
	s.WaitEvents(t, total+2)

	// Outbox email → Klaviyo metric event with the message → message.sent.
	msg := &sdk.OutboundMessage{ID: "mail-1", Channel: "email", To: map[string]string{"email": "ann@example.com"},
		Subject: "Your receipt", HTML: "<p>Thanks</p>", Text: "Thanks"}
	if err := connectors.Enqueue(context.Background(), s.Bus, "klaviyo", msg); err != nil {
		t.Fatal(err)
	}
	s.WaitEvents(t, total+3)
	var sent storedEvent
	for _, e := range storedEvents(t, s, "klaviyo") {
		if e.Type == "message.sent" {
			sent = e
		}
	}
	if sent.Properties["provider_message_id"] != "omni:mail-1" {
		t.Fatalf("message.sent: %+v", sent)
	}
	posts := fake.posted("/api/events")
	if len(posts) != 1 {
		t.Fatalf("fake Klaviyo got %d events", len(posts))
	}
	props := posts[0]["data"].(map[string]any)["attributes"].(map[string]any)["properties"].(map[string]any)
	if props["subject"] != "Your receipt" || props["html"] != "<p>Thanks</p>" {
		t.Fatalf("email event %v", props)
	}
}
