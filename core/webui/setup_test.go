package webui_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/webui"
)

// logBuffer collects the server's log lines (written from its goroutines).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

var setupLink = regexp.MustCompile(`url="?(http://[^\s"]+/\?setup=(\w+))`)

// links returns the setup links printed so far, oldest first.
func (l *logBuffer) links() []*url.URL {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*url.URL
	for _, m := range setupLink.FindAllStringSubmatch(l.buf.String(), -1) {
		u, err := url.Parse(m[1])
		if err == nil {
			out = append(out, u)
		}
	}
	return out
}

func setupState(t *testing.T, s *omnitest.Server) (needsOwner, tokenRequired bool) {
	t.Helper()
	var st struct {
		NeedsOwner    bool `json:"needs_owner"`
		TokenRequired bool `json:"token_required"`
	}
	code, body := s.Do(t, "GET", "/api/v1/setup", nil, nil)
	if err := json.Unmarshal(body, &st); code != 200 || err != nil {
		t.Fatalf("GET /api/v1/setup: %d %s", code, body)
	}
	return st.NeedsOwner, st.TokenRequired
}

func staffCount(t *testing.T, s *omnitest.Server) int {
	t.Helper()
	n, err := s.PB.CountRecords("staff")
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// Listening on every address, the first visitor must not become owner: the
// owner is created only with the one-time token printed in the log.
func TestSetupTokenOffLoopback(t *testing.T) {
	logs := &logBuffer{}
	s := omnitest.Start(t, omnitest.Options{
		Listen: "0.0.0.0:0",
		Log:    logs,
		Modules: func(o *app.Omni) []app.Module {
			return []app.Module{webui.New(nil)}
		},
	})
	if needs, required := setupState(t, s); !needs || !required {
		t.Fatalf("fresh install on 0.0.0.0: needs_owner=%v token_required=%v", needs, required)
	}
	links := logs.links()
	if len(links) != 1 {
		t.Fatalf("want one setup link in the log, got %d:\n%s", len(links), logs.buf.String())
	}
	link := links[0]
	if _, port, _ := strings.Cut(strings.TrimPrefix(s.URL, "http://"), ":"); link.Port() != port || link.Path != "/" {
		t.Errorf("setup link %s: want port %s and path /", link, port)
	}
	token := link.Query().Get("setup")

	owner := map[string]string{"email": "owner@shop.test", "password": "s3cret-pass", "name": "Olga"}
	with := func(tok string) map[string]string {
		b := map[string]string{"setup_token": tok}
		for k, v := range owner {
			b[k] = v
		}
		return b
	}
	for name, body := range map[string]map[string]string{"no token": owner, "wrong token": with(wrongToken(token)), "empty token": with("")} {
		code, resp := s.Do(t, "POST", "/api/v1/setup/owner", body, nil)
		if out := omnitest.WantFieldError(t, code, resp, 403, "setup_token"); !strings.Contains(out.Data["setup_token"].Message, "server log") {
			t.Errorf("%s: %d %s, want 403 naming setup_token", name, code, resp)
		}
	}
	if n := staffCount(t, s); n != 0 {
		t.Fatalf("staff after refused attempts: %d", n)
	}

	// Bad input with the right token is a validation error and does not
	// use the token up.
	bad := with(token)
	bad["email"] = "not-an-email"
	if code, resp := s.Do(t, "POST", "/api/v1/setup/owner", bad, nil); code != 400 || !strings.Contains(string(resp), `"email"`) {
		t.Errorf("bad email with token: %d %s", code, resp)
	}
	code, resp := s.Do(t, "POST", "/api/v1/setup/owner", with(token), nil)
	if code != 200 || !strings.Contains(string(resp), `"role":"owner"`) {
		t.Fatalf("owner with token: %d %s", code, resp)
	}
	if needs, required := setupState(t, s); needs || required {
		t.Errorf("after owner: needs_owner=%v token_required=%v", needs, required)
	}

	// Single use: were the owner gone again (removed behind the API's
	// back), the old token opens nothing and a new link is printed.
	if _, err := s.PB.DB().NewQuery("DELETE FROM staff").Execute(); err != nil {
		t.Fatal(err)
	}
	if code, resp := s.Do(t, "POST", "/api/v1/setup/owner", with(token), nil); code != 403 {
		t.Errorf("used token again: %d %s", code, resp)
	}
	links = logs.links()
	if len(links) != 2 || links[1].Query().Get("setup") == token {
		t.Fatalf("want a second, different setup link; got %v", links)
	}
	if code, resp := s.Do(t, "POST", "/api/v1/setup/owner", with(links[1].Query().Get("setup")), nil); code != 200 {
		t.Errorf("new token: %d %s", code, resp)
	}
}

// On loopback only this machine can reach the page: no token, none logged.
func TestSetupWithoutTokenOnLoopback(t *testing.T) {
	logs := &logBuffer{}
	s := omnitest.Start(t, omnitest.Options{Log: logs, Modules: func(o *app.Omni) []app.Module { return []app.Module{webui.New(nil)} }})
	if needs, required := setupState(t, s); !needs || required {
		t.Fatalf("fresh install on 127.0.0.1: needs_owner=%v token_required=%v", needs, required)
	}
	if code, resp := s.Do(t, "POST", "/api/v1/setup/owner", map[string]string{"email": "owner@shop.test", "password": "s3cret-pass"}, nil); code != 200 {
		t.Errorf("owner on loopback: %d %s", code, resp)
	}
	if l := logs.links(); len(l) != 0 {
		t.Errorf("setup link logged on loopback: %v", l)
	}
}

// wrongToken differs from token in its first character, whatever that is.
func wrongToken(token string) string {
	if strings.HasPrefix(token, "x") {
		return "y" + token[1:]
	}
	return "x" + token[1:]
}
