package vendorfixtures_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/omni/omni/internal/testkit/vendorfixtures"
)

// outcome records how a locator call ended a test, without ending this one.
type outcome struct {
	testing.TB
	failed, skipped string
}

func (o *outcome) Fatal(args ...any) { o.failed = fmt.Sprint(args...); runtime.Goexit() }
func (o *outcome) Fatalf(f string, args ...any) {
	o.failed = fmt.Sprintf(f, args...)
	runtime.Goexit()
}
func (o *outcome) Skip(args ...any) { o.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (o *outcome) Skipf(f string, args ...any) {
	o.skipped = fmt.Sprintf(f, args...)
	runtime.Goexit()
}

// locate runs Dir as a test of its own would, on its own goroutine (a
// skip or failure ends that goroutine), and reports how it ended.
func locate(t *testing.T, vendor string) (dir string, o *outcome) {
	o = &outcome{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		dir = vendorfixtures.Dir(o, vendor)
	}()
	<-done
	return dir, o
}

// Away from any checkout, with no OMNI_FIXTURES_DIR: a developer's run
// skips, a CI run fails, and both say where to put the fixtures.
func TestMissingFixturesFailInCIAndSkipElsewhere(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv(vendorfixtures.EnvDir, "")

	t.Setenv("CI", "")
	if _, o := locate(t, "shopify"); o.skipped == "" || o.failed != "" {
		t.Fatalf("without CI: skipped %q, failed %q; want a skip", o.skipped, o.failed)
	}

	t.Setenv("CI", "true")
	_, o := locate(t, "shopify")
	if o.failed == "" || o.skipped != "" {
		t.Fatalf("with CI set: skipped %q, failed %q; want a failure", o.skipped, o.failed)
	}
	wd, _ := os.Getwd()
	for _, want := range []string{"shared/fixtures/shopify", wd, "../shared/fixtures", vendorfixtures.EnvDir} {
		if !strings.Contains(o.failed, want) {
			t.Errorf("failure %q does not name %q", o.failed, want)
		}
	}
}

// OMNI_FIXTURES_DIR that does not hold the vendor is named, not trusted.
func TestFixturesDirWithoutTheVendorIsNamed(t *testing.T) {
	empty := t.TempDir()
	t.Setenv(vendorfixtures.EnvDir, empty)
	t.Setenv("CI", "1")
	_, o := locate(t, "square")
	if want := filepath.Join(empty, "square"); !strings.Contains(o.failed, want) {
		t.Fatalf("failure %q does not name %s", o.failed, want)
	}

	if err := os.Mkdir(filepath.Join(empty, "square"), 0o755); err != nil {
		t.Fatal(err)
	}
	if dir, o := locate(t, "square"); dir != empty || o.failed != "" || o.skipped != "" {
		t.Fatalf("Dir = %q (failed %q, skipped %q), want %s", dir, o.failed, o.skipped, empty)
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
	if o.failed != "" || o.skipped != "" {
		t.Fatalf("failed %q, skipped %q", o.failed, o.skipped)
	}
	if dir != fixtures {
		t.Fatalf("Dir = %s, want %s", dir, fixtures)
	}
}
