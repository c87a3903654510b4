package store

import (
	"os/exec"
	"strings"
	"testing"
)

// modernc.org/libc does not follow semantic versioning: the SQLite driver
// works only with the libc version its own go.mod names. PocketBase's
// start-up warning about this is switched off (core/app), so this test
// keeps the two in step: raising modernc.org/sqlite without its libc, or
// the other way round, fails here.
func TestSQLiteDriverAndLibcAgree(t *testing.T) {
	// The versions every build of this module links (the test binary
	// carries no module list of its own).
	listed, err := exec.Command("go", "list", "-m", "-f", "{{.Path}} {{.Version}}", "modernc.org/sqlite", "modernc.org/libc").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	var driver, libc string
	for _, line := range strings.Split(strings.TrimSpace(string(listed)), "\n") {
		path, version, _ := strings.Cut(line, " ")
		switch path {
		case "modernc.org/sqlite":
			driver = version
		case "modernc.org/libc":
			libc = version
		}
	}
	if driver == "" || libc == "" {
		t.Fatalf("go list -m printed %q", listed)
	}
	// What the driver's own go.mod requires, as the go command reads it.
	graph, err := exec.Command("go", "mod", "graph").Output()
	if err != nil {
		t.Fatalf("go mod graph: %v", err)
	}
	want := ""
	for _, line := range strings.Split(string(graph), "\n") {
		if v, ok := strings.CutPrefix(line, "modernc.org/sqlite@"+driver+" modernc.org/libc@"); ok {
			want = v
		}
	}
	if want == "" {
		t.Fatalf("go mod graph names no modernc.org/libc that modernc.org/sqlite %s requires", driver)
	}
	if libc != want {
		t.Fatalf("built with modernc.org/libc %s, but modernc.org/sqlite %s wants %s: set it in go.mod", libc, driver, want)
	}
	t.Logf("modernc.org/sqlite %s with modernc.org/libc %s", driver, libc)
}
