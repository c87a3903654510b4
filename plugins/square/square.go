// Package square is Omni's built-in Square (point of sale) connector. It
// verifies Square webhooks, turns completed in-store payments and orders
// into order.placed events (fetching the full order, since Square's order
// webhooks are thin and POS sales only announce themselves through
// payments), maps customers so in-store buyers join their online profile,
// and backfills customers, orders and payments through the search APIs.
package square

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/omni/omni/plugins/internal/healthcache"
	"github.com/omni/omni/plugins/internal/vendorhttp"
	"github.com/omni/omni/plugins/sdk"
)

// Name is the connector's name (webhook path /webhooks/square).
const Name = "square"

// DefaultAPIVersion is the Square-Version Omni pins.
const DefaultAPIVersion = "2025-08-20"

// Config keys.
const (
	KeyAccessToken     = "access_token"
	KeySignatureKey    = "signature_key"
	KeyNotificationURL = "notification_url"
	KeyEnvironment     = "environment"
	KeyAPIVersion      = "api_version"
	KeyLocationIDs     = "location_ids"
	// KeyTestBaseURL points the API at a local fake; not advertised.
	KeyTestBaseURL = "test_base_url"
)

// Hosts per environment.
const (
	ProductionURL = "https://connect.squareup.com"
	SandboxURL    = "https://connect.squareupsandbox.com"
)

// Connector implements sdk.Connector for Square.
type Connector struct {
	mu   sync.RWMutex
	cfg  settings
	host sdk.Host
	api  *api

	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time

	health healthcache.Cache // last vendor probe, per settings
}

type settings struct {
	token, key, notificationURL, version, baseURL string
	locations                                     []string
}

// New returns an unconfigured Square connector.
func New() sdk.Connector { return newConnector() }

func newConnector() *Connector {
	return &Connector{sleep: vendorhttp.SleepCtx, now: time.Now, health: healthcache.Cache{Every: healthEvery}}
}

// Describe declares the connector and its settings.
func (c *Connector) Describe(context.Context) (*sdk.Description, error) {
	return &sdk.Description{
		Name:        Name,
		Version:     "1.0.0",
		DisplayName: "Square",
		Description: "Square point of sale: in-store payments and orders, customers.",
		Config: []sdk.ConfigField{
			{Name: KeyAccessToken, Label: "Access token", Type: "string", Required: true, Secret: true,
				Help: "Production access token of your Square application (scopes PAYMENTS_READ, ORDERS_READ, CUSTOMERS_READ, MERCHANT_PROFILE_READ)."},
			{Name: KeySignatureKey, Label: "Webhook signature key", Type: "string", Required: true, Secret: true,
				Help: "Shown on the webhook subscription page in the Square Developer Console."},
			{Name: KeyNotificationURL, Label: "Notification URL", Type: "url",
				Help: "Exactly the URL entered in the Square subscription, e.g. https://omni.example.com/webhooks/square. Square signs it; set it when Omni runs behind a proxy that rewrites the URL."},
			{Name: KeyEnvironment, Label: "Environment", Type: "string", Default: "production",
				Help: "production or sandbox."},
			{Name: KeyAPIVersion, Label: "Square-Version", Type: "string", Default: DefaultAPIVersion,
				Help: "Dated API version sent on every call."},
			{Name: KeyLocationIDs, Label: "Location ids", Type: "string",
				Help: "Comma-separated locations to backfill orders from; empty means every location."},
			{Name: "shop_email", Label: "Shop email", Type: "string", Help: "The shop's own contact email, if staff ever type it for a customer. Omni never uses it to match people (docs/profiles.md#junk-identifiers)."},
			{Name: "shop_phone", Label: "Shop phone", Type: "string", Help: "The shop's own phone, if staff ever type it for a customer. Omni never uses it to match people (docs/profiles.md#junk-identifiers)."},
		},
		Capabilities: []string{sdk.CapWebhook, sdk.CapBackfill},
	}, nil
}

// Configure validates the settings.
func (c *Connector) Configure(_ context.Context, cfg sdk.Config, host sdk.Host) error {
	get := func(k string) string { return strings.TrimSpace(cfg[k]) }
	s := settings{
		token:           get(KeyAccessToken),
		key:             get(KeySignatureKey),
		notificationURL: get(KeyNotificationURL),
		version:         get(KeyAPIVersion),
		baseURL:         strings.TrimRight(get(KeyTestBaseURL), "/"),
	}
	if s.version == "" {
		s.version = DefaultAPIVersion
	}
	env := strings.ToLower(get(KeyEnvironment))
	switch {
	case s.token == "":
		return &sdk.ConfigError{Field: KeyAccessToken, Problem: "is required (your Square application's access token)"}
	case s.key == "":
		return &sdk.ConfigError{Field: KeySignatureKey, Problem: "is required (the webhook subscription's signature key)"}
	case env != "" && env != "production" && env != "sandbox":
		return &sdk.ConfigError{Field: KeyEnvironment, Problem: "must be production or sandbox"}
	case !validVersion(s.version):
		return &sdk.ConfigError{Field: KeyAPIVersion, Problem: "must be a date such as 2025-08-20"}
	case s.notificationURL != "" && !strings.HasPrefix(s.notificationURL, "https://") && !strings.HasPrefix(s.notificationURL, "http://"):
		return &sdk.ConfigError{Field: KeyNotificationURL, Problem: "must be the full URL, e.g. https://omni.example.com/webhooks/square"}
	}
	if s.baseURL == "" {
		s.baseURL = ProductionURL
		if env == "sandbox" {
			s.baseURL = SandboxURL
		}
	}
	for _, l := range strings.Split(get(KeyLocationIDs), ",") {
		if l = strings.TrimSpace(l); l != "" {
			s.locations = append(s.locations, l)
		}
	}
	a := newAPI(s, c.sleep)
	c.mu.Lock()
	c.cfg, c.host, c.api = s, host, a
	c.mu.Unlock()
	return nil
}

func validVersion(v string) bool {
	_, err := time.Parse("2006-01-02", v)
	return err == nil
}

func (c *Connector) settings() (settings, *api, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cfg, c.api, c.api != nil
}

func (c *Connector) log(level, msg string, kv ...any) {
	c.mu.RLock()
	h := c.host
	c.mu.RUnlock()
	if h != nil {
		h.Log(level, msg, kv...)
	}
}

var errNotConfigured = errors.New("square connector is not configured")

// healthEvery bounds how often Health really calls Square (the host asks
// every few seconds).
const healthEvery = time.Minute

// Health lists locations, which every valid token can do.
func (c *Connector) Health(ctx context.Context) error {
	_, a, ok := c.settings()
	if !ok {
		return errNotConfigured
	}
	return c.health.Check(c.now(), a, func() error {
		_, err := a.locations(ctx)
		return err
	})
}

// Send is not supported: Square is a source of purchases.
func (c *Connector) Send(context.Context, *sdk.OutboundMessage) (*sdk.SendResult, error) {
	return nil, sdk.Permanent("unsupported", "the square connector does not send messages")
}

var _ sdk.Connector = (*Connector)(nil)
