package profiles_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/profiles"
)

func basicAuth(key string) http.Header {
	r, _ := http.NewRequest("POST", "/", nil)
	r.SetBasicAuth(key, "")
	return http.Header{"Authorization": r.Header["Authorization"]}
}

// TestBrowserSourceMayOnlyOptOut: a browser source's write key is public.
// Tracking consent.changed {status: subscribed, source: "shopify"} used to
// re-subscribe a customer who had unsubscribed, under the forged source.
// Now a browser source's grant is refused with 400, its opt-out is
// recorded under its own name, and a server source (secret key) is
// trusted like a connector.
func TestBrowserSourceMayOnlyOptOut(t *testing.T) {
	e := start(t, profiles.Options{})
	const email = "optout@omni-shop.dev"
	e.publish(t, ev(events.ConsentChanged, "shopify", e.clock.Now().Add(-time.Hour), events.Identities{events.Email: email},
		map[string]any{"channel": "email", "status": "unsubscribed"}, ""))
	pid := e.profileOf(t, events.Email, email)
	consent := func() profiles.ConsentEntry {
		c, err := profiles.Consent(e.PB, pid, "email")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	msg := func(status, claimed string) map[string]any {
		return map[string]any{"event": "consent.changed", "anonymousId": "anon-optout", "context": map[string]any{"traits": map[string]any{"email": email}},
			"properties": map[string]any{"channel": "email", "status": status, "source": claimed}}
	}

	for _, status := range []string{"subscribed", " Subscribed", ""} {
		code, body := e.Track(t, "/v1/track", msg(status, "shopify"))
		if code != 400 || !strings.Contains(string(body), `"field":"properties.status"`) {
			t.Fatalf("browser grant %q: %d %s", status, code, body)
		}
	}
	code, body := e.Track(t, "/v1/batch", map[string]any{"batch": []any{map[string]any{"type": "track", "event": "consent.changed", "userId": "u",
		"context": map[string]any{"traits": map[string]any{"email": email}}, "properties": map[string]any{"channel": "email", "status": "subscribed"}}}})
	if code != 400 || !strings.Contains(string(body), "batch[0].properties.status") {
		t.Fatalf("browser grant in a batch: %d %s", code, body)
	}

	// An opt-out is recorded, attributed to the browser source itself.
	if code, body := e.Track(t, "/v1/track", msg("unsubscribed", "klaviyo")); code != 200 {
		t.Fatalf("browser opt-out: %d %s", code, body)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool { return consent().Source == "test" }, "opt-out recorded")
	if c := consent(); c.Status != "unsubscribed" {
		t.Fatalf("consent after browser calls = %+v", c)
	}

	// A server source is trusted like a connector.
	srv, err := ingest.CreateSource(e.PB, "backend", ingest.KindServer)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := e.Do(t, "POST", "/v1/track", msg("subscribed", "shopify"), basicAuth(srv.SecretKey)); code != 200 {
		t.Fatalf("server grant: %d %s", code, body)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool { return consent().Status == "subscribed" }, "server source's grant recorded")
	if c := consent(); c.Source != "shopify" {
		t.Fatalf("server source's consent = %+v", c)
	}
}
