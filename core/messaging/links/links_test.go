package links_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omni/omni/core/messaging/links"
)

var key = bytes.Repeat([]byte{7}, 32)

func tokenOf(t *testing.T, url, prefix string) string {
	t.Helper()
	if !strings.HasPrefix(url, prefix) {
		t.Fatalf("%q does not start with %q", url, prefix)
	}
	return strings.TrimPrefix(url, prefix)
}

func TestSignAndVerify(t *testing.T) {
	s := links.NewSigner(key, "https://shop.omni-shop.dev/")
	u := tokenOf(t, s.UnsubscribeURL("p123", "email"), "https://shop.omni-shop.dev/p/u/")
	if pid, ch, err := s.Verify(u); err != nil || pid != "p123" || ch != "email" {
		t.Fatalf("unsubscribe: %q %q %v", pid, ch, err)
	}
	p := tokenOf(t, s.PreferencesURL("p123"), "https://shop.omni-shop.dev/p/prefs/")
	if pid, ch, err := s.Verify(p); err != nil || pid != "p123" || ch != "" {
		t.Fatalf("preferences: %q %q %v", pid, ch, err)
	}
	for _, c := range u + p {
		if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", c) {
			t.Fatalf("token has a character that is not URL-safe: %q", c)
		}
	}
}

func TestTamperedAndForeignTokensAreRefused(t *testing.T) {
	s := links.NewSigner(key, "http://127.0.0.1:8090")
	good := tokenOf(t, s.UnsubscribeURL("p123", "sms"), "http://127.0.0.1:8090/p/u/")
	parts := strings.Split(good, ".")
	other := tokenOf(t, s.UnsubscribeURL("p999", "sms"), "http://127.0.0.1:8090/p/u/")
	forged := links.NewSigner(bytes.Repeat([]byte{8}, 32), "http://127.0.0.1:8090")
	bad := []string{
		"", "nonsense", good + "x", parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2], // another profile's payload
		"zzzzzzzz." + parts[1] + "." + parts[2], // unknown key id
		tokenOf(t, forged.UnsubscribeURL("p123", "sms"), "http://127.0.0.1:8090/p/u/"),
		parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-2] + "AA",
	}
	for _, tok := range bad {
		if _, _, err := s.Verify(tok); !errors.Is(err, links.ErrInvalid) {
			t.Errorf("%q: got %v, want ErrInvalid", tok, err)
		}
	}
}

func TestRotationKeepsOldLinksWorking(t *testing.T) {
	old := links.NewSigner(key, "https://s.omni-shop.dev")
	tok := tokenOf(t, old.PreferencesURL("p1"), "https://s.omni-shop.dev/p/prefs/")
	newKey := bytes.Repeat([]byte{9}, 32)
	rotated := links.NewSigner(newKey, "https://s.omni-shop.dev")
	if _, _, err := rotated.Verify(tok); err == nil {
		t.Fatal("a new key alone accepted an old link")
	}
	rotated.Accept(key)
	if pid, _, err := rotated.Verify(tok); err != nil || pid != "p1" {
		t.Fatalf("after Accept: %q %v", pid, err)
	}
	if rotated.PreferencesURL("p1") == old.PreferencesURL("p1") {
		t.Fatal("new links are still signed with the old key")
	}
}

func TestKeyIsMadeOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	k1, err := links.LoadOrCreateKey(dir)
	if err != nil || len(k1) != 32 {
		t.Fatalf("%d bytes, %v", len(k1), err)
	}
	k2, err := links.LoadOrCreateKey(dir)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load differs: %v", err)
	}
	// A signer opened on the same dir verifies links made with the key.
	s, err := links.Open(dir, "https://s.omni-shop.dev")
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimPrefix(links.NewSigner(k1, "x").PreferencesURL("p1"), "x/p/prefs/")
	if pid, _, err := s.Verify(tok); err != nil || pid != "p1" {
		t.Fatalf("opened signer: %q %v", pid, err)
	}
	st, err := os.Stat(filepath.Join(dir, links.KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st.Mode(), err)
	}
	if err := os.WriteFile(filepath.Join(dir, links.KeyFile), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := links.LoadOrCreateKey(dir); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged key: %v", err)
	}
}
