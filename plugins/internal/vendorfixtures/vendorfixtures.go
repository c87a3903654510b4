// Package vendorfixtures finds the vendors' real sample payloads for tests:
// ../shared/fixtures beside the checkout (CI) or shared/fixtures in any
// parent directory, or $OMNI_FIXTURES_DIR.
package vendorfixtures

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the fixtures directory holding vendor (e.g. "shopify"), or
// skips the test with a message saying where it was looked for.
func Dir(t testing.TB, vendor string) string {
	t.Helper()
	if d := os.Getenv("OMNI_FIXTURES_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		for _, c := range []string{filepath.Join(dir, "shared", "fixtures"), filepath.Join(dir, "..", "shared", "fixtures")} {
			if st, err := os.Stat(filepath.Join(c, vendor)); err == nil && st.IsDir() {
				return c
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("vendor fixtures not found: expected shared/fixtures beside the checkout (../shared/fixtures) or set OMNI_FIXTURES_DIR")
		}
		dir = parent
	}
}

// Read returns one fixture file's bytes, exactly as stored.
func Read(t testing.TB, vendor, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(t, vendor), vendor, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
