// Package twilio is the built-in SMS connector over Twilio's Programmable
// Messaging: it sends SMS with the Messages API, and turns Twilio's signed
// webhooks (inbound SMS/MMS, delivery status callbacks, STOP/START/HELP)
// into events.
package twilio

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omni/omni/plugins/internal/vendorhttp"
	"github.com/omni/omni/plugins/sdk"
)

// Name is the connector's name (and its webhook path: /webhooks/twilio/…).
const Name = "twilio"

// Version is this connector's version.
const Version = "1.0.0"

// DefaultBaseURL is Twilio's REST API host.
const DefaultBaseURL = "https://api.twilio.com"

// Config keys.
const (
	KeyAccountSID          = "account_sid"
	KeyAuthToken           = "auth_token"
	KeyFromPhone           = "from_phone"
	KeyMessagingServiceSID = "messaging_service_sid"
	KeyAPIKeySID           = "api_key_sid"
	KeyAPIKeySecret        = "api_key_secret"
	KeyWebhookBaseURL      = "webhook_base_url"
	// KeyTestBaseURL points the REST API at a local fake. It is not part
	// of the advertised schema: real installs always call api.twilio.com.
	KeyTestBaseURL = "test_base_url"
)

type settings struct {
	accountSID, authToken string
	from, serviceSID      string
	// user/pass for HTTP Basic: an API key when set, else the account.
	user, pass string
	// webhookBase is the public base URL Twilio calls, when a proxy in
	// front of Omni changes the scheme, host or port it sees.
	webhookBase string
	baseURL     string
}

// Connector implements sdk.Connector for Twilio SMS.
type Connector struct {
	client *http.Client
	now    func() time.Time

	mu   sync.RWMutex
	cfg  *settings
	host sdk.Host

	callbackWarned atomic.Bool
	refusalLog     everyMinute
}

// New returns an unconfigured Twilio connector.
func New() sdk.Connector { return newConnector() }

func newConnector() *Connector {
	return &Connector{client: vendorhttp.HTTPClient(30 * time.Second), now: time.Now}
}

// Describe declares the config schema and capabilities.
func (c *Connector) Describe(ctx context.Context) (*sdk.Description, error) {
	return &sdk.Description{
		Name:        Name,
		Version:     Version,
		DisplayName: "Twilio SMS",
		Description: "Send SMS, receive SMS/MMS and delivery statuses; STOP/START replies update SMS consent.",
		Config: []sdk.ConfigField{
			{Name: KeyAccountSID, Label: "Account SID", Type: "string", Required: true,
				Help: "Twilio Console → Account info → Account SID (starts with AC)."},
			{Name: KeyAuthToken, Label: "Auth token", Type: "string", Required: true, Secret: true,
				Help: "Console → Account info → Auth token; verifies X-Twilio-Signature on every webhook."},
			{Name: KeyFromPhone, Label: "From phone number", Type: "string",
				Help: "Your Twilio number in E.164 form, e.g. +14155550100. Give this or a Messaging Service SID."},
			{Name: KeyMessagingServiceSID, Label: "Messaging Service SID", Type: "string",
				Help: "MG…; Twilio then picks the sender from the service's pool. Used instead of the From number when set."},
			{Name: KeyAPIKeySID, Label: "API key SID (optional)", Type: "string",
				Help: "SK…; sends with an API key instead of the auth token (revocable without touching webhooks)."},
			{Name: KeyAPIKeySecret, Label: "API key secret", Type: "string", Secret: true,
				Help: "The secret shown once when the API key was created."},
			{Name: KeyWebhookBaseURL, Label: "Public URL Twilio calls (optional)", Type: "url",
				Help: "e.g. https://shop.example.com when a proxy or tunnel changes the scheme, host or port Omni sees; signatures are checked against it."},
		},
		Capabilities: []string{sdk.CapWebhook, sdk.CapSendPrefix + "sms"},
	}, nil
}

// Configure validates and stores the settings.
func (c *Connector) Configure(ctx context.Context, cfg sdk.Config, host sdk.Host) error {
	s, err := parseSettings(cfg)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.cfg, c.host = s, host
	c.mu.Unlock()
	return nil
}

func parseSettings(cfg sdk.Config) (*settings, error) {
	get := func(k string) string { return strings.TrimSpace(cfg[k]) }
	s := &settings{
		accountSID:  get(KeyAccountSID),
		authToken:   get(KeyAuthToken),
		from:        get(KeyFromPhone),
		serviceSID:  get(KeyMessagingServiceSID),
		webhookBase: strings.TrimRight(get(KeyWebhookBaseURL), "/"),
		baseURL:     strings.TrimRight(get(KeyTestBaseURL), "/"),
	}
	switch {
	case s.accountSID == "":
		return nil, &sdk.ConfigError{Field: KeyAccountSID, Problem: "is required"}
	case !validSID(s.accountSID, "AC"):
		return nil, &sdk.ConfigError{Field: KeyAccountSID, Problem: "must be the Account SID from the Twilio Console (AC followed by 32 hex characters)"}
	case s.authToken == "":
		return nil, &sdk.ConfigError{Field: KeyAuthToken, Problem: "is required (it verifies Twilio's webhook signatures)"}
	case s.from == "" && s.serviceSID == "":
		return nil, &sdk.ConfigError{Field: KeyFromPhone, Problem: "give the Twilio number to send from (or messaging_service_sid)"}
	case s.serviceSID != "" && !validSID(s.serviceSID, "MG"):
		return nil, &sdk.ConfigError{Field: KeyMessagingServiceSID, Problem: "must be a Messaging Service SID (MG followed by 32 hex characters)"}
	case s.serviceSID == "" && !validE164(s.from):
		return nil, &sdk.ConfigError{Field: KeyFromPhone, Problem: fmt.Sprintf("%q is not an E.164 number like +14155550100", s.from)}
	}
	keySID, keySecret := get(KeyAPIKeySID), get(KeyAPIKeySecret)
	switch {
	case keySID == "" && keySecret == "":
		s.user, s.pass = s.accountSID, s.authToken
	case !validSID(keySID, "SK"):
		return nil, &sdk.ConfigError{Field: KeyAPIKeySID, Problem: "must be an API key SID (SK followed by 32 hex characters) when api_key_secret is set"}
	case keySecret == "":
		return nil, &sdk.ConfigError{Field: KeyAPIKeySecret, Problem: "is required with api_key_sid"}
	default:
		s.user, s.pass = keySID, keySecret
	}
	if s.webhookBase != "" {
		if u, err := url.Parse(s.webhookBase); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, &sdk.ConfigError{Field: KeyWebhookBaseURL, Problem: "must be an http(s) URL like https://shop.example.com"}
		}
	}
	if s.baseURL == "" {
		s.baseURL = DefaultBaseURL
	}
	if u, err := url.Parse(s.baseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, &sdk.ConfigError{Field: KeyTestBaseURL, Problem: "must be an http(s) URL"}
	}
	return s, nil
}

// validSID checks Twilio's SID shape: a two-letter prefix and 32 hex digits.
func validSID(s, prefix string) bool {
	if len(s) != 34 || !strings.HasPrefix(s, prefix) {
		return false
	}
	for _, r := range s[2:] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

// validE164 is "+" and 8 to 15 digits, the first not 0.
func validE164(s string) bool {
	if len(s) < 9 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for _, r := range s[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func (c *Connector) settings() (*settings, sdk.Host, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cfg == nil {
		return nil, nil, fmt.Errorf("twilio: not configured")
	}
	return c.cfg, c.host, nil
}

// Health reads the account: it proves the credentials and that the
// account is active (a suspended account sends nothing).
func (c *Connector) Health(ctx context.Context) error {
	s, _, err := c.settings()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.baseURL+"/2010-04-01/Accounts/"+url.PathEscape(s.accountSID)+".json", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(s.user, s.pass)
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("twilio: api unreachable: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		if te := parseTwilioError(body); te != nil {
			return fmt.Errorf("twilio: api said %d (code %d): %s", resp.StatusCode, te.Code, te.Message)
		}
		return fmt.Errorf("twilio: api said %d", resp.StatusCode)
	}
	var acct struct {
		SID    string `json:"sid"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &acct); err != nil || acct.SID == "" {
		return fmt.Errorf("twilio: unexpected account response")
	}
	if acct.Status != "" && acct.Status != "active" {
		return fmt.Errorf("twilio: account is %s", acct.Status)
	}
	return nil
}

// Backfill is not offered: past SMS are not customer events Omni can
// attribute reliably, and the list API is paged per number.
func (c *Connector) Backfill(ctx context.Context, req *sdk.BackfillRequest, sink sdk.BackfillSink) error {
	return fmt.Errorf("twilio: no backfill; messages arrive by webhook")
}
