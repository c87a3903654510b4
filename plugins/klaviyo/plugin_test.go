package klaviyo

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/sdk/sdktest"
)

// The test binary doubles as the plugin executable for StartSelf.
func TestMain(m *testing.M) { sdktest.MainOrServe(m, New) }

// The connector as Omni runs it: a subprocess behind go-plugin's gRPC,
// polling a local Klaviyo fake and emitting through the host callback.
func TestRunsAsPluginSubprocess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a plugin subprocess")
	}
	fake := newFakeKlaviyo(t)
	total := seedEngagement(t, fake)
	var vec webhookVector
	if err := json.Unmarshal(readFixture(t, "signature_test_vector.computed.json"), &vec); err != nil {
		t.Fatal(err)
	}
	// Reach back to just before the seeded history (not to its old event).
	lookback := time.Since(time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC)).Round(time.Hour)
	h := sdktest.StartSelf(t, sdk.Config{"api_key": fake.key, "base_url": fake.URL, "webhook_secret": vec.Secret,
		"poll_interval": "1s", "poll_lookback": lookback.String()})

	// The poll loop started by Configure emits engagement through Host.Emit.
	omnitest.Eventually(t, 20*time.Second, func() bool { return distinct(h.Emitted()) == total }, "poll loop emits the account's engagement")
	for _, e := range h.Emitted() {
		toCore(t, e)
	}

	evs, progress, err := h.Backfill(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "")
	if err != nil || len(evs) != total || len(progress) < 3 {
		t.Fatalf("backfill: %v, %d events, %d batches", err, len(evs), len(progress))
	}

	headers := map[string]string{}
	for k, v := range vec.Headers {
		headers[k] = v
	}
	resp := h.Webhook(t, "POST", "/", headers, []byte(vec.RawBody))
	if resp.Status != 200 || len(resp.Events) != 1 || resp.Events[0].Type != events.ConsentChanged {
		t.Fatalf("system webhook: %d %+v", resp.Status, resp.Events)
	}
	headers[SignatureHeader] = "00" + vec.Headers[SignatureHeader][2:]
	if bad := h.Webhook(t, "POST", "/", headers, []byte(vec.RawBody)); bad.Status != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", bad.Status)
	}

	res, err := h.Send(&sdk.OutboundMessage{ID: "e1", Channel: "email", To: map[string]string{"email": "ann@example.com"},
		Subject: "Welcome", HTML: "<h1>Hi</h1>", Text: "Hi"})
	if err != nil || res.ProviderMessageID != "omni:e1" || len(fake.posted("/api/events")) != 1 {
		t.Fatalf("send email: %v %v", res, err)
	}
	fake.throttleNext("/api/events", 1)
	_, err = h.Send(&sdk.OutboundMessage{ID: "e2", Channel: "email", To: map[string]string{"email": "ann@example.com"}, Subject: "Again"})
	var se *sdk.SendError
	if !errors.As(err, &se) || se.Kind != sdk.KindRateLimited || se.RetryAfter != time.Second {
		t.Fatalf("429 over gRPC: %#v", err)
	}
	if err := h.Connector.Health(t.Context()); err != nil {
		t.Fatal(err)
	}
}
