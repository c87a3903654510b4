// Package shopify is Omni's built-in Shopify connector: it verifies and
// translates Shopify webhooks (online store and Shopify POS orders,
// checkouts, refunds, customers, marketing consent) into unified events,
// backfills customers and orders through the GraphQL Admin API and
// registers the webhooks it needs.
package shopify

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

// Name is the connector's name (webhook path /webhooks/shopify).
const Name = "shopify"

// DefaultAPIVersion is the Admin API version Omni is written against.
const DefaultAPIVersion = "2026-07"

// Config keys.
const (
	KeyShop          = "shop"
	KeyAccessToken   = "access_token"
	KeyWebhookSecret = "webhook_secret"
	KeyAPIVersion    = "api_version"
	KeyWebhookURL    = "webhook_url"
	KeyRegister      = "register_webhooks"
	// KeyTestBaseURL points the Admin API at a local fake. It is not part of
	// the advertised schema: real installs always talk to https://{shop}.
	KeyTestBaseURL = "test_base_url"
)

// Connector implements sdk.Connector for Shopify.
type Connector struct {
	mu   sync.RWMutex
	cfg  settings
	host sdk.Host
	api  *admin

	// sleep is used for rate-limit waits; tests record instead of waiting.
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time

	health healthcache.Cache // last vendor probe, per settings
}

type settings struct {
	shop, token, secret, version, webhookURL, baseURL string
	register                                          bool
}

// New returns an unconfigured Shopify connector.
func New() sdk.Connector { return newConnector() }

func newConnector() *Connector {
	return &Connector{sleep: vendorhttp.SleepCtx, now: time.Now, health: healthcache.Cache{Every: healthEvery}}
}

// Describe declares the connector and its settings.
func (c *Connector) Describe(context.Context) (*sdk.Description, error) {
	return &sdk.Description{
		Name:        Name,
		Version:     "1.0.0",
		DisplayName: "Shopify",
		Description: "Online store and Shopify POS: orders, checkouts, refunds, customers and marketing consent.",
		Config: []sdk.ConfigField{
			{Name: KeyShop, Label: "Shop domain", Type: "string", Required: true,
				Help: "Your permanent myshopify.com domain, e.g. example.myshopify.com (not a custom domain)."},
			{Name: KeyAccessToken, Label: "Admin API access token", Type: "string", Required: true, Secret: true,
				Help: "shpat_… token of the custom app; scopes read_orders, read_customers, read_checkouts (read_all_orders for orders older than 60 days)."},
			{Name: KeyWebhookSecret, Label: "Webhook signing secret", Type: "string", Required: true, Secret: true,
				Help: "The app's API secret key (client secret). Shopify signs every webhook with it."},
			{Name: KeyAPIVersion, Label: "Admin API version", Type: "string", Default: DefaultAPIVersion,
				Help: "Quarterly version YYYY-MM used for Admin API calls and webhook subscriptions."},
			{Name: KeyWebhookURL, Label: "Public webhook URL", Type: "url",
				Help: "Where Shopify should deliver webhooks, e.g. https://omni.example.com/webhooks/shopify. Needed to register webhooks."},
			{Name: KeyRegister, Label: "Register webhooks automatically", Type: "bool", Default: "true",
				Help: "Create the webhook subscriptions Omni needs when the connector is configured."},
			{Name: "shop_email", Label: "Shop email", Type: "string", Help: "The shop's own contact email, if staff ever type it for a customer. Omni never uses it to match people (docs/profiles.md#junk-identifiers)."},
			{Name: "shop_phone", Label: "Shop phone", Type: "string", Help: "The shop's own phone, if staff ever type it for a customer. Omni never uses it to match people (docs/profiles.md#junk-identifiers)."},
		},
		Capabilities: []string{sdk.CapWebhook, sdk.CapBackfill},
	}, nil
}

// Configure validates settings and, when asked, registers webhooks.
func (c *Connector) Configure(ctx context.Context, cfg sdk.Config, host sdk.Host) error {
	s, err := parseSettings(cfg)
	if err != nil {
		return err
	}
	api := newAdmin(s, c.sleep)
	c.mu.Lock()
	c.cfg, c.host, c.api = s, host, api
	c.mu.Unlock()

	if s.register && s.webhookURL != "" {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		res, err := c.RegisterWebhooks(rctx)
		switch {
		case err != nil:
			c.log("warn", "could not register Shopify webhooks; create them by hand", "error", err.Error(),
				"instructions", ManualInstructions(s.webhookURL, s.version))
		case len(res.Created) > 0:
			c.log("info", "registered Shopify webhooks", "created", strings.Join(res.Created, ","),
				"already_present", len(res.Existing))
		}
	}
	return nil
}

func parseSettings(cfg sdk.Config) (settings, error) {
	get := func(k string) string { return strings.TrimSpace(cfg[k]) }
	s := settings{
		token:      get(KeyAccessToken),
		secret:     get(KeyWebhookSecret),
		version:    get(KeyAPIVersion),
		webhookURL: get(KeyWebhookURL),
		baseURL:    strings.TrimRight(get(KeyTestBaseURL), "/"),
		register:   true,
	}
	shop := strings.ToLower(get(KeyShop))
	shop = strings.TrimPrefix(strings.TrimPrefix(shop, "https://"), "http://")
	shop = strings.TrimRight(shop, "/")
	if shop != "" && !strings.Contains(shop, ".") {
		shop += ".myshopify.com"
	}
	s.shop = shop
	if s.version == "" {
		s.version = DefaultAPIVersion
	}
	switch strings.ToLower(get(KeyRegister)) {
	case "false", "0", "no", "off":
		s.register = false
	}
	switch {
	case s.shop == "":
		return s, &sdk.ConfigError{Field: KeyShop, Problem: "is required (e.g. example.myshopify.com)"}
	case !validShop(s.shop):
		return s, &sdk.ConfigError{Field: KeyShop, Problem: "must be a domain such as example.myshopify.com"}
	case s.token == "":
		return s, &sdk.ConfigError{Field: KeyAccessToken, Problem: "is required (the Admin API access token of your custom app)"}
	case s.secret == "":
		return s, &sdk.ConfigError{Field: KeyWebhookSecret, Problem: "is required (the app's API secret key that signs webhooks)"}
	case !validVersion(s.version):
		return s, &sdk.ConfigError{Field: KeyAPIVersion, Problem: "must look like 2026-07"}
	case s.webhookURL != "" && !strings.HasPrefix(s.webhookURL, "https://") && s.baseURL == "":
		return s, &sdk.ConfigError{Field: KeyWebhookURL, Problem: "must be an https:// URL (Shopify only delivers to HTTPS)"}
	}
	return s, nil
}

func validShop(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == ':') {
			return false
		}
	}
	return true
}

func validVersion(v string) bool {
	if v == "unstable" {
		return true
	}
	if len(v) != 7 || v[4] != '-' {
		return false
	}
	for i, r := range v {
		if i != 4 && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

func (c *Connector) settings() (settings, *admin, bool) {
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

var errNotConfigured = errors.New("shopify connector is not configured")

// healthEvery bounds how often Health really calls Shopify: the host asks
// every few seconds and each call costs API quota.
const healthEvery = time.Minute

// Health checks the token against the shop.
func (c *Connector) Health(ctx context.Context) error {
	_, api, ok := c.settings()
	if !ok {
		return errNotConfigured
	}
	return c.health.Check(c.now(), api, func() error {
		var out struct {
			Shop struct {
				Name string `json:"name"`
			} `json:"shop"`
		}
		return api.query(ctx, `query { shop { name } }`, nil, &out)
	})
}

// Send is not supported: Shopify is a source, not a messaging channel.
func (c *Connector) Send(context.Context, *sdk.OutboundMessage) (*sdk.SendResult, error) {
	return nil, sdk.Permanent("unsupported", "the shopify connector does not send messages")
}

var _ sdk.Connector = (*Connector)(nil)
