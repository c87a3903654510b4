package connectors_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/connectors"
)

// Third-party executables in plugins_dir are discovered and run; a
// sha256 pin that does not match stops the plugin from being executed.
func TestExternalPluginsAndChecksumPinning(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\n" + pluginModeEnv + "=example exec " + os.Args[0] + "\n"
	for _, n := range []string{"goodext", "omni-connector-pinned"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Not executable: ignored.
	_ = os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o644)
	sum := connectors.FileSHA256([]byte(script))
	e := start(t, connectors.Options{}, func(c *config.Config) {
		c.PluginsDir = dir
		c.Connectors = map[string]map[string]any{
			"goodext": {"sha256": sum},
			"pinned":  {"sha256": strings.Repeat("ab", 32), "webhook_secret": whSecret},
		}
	})
	if _, err := e.PB.FindFirstRecordByData("connectors", "name", "README"); err == nil {
		t.Fatal("non-executable file was discovered")
	}
	e.enable(t, "goodext", map[string]string{"webhook_secret": whSecret})
	e.waitState(t, "goodext", "running", 10*time.Second)
	body := []byte(`{"id":"ext-1","type":"order.placed","email":"x@example.com"}`)
	if st, b := e.Do(t, "POST", "/webhooks/goodext", body, map[string][]string{"X-Example-Signature": {signExample(body)}}); st != 200 {
		t.Fatalf("external webhook: %d %s", st, b)
	}
	// The config-file setting satisfies the required field.
	e.enable(t, "pinned", nil)
	e.waitState(t, "pinned", "failed", 10*time.Second)
	_, msg := e.state(t, "pinned")
	if !strings.Contains(msg, "checksum mismatch") || !strings.Contains(msg, "connectors.pinned.sha256") {
		t.Fatalf("pin mismatch message: %q", msg)
	}
}
