package klaviyo

import (
	"context"
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
	return vendorfixtures.Read(t, "klaviyo", name)
}

// toCore converts an SDK event into Omni's model and checks it would be
// accepted by ingest (normalised and valid).
func toCore(t *testing.T, ev sdk.Event) *events.Event {
	t.Helper()
	ids := events.Identities{}
	for k, v := range ev.Identities {
		ids[k] = v
	}
	ce := &events.Event{ID: ev.ID, Type: ev.Type, Source: "klaviyo", OccurredAt: ev.OccurredAt,
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
