package connectors_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/plugins/example"
)

// A hung plugin (SIGSTOP) costs a webhook at most the webhook deadline,
// which is shorter than Shopify's 5 s, and is answered 503 with
// Retry-After; the process misses its liveness pings and is killed and
// replaced by a new one that serves again.
func TestHungPluginIsReplaced(t *testing.T) {
	e := start(t, connectors.Options{}, nil)
	opts := e.mod.Options()
	if opts.WebhookTimeout > 4*time.Second {
		t.Fatalf("webhook deadline %s: vendors give up at 5s", opts.WebhookTimeout)
	}
	if budget := opts.LivenessInterval + time.Duration(opts.LivenessMisses)*opts.LivenessTimeout; budget > 8*time.Second {
		t.Fatalf("a hung plugin is detected only after %s; it must be replaced within 10s", budget)
	}
	e.enable(t, "example", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url})
	e.waitState(t, "example", "running", 10*time.Second)
	// Stop the process that serves now. On a loaded machine the host may
	// still replace a slow-starting plugin right after "running"; stopping
	// such a retired process would test nothing, so stop again until the
	// stopped one is the current one.
	var pid int
	for try := 0; ; try++ {
		pid = e.mod.PID("example")
		if pid == 0 {
			t.Fatal("no plugin pid")
		}
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped := pid
		t.Cleanup(func() {
			_ = syscall.Kill(stopped, syscall.SIGCONT)
			_ = syscall.Kill(stopped, syscall.SIGKILL)
		})
		// kill returns once the signal is queued; wait until the kernel
		// shows the process stopped, or a request could still be served.
		omnitest.Eventually(t, 10*time.Second, func() bool { return processState(pid) == 'T' }, "process %d to stop", pid)
		if e.mod.PID("example") == pid {
			break
		}
		if try == 5 {
			t.Fatal("the plugin kept being replaced before it could be stopped")
		}
		t.Logf("plugin %d was replaced by %d before the test stopped it; stopping the new one", pid, e.mod.PID("example"))
		_ = syscall.Kill(pid, syscall.SIGCONT)
		e.waitState(t, "example", "running", 10*time.Second)
	}

	body := []byte(`{"id":"while-hung","type":"order.placed","email":"hung@example.com"}`)
	req, _ := http.NewRequest("POST", e.URL+"/webhooks/example", strings.NewReader(string(body)))
	req.Header.Set(example.SignatureHeader, signExample(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("webhook to a hung plugin (stopped pid %d, current pid %d): %d, Retry-After %q; want 503 with Retry-After; logs:\n%s",
			pid, e.mod.PID("example"), resp.StatusCode, resp.Header.Get("Retry-After"), e.logs)
	}

	omnitest.Eventually(t, 30*time.Second, func() bool {
		p := e.mod.PID("example")
		s, _ := e.state(t, "example")
		return p != 0 && p != pid && s == "running"
	}, "a new plugin process to replace the hung one")
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("the hung process %d is still there", pid)
	}
	if st, b := e.webhook(t, "", whSecret, body); st != 200 {
		t.Fatalf("webhook after the restart: %d %s", st, b)
	}
	_, last := e.state(t, "example")
	if !strings.Contains(last, "stopped answering") {
		t.Fatalf("last_error should say why it was restarted: %q", last)
	}
}

// With the vendor's API unreachable the connector keeps running (same
// process, no restart) and says so as its vendor state, in the API and in
// health, with the error.
func TestVendorOutageIsNotAPluginFailure(t *testing.T) {
	e := start(t, connectors.Options{HealthInterval: 50 * time.Millisecond}, nil)
	e.enable(t, "offline", map[string]string{"webhook_secret": whSecret, "api_url": e.api.url})
	e.waitState(t, "offline", "running", 10*time.Second)
	pid := e.mod.PID("offline")
	// Before the fix three failed health checks restarted the plugin.
	omnitest.Eventually(t, 20*time.Second, func() bool { return e.mod.VendorChecks("offline") >= 6 }, "six vendor checks")

	st, out := e.call(t, "GET", "/api/v1/connectors/offline", nil)
	if st != 200 || out["state"] != "running" || out["vendor"] != "unreachable" ||
		!strings.Contains(fmt.Sprint(out["vendor_error"]), "connection refused") || out["restarts"] != float64(0) {
		t.Fatalf("connector view: %d %v", st, out)
	}
	if p := e.mod.PID("offline"); p != pid {
		t.Fatalf("plugin restarted for a vendor outage: pid %d → %d", pid, p)
	}
	_, health := e.call(t, "GET", "/api/v1/health", nil)
	comp := fmt.Sprint(health["connectors"])
	if !strings.Contains(comp, "degraded:true") || !strings.Contains(comp, "state:running") ||
		!strings.Contains(comp, "vendor:unreachable") || !strings.Contains(comp, "vendor_error:"+vendorDownError) {
		t.Fatalf("health: %s", comp)
	}
	if health["status"] != "degraded" || !strings.Contains(fmt.Sprint(health["reasons"]), "offline's vendor API is unreachable") {
		t.Fatalf("health status %v, reasons %v", health["status"], health["reasons"])
	}
	// Webhooks keep working meanwhile.
	body := []byte(`{"id":"during-outage","type":"order.placed","email":"o@example.com"}`)
	if st, b := e.Do(t, "POST", "/webhooks/offline", body, http.Header{example.SignatureHeader: {signExample(body)}}); st != 200 {
		t.Fatalf("webhook during the vendor outage: %d %s", st, b)
	}
}

// processState is the state letter of a process in /proc/PID/stat ('T'
// when stopped), or 0 when it cannot be read.
func processState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}
