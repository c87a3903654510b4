// Package example is a small, complete connector used by Omni's tests and
// docs/plugins.md: webhooks signed with HMAC-SHA256 come in, messages go out
// to a configurable HTTP endpoint, and history can be backfilled from it.
//
// Vendor API it talks to (api_url):
//
//	POST {api_url}/messages   body: OutboundMessage JSON, header Idempotency-Key
//	                          → 200 {"id": "<provider message id>"}; 429 with Retry-After; 4xx permanent; 5xx retry
//	GET  {api_url}/events?since=RFC3339&cursor=C
//	                          → {"events":[Payload...], "next_cursor":"", "total":N}
//
// Webhook: POST /webhooks/example with header X-Example-Signature:
// sha256=<hex HMAC-SHA256 of the body with webhook_secret>, body a Payload
// or {"events":[Payload...]}.
package example

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/omni/omni/plugins/sdk"
)

// Name is the connector's name (its webhook path and config section).
const Name = "example"

// SignatureHeader carries the webhook's HMAC.
const SignatureHeader = "X-Example-Signature"

// Payload is one vendor event, as the example vendor sends it.
type Payload struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	Email      string         `json:"email,omitempty"`
	Phone      string         `json:"phone,omitempty"`
	CustomerID string         `json:"customer_id,omitempty"`
	OccurredAt time.Time      `json:"occurred_at"`
	Properties map[string]any `json:"properties,omitempty"`
}

// Connector is the example connector.
type Connector struct {
	mu     sync.RWMutex
	cfg    sdk.Config
	host   sdk.Host
	client *http.Client
}

// New returns an unconfigured example connector. Omni runs up to 8 of a
// connector's sends at once, and Go's default transport keeps 2 idle
// connections per host: the client keeps 16, so concurrent sends reuse
// connections instead of dialling (and shaking hands over TLS) for most
// messages.
func New() sdk.Connector {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	return &Connector{client: &http.Client{Timeout: 10 * time.Second, Transport: t}}
}

// Sign returns the signature header value for body (used by tests and
// by anyone simulating the vendor).
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (c *Connector) Describe(context.Context) (*sdk.Description, error) {
	return &sdk.Description{
		Name:        Name,
		Version:     "1.0.0",
		DisplayName: "Example",
		Description: "Signed JSON webhooks in, messages out to an HTTP endpoint.",
		Config: []sdk.ConfigField{
			{Name: "webhook_secret", Label: "Webhook secret", Type: "string", Required: true, Secret: true, Help: "HMAC-SHA256 key the vendor signs webhooks with"},
			{Name: "api_url", Label: "API URL", Type: "url", Help: "base URL of the vendor API for sends and backfill"},
			{Name: "api_token", Label: "API token", Type: "string", Secret: true, Help: "sent as a Bearer token to the API"},
		},
		Capabilities: []string{sdk.CapWebhook, sdk.CapSendPrefix + "sms", sdk.CapBackfill},
	}, nil
}

func (c *Connector) Configure(_ context.Context, cfg sdk.Config, host sdk.Host) error {
	if cfg["webhook_secret"] == "" {
		return &sdk.ConfigError{Field: "webhook_secret", Problem: "is required"}
	}
	if u := cfg["api_url"]; u != "" {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return &sdk.ConfigError{Field: "api_url", Problem: fmt.Sprintf("%q is not an http(s) URL", u)}
		}
	}
	c.mu.Lock()
	c.cfg, c.host = cfg, host
	c.mu.Unlock()
	host.Log("info", "configured", "api_url", cfg["api_url"])
	return nil
}

func (c *Connector) config() (sdk.Config, sdk.Host) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cfg, c.host
}

func (c *Connector) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	cfg, host := c.config()
	if cfg == nil {
		return &sdk.WebhookResponse{Status: http.StatusServiceUnavailable, Body: []byte(`{"error":"not configured"}`)}, nil
	}
	if req.Method != http.MethodPost {
		// Vendors often verify an endpoint with a GET first.
		return &sdk.WebhookResponse{Status: http.StatusOK, Body: []byte(req.Query)}, nil
	}
	want := Sign(cfg["webhook_secret"], req.Body)
	if !hmac.Equal([]byte(want), []byte(req.Header(SignatureHeader))) {
		return &sdk.WebhookResponse{Status: http.StatusUnauthorized, Body: []byte(`{"error":"bad signature"}`)}, nil
	}
	payloads, err := decode(req.Body)
	if err != nil {
		return &sdk.WebhookResponse{Status: http.StatusBadRequest, Body: []byte(`{"error":` + strconv.Quote(err.Error()) + `}`)}, nil
	}
	evs := make([]sdk.Event, 0, len(payloads))
	for _, p := range payloads {
		evs = append(evs, toEvent(p))
	}
	// "/emit" hands the events to the host through the Emit callback, the
	// way a polling connector would, instead of returning them.
	if req.Path == "/emit" {
		if err := host.Emit(ctx, evs); err != nil {
			return nil, err
		}
		return &sdk.WebhookResponse{Status: http.StatusAccepted, Body: []byte(`{"ok":true}`)}, nil
	}
	return &sdk.WebhookResponse{Status: http.StatusOK, Headers: map[string]string{"Content-Type": "application/json"}, Body: []byte(`{"ok":true}`), Events: evs}, nil
}

func decode(body []byte) ([]Payload, error) {
	trimmed := bytes.TrimSpace(body)
	var many struct {
		Events []Payload `json:"events"`
	}
	if bytes.HasPrefix(trimmed, []byte(`{"events"`)) {
		if err := json.Unmarshal(trimmed, &many); err != nil {
			return nil, err
		}
	} else {
		var one Payload
		if err := json.Unmarshal(trimmed, &one); err != nil {
			return nil, err
		}
		many.Events = []Payload{one}
	}
	for i, p := range many.Events {
		if p.ID == "" {
			return nil, fmt.Errorf("events[%d].id is required", i)
		}
	}
	return many.Events, nil
}

func toEvent(p Payload) sdk.Event {
	ids := map[string]string{}
	if p.Email != "" {
		ids["email"] = p.Email
	}
	if p.Phone != "" {
		ids["phone"] = p.Phone
	}
	if p.CustomerID != "" {
		ids["user_id"] = p.CustomerID
	}
	typ := p.Type
	if typ == "" {
		typ = "track"
	}
	at := p.OccurredAt
	if at.IsZero() {
		at = time.Now().UTC()
	}
	return sdk.Event{ID: "example:" + p.ID, Type: typ, OccurredAt: at, Identities: ids, Properties: p.Properties, Context: sdk.EventContext{Channel: "sms"}}
}

func (c *Connector) Send(ctx context.Context, msg *sdk.OutboundMessage) (*sdk.SendResult, error) {
	cfg, _ := c.config()
	if cfg["api_url"] == "" {
		return nil, sdk.Permanent("not_configured", "api_url is not set")
	}
	body, _ := json.Marshal(msg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(cfg["api_url"], "/")+"/messages", bytes.NewReader(body))
	if err != nil {
		return nil, sdk.Permanent("bad_request", err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", msg.ID)
	if t := cfg["api_token"]; t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, sdk.Retryable(err.Error())
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		after, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return nil, sdk.RateLimited(time.Duration(after)*time.Second, "rate limited by the API")
	case resp.StatusCode >= 500:
		return nil, sdk.Retryable(fmt.Sprintf("API answered %d", resp.StatusCode))
	case resp.StatusCode >= 400:
		return nil, sdk.Permanent(strconv.Itoa(resp.StatusCode), strings.TrimSpace(string(rb)))
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(rb, &out); err != nil || out.ID == "" {
		return nil, sdk.Retryable("API answered without a message id")
	}
	return &sdk.SendResult{ProviderMessageID: out.ID}, nil
}

func (c *Connector) Backfill(ctx context.Context, req *sdk.BackfillRequest, sink sdk.BackfillSink) error {
	cfg, _ := c.config()
	if cfg["api_url"] == "" {
		return errors.New("api_url is not set")
	}
	cursor := req.Cursor
	var done int64
	for {
		q := url.Values{"since": {req.Since.UTC().Format(time.RFC3339)}, "cursor": {cursor}}
		hr, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(cfg["api_url"], "/")+"/events?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		if t := cfg["api_token"]; t != "" {
			hr.Header.Set("Authorization", "Bearer "+t)
		}
		resp, err := c.client.Do(hr)
		if err != nil {
			return err
		}
		var page struct {
			Events     []Payload `json:"events"`
			NextCursor string    `json:"next_cursor"`
			Total      int64     `json:"total"`
			Done       int64     `json:"done"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("backfill: API answered %d", resp.StatusCode)
		}
		if err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
		evs := make([]sdk.Event, len(page.Events))
		for i, p := range page.Events {
			evs[i] = toEvent(p)
		}
		done += int64(len(evs))
		if page.Done > 0 {
			done = page.Done
		}
		if err := sink.Batch(ctx, evs, page.NextCursor, sdk.Progress{Done: done, Total: page.Total}); err != nil {
			return err
		}
		if page.NextCursor == "" {
			return nil
		}
		cursor = page.NextCursor
	}
}

func (c *Connector) Health(context.Context) error {
	if cfg, _ := c.config(); cfg == nil {
		return errors.New("not configured")
	}
	return nil
}
