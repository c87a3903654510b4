package builtin_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/omni/omni/plugins/example"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/sdk/sdktest"
)

// The real omni binary serves a built-in as `omni plugin run NAME`, and
// that entry point opens no database.
func TestOmniPluginRunServesBuiltin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the omni binary")
	}
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	// TEST_OMNI_BIN (set by .ci/run) is an omni built from this checkout.
	bin := os.Getenv("TEST_OMNI_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "omni")
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Dir = repo
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	h := sdktest.StartExec(t, exec.Command(bin, "--data-dir", dataDir, "plugin", "run", example.Name), sdk.Config{"webhook_secret": "s"})
	body := []byte(`{"id":"1","type":"order.placed","email":"a@example.com"}`)
	if r := h.Webhook(t, "POST", "/", map[string]string{example.SignatureHeader: example.Sign("s", body)}, body); r.Status != 200 || len(r.Events) != 1 {
		t.Fatalf("webhook through omni plugin run: %+v", r)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("plugin run touched the data dir: %v", err)
	}
	// Unknown built-in: a clear error.
	out, err := exec.Command(bin, "plugin", "run", "nosuch").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `no built-in connector named "nosuch"`) {
		t.Fatalf("unknown built-in: %v %s", err, out)
	}
}
