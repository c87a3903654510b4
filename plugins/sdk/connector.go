// Package sdk is the one package a connector author imports. A connector
// implements Connector and calls Serve from main; Omni runs it as a
// subprocess and talks to it over gRPC (hashicorp/go-plugin).
package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ProtocolVersion is the wire protocol version between Omni and connectors.
// A host refuses a plugin speaking another version.
const ProtocolVersion = 1

// Capabilities a connector can declare.
const (
	CapWebhook  = "webhook"
	CapBackfill = "backfill"
	// CapSendPrefix + channel, e.g. "send:whatsapp", "send:email".
	CapSendPrefix = "send:"
	// CapErase: the connector asks its vendor to delete a person when Omni
	// erases them. It then receives ErasureRequest messages through Send.
	CapErase = "erase"
)

// ChannelErase is the Channel of an erasure request. When an owner erases
// a person (or a vendor asks Omni to), each enabled connector that
// declares CapErase gets one OutboundMessage with this channel, through
// the same durable queue as sends: retried while the vendor is down.
// To holds one value per identity kind; Properties["identities"] lists
// every identity the person had, as []any of {"kind", "value"} maps;
// ProfileID is the erased profile. Nothing else about the person is sent.
// Return a SendResult once the vendor has accepted the deletion (its job
// id, or any non-empty reference, as ProviderMessageID), and errors as
// for any send.
const ChannelErase = "erase"

// ErasureIdentities returns the identities of an erasure request (all of
// them, not only the one per kind in To), as kind → values.
func ErasureIdentities(msg *OutboundMessage) map[string][]string {
	out := map[string][]string{}
	seen := map[string]bool{}
	add := func(kind, value string) {
		if kind == "" || value == "" || seen[kind+"\x00"+value] {
			return
		}
		seen[kind+"\x00"+value] = true
		out[kind] = append(out[kind], value)
	}
	if list, ok := msg.Properties["identities"].([]any); ok {
		for _, it := range list {
			if m, ok := it.(map[string]any); ok {
				k, _ := m["kind"].(string)
				v, _ := m["value"].(string)
				add(k, v)
			}
		}
	}
	for k, v := range msg.To {
		add(k, v)
	}
	return out
}

// Connector is what a plugin implements.
type Connector interface {
	// Describe returns the connector's name, version, config schema and
	// capabilities. It is called before Configure.
	Describe(ctx context.Context) (*Description, error)
	// Configure hands the connector its settings (secrets decrypted) and the
	// host callbacks. It is called again whenever the settings change. It
	// returns an error naming the field when settings are missing or wrong.
	Configure(ctx context.Context, cfg Config, host Host) error
	// HandleWebhook verifies and translates one vendor HTTP request. The
	// host stores Events on the bus before it sends Response to the vendor.
	HandleWebhook(ctx context.Context, req *WebhookRequest) (*WebhookResponse, error)
	// Send delivers one outbound message. Errors should be made with
	// Retryable, Permanent or RateLimited so the host knows what to do.
	Send(ctx context.Context, msg *OutboundMessage) (*SendResult, error)
	// Backfill imports history since req.Since (resuming at req.Cursor),
	// handing batches to sink as it goes.
	Backfill(ctx context.Context, req *BackfillRequest, sink BackfillSink) error
	// Health reports whether the vendor can be reached with the current
	// settings (a cheap authenticated read). The host calls it now and
	// then, shows a failure as the vendor's state ("unreachable" with
	// the error) on the connector card and in /api/v1/health, and never
	// restarts the plugin for it: whether the process is alive is checked
	// separately, with pings that do not reach this code.
	Health(ctx context.Context) error
}

// Description declares a connector.
type Description struct {
	Name         string        `json:"name"`
	Version      string        `json:"version"`
	DisplayName  string        `json:"display_name"`
	Description  string        `json:"description"`
	Config       []ConfigField `json:"config"`
	Capabilities []string      `json:"capabilities"`
}

// ConfigField is one setting in a connector's config schema.
type ConfigField struct {
	Name     string `json:"name"`
	Label    string `json:"label"`
	Help     string `json:"help,omitempty"`
	Type     string `json:"type"` // "string", "url", "bool", "int"
	Required bool   `json:"required"`
	// Secret fields are encrypted at rest, write-only in the admin, and
	// masked in API responses and logs.
	Secret  bool   `json:"secret"`
	Default string `json:"default,omitempty"`
}

// Config is a connector's settings by field name.
type Config map[string]string

// Host is what a connector can call back into Omni.
type Host interface {
	// Emit stores events the connector learned on its own (e.g. polling);
	// it returns once they are durably on the bus.
	Emit(ctx context.Context, events []Event) error
	// Log writes to Omni's log under the connector's name. Levels: debug,
	// info, warn, error. Never pass secrets.
	Log(level, msg string, keyvals ...any)
}

// Event mirrors Omni's unified event model (see docs/architecture.md).
// ID must be stable for one real-world occurrence (the vendor's webhook or
// event id) so redeliveries are dropped.
type Event struct {
	ID         string            `json:"id"`
	Type       string            `json:"type"`
	Name       string            `json:"name,omitempty"`
	OccurredAt time.Time         `json:"occurred_at"`
	Identities map[string]string `json:"identities"`
	Properties map[string]any    `json:"properties,omitempty"`
	Context    EventContext      `json:"context"`
}

// EventContext says where an event happened and what led to it.
type EventContext struct {
	Channel    string         `json:"channel,omitempty"`
	Campaign   *Campaign      `json:"campaign,omitempty"`
	JourneyRun string         `json:"journey_run,omitempty"`
	Page       *Page          `json:"page,omitempty"`
	Extra      map[string]any `json:"extra,omitempty"`
}

// Campaign holds UTM-style attribution fields.
type Campaign struct {
	Source  string `json:"source,omitempty"`
	Medium  string `json:"medium,omitempty"`
	Name    string `json:"name,omitempty"`
	Term    string `json:"term,omitempty"`
	Content string `json:"content,omitempty"`
}

// Page describes a web page.
type Page struct {
	URL      string `json:"url,omitempty"`
	Path     string `json:"path,omitempty"`
	Title    string `json:"title,omitempty"`
	Referrer string `json:"referrer,omitempty"`
	Search   string `json:"search,omitempty"`
}

// WebhookRequest is the raw vendor request, exactly as received.
type WebhookRequest struct {
	Method string `json:"method"`
	// Path is the part after /webhooks/{connector}, e.g. "/orders".
	Path    string              `json:"path"`
	Query   string              `json:"query"` // raw query string
	Headers map[string][]string `json:"headers"`
	Body    []byte              `json:"body"`
	// URL is the full public URL the vendor called (some vendors sign it).
	URL string `json:"url"`
}

// Header returns the first value of a header, case-insensitively.
func (r *WebhookRequest) Header(name string) string {
	for k, v := range r.Headers {
		if len(v) > 0 && equalFold(k, name) {
			return v[0]
		}
	}
	return ""
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// WebhookResponse is what the vendor gets back, after Events are stored.
type WebhookResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    []byte            `json:"body,omitempty"`
	Events  []Event           `json:"events,omitempty"`
}

// OutboundMessage is one message to deliver.
type OutboundMessage struct {
	// ID is stable across retries; use it as the vendor idempotency key
	// where the vendor has one.
	ID      string `json:"id"`
	Channel string `json:"channel"` // "whatsapp", "email", "sms", …
	// To holds the recipient's identities (email, phone, wa_id, …).
	To       map[string]string `json:"to"`
	Text     string            `json:"text,omitempty"`
	Subject  string            `json:"subject,omitempty"`
	HTML     string            `json:"html,omitempty"`
	Template *Template         `json:"template,omitempty"`
	// Properties carry anything else (profile traits, journey data).
	Properties     map[string]any `json:"properties,omitempty"`
	ProfileID      string         `json:"profile_id,omitempty"`
	ConversationID string         `json:"conversation_id,omitempty"`
	JourneyRun     string         `json:"journey_run,omitempty"`
}

// Template is a pre-approved message template (e.g. WhatsApp).
type Template struct {
	Name     string   `json:"name"`
	Language string   `json:"language"`
	Params   []string `json:"params,omitempty"`
}

// SendResult is a successful send.
type SendResult struct {
	ProviderMessageID string `json:"provider_message_id"`
}

// BackfillRequest asks for history.
type BackfillRequest struct {
	Since  time.Time `json:"since"`
	Cursor string    `json:"cursor,omitempty"` // resume point from an earlier run
}

// Progress reports how far a backfill is.
type Progress struct {
	Done    int64  `json:"done"`
	Total   int64  `json:"total"` // 0 when unknown
	Message string `json:"message,omitempty"`
}

// BackfillSink receives backfilled events. Cursor is the resume point after
// this batch; the host persists it once the events are stored.
type BackfillSink interface {
	Batch(ctx context.Context, events []Event, cursor string, p Progress) error
}

// ErrorKind classifies a Send failure.
type ErrorKind string

const (
	KindRetryable   ErrorKind = "retryable"
	KindPermanent   ErrorKind = "permanent"
	KindRateLimited ErrorKind = "rate_limited"
)

// SendError is a typed Send failure.
type SendError struct {
	Kind       ErrorKind
	Reason     string
	RetryAfter time.Duration // for KindRateLimited
	// Code is the vendor's error code, if any (e.g. Meta's 131047).
	Code string
}

func (e *SendError) Error() string {
	if e.Kind == KindRateLimited {
		return fmt.Sprintf("%s (retry after %s): %s", e.Kind, e.RetryAfter, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Reason)
}

// Retryable is a temporary failure; the host retries with backoff.
func Retryable(reason string) error { return &SendError{Kind: KindRetryable, Reason: reason} }

// Permanent will never succeed as is; the host records message.failed.
func Permanent(code, reason string) error {
	return &SendError{Kind: KindPermanent, Code: code, Reason: reason}
}

// RateLimited asks the host to wait before retrying.
func RateLimited(after time.Duration, reason string) error {
	return &SendError{Kind: KindRateLimited, RetryAfter: after, Reason: reason}
}

// AsSendError extracts a SendError; untyped errors count as retryable.
func AsSendError(err error) *SendError {
	var se *SendError
	if errors.As(err, &se) {
		return se
	}
	return &SendError{Kind: KindRetryable, Reason: err.Error()}
}

// ConfigError names the setting that is missing or wrong.
type ConfigError struct {
	Field   string
	Problem string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Problem }

// JSONResponse is a webhook answer with a JSON body {"status", "message",
// "data": {}}, the error shape of every Omni route (docs/api.md#errors);
// use it for 4xx answers to vendors.
func JSONResponse(status int, message string) *WebhookResponse {
	b, _ := json.Marshal(map[string]any{"status": status, "message": message, "data": map[string]any{}})
	return &WebhookResponse{Status: status, Headers: map[string]string{"Content-Type": "application/json"}, Body: b}
}
