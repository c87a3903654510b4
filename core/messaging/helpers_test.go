package messaging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/sdk/sdktest"
)

// The test binary doubles as the "recorder" connector subprocess.
func TestMain(m *testing.M) { sdktest.MainOrServe(m, newRecorder) }

const recorderName = "recorder"

// recorder is a connector that sends email, SMS and WhatsApp by posting
// each OutboundMessage to api_url (the test's vendor), so the test sees
// exactly what the connector received.
type recorder struct {
	mu  sync.Mutex
	url string
}

func newRecorder() sdk.Connector { return &recorder{} }

func (r *recorder) Describe(context.Context) (*sdk.Description, error) {
	return &sdk.Description{Name: recorderName, Version: "1", DisplayName: "Recorder",
		Config:       []sdk.ConfigField{{Name: "api_url", Label: "API URL", Type: "url", Required: true}},
		Capabilities: []string{sdk.CapSendPrefix + "email", sdk.CapSendPrefix + "sms", sdk.CapSendPrefix + "whatsapp"}}, nil
}

func (r *recorder) Configure(_ context.Context, cfg sdk.Config, _ sdk.Host) error {
	r.mu.Lock()
	r.url = cfg["api_url"]
	r.mu.Unlock()
	return nil
}

func (r *recorder) HandleWebhook(context.Context, *sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	return &sdk.WebhookResponse{Status: http.StatusNotFound}, nil
}

func (r *recorder) Send(ctx context.Context, msg *sdk.OutboundMessage) (*sdk.SendResult, error) {
	r.mu.Lock()
	u := r.url
	r.mu.Unlock()
	b, _ := json.Marshal(msg)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, sdk.Retryable("vendor unreachable: " + err.Error())
	}
	resp.Body.Close()
	return &sdk.SendResult{ProviderMessageID: "prov-" + msg.ID}, nil
}

func (r *recorder) Backfill(context.Context, *sdk.BackfillRequest, sdk.BackfillSink) error {
	return nil
}
func (r *recorder) Health(context.Context) error { return nil }

// vendor collects what the recorder connector sent.
type vendor struct {
	mu   sync.Mutex
	got  map[string]sdk.OutboundMessage
	srv  *httptest.Server
	fail bool
}

func newVendor(t *testing.T) *vendor {
	v := &vendor{got: map[string]sdk.OutboundMessage{}}
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m sdk.OutboundMessage
		_ = json.NewDecoder(r.Body).Decode(&m)
		v.mu.Lock()
		v.got[m.ID] = m
		v.mu.Unlock()
	}))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *vendor) message(id string) (sdk.OutboundMessage, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	m, ok := v.got[id]
	return m, ok
}

func (v *vendor) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.got)
}

// clock is the gate's injectable time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

type env struct {
	*omnitest.Server
	vendor *vendor
	owner  string
	agent  string
}

type envOptions struct {
	dataDir   string
	clock     *clock
	configure func(*config.Config)
	vendor    *vendor
}

// start boots Omni with profiles, the connector host (running this binary
// as the recorder connector) and the messaging gate.
func start(t *testing.T, o envOptions) *env {
	t.Helper()
	connectors.RegisterBuiltin(recorderName, newRecorder)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host := connectors.New(connectors.Options{
		Command: func(string) (*exec.Cmd, error) {
			cmd := exec.Command(self)
			cmd.Env = []string{sdktest.ServeEnv + "=1"}
			return cmd, nil
		},
		MinBackoff:   100 * time.Millisecond,
		SyncInterval: 100 * time.Millisecond,
	})
	if o.vendor == nil {
		o.vendor = newVendor(t)
	}
	if o.clock == nil {
		o.clock = &clock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	}
	msg := messaging.New(messaging.Options{Now: o.clock.Now, Tick: 50 * time.Millisecond})
	s := omnitest.Start(t, omnitest.Options{
		DataDir: o.dataDir,
		Configure: func(c *config.Config) {
			c.Connectors = map[string]map[string]any{recorderName: {"api_url": o.vendor.srv.URL}}
			c.PublicURL = "https://shop.omni-shop.dev"
			if o.configure != nil {
				o.configure(c)
			}
		},
		Modules: func(*app.Omni) []app.Module {
			return []app.Module{profiles.New(profiles.Options{}), msg, host}
		},
	})
	return &env{Server: s, vendor: o.vendor}
}

func (e *env) enableRecorder(t *testing.T) {
	t.Helper()
	rec, err := e.PB.FindFirstRecordByData(connectors.Collection, "name", recorderName)
	if err != nil {
		t.Fatal(err)
	}
	rec.Set("enabled", true)
	if err := connectors.SaveSettings(e.PB, rec); err != nil {
		t.Fatal(err)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool {
		r, err := e.PB.FindFirstRecordByData(connectors.Collection, "name", recorderName)
		return err == nil && r.GetString("state") == connectors.StateRunning
	}, "recorder plugin running")
}

// customer creates a profile with an email and a phone and returns its id.
func (e *env) customer(t *testing.T, key string) string {
	t.Helper()
	email := key + "@omni-shop.dev"
	code, body := e.Track(t, "/v1/identify", map[string]any{"userId": "u-" + key, "messageId": "id-" + key,
		"traits": map[string]any{"email": email, "phone": "+44 7700 900" + fmt.Sprintf("%03d", len(key)*7%1000), "first_name": "Ann"}})
	if code != 200 {
		t.Fatalf("identify: %d %s", code, body)
	}
	var id string
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return e.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind='email' AND value={:v}").Bind(dbx.Params{"v": email}).Row(&id) == nil && id != ""
	}, "profile of %s", email)
	return id
}

// consent records a consent change through the profiles API.
func (e *env) consent(t *testing.T, profile, channel, status string) {
	t.Helper()
	code, body := e.Do(t, "POST", "/api/v1/profiles/"+profile+"/consent",
		map[string]any{"channel": channel, "status": status, "reason": "asked in the shop"}, omnitest.Auth(e.owner))
	if code != 200 {
		t.Fatalf("consent: %d %s", code, body)
	}
}

type sendReply struct {
	ID            string `json:"id"`
	Status        any    `json:"status"`
	MessageStatus string `json:"message_status"`
	Channel       string `json:"channel"`
	Reason        string `json:"reason"`
	SendAt        string `json:"send_at"`
	Message       string `json:"message"`
	Attempts      []struct {
		Channel, Outcome, Reason string
	} `json:"attempts"`
}

func (e *env) send(t *testing.T, token string, body map[string]any) (int, sendReply) {
	t.Helper()
	code, raw := e.Do(t, "POST", "/api/v1/messages", body, omnitest.Auth(token))
	var r sendReply
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("reply %d not JSON: %s", code, raw)
	}
	return code, r
}

// row reads one ledger row.
type ledgerRow struct {
	Status     string `db:"status"`
	Channel    string `db:"channel"`
	Reason     string `db:"reason"`
	To         string `db:"to"`
	ProviderID string `db:"provider_id"`
	Attempts   string `db:"attempts"`
	SendAt     string `db:"send_at"`
	SentAt     string `db:"sent_at"`
	ReadAt     string `db:"read_at"`
}

func (e *env) row(t *testing.T, id string) ledgerRow {
	t.Helper()
	var r ledgerRow
	if err := e.PB.DB().NewQuery(`SELECT status, channel, reason, "to", provider_id, attempts, send_at, sent_at, read_at FROM messages WHERE id={:id}`).
		Bind(dbx.Params{"id": id}).One(&r); err != nil {
		t.Fatalf("ledger row %s: %v", id, err)
	}
	return r
}

func (e *env) waitStatus(t *testing.T, id, status string) {
	t.Helper()
	omnitest.Eventually(t, 60*time.Second, func() bool { return e.row(t, id).Status == status }, "message %s to be %s", id, status)
}

// emit stores a connector's status (or inbound) event.
func (e *env) emit(t *testing.T, ev *events.Event) {
	t.Helper()
	now := time.Now().UTC()
	ev.Source, ev.OccurredAt, ev.ReceivedAt = recorderName, now, now
	if err := ev.Validate(now); err != nil {
		t.Fatal(err)
	}
	for _, err := range ingest.Publish(context.Background(), e.Bus, []*events.Event{ev}) {
		if err != nil {
			t.Fatal(err)
		}
	}
}
