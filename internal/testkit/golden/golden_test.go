package golden_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omni/omni/internal/testkit/golden"
	"github.com/omni/omni/internal/testkit/outcome"
)

func TestDiffIgnoresLayoutAndNamesEachDifference(t *testing.T) {
	want := []byte(`{"id": "e-1", "total": 30, "items": [{"sku": "A"}, {"sku": "B"}], "gone": true, "big": 820982911946154508}`)
	same := []byte("{\n  \"big\": 820982911946154508, \"items\": [{\"sku\":\"A\"},{\"sku\":\"B\"}],\n \"gone\": true, \"total\": 30, \"id\": \"e-1\"}")
	if d := golden.Diff(want, same); len(d) != 0 {
		t.Fatalf("same document in another layout: %v", d)
	}
	got := []byte(`{"id": "e-1", "total": 31, "items": [{"sku": "A"}], "new": 1, "big": 820982911946154509}`)
	d := strings.Join(golden.Diff(want, got), "\n")
	for _, line := range []string{
		"$.total: got 31, want 30",
		`$.items[1]: missing, want {"sku":"B"}`,
		"$.gone: missing, want true",
		"$.new: unexpected 1",
		"$.big: got 820982911946154509, want 820982911946154508", // no float rounding
	} {
		if !strings.Contains(d, line) {
			t.Errorf("diff does not say %q:\n%s", line, d)
		}
	}
	if d := golden.Diff([]byte(`{"a":`), got); len(d) != 1 || !strings.Contains(d[0], "golden file is not JSON") {
		t.Fatalf("broken golden file: %v", d)
	}
}

// JSON fails a test whose output differs, and one whose file is missing,
// and passes one that matches.
func TestJSONComparesWithTheFile(t *testing.T) {
	dir := t.TempDir()
	old := golden.Dir
	golden.Dir = dir
	t.Cleanup(func() { golden.Dir = old })
	if err := os.WriteFile(filepath.Join(dir, "ev.json"), []byte(`[{"type": "order.placed", "total": 30}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	type ev struct {
		Type  string `json:"type"`
		Total int    `json:"total"`
	}
	cases := []struct {
		name string
		got  any
		fail string
	}{
		{"ev", []ev{{"order.placed", 30}}, ""},
		{"ev", []ev{{"order.placed", 31}}, "$[0].total: got 31, want 30"},
		{"nothing", []ev{}, "-update to write it"},
	}
	for _, c := range cases {
		o := outcome.Run(t, func(tb testing.TB) { golden.JSON(tb, c.name, c.got) })
		if c.fail == "" && o.Failed != "" || c.fail != "" && !strings.Contains(o.Failed, c.fail) {
			t.Errorf("%s %v: reported %q, want %q", c.name, c.got, o.Failed, c.fail)
		}
	}
}
