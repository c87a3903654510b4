package webui_test

import (
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app/omnitest"
)

// Staff reset their password with PocketBase's built-in flow; the email
// (migration 0006) links to the web admin's /reset-password/{TOKEN} page.
func TestPasswordResetEmailLinksToWebAdmin(t *testing.T) {
	s := start(t)
	if code, body := s.Do(t, "POST", "/api/v1/setup/owner", map[string]string{"email": "owner@shop.test", "password": "s3cret-pass"}, nil); code != 200 {
		t.Fatalf("owner: %d %s", code, body)
	}
	var mu sync.Mutex
	var html string
	s.PB.OnMailerRecordPasswordResetSend("staff").BindFunc(func(e *core.MailerRecordEvent) error {
		mu.Lock()
		html = e.Message.HTML
		mu.Unlock()
		return nil // captured; not handed to the mailer
	})
	if code, body := s.Do(t, "POST", "/api/collections/staff/request-password-reset", map[string]string{"email": "owner@shop.test"}, nil); code != 204 {
		t.Fatalf("request reset: %d %s", code, body)
	}
	var token string
	link := regexp.MustCompile(`href="[^"]*/reset-password/([^"]+)"`)
	omnitest.Eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		if m := link.FindStringSubmatch(html); m != nil {
			token = m[1]
		}
		return token != ""
	}, "a reset email linking to /reset-password/{token}")

	if code, body := s.Do(t, "POST", "/api/collections/staff/confirm-password-reset",
		map[string]string{"token": token, "password": "n3w-secret-pass", "passwordConfirm": "n3w-secret-pass"}, nil); code != 204 {
		t.Fatalf("confirm reset: %d %s", code, body)
	}
	if code, body := s.Do(t, "POST", "/api/collections/staff/auth-with-password",
		map[string]string{"identity": "owner@shop.test", "password": "n3w-secret-pass"}, http.Header{}); code != 200 {
		t.Fatalf("sign in with the new password: %d %s", code, body)
	}
}
