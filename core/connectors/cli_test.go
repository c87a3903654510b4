package connectors_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/omni/omni/core/cli"
	"github.com/omni/omni/core/connectors"
)

func runCLI(t *testing.T, dataDir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(append([]string{"--data-dir", dataDir}, args...), &out, &errb, connectors.Extension(connectors.Options{Command: testCommand}))
	return code, out.String(), errb.String()
}

func TestConnectorCLI(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, dir, "connector", "enable", "nosuch"); code == 0 || !strings.Contains(stderr, `no connector named "nosuch" is installed (installed: `) {
		t.Fatalf("unknown connector: %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, dir, "connector", "enable", "example"); code == 0 || !strings.Contains(stderr, "required setting webhook_secret is missing") {
		t.Fatalf("missing required: %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, dir, "connector", "configure", "example", "colour=blue"); code == 0 || !strings.Contains(stderr, "colour is not a setting of example (settings: api_token, api_url, webhook_secret)") {
		t.Fatalf("unknown setting: %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, dir, "connector", "configure", "example", "api_url=not a url"); code == 0 || !strings.Contains(stderr, "api_url") {
		t.Fatalf("bad url: %d %s", code, stderr)
	}
	code, out, stderr := runCLI(t, dir, "connector", "configure", "example", "webhook_secret="+whSecret, "api_url=http://127.0.0.1:9")
	if code != 0 || !strings.Contains(out, "webhook_secret = ********") || strings.Contains(out, whSecret) {
		t.Fatalf("configure: %d %s %s", code, out, stderr)
	}
	if code, out, stderr := runCLI(t, dir, "connector", "enable", "example"); code != 0 || !strings.Contains(out, "example: enabled") {
		t.Fatalf("enable: %d %s %s", code, out, stderr)
	}
	if code, out, _ := runCLI(t, dir, "connector", "list"); code != 0 || !strings.Contains(out, "example") {
		t.Fatalf("list: %s", out)
	}
	if code, _, stderr := runCLI(t, dir, "connector", "backfill", "example", "--since", "yesterday"); code == 0 || !strings.Contains(stderr, `since "yesterday" is not a date`) {
		t.Fatalf("bad since: %s", stderr)
	}
	if code, out, stderr := runCLI(t, dir, "connector", "backfill", "example", "--since", "2025-01-01", "--no-wait"); code != 0 || !strings.Contains(out, "requested") {
		t.Fatalf("backfill request: %d %s %s", code, out, stderr)
	}
	if code, out, _ := runCLI(t, dir, "plugin", "list"); code != 0 || !strings.Contains(out, "example") || !strings.Contains(out, "1.0.0") {
		t.Fatalf("plugin list: %s", out)
	}
	// The secret is encrypted in the database file.
	b, _ := os.ReadFile(filepath.Join(dir, "data.db"))
	w, _ := os.ReadFile(filepath.Join(dir, "data.db-wal"))
	if bytes.Contains(b, []byte(whSecret)) || bytes.Contains(w, []byte(whSecret)) {
		t.Fatal("secret stored in plaintext")
	}
}

// `omni plugin new acme` produces a project that compiles and whose test
// (a real plugin subprocess under sdktest) passes.
func TestPluginNewScaffoldBuildsAndPasses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on a generated project")
	}
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	dir := filepath.Join(t.TempDir(), "acme")
	code, out, stderr := runCLI(t, t.TempDir(), "plugin", "new", "acme", "--dir", dir, "--omni-source", repo)
	if code != 0 {
		t.Fatalf("plugin new: %s %s", out, stderr)
	}
	for _, f := range []string{"go.mod", "main.go", "connector.go", "connector_test.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	res, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(res), "ok") {
		t.Fatalf("go test in the generated project: %v\n%s", err, res)
	}
	if code, _, stderr := runCLI(t, t.TempDir(), "plugin", "new", "Bad Name"); code == 0 || !strings.Contains(stderr, "must be lower-case") {
		t.Fatalf("bad name: %s", stderr)
	}
}
