package whatsapp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/sdk/sdktest"
)

// The test binary doubles as the plugin executable for StartSelf.
func TestMain(m *testing.M) { sdktest.MainOrServe(m, New) }

// The connector as Omni runs it: a subprocess behind go-plugin's gRPC,
// talking to a local Graph API fake.
func TestRunsAsPluginSubprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a plugin subprocess")
	}
	var vec signatureVector
	if err := json.Unmarshal(readFixture(t, "signature_test_vector.json"), &vec); err != nil {
		t.Fatal(err)
	}
	_, _, okResp := sendFixture(t)
	fake := newFakeMeta(t, okResp)
	fake.pnid = phoneNumberIDOf(t, vec.RawBody) // the number the real delivery is for
	h := sdktest.StartSelf(t, sdk.Config{"phone_number_id": fake.pnid, "access_token": fake.token,
		"app_secret": vec.AppSecret, "verify_token": "let-me-in", "base_url": fake.URL})
	ctx := context.Background()

	hs, err := h.Connector.HandleWebhook(ctx, &sdk.WebhookRequest{Method: "GET", Path: "/",
		Query: "hub.mode=subscribe&hub.challenge=987654&hub.verify_token=let-me-in"})
	if err != nil || hs.Status != 200 || string(hs.Body) != "987654" {
		t.Fatalf("handshake: %+v %v", hs, err)
	}

	resp := h.Webhook(t, "POST", "/", map[string]string{vec.HeaderName: vec.HeaderValue}, []byte(vec.RawBody))
	if resp.Status != 200 || len(resp.Events) != 1 || resp.Events[0].Type != events.MessageReceived ||
		resp.Events[0].Identities[events.Phone] != "+972544401243" {
		t.Fatalf("signed delivery: %d %+v", resp.Status, resp.Events)
	}
	bad := h.Webhook(t, "POST", "/", map[string]string{vec.HeaderName: vec.HeaderValue}, []byte(strings.Replace(vec.RawBody, "PyWa", "PyWb", 1)))
	if bad.Status != http.StatusUnauthorized || len(bad.Events) != 0 {
		t.Fatalf("tampered: %d %d events", bad.Status, len(bad.Events))
	}

	// That customer last wrote in 2024: free text is refused with 131047…
	_, err = h.Send(&sdk.OutboundMessage{ID: "o1", Channel: "whatsapp", To: map[string]string{"wa_id": "972544401243"}, Text: "hello"})
	var se *sdk.SendError
	if !errors.As(err, &se) || se.Kind != sdk.KindPermanent || se.Code != CodeOutsideWindow {
		t.Fatalf("outside window: %#v", err)
	}
	// …a template goes out, and so does text once the customer wrote recently.
	res, err := h.Send(&sdk.OutboundMessage{ID: "o2", Channel: "whatsapp", To: map[string]string{"wa_id": "972544401243"},
		Template: &sdk.Template{Name: "hello_world", Language: "en_US"}})
	if err != nil || !strings.HasPrefix(res.ProviderMessageID, "wamid.") {
		t.Fatalf("template: %v %v", res, err)
	}
	_, err = h.Send(&sdk.OutboundMessage{ID: "o3", Channel: "whatsapp", To: map[string]string{"phone": "+972544401243"}, Text: "thanks!",
		Properties: map[string]any{"last_inbound_at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}})
	if err != nil {
		t.Fatal(err)
	}
	sent := fake.sent()
	if len(sent) != 2 || sent[0]["type"] != "template" || sent[1]["type"] != "text" || sent[1]["biz_opaque_callback_data"] != "omni:o3" {
		t.Fatalf("requests at the fake: %v", sent)
	}
	// Typed errors survive the process boundary.
	fake.fail("972500000000", fakeFailure{status: 400, code: 131056, message: "pair rate limit"})
	_, err = h.Send(&sdk.OutboundMessage{ID: "o4", To: map[string]string{"wa_id": "972500000000"}, Template: &sdk.Template{Name: "x", Language: "en"}})
	if !errors.As(err, &se) || se.Kind != sdk.KindRateLimited || se.RetryAfter != 6*time.Second || se.Code != "131056" {
		t.Fatalf("rate limit over gRPC: %#v", err)
	}
	if err := h.Connector.Health(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
}
