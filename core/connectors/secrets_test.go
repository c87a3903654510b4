package connectors_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/cli"
	"github.com/omni/omni/core/connectors"
)

// startWithSecret runs Omni on dataDir and stores one encrypted setting.
func startWithSecret(t *testing.T, dataDir string) *env {
	t.Helper()
	e := start(t, connectors.Options{}, func(c *config.Config) { c.DataDir = dataDir })
	if st, out := e.call(t, "PATCH", "/api/v1/connectors/example", map[string]any{"config": map[string]string{"webhook_secret": "whsec-plain-123"}}); st != 200 {
		t.Fatalf("configure: %d %v", st, out)
	}
	var cfg string
	if err := e.PB.DB().NewQuery("SELECT config FROM connectors WHERE name = 'example'").Row(&cfg); err != nil || !strings.Contains(cfg, "enc:v1:") {
		t.Fatalf("webhook_secret not stored encrypted: %q %v", cfg, err)
	}
	return e
}

func readKey(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		t.Fatalf("key file %s: %q", path, b)
	}
	return key
}

// A leaked backup must not decrypt the connector secrets in it: the key
// lives outside data_dir, which is all PocketBase's backup zips.
func TestBackupLeavesTheKeyOut(t *testing.T) {
	e := startWithSecret(t, t.TempDir())
	keyPath := e.Config.SecretKeyPath()
	key := readKey(t, keyPath)
	if rel, _ := filepath.Rel(e.Config.DataDir, keyPath); !strings.HasPrefix(rel, "..") {
		t.Fatalf("key %s is inside data_dir %s", keyPath, e.Config.DataDir)
	}
	if _, err := os.Stat(filepath.Join(e.Config.DataDir, connectors.LegacyKeyFile)); err == nil {
		t.Fatal("a key file is still in data_dir")
	}

	if err := e.PB.CreateBackup(context.Background(), "leak.zip"); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(filepath.Join(e.PB.DataDir(), "backups", "leak.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var sealedInBackup bool
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, ".key") {
			t.Errorf("backup holds %s", f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if bytes.Contains(b, key) || bytes.Contains(b, []byte(hex.EncodeToString(key))) {
			t.Errorf("backup entry %s holds the key", f.Name)
		}
		if bytes.Contains(b, []byte("whsec-plain-123")) {
			t.Errorf("backup entry %s holds the secret in plain text", f.Name)
		}
		sealedInBackup = sealedInBackup || (f.Name == "data.db" && bytes.Contains(b, []byte("enc:v1:")))
	}
	if !sealedInBackup {
		t.Fatal("data.db in the backup should hold the encrypted setting (else this test proves nothing)")
	}
}

// Data dirs from before the key moved out keep working: the key is moved
// out once, and the encrypted settings still open.
func TestLegacyKeyMovesOutOfDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	e := startWithSecret(t, dir)
	keyPath := e.Config.SecretKeyPath()
	key := readKey(t, keyPath)
	e.Stop()
	legacy := filepath.Join(dir, connectors.LegacyKeyFile)
	if err := os.Rename(keyPath, legacy); err != nil {
		t.Fatal(err)
	}

	logs := &syncBuffer{}
	omnitest.Start(t, omnitest.Options{DataDir: dir, Log: logs, Modules: func(*app.Omni) []app.Module {
		return []app.Module{connectors.New(connectors.Options{Command: testCommand})}
	}})
	if _, err := os.Stat(legacy); err == nil {
		t.Error("the old key file is still in data_dir")
	}
	if got := readKey(t, keyPath); !bytes.Equal(got, key) {
		t.Error("the moved key differs from the old one")
	}
	if !strings.Contains(logs.String(), "moved the key") {
		t.Errorf("the move is not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), hex.EncodeToString(key)) {
		t.Error("the key is in the log")
	}
}

// serve runs `omni serve` through the real CLI; it returns only when start
// fails, which is what these tests expect.
func serve(t *testing.T, dir string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Main([]string{"serve", "--data-dir", dir, "--http", "127.0.0.1:0"}, &stdout, &stderr, connectors.Extension(connectors.Options{}))
	return code, stderr.String()
}

// The data restored on another machine without its key (a backup never
// has it): Omni stops at start with one line saying which key is missing.
func TestStartWithoutTheKeySaysWhich(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	e := startWithSecret(t, dir)
	keyPath := e.Config.SecretKeyPath()
	e.Stop()
	if err := os.Rename(keyPath, keyPath+".elsewhere"); err != nil {
		t.Fatal(err)
	}

	code, stderr := serve(t, dir)
	lastLine := stderr[strings.LastIndex(strings.TrimSpace(stderr), "\n")+1:]
	if code != cli.ExitConfig || !strings.Contains(lastLine, "secret_key_file") || !strings.Contains(lastLine, "OMNI_SECRET_KEY") || !strings.Contains(lastLine, keyPath) {
		t.Fatalf("start without the key: exit %d, last line %q", code, lastLine)
	}
	if _, err := os.Stat(keyPath); err == nil {
		t.Fatal("a new key was generated over data it cannot decrypt")
	}

	// Another install's key is refused the same way.
	if err := os.WriteFile(keyPath, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stderr = serve(t, dir)
	if code != cli.ExitConfig || !strings.Contains(stderr, "does not decrypt") || !strings.Contains(stderr, "secret_key_file") {
		t.Fatalf("start with a wrong key: exit %d %s", code, stderr)
	}
	t.Setenv("OMNI_SECRET_KEY", "not-the-key")
	code, stderr = serve(t, dir)
	if code != cli.ExitConfig || !strings.Contains(stderr, "secret_key (OMNI_SECRET_KEY) does not decrypt") {
		t.Fatalf("start with a wrong OMNI_SECRET_KEY: exit %d %s", code, stderr)
	}
	os.Unsetenv("OMNI_SECRET_KEY")

	// The right key back in place opens them.
	if err := os.Rename(keyPath+".elsewhere", keyPath); err != nil {
		t.Fatal(err)
	}
	o := openApp(t, dir)
	if _, err := connectors.OpenSealer(o.PB, o.Config, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("with the right key: %v", err)
	}
	o.PB.ResetBootstrapState()

	// A key lost for good: forget the encrypted settings, start afresh.
	os.Remove(keyPath)
	var out, errOut bytes.Buffer
	if code := cli.Main([]string{"connector", "forget-secrets", "--data-dir", dir}, &out, &errOut, connectors.Extension(connectors.Options{})); code == 0 || !strings.Contains(errOut.String(), "--yes") {
		t.Errorf("forget-secrets without --yes: %d %s", code, errOut.String())
	}
	if code := cli.Main([]string{"connector", "forget-secrets", "--yes", "--data-dir", dir}, &out, &errOut, connectors.Extension(connectors.Options{})); code != 0 || !strings.Contains(out.String(), "removed 1 ") {
		t.Fatalf("forget-secrets: %d %s %s", code, out.String(), errOut.String())
	}
	o = openApp(t, dir)
	defer o.PB.ResetBootstrapState()
	if _, err := connectors.OpenSealer(o.PB, o.Config, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("after forget-secrets: %v", err)
	}
	readKey(t, keyPath) // a fresh key
}

func openApp(t *testing.T, dir string) *app.Omni {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dir
	o := app.New(cfg, slog.New(slog.DiscardHandler))
	if err := o.Open(); err != nil {
		t.Fatal(err)
	}
	return o
}
