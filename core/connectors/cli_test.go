package connectors_test

import (
	"bytes"
	"io/fs"
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
	return runCLIWith(t, connectors.Options{}, dataDir, args...)
}

func runCLIWith(t *testing.T, opts connectors.Options, dataDir string, args ...string) (int, string, string) {
	t.Helper()
	opts.Command = testCommand
	var out, errb bytes.Buffer
	code := cli.Main(append([]string{"--data-dir", dataDir}, args...), &out, &errb, connectors.Extension(opts))
	return code, out.String(), errb.String()
}

func TestConnectorCLI(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, dir, "connector", "enable", "nosuch"); code != 2 || !strings.Contains(stderr, `no connector named "nosuch" is installed (installed: `) {
		t.Fatalf("unknown connector: %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, dir, "connector", "enable", "example"); code != 2 || !strings.Contains(stderr, "required setting webhook_secret is missing") {
		t.Fatalf("missing required: %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, dir, "connector", "configure", "example", "colour=blue"); code != 2 || !strings.Contains(stderr, "colour is not a setting of example (settings: api_token, api_url, webhook_secret)") {
		t.Fatalf("unknown setting: %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, dir, "connector", "configure", "example", "api_url=not a url"); code != 2 || !strings.Contains(stderr, "api_url") {
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
	if code, _, stderr := runCLI(t, dir, "connector", "backfill", "example", "--since", "yesterday"); code != 2 || !strings.Contains(stderr, `since "yesterday" is not a date`) {
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
	t.Setenv("OMNI_SOURCE", "")
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

// Without a checkout the scaffold writes the SDK it was given (the omni
// binary embeds it) into the project as its own module and points go.mod
// there, so nothing fetches the Omni module, which no proxy has. The full
// build from the real binary is TestPluginNewFromTheBinaryAlone (package
// main).
func TestPluginNewWritesTheSDKIntoTheProject(t *testing.T) {
	t.Setenv("OMNI_SOURCE", "")
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	sdkSource := os.DirFS(repo)
	dir := filepath.Join(t.TempDir(), "acme")
	code, out, stderr := runCLIWith(t, connectors.Options{SDKSource: sdkSource}, t.TempDir(), "plugin", "new", "acme", "--dir", dir, "--tidy=false")
	if code != 0 || !strings.Contains(out, filepath.Join(dir, connectors.SDKDir)) {
		t.Fatalf("plugin new: exit %d %s %s", code, out, stderr)
	}
	gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.Contains(string(gomod), "\nreplace github.com/omni/omni => ./omni-sdk\n") {
		t.Fatalf("go.mod does not replace the Omni module by ./omni-sdk:\n%s", gomod)
	}
	sdkMod, _ := os.ReadFile(filepath.Join(dir, "omni-sdk", "go.mod"))
	repoMod, _ := os.ReadFile(filepath.Join(repo, "go.mod"))
	if !strings.HasSuffix(string(sdkMod), string(repoMod)) || !strings.HasPrefix(string(sdkMod), "//") {
		t.Fatalf("omni-sdk/go.mod is not Omni's go.mod under a comment:\n%s", sdkMod)
	}
	// Every SDK source file, byte for byte; no tests.
	n := 0
	err := fs.WalkDir(sdkSource, "plugins/sdk", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		got, gotErr := os.ReadFile(filepath.Join(dir, "omni-sdk", filepath.FromSlash(path)))
		if strings.HasSuffix(path, "_test.go") {
			if gotErr == nil {
				t.Errorf("%s copied", path)
			}
			return nil
		}
		want, _ := fs.ReadFile(sdkSource, path)
		if gotErr != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: not copied as is (%v)", path, gotErr)
		}
		n++
		return nil
	})
	if err != nil || n < 5 {
		t.Fatalf("walked %d SDK files: %v", n, err)
	}

	// A binary without the SDK says what to pass instead, exit 2.
	code, _, stderr = runCLI(t, t.TempDir(), "plugin", "new", "acme", "--dir", filepath.Join(t.TempDir(), "acme"))
	if code != 2 || !strings.Contains(stderr, "pass --omni-source") {
		t.Fatalf("no SDK source: exit %d %q", code, stderr)
	}
}

// When go cannot fetch the SDK's dependencies, the scaffold says so and
// how to finish, instead of leaving the user with go's raw 403 / lookup
// error alone.
func TestPluginNewExplainsAFailedDownload(t *testing.T) {
	t.Setenv("OMNI_SOURCE", "")
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go is not on PATH")
	}
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	// Nothing cached, no proxy: every dependency download fails.
	t.Setenv("GOMODCACHE", t.TempDir())
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	dir := filepath.Join(t.TempDir(), "acme")
	code, _, stderr := runCLIWith(t, connectors.Options{SDKSource: os.DirFS(repo)}, t.TempDir(), "plugin", "new", "acme", "--dir", dir)
	last := strings.TrimSpace(stderr)
	last = last[strings.LastIndex(last, "\n")+1:]
	for _, want := range []string{"omni: go mod tidy in " + dir + " failed", "Go module proxy", "GOPROXY is off", "needs no download", "cd " + dir + " && go mod tidy"} {
		if code == 0 || !strings.Contains(last, want) {
			t.Fatalf("exit %d; last line %q lacks %q; stderr:\n%s", code, last, want, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "omni-sdk", "plugins", "sdk", "plugin.go")); err != nil {
		t.Fatalf("project not left in place: %v", err)
	}
}
