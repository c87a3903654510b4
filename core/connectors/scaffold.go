package connectors

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/omni/omni/core/app"
	"github.com/spf13/cobra"

	"github.com/omni/omni/core/api"
)

// ModulePath is Omni's Go module path.
const ModulePath = "github.com/omni/omni"

// SDKDir is where `omni plugin new` writes Omni's SDK inside the new
// project; go.mod replaces the Omni module by it.
const SDKDir = "omni-sdk"

func newCmd(env *app.Env, sdkSource fs.FS) *cobra.Command {
	var dir, omniSrc string
	var tidy bool
	c := &cobra.Command{
		Use:   "new NAME",
		Short: "Create a third-party connector project (webhook handler, send handler, tests)",
		Long: `Create a third-party connector project that builds with nothing but Go:
Omni's SDK is written into the project (` + SDKDir + `/) from this binary, and
go.mod points the SDK module there. grpc, go-plugin and the other
dependencies come from the Go module proxy, at the versions Omni uses.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			name := args[0]
			if !validName(name) {
				return &app.UsageError{Err: fmt.Errorf("connector name %q must be lower-case letters, digits, - or _, starting with a letter", name)}
			}
			if dir == "" {
				dir = name
			}
			if omniSrc == "" {
				omniSrc = os.Getenv("OMNI_SOURCE")
			}
			if err := Scaffold(dir, name, omniSrc, sdkSource); err != nil {
				return err
			}
			if omniSrc != "" {
				fmt.Fprintf(env.Stdout, "created connector %s in %s (building against the Omni checkout %s)\n", name, dir, omniSrc)
			} else {
				fmt.Fprintf(env.Stdout, "created connector %s in %s (Omni's SDK is in %s)\n", name, dir, filepath.Join(dir, SDKDir))
			}
			if tidy {
				if _, err := exec.LookPath("go"); err != nil {
					fmt.Fprintf(env.Stderr, "go is not on PATH: install Go %s or later (https://go.dev/dl/), then run: cd %s && go mod tidy\n", goVersion, dir)
				} else if err := goModTidy(env, dir); err != nil {
					return err
				}
			}
			fmt.Fprintf(env.Stdout, "next:\n  cd %s && go test ./...\n  go build -o %s/%s .   # install it into plugins_dir\n", dir, "<plugins_dir>", name)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory to create (default: ./NAME)")
	c.Flags().StringVar(&omniSrc, "omni-source", "", "build against this Omni source checkout instead of the SDK inside this binary (default $OMNI_SOURCE)")
	c.Flags().BoolVar(&tidy, "tidy", true, "run go mod tidy in the new project (fetches grpc, go-plugin, … from the Go module proxy)")
	return c
}

// goVersion is the Go release the generated go.mod asks for (Omni's).
const goVersion = "1.26"

// goModTidy resolves the new project's dependencies. The project is written
// whatever happens; on failure the error says why in one line and how to
// finish by hand (go's own output is above it).
func goModTidy(env *app.Env, dir string) error {
	var out bytes.Buffer
	cmd := exec.Command("go", "mod", "tidy")
	cmd.Dir = dir
	// One writer for both: exec then copies them in one goroutine, so
	// env.Stderr is never written from two at once.
	w := io.MultiWriter(env.Stderr, &out)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err == nil {
		return nil
	}
	msg := out.String()
	hint := "see go's message above"
	switch {
	case strings.Contains(msg, "requires go >="):
		hint = "this project needs Go " + goVersion + " or later; install it (https://go.dev/dl/) or allow GOTOOLCHAIN=auto"
	case strings.Contains(msg, "GOPROXY=off") || strings.Contains(msg, "proxy") || strings.Contains(msg, "dial tcp") ||
		strings.Contains(msg, "no such host") || strings.Contains(msg, "timeout"):
		proxy := "unknown"
		if b, err := exec.Command("go", "env", "GOPROXY").Output(); err == nil {
			proxy = strings.TrimSpace(string(b))
		}
		hint = fmt.Sprintf("downloading the SDK's dependencies (grpc, go-plugin, …) from the Go module proxy failed (GOPROXY is %s); Omni's SDK itself needs no download (it is in %s)", proxy, SDKDir)
	}
	return fmt.Errorf("go mod tidy in %s failed: %s; the project is written: fix that, then run: cd %s && go mod tidy", dir, hint, dir)
}

// Scaffold writes a connector project named name into dir. The Omni module
// (the SDK) comes from omniSrc, a source checkout, when set; otherwise from
// sdkSource (Omni's go.mod, go.sum and plugins/sdk, embedded in the omni
// binary), which is written to dir/omni-sdk. Either way go.mod replaces
// the Omni module, which is on no module proxy, by that directory.
func Scaffold(dir, name, omniSrc string, sdkSource fs.FS) error {
	if omniSrc == "" && sdkSource == nil {
		return &app.UsageError{Err: fmt.Errorf("this omni binary carries no SDK source: pass --omni-source with the path of an Omni source checkout")}
	}
	data := map[string]string{
		"Name":    name,
		"Ident":   strings.NewReplacer("-", "_").Replace(name),
		"Module":  "example.com/omni-connector-" + name,
		"Omni":    ModulePath,
		"OmniSrc": "./" + SDKDir,
		"Title":   strings.ToUpper(name[:1]) + name[1:],
	}
	if omniSrc != "" {
		abs, err := filepath.Abs(omniSrc)
		if err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(abs, "go.mod")); err != nil {
			return &app.UsageError{Err: fmt.Errorf("--omni-source %s: no go.mod there", abs)}
		}
		data["OmniSrc"] = abs
		sdkSource = os.DirFS(abs)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return &app.UsageError{Err: fmt.Errorf("%s already exists and is not empty", dir)}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
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
	// checks what it downloads against the sums Omni was built with.
	sum, err := fs.ReadFile(sdkSource, "go.sum")
	if err != nil {
		return fmt.Errorf("omni SDK source: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		return err
	}
	if omniSrc != "" {
		return nil
	}
	return writeSDK(filepath.Join(dir, SDKDir), sdkSource)
}

// writeSDK writes the Omni module as the project needs it: go.mod (whole,
// so the SDK's dependencies stay at the versions Omni uses) and the SDK
// packages without their tests.
func writeSDK(dst string, src fs.FS) error {
	mod, err := fs.ReadFile(src, "go.mod")
	if err != nil {
		return fmt.Errorf("omni SDK source: %w", err)
	}
	header := "// Omni's connector SDK, written by `omni plugin new` (omni " + api.Version + ")\n" +
		"// so this project builds without Omni's repository: ../go.mod replaces\n" +
		"// " + ModulePath + " by this directory. Only plugins/sdk is here; the\n" +
		"// requirements are Omni's, so the SDK builds against the versions Omni\n" +
		"// was built and tested with. To update it, scaffold a project with a\n" +
		"// newer omni and copy its " + SDKDir + " directory over this one.\n\n"
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dst, "go.mod"), append([]byte(header), mod...), 0o644); err != nil {
		return err
	}
	n := 0
	err = fs.WalkDir(src, "plugins/sdk", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, filepath.FromSlash(path))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if strings.HasSuffix(path, "_test.go") {
			return nil // they test the SDK, not the connector, and may need Omni's repository
		}
		b, err := fs.ReadFile(src, path)
		if err != nil {
			return err
		}
		n++
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		return fmt.Errorf("omni SDK source: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("omni SDK source: no files under plugins/sdk")
	}
	return nil
}

var scaffoldFiles = map[string]string{
	"go.mod": `module [[.Module]]

go 1.26.0

require [[.Omni]] v0.0.0-00010101000000-000000000000

// Omni's SDK is on no module proxy: it comes from this directory.
replace [[.Omni]] => [[.OmniSrc]]
`,

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

// New returns an unconfigured connector. Omni runs up to 8 of its sends at
// once, and Go's default transport keeps 2 idle connections per host: the
// client keeps 16, so concurrent sends reuse connections instead of
// dialling (and shaking hands over TLS) for most messages.
func New() sdk.Connector {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	return &Connector{http: &http.Client{Timeout: 10 * time.Second, Transport: t}}
}

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
