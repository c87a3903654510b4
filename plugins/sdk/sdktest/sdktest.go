// Package sdktest runs a connector under a real go-plugin host inside a Go
// test: over a real gRPC connection in-process (Start) or as a real
// subprocess (StartExec, StartSelf), then posts webhooks, sends messages,
// runs backfills and records what the connector emitted and logged.
//
// The subprocess trick: make the test binary itself the plugin.
//
//	func TestMain(m *testing.M) { sdktest.MainOrServe(m, myconnector.New) }
//	func TestX(t *testing.T) { h := sdktest.StartSelf(t, sdk.Config{...}) ... }
package sdktest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/omni/omni/plugins/sdk"
)

// ServeEnv, when set to "1", makes MainOrServe serve the connector instead
// of running tests.
const ServeEnv = "OMNI_SDKTEST_SERVE"

// MainOrServe is a TestMain body: it serves newConnector() as a plugin when
// the test binary was started by StartSelf, and runs the tests otherwise.
func MainOrServe(m *testing.M, newConnector func() sdk.Connector) {
	if os.Getenv(ServeEnv) == "1" {
		sdk.Serve(newConnector())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Log is one line the connector logged through Host.Log.
type Log struct {
	Level   string
	Message string
	KeyVals []any
}

// Sent is one Send call and its outcome.
type Sent struct {
	Message *sdk.OutboundMessage
	Result  *sdk.SendResult
	Err     error
}

// Harness is a connector running under a test host.
type Harness struct {
	// Connector is the host's view of the plugin (calls go over gRPC).
	Connector sdk.Connector
	// Process is the plugin subprocess, nil when in-process.
	Process *plugin.Client

	mu      sync.Mutex
	emitted []sdk.Event
	events  []sdk.Event
	logs    []Log
	sent    []Sent
}

// Emit implements sdk.Host.
func (h *Harness) Emit(_ context.Context, evs []sdk.Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.emitted = append(h.emitted, evs...)
	h.events = append(h.events, evs...)
	return nil
}

// Log implements sdk.Host.
func (h *Harness) Log(level, msg string, keyvals ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, Log{Level: level, Message: msg, KeyVals: keyvals})
}

// Start serves c in-process over a real gRPC connection (with go-plugin's
// broker for the host callbacks) and configures it with cfg.
func Start(t testing.TB, c sdk.Connector, cfg sdk.Config) *Harness {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, sdk.PluginSet(c))
	// Close asks the server to stop through go-plugin's controller service;
	// stopping it here as well would race with that.
	t.Cleanup(func() { _ = client.Close() })
	raw, err := client.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatalf("sdktest: dispense: %v", err)
	}
	return configure(t, &Harness{Connector: raw.(sdk.Connector)}, cfg)
}

// StartExec launches cmd as a plugin subprocess (exactly as Omni does) and
// configures it with cfg.
func StartExec(t testing.TB, cmd *exec.Cmd, cfg sdk.Config) *Harness {
	t.Helper()
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginSet(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Info, Name: "plugin"}),
		StartTimeout:     30 * time.Second,
	})
	t.Cleanup(pc.Kill)
	rpc, err := pc.Client()
	if err != nil {
		t.Fatalf("sdktest: start plugin: %v", err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatalf("sdktest: dispense: %v", err)
	}
	return configure(t, &Harness{Connector: raw.(sdk.Connector), Process: pc}, cfg)
}

// StartSelf runs the test binary itself as the plugin (see MainOrServe).
func StartSelf(t testing.TB, cfg sdk.Config) *Harness {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = []string{ServeEnv + "=1"}
	return StartExec(t, cmd, cfg)
}

func configure(t testing.TB, h *Harness, cfg sdk.Config) *Harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.Connector.Describe(ctx); err != nil {
		t.Fatalf("sdktest: describe: %v", err)
	}
	if cfg != nil {
		if err := h.Connector.Configure(ctx, cfg, h); err != nil {
			t.Fatalf("sdktest: configure: %v", err)
		}
	}
	return h
}

// Webhook delivers one request to the connector's HandleWebhook and records
// the events it returned.
func (h *Harness) Webhook(t testing.TB, method, path string, headers map[string]string, body []byte) *sdk.WebhookResponse {
	t.Helper()
	req := &sdk.WebhookRequest{Method: method, Path: path, Headers: map[string][]string{}, Body: body, URL: "http://omni.test/webhooks/test" + path}
	for k, v := range headers {
		req.Headers[k] = []string{v}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := h.Connector.HandleWebhook(ctx, req)
	if err != nil {
		t.Fatalf("sdktest: webhook %s %s: %v", method, path, err)
	}
	h.mu.Lock()
	h.events = append(h.events, resp.Events...)
	h.mu.Unlock()
	return resp
}

// Send delivers msg through the connector and records the outcome.
func (h *Harness) Send(msg *sdk.OutboundMessage) (*sdk.SendResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := h.Connector.Send(ctx, msg)
	h.mu.Lock()
	h.sent = append(h.sent, Sent{Message: msg, Result: res, Err: err})
	h.mu.Unlock()
	return res, err
}

// Backfill runs a backfill to the end and returns every event and the
// progress reports, in order.
func (h *Harness) Backfill(since time.Time, cursor string) ([]sdk.Event, []sdk.Progress, error) {
	s := &sink{}
	err := h.Connector.Backfill(context.Background(), &sdk.BackfillRequest{Since: since, Cursor: cursor}, s)
	h.mu.Lock()
	h.events = append(h.events, s.events...)
	h.mu.Unlock()
	return s.events, s.progress, err
}

type sink struct {
	events   []sdk.Event
	progress []sdk.Progress
}

func (s *sink) Batch(_ context.Context, evs []sdk.Event, _ string, p sdk.Progress) error {
	s.events = append(s.events, evs...)
	s.progress = append(s.progress, p)
	return nil
}

// Events returns every event seen so far: returned from webhooks and
// backfills, and emitted through Host.Emit.
func (h *Harness) Events() []sdk.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sdk.Event(nil), h.events...)
}

// Emitted returns only the events the connector emitted through Host.Emit.
func (h *Harness) Emitted() []sdk.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sdk.Event(nil), h.emitted...)
}

// Logs returns what the connector logged through Host.Log.
func (h *Harness) Logs() []Log {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Log(nil), h.logs...)
}

// Sends returns every Send call made through the harness.
func (h *Harness) Sends() []Sent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Sent(nil), h.sent...)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		fmt.Fprint(os.Stderr, string(p))
	}
	return len(p), nil
}

var _ io.Writer = testWriter{}
