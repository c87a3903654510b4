// Package whatsapp is the built-in connector for Meta's WhatsApp Cloud API:
// it verifies and translates webhook deliveries (inbound messages, delivery
// statuses, opt-outs) and sends text and template messages.
package whatsapp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/omni/omni/plugins/internal/vendorhttp"
	"github.com/omni/omni/plugins/sdk"
)

// Version is this connector's version.
const Version = "1.0.0"

// DefaultAPIVersion is the Graph API version Omni is built and tested
// against (Meta's published OpenAPI spec is v23.0).
const DefaultAPIVersion = "v23.0"

// DefaultBaseURL is Meta's Graph API host.
const DefaultBaseURL = "https://graph.facebook.com"

// Config keys.
const (
	keyPhoneNumberID = "phone_number_id"
	keyAccessToken   = "access_token"
	keyAppSecret     = "app_secret"
	keyVerifyToken   = "verify_token"
	keyAPIVersion    = "api_version"
	keyBaseURL       = "base_url"
)

// serviceWindow is WhatsApp's customer-service window: free-form messages
// are allowed only this long after the customer's last inbound message.
const serviceWindow = 24 * time.Hour

type settings struct {
	phoneNumberID string
	accessToken   string
	appSecret     string
	verifyToken   string
	apiVersion    string
	baseURL       string
}

// Connector implements sdk.Connector for the WhatsApp Cloud API.
type Connector struct {
	client *http.Client
	now    func() time.Time

	mu   sync.RWMutex
	cfg  *settings
	host sdk.Host

	// lastInbound remembers, per wa_id, when the customer last wrote to us,
	// so Send can tell whether the 24-hour window is open. It only knows
	// what this process saw; callers may also pass properties.last_inbound_at.
	windowMu    sync.Mutex
	lastInbound map[string]time.Time

	// foreignSeen holds the other phone number ids already logged.
	foreignMu   sync.Mutex
	foreignSeen map[string]bool
}

// New returns an unconfigured WhatsApp connector.
func New() sdk.Connector { return newConnector() }

func newConnector() *Connector {
	return &Connector{
		client:      vendorhttp.HTTPClient(30 * time.Second),
		now:         time.Now,
		lastInbound: map[string]time.Time{},
		foreignSeen: map[string]bool{},
	}
}

// Describe declares the config schema and capabilities.
func (c *Connector) Describe(ctx context.Context) (*sdk.Description, error) {
	return &sdk.Description{
		Name:        "whatsapp",
		Version:     Version,
		DisplayName: "WhatsApp (Meta Cloud API)",
		Description: "Receive WhatsApp messages and delivery statuses; send text and template messages.",
		Config: []sdk.ConfigField{
			{Name: keyPhoneNumberID, Label: "Phone number ID", Type: "string", Required: true,
				Help: "WhatsApp Manager → API Setup → Phone number ID (not the phone number itself)."},
			{Name: keyAccessToken, Label: "Access token", Type: "string", Required: true, Secret: true,
				Help: "A permanent system-user token with whatsapp_business_messaging permission."},
			{Name: keyAppSecret, Label: "App secret", Type: "string", Required: true, Secret: true,
				Help: "App settings → Basic → App secret; used to verify X-Hub-Signature-256."},
			{Name: keyVerifyToken, Label: "Verify token", Type: "string", Required: true, Secret: true,
				Help: "Any random string; enter the same value in the app's Webhooks configuration."},
			{Name: keyAPIVersion, Label: "Graph API version", Type: "string", Default: DefaultAPIVersion,
				Help: "Pinned Graph API version, e.g. v23.0."},
			{Name: "business_phone", Label: "Business phone number", Type: "string",
				Help: "The number customers message, e.g. +44 20 7946 0000. Omni never uses it to match people (docs/profiles.md#junk-identifiers)."},
			{Name: keyBaseURL, Label: "API base URL (tests only)", Type: "url", Default: DefaultBaseURL,
				Help: "Leave empty in production; only tests point this at a local fake."},
		},
		Capabilities: []string{sdk.CapWebhook, sdk.CapSendPrefix + "whatsapp"},
	}, nil
}

// Configure validates and stores the settings.
func (c *Connector) Configure(ctx context.Context, cfg sdk.Config, host sdk.Host) error {
	s := &settings{
		phoneNumberID: strings.TrimSpace(cfg[keyPhoneNumberID]),
		accessToken:   strings.TrimSpace(cfg[keyAccessToken]),
		appSecret:     strings.TrimSpace(cfg[keyAppSecret]),
		verifyToken:   cfg[keyVerifyToken],
		apiVersion:    strings.TrimSpace(cfg[keyAPIVersion]),
		baseURL:       strings.TrimRight(strings.TrimSpace(cfg[keyBaseURL]), "/"),
	}
	for _, req := range []struct{ key, val string }{
		{keyPhoneNumberID, s.phoneNumberID},
		{keyAccessToken, s.accessToken},
		{keyAppSecret, s.appSecret},
		{keyVerifyToken, s.verifyToken},
	} {
		if req.val == "" {
			return &sdk.ConfigError{Field: req.key, Problem: "is required"}
		}
	}
	for _, r := range s.phoneNumberID {
		if r < '0' || r > '9' {
			return &sdk.ConfigError{Field: keyPhoneNumberID, Problem: "must be the numeric phone number ID from WhatsApp Manager, not a phone number"}
		}
	}
	if s.apiVersion == "" {
		s.apiVersion = DefaultAPIVersion
	}
	if !validAPIVersion(s.apiVersion) {
		return &sdk.ConfigError{Field: keyAPIVersion, Problem: fmt.Sprintf("%q is not a Graph API version like v23.0", s.apiVersion)}
	}
	if s.baseURL == "" {
		s.baseURL = DefaultBaseURL
	}
	if u, err := url.Parse(s.baseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return &sdk.ConfigError{Field: keyBaseURL, Problem: "must be an http(s) URL"}
	}
	c.mu.Lock()
	c.cfg, c.host = s, host
	c.mu.Unlock()
	return nil
}

func validAPIVersion(v string) bool {
	if len(v) < 2 || v[0] != 'v' {
		return false
	}
	dot := false
	for i, r := range v[1:] {
		switch {
		case r >= '0' && r <= '9':
		case r == '.' && !dot && i > 0:
			dot = true
		default:
			return false
		}
	}
	return !strings.HasSuffix(v, ".")
}

func (c *Connector) phoneNumberID() string {
	s, _, err := c.settings()
	if err != nil {
		return ""
	}
	return s.phoneNumberID
}

func (c *Connector) settings() (*settings, sdk.Host, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cfg == nil {
		return nil, nil, fmt.Errorf("whatsapp: not configured")
	}
	return c.cfg, c.host, nil
}

// Health checks the token and phone number id with a Graph API read.
func (c *Connector) Health(ctx context.Context) error {
	s, _, err := c.settings()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		s.baseURL+"/"+s.apiVersion+"/"+url.PathEscape(s.phoneNumberID)+"?fields=id,display_phone_number", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.accessToken)
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("whatsapp: graph api unreachable: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		if me := parseMetaError(body); me != nil {
			return fmt.Errorf("whatsapp: graph api said %d (code %d): %s", resp.StatusCode, me.Code, me.Message)
		}
		return fmt.Errorf("whatsapp: graph api said %d", resp.StatusCode)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.ID == "" {
		return fmt.Errorf("whatsapp: unexpected phone number response")
	}
	return nil
}

// Backfill is not offered: the Cloud API has no message history endpoint.
func (c *Connector) Backfill(ctx context.Context, req *sdk.BackfillRequest, sink sdk.BackfillSink) error {
	return fmt.Errorf("whatsapp: the Cloud API has no history to backfill; messages are only delivered by webhook")
}

// noteInbound records a customer message for the 24-hour window.
func (c *Connector) noteInbound(waID string, at time.Time) {
	c.windowMu.Lock()
	defer c.windowMu.Unlock()
	if at.After(c.lastInbound[waID]) {
		c.lastInbound[waID] = at
	}
	// Forget closed windows once the map is large: an unknown window is
	// simply tried, and Meta's 131047 gives the same answer.
	if len(c.lastInbound) > maxRemembered {
		cutoff := c.now().Add(-serviceWindow)
		for id, t := range c.lastInbound {
			if t.Before(cutoff) {
				delete(c.lastInbound, id)
			}
		}
	}
}

// maxRemembered bounds the window memory before closed windows are pruned.
const maxRemembered = 50_000

func (c *Connector) lastInboundAt(waID string) (time.Time, bool) {
	c.windowMu.Lock()
	defer c.windowMu.Unlock()
	t, ok := c.lastInbound[waID]
	return t, ok
}
