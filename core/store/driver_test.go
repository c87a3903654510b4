package store

import (
	"bufio"
	"encoding/json"
	"os"
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
	out, err := exec.Command("go", "mod", "download", "-json", "modernc.org/sqlite@"+driver).Output()
	if err != nil {
		t.Fatalf("go mod download modernc.org/sqlite@%s: %v", driver, err)
	}
	var mod struct{ GoMod string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.GoMod == "" {
		t.Fatalf("go mod download printed no go.mod path (%v): %s", err, out)
	}
	f, err := os.Open(mod.GoMod)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "modernc.org/libc" {
			want = fields[1]
		} else if len(fields) >= 3 && fields[0] == "require" && fields[1] == "modernc.org/libc" {
			want = fields[2]
		}
	}
	if want == "" {
		t.Fatalf("%s names no modernc.org/libc", mod.GoMod)
	}
	if libc != want {
		t.Fatalf("built with modernc.org/libc %s, but modernc.org/sqlite %s wants %s: set it in go.mod", libc, driver, want)
	}
	t.Logf("modernc.org/sqlite %s with modernc.org/libc %s", driver, libc)
}
