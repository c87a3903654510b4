package connectors

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/omni/omni/core/app"
	"github.com/spf13/cobra"
)

// ModulePath is Omni's Go module path.
const ModulePath = "github.com/omni/omni"

func newCmd(env *app.Env) *cobra.Command {
	var dir, omniSrc string
	var tidy bool
	c := &cobra.Command{
		Use:   "new NAME",
		Short: "Create a third-party connector project (webhook handler, send handler, tests)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			name := args[0]
			if !validName(name) {
				return fmt.Errorf("connector name %q must be lower-case letters, digits, - or _, starting with a letter", name)
			}
			if dir == "" {
				dir = name
			}
			if omniSrc == "" {
				omniSrc = os.Getenv("OMNI_SOURCE")
			}
			if err := Scaffold(dir, name, omniSrc); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "created connector %s in %s\n", name, dir)
			if tidy {
				if _, err := exec.LookPath("go"); err == nil {
					cmd := exec.Command("go", "mod", "tidy")
					cmd.Dir = dir
					cmd.Stdout, cmd.Stderr = env.Stderr, env.Stderr
					if err := cmd.Run(); err != nil {
						return fmt.Errorf("go mod tidy in %s: %w", dir, err)
					}
				}
			}
			fmt.Fprintf(env.Stdout, "next:\n  cd %s && go test ./...\n  go build -o %s/%s .   # install it into plugins_dir\n", dir, "<plugins_dir>", name)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory to create (default: ./NAME)")
	c.Flags().StringVar(&omniSrc, "omni-source", "", "path to an Omni source checkout to build against (adds a replace directive; default $OMNI_SOURCE)")
	c.Flags().BoolVar(&tidy, "tidy", true, "run go mod tidy in the new project")
	return c
}

// Scaffold writes a connector project named name into dir. With omniSrc,
// go.mod replaces the Omni module by that checkout (offline builds).
func Scaffold(dir, name, omniSrc string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s already exists and is not empty", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data := map[string]string{
		"Name":     name,
		"Ident":    strings.NewReplacer("-", "_").Replace(name),
		"Module":   "example.com/omni-connector-" + name,
		"Omni":     ModulePath,
		"OmniSrc":  "",
		"Title":    strings.ToUpper(name[:1]) + name[1:],
		"GoSumSrc": "",
	}
	if omniSrc != "" {
		abs, err := filepath.Abs(omniSrc)
		if err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(abs, "go.mod")); err != nil {
			return fmt.Errorf("--omni-source %s: no go.mod there", abs)
		}
		data["OmniSrc"] = abs
	}
	for file, tmpl := range scaffoldFiles {
		var buf bytes.Buffer
		if err := template.Must(template.New(file).Delims("[[", "]]").Parse(tmpl)).Execute(&buf, data); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, file), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	// Omni's own go.sum covers every module the SDK needs, so the project
	// builds without fetching anything.
	if data["OmniSrc"] != "" {
		if b, err := os.ReadFile(filepath.Join(data["OmniSrc"], "go.sum")); err == nil {
			if err := os.WriteFile(filepath.Join(dir, "go.sum"), b, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

var scaffoldFiles = map[string]string{
	"go.mod": `module [[.Module]]

go 1.26.0

require [[.Omni]] v0.0.0-00010101000000-000000000000
[[if .OmniSrc]]
replace [[.Omni]] => [[.OmniSrc]]
[[end]]`,

	"main.go": `// Command omni-connector-[[.Name]] is an Omni connector. Build it into
// Omni's plugins_dir; Omni starts it, talks to it over gRPC and restarts
// it if it dies.
package main

import "[[.Omni]]/plugins/sdk"

func main() { sdk.Serve(New()) }
`,

	"connector.go": `package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"[[.Omni]]/plugins/sdk"
)

// Connector talks to the [[.Title]] API.
type Connector struct {
	mu   sync.RWMutex
	cfg  sdk.Config
	host sdk.Host
	http *http.Client
}

// New returns an unconfigured connector.
func New() sdk.Connector { return &Connector{http: &http.Client{Timeout: 10 * time.Second}} }

func (c *Connector) Describe(context.Context) (*sdk.Description, error) {
	return &sdk.Description{
		Name:        "[[.Name]]",
		Version:     "0.1.0",
		DisplayName: "[[.Title]]",
		Config: []sdk.ConfigField{
			{Name: "webhook_secret", Label: "Webhook signing secret", Type: "string", Required: true, Secret: true},
			{Name: "api_url", Label: "API URL", Type: "url", Required: true},
			{Name: "api_key", Label: "API key", Type: "string", Secret: true},
		},
		Capabilities: []string{sdk.CapWebhook, sdk.CapSendPrefix + "sms"},
	}, nil
}

func (c *Connector) Configure(_ context.Context, cfg sdk.Config, host sdk.Host) error {
	for _, k := range []string{"webhook_secret", "api_url"} {
		if cfg[k] == "" {
			return &sdk.ConfigError{Field: k, Problem: "is required"}
		}
	}
	c.mu.Lock()
	c.cfg, c.host = cfg, host
	c.mu.Unlock()
	return nil
}

func (c *Connector) config() sdk.Config {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cfg
}

// Sign is how [[.Title]] signs webhooks: hex HMAC-SHA256 of the body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// HandleWebhook verifies the signature and turns the payload into events.
// Omni stores the events before the vendor gets the response.
func (c *Connector) HandleWebhook(_ context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	if !hmac.Equal([]byte(Sign(c.config()["webhook_secret"], req.Body)), []byte(req.Header("X-Signature"))) {
		return sdk.JSONResponse(http.StatusUnauthorized, "signature does not match"), nil
	}
	var p struct {
		ID    string         ` + "`json:\"id\"`" + `
		Type  string         ` + "`json:\"type\"`" + `
		Email string         ` + "`json:\"email\"`" + `
		Data  map[string]any ` + "`json:\"data\"`" + `
	}
	if err := json.Unmarshal(req.Body, &p); err != nil || p.ID == "" {
		return sdk.JSONResponse(http.StatusBadRequest, "payload needs a JSON object with an id"), nil
	}
	return &sdk.WebhookResponse{Status: http.StatusOK, Events: []sdk.Event{{
		ID:         "[[.Name]]:" + p.ID, // stable: redeliveries are dropped
		Type:       p.Type,
		OccurredAt: time.Now().UTC(),
		Identities: map[string]string{"email": p.Email},
		Properties: p.Data,
	}}}, nil
}

// Send delivers one message; the error kind tells Omni whether to retry.
func (c *Connector) Send(ctx context.Context, msg *sdk.OutboundMessage) (*sdk.SendResult, error) {
	cfg := c.config()
	body, _ := json.Marshal(map[string]any{"to": msg.To, "text": msg.Text})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg["api_url"]+"/messages", bytes.NewReader(body))
	if err != nil {
		return nil, sdk.Permanent("bad_url", err.Error())
	}
	req.Header.Set("Idempotency-Key", msg.ID) // Omni may retry a send
	req.Header.Set("Authorization", "Bearer "+cfg["api_key"])
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, sdk.Retryable(err.Error())
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, sdk.RateLimited(30*time.Second, "rate limited")
	case resp.StatusCode >= 500:
		return nil, sdk.Retryable(fmt.Sprintf("API answered %d", resp.StatusCode))
	case resp.StatusCode >= 400:
		return nil, sdk.Permanent(fmt.Sprint(resp.StatusCode), "API refused the message")
	}
	var out struct {
		ID string ` + "`json:\"id\"`" + `
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ID == "" {
		return nil, sdk.Retryable("no message id in the API response")
	}
	return &sdk.SendResult{ProviderMessageID: out.ID}, nil
}

func (c *Connector) Backfill(context.Context, *sdk.BackfillRequest, sdk.BackfillSink) error {
	return fmt.Errorf("backfill is not supported")
}

func (c *Connector) Health(context.Context) error {
	if c.config() == nil {
		return fmt.Errorf("not configured")
	}
	return nil
}
`,

	"connector_test.go": `package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"[[.Omni]]/plugins/sdk"
	"[[.Omni]]/plugins/sdk/sdktest"
)

// The test binary doubles as the plugin for StartSelf.
func TestMain(m *testing.M) { sdktest.MainOrServe(m, New) }

func TestWebhookAndSend(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(` + "`{\"id\":\"msg-1\"}`" + `))
	}))
	defer api.Close()
	// A real plugin subprocess under a real go-plugin host.
	h := sdktest.StartSelf(t, sdk.Config{"webhook_secret": "s3cret", "api_url": api.URL})

	body := []byte(` + "`{\"id\":\"1\",\"type\":\"order.placed\",\"email\":\"ann@example.com\"}`" + `)
	if r := h.Webhook(t, "POST", "/", map[string]string{"X-Signature": "wrong"}, body); r.Status != 401 {
		t.Fatalf("unsigned webhook: status %d, want 401", r.Status)
	}
	r := h.Webhook(t, "POST", "/", map[string]string{"X-Signature": Sign("s3cret", body)}, body)
	if r.Status != 200 || len(r.Events) != 1 || r.Events[0].ID != "[[.Name]]:1" {
		t.Fatalf("webhook: %+v", r)
	}

	res, err := h.Send(&sdk.OutboundMessage{ID: "m1", To: map[string]string{"phone": "+15550100"}, Text: "hi"})
	if err != nil || res.ProviderMessageID != "msg-1" {
		t.Fatalf("send: %v %v", res, err)
	}
}
`,
}
