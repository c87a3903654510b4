package migrations_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pocketbase/pocketbase/core"
)

// PocketBase's default "users" collection took public sign-ups; 0009 locks
// it. The permission matrix covers its rules; this covers signing in.
func TestNoPublicSignUp(t *testing.T) {
	s := startAll(t)
	signUp := map[string]any{"email": "mallory@evil.test", "password": "password-123456", "passwordConfirm": "password-123456"}
	if code, body := s.Do(t, "POST", "/api/collections/users/records", signUp, nil); code != 403 {
		t.Errorf("sign-up: %d %s, want 403", code, body)
	}
	if n, _ := s.PB.CountRecords("users"); n != 0 {
		t.Errorf("users after sign-up attempt: %d", n)
	}
	// Nobody can sign in to it either, even with a record made by hand.
	users, err := s.PB.FindCollectionByNameOrId("users")
	if err != nil {
		t.Fatal(err)
	}
	u := core.NewRecord(users)
	u.SetEmail("old@shop.test")
	u.SetPassword("password-123456")
	if err := s.PB.Save(u); err != nil {
		t.Fatal(err)
	}
	code, body := s.Do(t, "POST", "/api/collections/users/auth-with-password", map[string]any{"identity": "old@shop.test", "password": "password-123456"}, nil)
	if code < 400 || code > 403 || strings.Contains(string(body), `"token"`) {
		t.Errorf("password sign-in to users: %d %s", code, body)
	}
	code, body = s.Do(t, "GET", "/api/collections/users/auth-methods", nil, nil)
	type method struct {
		Enabled *bool `json:"enabled"`
	}
	var methods struct{ Password, OAuth2, MFA, OTP method }
	if err := json.Unmarshal(body, &methods); code != 200 || err != nil {
		t.Fatalf("auth methods: %d %s", code, body)
	}
	for _, m := range []method{methods.Password, methods.OAuth2, methods.MFA, methods.OTP} {
		if m.Enabled == nil || *m.Enabled {
			t.Errorf("users still has a sign-in method on: %s", body)
		}
	}

	// An install that had sign-ups before upgrading: their sessions die when
	// the migration runs (it is idempotent, so run it again here).
	tok, err := u.NewAuthToken()
	if err != nil {
		t.Fatal(err)
	}
	var lock *core.Migration
	for _, m := range core.AppMigrations.Items() {
		if strings.HasPrefix(m.File, "0009_") {
			lock = m
		}
	}
	if lock == nil {
		t.Fatal("migration 0009 not registered")
	}
	if err := lock.Up(s.PB); err != nil {
		t.Fatalf("0009 again: %v", err)
	}
	after, err := s.PB.FindRecordById(users, u.Id)
	if err != nil {
		t.Fatal(err)
	}
	if after.TokenKey() == u.TokenKey() {
		t.Error("token key not rotated")
	}
	if rec, err := s.PB.FindAuthRecordByToken(tok); err == nil {
		t.Errorf("old session still valid for %s", rec.Id)
	}
}
