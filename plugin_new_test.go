package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
)

// The README's promise, "write your own in 15 minutes: omni plugin new
// acme", from the binary alone: in a directory outside any checkout, with
// no OMNI_SOURCE, the generated project builds and passes its tests (the
// Omni module is on no proxy; only grpc, go-plugin, … come from GOPROXY as
// the environment has it), and the plugin it builds runs under omni serve.
func TestPluginNewFromTheBinaryAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests a generated project")
	}
	work := t.TempDir()
	for d := work; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			t.Fatalf("%s is inside the Go module at %s: set TMPDIR outside any checkout", work, d)
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	goEnv := append(cleanEnv(), "GOFLAGS=-mod=mod", "GOWORK=off")
	run := func(dir, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, goEnv
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out)
		}
		return string(out)
	}

	out := run(work, omniBin, "plugin", "new", "acme")
	if !strings.Contains(out, "created connector acme in acme") || !strings.Contains(out, "cd acme && go test ./...") {
		t.Fatalf("plugin new:\n%s", out)
	}
	project := filepath.Join(work, "acme")
	run(project, "go", "build", "./...")
	if out := run(project, "go", "test", "-count=1", "./..."); !strings.Contains(out, "ok  \texample.com/omni-connector-acme") {
		t.Fatalf("go test in the generated project:\n%s", out)
	}

	// The SDK's dependencies are at the versions Omni's go.mod uses.
	want := requires(t, "go.mod")
	got := requires(t, filepath.Join(project, "go.mod"))
	if len(got) < 3 {
		t.Fatalf("generated go.mod requires only %v", got)
	}
	for mod, v := range got {
		if mod != "github.com/omni/omni" && want[mod] != v {
			t.Errorf("generated go.mod requires %s %s, Omni uses %q", mod, v, want[mod])
		}
	}

	// Installed into plugins_dir, it runs under omni serve and handles a
	// signed webhook with the code the scaffold wrote.
	pluginsDir := filepath.Join(work, "plugins")
	run(project, "go", "build", "-o", filepath.Join(pluginsDir, "acme"), ".")
	dataDir := filepath.Join(work, "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"OMNI_PLUGINS_DIR=" + pluginsDir}
	if _, errOut, code := omni(t, dataDir, env, "connector", "configure", "acme", "webhook_secret=s3cret", "api_url=http://127.0.0.1:9"); code != 0 {
		t.Fatalf("connector configure acme: exit %d %s", code, errOut)
	}
	if _, errOut, code := omni(t, dataDir, env, "connector", "enable", "acme"); code != 0 {
		t.Fatalf("connector enable acme: exit %d %s", code, errOut)
	}
	addr := freeAddr(t)
	s := startServerWith(t, dataDir, addr, env, "serve", "--http", addr, "--data-dir", dataDir)
	body := []byte(`{"id":"1","type":"order.placed","email":"ann@example.com"}`)
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write(body)
	webhook := func(sig string) int {
		req, _ := http.NewRequest("POST", "http://"+addr+"/webhooks/acme", bytes.NewReader(body))
		req.Header.Set("X-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// 503 until the plugin has started.
	var status int
	omnitest.Eventually(t, 60*time.Second, func() bool { status = webhook(hex.EncodeToString(mac.Sum(nil))); return status != 503 }, "the acme plugin to start")
	if status != 200 {
		t.Fatalf("signed webhook to the acme plugin: %d; logs:\n%s", status, s.logs)
	}
	if status := webhook("wrong"); status != 401 {
		t.Fatalf("badly signed webhook: %d", status)
	}
}

// requires reads the module requirements of a go.mod file.
func requires(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reqs := map[string]string{}
	inBlock := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "//")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case fields[0] == "require" && len(fields) == 2 && fields[1] == "(":
			inBlock = true
		case inBlock && fields[0] == ")":
			inBlock = false
		case inBlock && len(fields) == 2:
			reqs[fields[0]] = fields[1]
		case fields[0] == "require" && len(fields) == 3:
			reqs[fields[1]] = fields[2]
		}
	}
	return reqs
}
