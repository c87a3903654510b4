package vendorfixtures_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omni/omni/internal/testkit/outcome"
	"github.com/omni/omni/internal/testkit/vendorfixtures"
)

// locate runs Dir as a test of its own would and reports how it ended.
func locate(t *testing.T, vendor string) (dir string, o outcome.Outcome) {
	o = outcome.Run(t, func(tb testing.TB) { dir = vendorfixtures.Dir(tb, vendor) })
	return dir, o
}

// Away from any checkout, with no OMNI_FIXTURES_DIR: a developer's run
// skips, a CI run fails, and both say where to put the fixtures.
func TestMissingFixturesFailInCIAndSkipElsewhere(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv(vendorfixtures.EnvDir, "")

	t.Setenv("CI", "")
	if _, o := locate(t, "shopify"); o.Skipped == "" || o.Failed != "" {
		t.Fatalf("without CI: skipped %q, failed %q; want a skip", o.Skipped, o.Failed)
	}

	t.Setenv("CI", "true")
	_, o := locate(t, "shopify")
	if o.Failed == "" || o.Skipped != "" {
		t.Fatalf("with CI set: skipped %q, failed %q; want a failure", o.Skipped, o.Failed)
	}
	wd, _ := os.Getwd()
	for _, want := range []string{"shared/fixtures/shopify", wd, "../shared/fixtures", vendorfixtures.EnvDir} {
		if !strings.Contains(o.Failed, want) {
			t.Errorf("failure %q does not name %q", o.Failed, want)
		}
	}
}

// OMNI_FIXTURES_DIR that does not hold the vendor is named, not trusted.
func TestFixturesDirWithoutTheVendorIsNamed(t *testing.T) {
	empty := t.TempDir()
	t.Setenv(vendorfixtures.EnvDir, empty)
	t.Setenv("CI", "1")
	_, o := locate(t, "square")
	if want := filepath.Join(empty, "square"); !strings.Contains(o.Failed, want) {
		t.Fatalf("failure %q does not name %s", o.Failed, want)
	}

	if err := os.Mkdir(filepath.Join(empty, "square"), 0o755); err != nil {
		t.Fatal(err)
	}
	if dir, o := locate(t, "square"); dir != empty || o.Failed != "" || o.Skipped != "" {
		t.Fatalf("Dir = %q (failed %q, skipped %q), want %s", dir, o.Failed, o.Skipped, empty)
	}
}

// Found by walking up: shared/fixtures in a parent, or beside one.
func TestFixturesFoundInAParentOrBesideIt(t *testing.T) {
	t.Setenv(vendorfixtures.EnvDir, "")
	t.Setenv("CI", "1")
	root := t.TempDir()
	fixtures := filepath.Join(root, "shared", "fixtures")
	checkout := filepath.Join(root, "checkout", "plugins", "shopify")
	for _, d := range []string{filepath.Join(fixtures, "shopify"), checkout} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(checkout)
	dir, o := locate(t, "shopify")
	if o.Failed != "" || o.Skipped != "" {
		t.Fatalf("failed %q, skipped %q", o.Failed, o.Skipped)
	}
	if dir != fixtures {
		t.Fatalf("Dir = %s, want %s", dir, fixtures)
	}
}
