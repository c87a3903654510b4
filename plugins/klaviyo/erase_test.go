package klaviyo

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/plugins/internal/hosttest"
)

// An owner erases a person in Omni: Klaviyo gets one Data Privacy deletion
// job per identifier it can match (email, E.164 phone, Klaviyo profile id),
// through the real host and plugin subprocess. While Klaviyo is down the
// request waits and is retried; it is not lost.
func TestErasureIsPassedToKlaviyo(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Omni and a plugin subprocess")
	}
	fake := newFakeKlaviyo(t)
	fake.mu.Lock()
	fake.privacyDown = true // an outage first
	fake.mu.Unlock()
	s := hosttest.Start(t, "klaviyo", New, map[string]any{"api_key": fake.key, "base_url": fake.URL, "poll_interval": "0"},
		profiles.New(profiles.Options{Interval: -1}))
	hosttest.Enable(t, s, "klaviyo")
	token := hosttest.SuperuserToken(t, s)

	ev := &events.Event{ID: "erase-test-1", Type: events.OrderPlaced, Source: "shopify", OccurredAt: time.Now().UTC(), ReceivedAt: time.Now().UTC(),
		Identities: events.Identities{events.Email: "gone@omni-shop.dev", events.Phone: "+14155550199", events.KlaviyoProfile: "01KPROFILEGONE"},
		Properties: map[string]any{"total": 5}}
	if errs := ingest.Publish(context.Background(), s.Bus, []*events.Event{ev}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	var pid string
	omnitest.Eventually(t, 20*time.Second, func() bool {
		_ = s.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind='email' AND value='gone@omni-shop.dev'").Row(&pid)
		return pid != ""
	}, "the person's profile")
	if code, body := s.Do(t, "DELETE", "/api/v1/profiles/"+pid, nil, http.Header{"Authorization": {token}}); code != 200 {
		t.Fatalf("erase: %d %s", code, body)
	}

	// Klaviyo is down: the request is tried, refused, and kept for a retry.
	omnitest.Eventually(t, 30*time.Second, func() bool { return fake.hits("/api/data-privacy-deletion-jobs") > 0 }, "a deletion attempt during the outage")
	if n := len(fake.posted("/api/data-privacy-deletion-jobs")); n != 0 {
		t.Fatalf("%d jobs accepted during the outage", n)
	}
	fake.mu.Lock()
	fake.privacyDown = false
	fake.mu.Unlock()
	omnitest.Eventually(t, 60*time.Second, func() bool { return len(fake.posted("/api/data-privacy-deletion-jobs")) >= 3 }, "three deletion jobs after the outage")

	got := map[string]bool{}
	for _, b := range fake.posted("/api/data-privacy-deletion-jobs") {
		p := b["data"].(map[string]any)["attributes"].(map[string]any)["profile"].(map[string]any)["data"].(map[string]any)
		if id, ok := p["id"].(string); ok {
			got["id:"+id] = true
			continue
		}
		for k, v := range p["attributes"].(map[string]any) {
			got[k+":"+v.(string)] = true
		}
	}
	for _, want := range []string{"email:gone@omni-shop.dev", "phone_number:+14155550199", "id:01KPROFILEGONE"} {
		if !got[want] {
			t.Fatalf("no deletion job for %s; got %v", want, got)
		}
	}
	if len(got) != 3 {
		t.Fatalf("unexpected deletion jobs: %v", got)
	}
	// The erased identities were not stored back as a message event.
	var n int
	_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE identities LIKE '%gone@omni-shop.dev%'").Row(&n)
	if n != 0 {
		t.Fatalf("%d events carry the erased email", n)
	}
}
