package whatsapp

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/internal/testkit/vendorfixtures"
	"github.com/omni/omni/plugins/sdk"
)

// readFixture returns one of the vendor's real sample payloads.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	return vendorfixtures.Read(t, "whatsapp", name)
}

// fixtureBodies returns every webhook body in the fixtures, by a short name.
func fixtureBodies(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{
		"inbound_text":                 readFixture(t, "inbound_text_message.json"),
		"inbound_image":                readFixture(t, "inbound_image_message.json"),
		"status_sent_official_postman": readFixture(t, "status_sent_official_postman.json"),
	}
	var set map[string]json.RawMessage
	if err := json.Unmarshal(readFixture(t, "status_updates_sent_delivered_read_failed.json"), &set); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		out["status_"+k] = v
	}
	var vec signatureVector
	if err := json.Unmarshal(readFixture(t, "signature_test_vector.json"), &vec); err != nil {
		t.Fatal(err)
	}
	out["signed_delivery"] = []byte(vec.RawBody)
	return out
}

type signatureVector struct {
	AppSecret   string `json:"app_secret"`
	HeaderName  string `json:"header_name"`
	HeaderValue string `json:"header_value"`
	RawBody     string `json:"raw_body"`
}

// toCore converts an SDK event into Omni's model and checks it would be
// accepted by ingest (normalised and valid).
func toCore(t *testing.T, ev sdk.Event) *events.Event {
	t.Helper()
	ids := events.Identities{}
	for k, v := range ev.Identities {
		ids[k] = v
	}
	ce := &events.Event{ID: ev.ID, Type: ev.Type, Source: "whatsapp", OccurredAt: ev.OccurredAt,
		ReceivedAt: time.Now(), Identities: ids, Properties: ev.Properties,
		Context: events.Context{Channel: ev.Context.Channel}}
	events.Normalizer{DefaultRegion: "US"}.Normalize(ce)
	if err := ce.Validate(time.Now()); err != nil {
		t.Errorf("event %s (%s) would be rejected: %v", ev.ID, ev.Type, err)
	}
	if ce.Properties["invalid_phone"] != nil {
		t.Errorf("event %s: phone %q is not E.164", ev.ID, ev.Identities[events.Phone])
	}
	return ce
}

// recordingHost is the sdk.Host a connector sees, recording what it emits.
type recordingHost struct {
	mu     sync.Mutex
	events []sdk.Event
	logs   []string
}

func (h *recordingHost) Emit(ctx context.Context, evs []sdk.Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, evs...)
	return nil
}

func (h *recordingHost) Log(level, msg string, kv ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, level+": "+msg)
}

func (h *recordingHost) emitted() []sdk.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sdk.Event(nil), h.events...)
}
