package connectors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/plugins/example"
	"github.com/omni/omni/plugins/sdk"
)

// pluginModeEnv makes the test binary act as a connector plugin.
const pluginModeEnv = "OMNI_CONNECTORS_TEST_PLUGIN"

// Built-in names used by the tests and what the test binary does for each.
var modes = map[string]string{
	"example":  "example",
	"oldproto": "v2",
	"exiter":   "exit",
	"hanger":   "hang",
	"leaky":    "leak",
	"offline":  "vendordown",
	"crashy":   "crash",
	"wordy":    "hugeerror",
}

func TestMain(m *testing.M) {
	switch os.Getenv(pluginModeEnv) {
	case "":
	case "example":
		sdk.Serve(example.New())
		os.Exit(0)
	case "v2":
		plugin.Serve(sdk.ServeConfig(example.New(), sdk.ProtocolVersion+1))
		os.Exit(0)
	case "exit":
		fmt.Fprintln(os.Stderr, "boom: license file /etc/acme.lic not found")
		os.Exit(3)
	case "hang":
		sdk.Serve(hanging{example.New()})
		os.Exit(0)
	case "leak":
		sdk.Serve(leaky{example.New()})
		os.Exit(0)
	case "vendordown":
		sdk.Serve(vendorDown{example.New()})
		os.Exit(0)
	case "crash":
		sdk.Serve(crashing{example.New()})
		os.Exit(0)
	case "hugeerror":
		sdk.Serve(wordy{example.New()})
		os.Exit(0)
	}
	for name := range modes {
		connectors.RegisterBuiltin(name, example.New)
	}
	os.Exit(m.Run())
}

// hanging never finishes a Send.
type hanging struct{ sdk.Connector }

func (hanging) Send(ctx context.Context, _ *sdk.OutboundMessage) (*sdk.SendResult, error) {
	select {}
}

// crashing dies in the middle of sending a message whose text is "crash",
// the way a connector with a bug that one message triggers does; other
// messages go out as usual.
type crashing struct{ sdk.Connector }

func (c crashing) Send(ctx context.Context, m *sdk.OutboundMessage) (*sdk.SendResult, error) {
	if m.Text == "crash" {
		os.Exit(2)
	}
	return c.Connector.Send(ctx, m)
}

// wordy refuses every message with a reason of 2 MB (a vendor's whole
// error page, say): more than the bus takes in one message.
type wordy struct{ sdk.Connector }

const wordyReasonBytes = 2 << 20

func (wordy) Send(context.Context, *sdk.OutboundMessage) (*sdk.SendResult, error) {
	return nil, sdk.Permanent("page", strings.Repeat("x", wordyReasonBytes))
}

// vendorDown cannot reach its vendor: every Health call fails the way an
// HTTP client does when the API is down. Webhooks and everything else work.
type vendorDown struct{ sdk.Connector }

const vendorDownError = "api.example.test: dial tcp 203.0.113.9:443: connect: connection refused"

func (vendorDown) Health(context.Context) error { return errors.New(vendorDownError) }

// leaky logs its secret through both log paths.
type leaky struct{ sdk.Connector }

func (l leaky) Configure(ctx context.Context, cfg sdk.Config, host sdk.Host) error {
	host.Log("info", "configured with "+cfg["webhook_secret"], "secret", cfg["webhook_secret"])
	fmt.Fprintln(os.Stderr, "stderr says "+cfg["webhook_secret"])
	return l.Connector.Configure(ctx, cfg, host)
}

func testCommand(name string) (*exec.Cmd, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{pluginModeEnv + "=" + modes[name]}
	return cmd, nil
}

// syncBuffer collects the server's logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a running Omni with the connector host and a superuser token.
type env struct {
	*omnitest.Server
	mod   *connectors.Module
	token string
	logs  *syncBuffer
	api   *fakeAPI
}

func start(t *testing.T, opts connectors.Options, configure func(*config.Config)) *env {
	t.Helper()
	opts.Command = testCommand
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.SyncInterval == 0 {
		opts.SyncInterval = 200 * time.Millisecond
	}
	mod := connectors.New(opts)
	logs := &syncBuffer{}
	s := omnitest.Start(t, omnitest.Options{
		Configure: configure,
		Modules:   func(*app.Omni) []app.Module { return []app.Module{mod} },
		Log:       logs,
	})
	coll, err := s.PB.FindCollectionByNameOrId(core.CollectionNameSuperusers)
	if err != nil {
		t.Fatal(err)
	}
	// A restart on the same data directory finds the superuser made before.
	su, err := s.PB.FindAuthRecordByEmail(coll, "root@example.com")
	if err != nil {
		su = core.NewRecord(coll)
		su.SetEmail("root@example.com")
		su.SetPassword("password-123456")
		if err := s.PB.Save(su); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := su.NewAuthToken()
	if err != nil {
		t.Fatal(err)
	}
	api := &fakeAPI{received: map[string]int{}, failed: map[string]int{}}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	api.url = srv.URL
	return &env{Server: s, mod: mod, token: tok, logs: logs, api: api}
}

func (e *env) call(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	st, b := e.Do(t, method, path, body, http.Header{"Authorization": {e.token}})
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return st, out
}

// enable configures and enables a connector through the API.
func (e *env) enable(t *testing.T, name string, cfg map[string]string) {
	t.Helper()
	st, out := e.call(t, "PATCH", "/api/v1/connectors/"+name, map[string]any{"config": cfg, "enabled": true})
	if st != 200 {
		t.Fatalf("enable %s: %d %v", name, st, out)
	}
}

func (e *env) state(t *testing.T, name string) (string, string) {
	t.Helper()
	st, out := e.call(t, "GET", "/api/v1/connectors/"+name, nil)
	if st != 200 {
		t.Fatalf("get %s: %d %v", name, st, out)
	}
	return fmt.Sprint(out["state"]), fmt.Sprint(out["last_error"])
}

func (e *env) waitState(t *testing.T, name, prefix string, timeout time.Duration) {
	t.Helper()
	omnitest.Eventually(t, timeout, func() bool {
		s, _ := e.state(t, name)
		return strings.HasPrefix(s, prefix)
	}, "%s to be %s", name, prefix)
}

// webhook posts a signed example webhook.
func (e *env) webhook(t *testing.T, path, secret string, body []byte) (int, []byte) {
	t.Helper()
	return e.Do(t, "POST", "/webhooks/example"+path, body, http.Header{example.SignatureHeader: {example.Sign(secret, body)}})
}

func (e *env) countWhere(t *testing.T, where string, args ...any) int {
	t.Helper()
	var n int
	q := fmt.Sprintf("SELECT COUNT(*) FROM events WHERE "+where, args...)
	if err := e.PB.DB().NewQuery(q).Row(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// fakeAPI is the example vendor's API: it records each message it
// accepted (by idempotency key) and pages history.
type fakeAPI struct {
	url      string
	mu       sync.Mutex
	received map[string]int
	failed   map[string]int
	// hold, while set, keeps every send waiting (held counts them), so a
	// test can kill a plugin in the middle of a send; released, a held
	// send is answered 503 unrecorded, as its sender is gone.
	hold chan struct{}
	held int
	// delay, when set, is how long each recorded send takes (a vendor's
	// round trip), so sends overlap.
	delay time.Duration
}

// holdSends makes sends wait until releaseSends.
func (f *fakeAPI) holdSends() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = make(chan struct{})
}

func (f *fakeAPI) releaseSends() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hold != nil {
		close(f.hold)
		f.hold = nil
	}
}

// inFlight reports how many sends are held and how many messages the
// vendor has recorded.
func (f *fakeAPI) inFlight() (held, recorded int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held, len(f.received)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/messages":
		var m sdk.OutboundMessage
		_ = json.NewDecoder(r.Body).Decode(&m)
		if m.To["phone"] == "+15550000000" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte("recipient blocked"))
			return
		}
		f.mu.Lock()
		if hold := f.hold; hold != nil {
			f.held++
			f.mu.Unlock()
			<-hold
			f.mu.Lock()
			f.held--
			f.mu.Unlock()
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		if strings.HasPrefix(key, "flaky-") && f.failed[key] == 0 {
			f.failed[key]++ // first attempt: a transient vendor error
			f.mu.Unlock()
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		f.received[key]++
		delay := f.delay
		f.mu.Unlock()
		time.Sleep(delay)
		_, _ = w.Write([]byte(`{"id":"prov-` + m.ID + `"}`))
	case "/events":
		cur := r.URL.Query().Get("cursor")
		next := map[string]string{"": "p2", "p2": "p3", "p3": ""}[cur]
		at := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"events":      []example.Payload{{ID: "hist1" + cur, Type: "order.placed", Email: "h1@example.com", OccurredAt: at}, {ID: "hist2" + cur, Type: "order.placed", Email: "h2@example.com", OccurredAt: at}},
			"next_cursor": next, "total": 6,
		})
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAPI) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.received[id]
}

func signExample(body []byte) string { return example.Sign(whSecret, body) }
