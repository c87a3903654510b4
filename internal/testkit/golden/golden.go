// Package golden compares what a test produced with a JSON file kept in
// the package's testdata/golden directory. The comparison is semantic
// (key order and spacing do not matter, values do, numbers digit for
// digit) and a mismatch is reported path by path; `go test -update`
// rewrites the files from what the code produces now.
package golden

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/golden with what the code produces")

// maxDiffs bounds the differences listed for one file.
const maxDiffs = 20

// Dir is where golden files live, relative to the test's package.
var Dir = filepath.Join("testdata", "golden")

// JSON compares got, as JSON, with Dir/<name>.json, or writes that file
// when the test runs with -update.
func JSON(t testing.TB, name string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatalf("golden %s: %v", name, err)
	}
	b = append(b, '\n')
	path := filepath.Join(Dir, name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run go test -run '%s' -update to write it)", name, err, t.Name())
	}
	if diffs := Diff(want, b); len(diffs) > 0 {
		t.Errorf("%s differs from %s (go test -update rewrites it):\n%s", name, path, strings.Join(diffs, "\n"))
	}
}

// Diff lists where two JSON documents differ, one line per path (at most
// maxDiffs), or nothing when they are equal. A document that does not
// parse is one line saying so.
func Diff(want, got []byte) []string {
	w, err := decode(want)
	if err != nil {
		return []string{"golden file is not JSON: " + err.Error()}
	}
	g, err := decode(got)
	if err != nil {
		return []string{"output is not JSON: " + err.Error()}
	}
	var out []string
	diff("$", w, g, &out)
	if len(out) > maxDiffs {
		out = append(out[:maxDiffs], fmt.Sprintf("… and %d more", len(out)-maxDiffs))
	}
	return out
}

// decode keeps numbers as written, so large ids are compared exactly.
func decode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func diff(path string, want, got any, out *[]string) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			p := path + "." + k
			wv, inW := w[k]
			gv, inG := g[k]
			switch {
			case !inG:
				*out = append(*out, fmt.Sprintf("%s: missing, want %s", p, show(wv)))
			case !inW:
				*out = append(*out, fmt.Sprintf("%s: unexpected %s", p, show(gv)))
			default:
				diff(p, wv, gv, out)
			}
		}
		return
	case []any:
		g, ok := got.([]any)
		if !ok {
			break
		}
		for i := 0; i < max(len(w), len(g)); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= len(g):
				*out = append(*out, fmt.Sprintf("%s: missing, want %s", p, show(w[i])))
			case i >= len(w):
				*out = append(*out, fmt.Sprintf("%s: unexpected %s", p, show(g[i])))
			default:
				diff(p, w[i], g[i], out)
			}
		}
		return
	}
	if !reflect.DeepEqual(want, got) {
		*out = append(*out, fmt.Sprintf("%s: got %s, want %s", path, show(got), show(want)))
	}
}

// show renders a value compactly for a diff line.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 120 {
		return string(b[:117]) + "…"
	}
	return string(b)
}
