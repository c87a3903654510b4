package whatsapp

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
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

// phoneNumberIDOf reads metadata.phone_number_id of a delivery.
func phoneNumberIDOf(t *testing.T, body string) string {
	t.Helper()
	var n notification
	if err := json.Unmarshal([]byte(body), &n); err != nil || len(n.Entry) == 0 || len(n.Entry[0].Changes) == 0 {
		t.Fatalf("not a notification: %v", err)
	}
	return n.Entry[0].Changes[0].Value.Metadata.PhoneNumberID
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

// Meta → Omni webhook → plugin subprocess → event stored; outbox → plugin
// → fake Graph API → message.sent stored.
func TestEndToEndUnderOmniHost(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Omni and a plugin subprocess")
	}
	var vec signatureVector
	if err := json.Unmarshal(readFixture(t, "signature_test_vector.json"), &vec); err != nil {
		t.Fatal(err)
	}
	_, _, okResp := sendFixture(t)
	fake := newFakeMeta(t, okResp)
	fake.pnid = phoneNumberIDOf(t, vec.RawBody) // the number the real delivery is for
	s := startOmniWith(t, "whatsapp", New, map[string]any{"phone_number_id": fake.pnid, "access_token": fake.token,
		"app_secret": vec.AppSecret, "verify_token": "let-me-in", "base_url": fake.URL})

	// Meta's subscription handshake through Omni's public webhook URL.
	req, _ := http.NewRequest("GET", s.URL+"/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=4242&hub.verify_token=let-me-in", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := resp.Body.Read(buf)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(buf[:n]) != "4242" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("handshake: %d %q %s", resp.StatusCode, buf[:n], resp.Header.Get("Content-Type"))
	}
	if code, _ := s.Do(t, "GET", "/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=4242&hub.verify_token=nope", nil, nil); code != 403 {
		t.Fatalf("wrong verify token: %d", code)
	}

	// A wrong signature stores nothing; the real signed delivery is stored
	// once even when Meta redelivers it.
	hdr := http.Header{vec.HeaderName: {strings.Replace(vec.HeaderValue, "5", "6", 1)}, "Content-Type": {"application/json"}}
	if code, _ := s.Do(t, "POST", "/webhooks/whatsapp", vec.RawBody, hdr); code != 401 {
		t.Fatalf("bad signature: %d", code)
	}
	hdr.Set(vec.HeaderName, vec.HeaderValue)
	for i := 0; i < 2; i++ {
		if code, body := s.Do(t, "POST", "/webhooks/whatsapp", vec.RawBody, hdr); code != 200 {
			t.Fatalf("delivery %d: %d %s", i, code, body)
		}
	}
	// A signed delivery for another number of the same Meta app: 200 and
	// nothing stored.
	foreign := strings.Replace(vec.RawBody, fake.pnid, "555000111222333", 1)
	if code, body := s.Do(t, "POST", "/webhooks/whatsapp", foreign, http.Header{vec.HeaderName: {Sign(vec.AppSecret, []byte(foreign))}}); code != 200 {
		t.Fatalf("delivery for another number: %d %s", code, body)
	}
	// A signed but malformed body is a 400 with a JSON message, not a crash.
	garbage := `{"object":"whatsapp_business_account","entry":"oops"}`
	code, body := s.Do(t, "POST", "/webhooks/whatsapp", garbage, http.Header{vec.HeaderName: {Sign(vec.AppSecret, []byte(garbage))}})
	var msgBody struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
	}
	if code != 400 || json.Unmarshal(body, &msgBody) != nil || msgBody.Message == "" {
		t.Fatalf("malformed body: %d %s", code, body)
	}
	s.WaitEvents(t, 1)
	evs := storedEvents(t, s, "whatsapp")
	if len(evs) != 1 || evs[0].Type != "message.received" || evs[0].Identities["phone"] != "+972544401243" ||
		evs[0].Identities["wa_id"] != "972544401243" || evs[0].Properties["text"] != "Hey there! I am using PyWa." {
		t.Fatalf("stored: %+v", evs)
	}

	// Outbox: a template reply goes to the fake Graph API; message.sent is stored.
	msg := &sdk.OutboundMessage{ID: "reply-1", Channel: "whatsapp", To: map[string]string{"wa_id": "972544401243", "phone": "+972544401243"},
		Template: &sdk.Template{Name: "order_update", Language: "en_US", Params: []string{"#1001"}}}
	if err := connectors.Enqueue(context.Background(), s.Bus, "whatsapp", msg); err != nil {
		t.Fatal(err)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool {
		for _, e := range storedEvents(t, s, "whatsapp") {
			if e.Type == "message.sent" {
				return true
			}
		}
		return false
	}, "message.sent stored")
	var sent storedEvent
	for _, e := range storedEvents(t, s, "whatsapp") {
		if e.Type == "message.sent" {
			sent = e
		}
	}
	if sent.Properties["provider_message_id"] != "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJCOTY3NDc0NDFDRUI3NTA0Q0UA" || sent.Properties["message_id"] != "reply-1" {
		t.Fatalf("message.sent: %+v", sent)
	}
	reqs := fake.sent()
	if len(reqs) != 1 || reqs[0]["to"] != "972544401243" || reqs[0]["type"] != "template" {
		t.Fatalf("fake Graph API saw %v", reqs)
	}
}
