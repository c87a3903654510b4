package square

import (
	"os"
	"path/filepath"
	"testing"
)

// fixturesDir finds the shared vendor fixtures: ../shared/fixtures next to
// the checkout (CI) or shared/fixtures in any parent directory.
func fixturesDir(t testing.TB) string {
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
			if st, err := os.Stat(filepath.Join(c, "square")); err == nil && st.IsDir() {
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

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixturesDir(t), "square", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
