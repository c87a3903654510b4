// Package klaviyo is the built-in Klaviyo connector. Outbound it syncs
// profiles and consent and records events (send:email records a metric
// event carrying the message so a Klaviyo flow delivers it). Inbound it
// pulls email engagement from the Events API (backfill and a poll loop)
// and accepts Klaviyo system webhooks.
package klaviyo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/omni/omni/plugins/internal/vendorhttp"
	"github.com/omni/omni/plugins/sdk"
)

// Version is this connector's version.
const Version = "1.0.0"

// DefaultRevision is the Klaviyo API revision Omni is built and tested
// against; every request carries it in the revision header.
const DefaultRevision = "2026-07-15"

// DefaultBaseURL is Klaviyo's API host.
const DefaultBaseURL = "https://a.klaviyo.com"

// DefaultEmailMetric is the metric send:email records; a Klaviyo flow
// triggered by this metric sends the email.
const DefaultEmailMetric = "Omni Email"

const jsonAPI = "application/vnd.api+json"

// Config keys.
const (
	keyAPIKey        = "api_key"
	keyRevision      = "revision"
	keyBaseURL       = "base_url"
	keyEmailMetric   = "email_metric"
	keyListID        = "list_id"
	keyWebhookSecret = "webhook_secret"
	keyPollInterval  = "poll_interval"
	keyPollLookback  = "poll_lookback"
	keyStateFile     = "state_file"
)

type settings struct {
	apiKey        string
	revision      string
	baseURL       string
	emailMetric   string
	listID        string
	webhookSecret string
	pollInterval  time.Duration
	pollLookback  time.Duration
	stateFile     string
}

// Connector implements sdk.Connector for Klaviyo.
type Connector struct {
	client *http.Client
	now    func() time.Time
	// sleep waits between retries; tests keep it real but short waits.
	sleep func(ctx context.Context, d time.Duration) error
	// maxWait caps one Retry-After pause inside backfill and polling.
	maxWait time.Duration

	mu         sync.Mutex
	cfg        *settings
	host       sdk.Host
	stopPoll   context.CancelFunc
	pollDone   chan struct{}
	metricsIDs map[string]string // metric name → id, resolved lazily
	metricsAt  time.Time         // when metricsIDs was read; re-read hourly
}

// New returns an unconfigured Klaviyo connector.
func New() sdk.Connector { return newConnector() }

func newConnector() *Connector {
	return &Connector{
		client:  vendorhttp.HTTPClient(60 * time.Second),
		now:     time.Now,
		sleep:   sleepCtx,
		maxWait: 2 * time.Minute,
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Describe declares the config schema and capabilities.
func (c *Connector) Describe(ctx context.Context) (*sdk.Description, error) {
	return &sdk.Description{
		Name:        "klaviyo",
		Version:     Version,
		DisplayName: "Klaviyo",
		Description: "Sync profiles and consent to Klaviyo, trigger Klaviyo flows to send email, and pull email engagement back.",
		Config: []sdk.ConfigField{
			{Name: keyAPIKey, Label: "Private API key", Type: "string", Required: true, Secret: true,
				Help: "Settings → API keys → Create private API key (pk_…) with read/write on Events, Profiles, Lists, Subscriptions, read on Metrics and write on Data Privacy (to forward erasures)."},
			{Name: keyRevision, Label: "API revision", Type: "string", Default: DefaultRevision,
				Help: "Pinned Klaviyo API revision (YYYY-MM-DD)."},
			{Name: keyEmailMetric, Label: "Email metric name", Type: "string", Default: DefaultEmailMetric,
				Help: "send:email records this metric; build a Klaviyo flow triggered by it that sends {{ event.subject }} / {{ event.html|safe }}."},
			{Name: keyListID, Label: "Subscription list ID", Type: "string",
				Help: "Optional list that email/SMS opt-ins are added to (Lists & segments → list → Settings → List ID)."},
			{Name: keyWebhookSecret, Label: "System webhook secret", Type: "string", Secret: true,
				Help: "Only for accounts with system webhooks: the secret_key given when creating the webhook."},
			{Name: keyPollInterval, Label: "Engagement poll interval", Type: "string", Default: "5m",
				Help: "How often to pull opens, clicks and unsubscribes from the Events API (Go duration; 0 turns polling off)."},
			{Name: keyPollLookback, Label: "First poll look-back", Type: "string", Default: "1h",
				Help: "How far back the first poll reaches when no poll state exists yet."},
			{Name: keyStateFile, Label: "Poll state file", Type: "string",
				Help: "Optional file where the poll position is kept across restarts; without it a restart re-reads poll_lookback (duplicates are dropped by event id)."},
			{Name: keyBaseURL, Label: "API base URL (tests only)", Type: "url", Default: DefaultBaseURL,
				Help: "Leave empty in production; only tests point this at a local fake."},
		},
		Capabilities: []string{sdk.CapWebhook, sdk.CapBackfill, sdk.CapErase,
			sdk.CapSendPrefix + "email", sdk.CapSendPrefix + ChannelProfile, sdk.CapSendPrefix + ChannelEvent},
	}, nil
}

// Configure validates the settings and (re)starts the engagement poll loop.
func (c *Connector) Configure(ctx context.Context, cfg sdk.Config, host sdk.Host) error {
	s := &settings{
		apiKey:        strings.TrimSpace(cfg[keyAPIKey]),
		revision:      strings.TrimSpace(cfg[keyRevision]),
		baseURL:       strings.TrimRight(strings.TrimSpace(cfg[keyBaseURL]), "/"),
		emailMetric:   strings.TrimSpace(cfg[keyEmailMetric]),
		listID:        strings.TrimSpace(cfg[keyListID]),
		webhookSecret: cfg[keyWebhookSecret],
		stateFile:     strings.TrimSpace(cfg[keyStateFile]),
	}
	if s.apiKey == "" {
		return &sdk.ConfigError{Field: keyAPIKey, Problem: "is required (a private API key, pk_…)"}
	}
	if strings.HasPrefix(s.apiKey, "Klaviyo-API-Key") {
		return &sdk.ConfigError{Field: keyAPIKey, Problem: "give the key alone, without the Klaviyo-API-Key prefix"}
	}
	if s.revision == "" {
		s.revision = DefaultRevision
	}
	if _, err := time.Parse("2006-01-02", strings.TrimSuffix(s.revision, ".pre")); err != nil {
		return &sdk.ConfigError{Field: keyRevision, Problem: fmt.Sprintf("%q is not a dated revision like %s", s.revision, DefaultRevision)}
	}
	if s.baseURL == "" {
		s.baseURL = DefaultBaseURL
	}
	if u, err := url.Parse(s.baseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return &sdk.ConfigError{Field: keyBaseURL, Problem: "must be an http(s) URL"}
	}
	if s.emailMetric == "" {
		s.emailMetric = DefaultEmailMetric
	}
	var err error
	if s.pollInterval, err = durationSetting(cfg, keyPollInterval, 5*time.Minute); err != nil {
		return err
	}
	if s.pollInterval > 0 && s.pollInterval < time.Second {
		return &sdk.ConfigError{Field: keyPollInterval, Problem: "must be 0 (off) or at least 1s"}
	}
	if s.pollLookback, err = durationSetting(cfg, keyPollLookback, time.Hour); err != nil {
		return err
	}

	c.mu.Lock()
	if c.stopPoll != nil {
		c.stopPoll()
		done := c.pollDone
		c.mu.Unlock()
		<-done
		c.mu.Lock()
	}
	c.cfg, c.host, c.metricsIDs = s, host, nil
	c.stopPoll, c.pollDone = nil, nil
	if s.pollInterval > 0 && host != nil {
		pctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		c.stopPoll, c.pollDone = cancel, done
		go func() {
			defer close(done)
			c.pollLoop(pctx, s, host)
		}()
	}
	c.mu.Unlock()
	return nil
}

func durationSetting(cfg sdk.Config, key string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(cfg[key])
	if v == "" {
		return def, nil
	}
	if v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, &sdk.ConfigError{Field: key, Problem: fmt.Sprintf("%q is not a duration like 5m", v)}
	}
	return d, nil
}

// Close stops the poll loop.
func (c *Connector) Close() error {
	c.mu.Lock()
	stop, done := c.stopPoll, c.pollDone
	c.stopPoll, c.pollDone = nil, nil
	c.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	return nil
}

func (c *Connector) settings() (*settings, sdk.Host, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg == nil {
		return nil, nil, fmt.Errorf("klaviyo: not configured")
	}
	return c.cfg, c.host, nil
}

// Health checks the key with a cheap authenticated read.
func (c *Connector) Health(ctx context.Context) error {
	s, _, err := c.settings()
	if err != nil {
		return err
	}
	_, err = c.call(ctx, s, http.MethodGet, s.baseURL+"/api/accounts", nil)
	if err != nil {
		return fmt.Errorf("klaviyo: %w", err)
	}
	return nil
}

// apiError is a non-2xx Klaviyo answer.
type apiError struct {
	Status     int
	Code       string
	Detail     string
	RetryAfter time.Duration
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("klaviyo HTTP %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// sendError maps an apiError (or a transport error) to the SDK's types.
func sendError(err error) error {
	ae, ok := err.(*apiError)
	if !ok {
		return sdk.Retryable(err.Error())
	}
	switch {
	case ae.Status == http.StatusTooManyRequests:
		after := ae.RetryAfter
		if after <= 0 {
			after = time.Second
		}
		return &sdk.SendError{Kind: sdk.KindRateLimited, RetryAfter: after, Code: "throttled", Reason: ae.Error()}
	case ae.Status >= 500 || ae.Status == http.StatusRequestTimeout:
		return &sdk.SendError{Kind: sdk.KindRetryable, Code: ae.Code, Reason: ae.Error()}
	case ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden:
		return sdk.Permanent(orCode(ae.Code, "not_authorized"), ae.Error()+" (check api_key and its scopes)")
	default:
		return sdk.Permanent(orCode(ae.Code, "http_"+strconv.Itoa(ae.Status)), ae.Error())
	}
}

func orCode(code, def string) string {
	if code != "" {
		return code
	}
	return def
}

// call makes one request with Klaviyo's auth, revision and JSON:API headers.
func (c *Connector) call(ctx context.Context, s *settings, method, endpoint string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Klaviyo-API-Key "+s.apiKey)
	req.Header.Set("revision", s.revision)
	req.Header.Set("Accept", jsonAPI)
	if body != nil {
		req.Header.Set("Content-Type", jsonAPI)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return raw, nil
	}
	ae := &apiError{Status: resp.StatusCode}
	var eb struct {
		Errors []struct {
			Code   string `json:"code"`
			Title  string `json:"title"`
			Detail string `json:"detail"`
		} `json:"errors"`
	}
	if json.Unmarshal(raw, &eb) == nil && len(eb.Errors) > 0 {
		ae.Code, ae.Detail = eb.Errors[0].Code, eb.Errors[0].Detail
		if ae.Detail == "" {
			ae.Detail = eb.Errors[0].Title
		}
	}
	if v := strings.TrimSpace(resp.Header.Get("Retry-After")); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
			ae.RetryAfter = time.Duration(n * float64(time.Second))
		} else if t, err := http.ParseTime(v); err == nil {
			ae.RetryAfter = time.Until(t)
		}
	}
	return nil, ae
}

// callRetrying is call with Klaviyo's documented back-off: on 429 wait
// Retry-After, on 5xx or a network error wait 1s, 2s, 4s…; up to 6 tries.
// Sends do not use it: they report RateLimited and the host retries.
func (c *Connector) callRetrying(ctx context.Context, s *settings, method, endpoint string, body any) ([]byte, error) {
	backoff := time.Second
	var lastErr error
	for attempt := 0; attempt < 6; attempt++ {
		raw, err := c.call(ctx, s, method, endpoint, body)
		if err == nil {
			return raw, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		lastErr = err
		wait := backoff
		if ae, ok := err.(*apiError); ok {
			switch {
			case ae.Status == http.StatusTooManyRequests:
				wait = ae.RetryAfter
				if wait <= 0 {
					wait = backoff
				}
			case ae.Status >= 500:
			default:
				return nil, err
			}
		}
		if wait > c.maxWait {
			wait = c.maxWait
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, err
		}
		backoff *= 2
	}
	return nil, fmt.Errorf("giving up after retries: %w", lastErr)
}
