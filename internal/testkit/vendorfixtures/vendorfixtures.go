// Package vendorfixtures finds the vendors' real sample payloads for tests:
// $OMNI_FIXTURES_DIR, or shared/fixtures beside the checkout
// (../shared/fixtures) or in any parent directory.
//
// It is the one place that decides what a test does without them: skip on
// a developer's machine, fail when the environment variable CI is set, so
// a CI run can never pass by skipping the tests that read real payloads.
package vendorfixtures

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// EnvDir names the variable that points at the fixtures directory (the one
// holding shopify/, square/, whatsapp/, klaviyo/).
const EnvDir = "OMNI_FIXTURES_DIR"

// Dir returns the fixtures directory holding vendor (e.g. "shopify"). When
// there is none, it skips the test, or fails it when CI is set, with a
// message naming where it looked and how to provide the fixtures.
func Dir(t testing.TB, vendor string) string {
	t.Helper()
	if d := os.Getenv(EnvDir); d != "" {
		if isDir(filepath.Join(d, vendor)) {
			return d
		}
		missing(t, fmt.Sprintf("%s is not a directory (%s=%s)", filepath.Join(d, vendor), EnvDir, d))
	}
	start, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := start; ; dir = filepath.Dir(dir) {
		for _, c := range []string{filepath.Join(dir, "shared", "fixtures"), filepath.Join(dir, "..", "shared", "fixtures")} {
			if isDir(filepath.Join(c, vendor)) {
				return c
			}
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	missing(t, fmt.Sprintf("no shared/fixtures/%s in %s or any parent directory, nor beside one (../shared/fixtures)", vendor, start))
	return ""
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

// missing ends the test: a skip for a developer without the fixtures, a
// failure in CI, where a skip would hide that the real payloads went
// untested.
func missing(t testing.TB, where string) {
	t.Helper()
	msg := "vendor fixtures not found: " + where + "; put the samples in ../shared/fixtures beside the checkout or set " + EnvDir + " to their directory"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, so this fails instead of skipping)")
	}
	t.Skip(msg)
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
