package profiles_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/profiles"
)

// TestAPIErrorsArePocketBaseShaped: every refusal of the profiles and
// segments API is PocketBase's {status, message, data}, bad input naming
// its field in data.<field>, so the web admin shows it beside the input.
func TestAPIErrorsArePocketBaseShaped(t *testing.T) {
	e := start(t, profiles.Options{})
	owner, agent := auth(e.owner), auth(e.agent)
	badRule := `{"trait":"x","op":"nope","value":1}`

	fields := []struct {
		method, path string
		body         any
		header       http.Header
		field        string
	}{
		{"GET", "/api/v1/profiles?perPage=500", nil, agent, "perPage"},
		{"GET", "/api/v1/profiles?page=0", nil, agent, "page"},
		{"GET", "/api/v1/profiles?rule=" + url.QueryEscape(badRule), nil, agent, "rule"},
		{"GET", "/api/v1/profiles?" + url.QueryEscape("trait.a b") + "=1", nil, agent, "trait.a b"},
		{"POST", "/api/v1/segments/preview", map[string]any{"rule": nil}, owner, "rule"},
		{"POST", "/api/v1/segments/preview", map[string]any{"rule": map[string]any{"trait": "x", "op": "nope", "value": 1}}, owner, "rule"},
		{"POST", "/api/v1/segments/preview", "not json", owner, "body"},
		{"DELETE", "/api/v1/tombstones/shoe-size/42", nil, owner, "kind"},
	}
	for _, c := range fields {
		code, body := e.Do(t, c.method, c.path, c.body, c.header)
		t.Logf("%s %s → %d %s", c.method, c.path, code, body)
		omnitest.WantFieldError(t, code, body, http.StatusBadRequest, c.field)
	}

	// The timeline of a profile that exists: a bad cursor names "before".
	code, body := e.Track(t, "/v1/identify", map[string]any{"userId": "u-err", "messageId": "err-1", "traits": map[string]any{"email": "err@omni-shop.dev"}})
	if code != 200 {
		t.Fatalf("identify: %d %s", code, body)
	}
	var pid string
	omnitest.Eventually(t, 30*time.Second, func() bool { pid = e.profileOf(t, "email", "err@omni-shop.dev"); return pid != "" }, "profile resolved")
	code, body = e.Do(t, "GET", "/api/v1/profiles/"+pid+"/timeline?before=yesterday", nil, agent)
	omnitest.WantFieldError(t, code, body, http.StatusBadRequest, "before")

	// No field at fault: data is {}.
	for _, c := range []struct {
		method, path string
		header       http.Header
		status       int
	}{
		{"GET", "/api/v1/profiles", nil, http.StatusUnauthorized},
		{"POST", "/api/v1/profiles/" + pid + "/export", agent, http.StatusForbidden},
		{"DELETE", "/api/v1/profiles/" + pid, agent, http.StatusForbidden},
		{"DELETE", "/api/v1/tombstones/email/x@omni-shop.dev", agent, http.StatusForbidden},
		{"POST", "/api/v1/segments/preview", agent, http.StatusForbidden},
		{"GET", "/api/v1/profiles/nosuchprofile", agent, http.StatusNotFound},
		{"GET", "/api/v1/segments/nosuchsegment/preview", agent, http.StatusNotFound},
		{"DELETE", "/api/v1/tombstones/email/never-erased@omni-shop.dev", owner, http.StatusNotFound},
	} {
		code, body := e.Do(t, c.method, c.path, nil, c.header)
		if out := omnitest.WantError(t, code, body, c.status); len(out.Data) != 0 {
			t.Fatalf("%s %s: data names a field: %s", c.method, c.path, body)
		}
	}
}
