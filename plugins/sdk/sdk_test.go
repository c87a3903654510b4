package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/sdk/sdktest"
)

// echo returns what it receives, so every field can be checked after a
// round trip over the wire.
type echo struct {
	host sdk.Host
	last *sdk.OutboundMessage
}

var full = sdk.Event{
	ID: "e1", Type: "order.placed", Name: "Order Placed",
	OccurredAt: time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC),
	Identities: map[string]string{"email": "a@b.co", "phone": "+14155550100"},
	Properties: map[string]any{"total": 12.5, "items": []any{"x", "y"}, "nested": map[string]any{"k": true}},
	Context: sdk.EventContext{Channel: "web", JourneyRun: "run-1",
		Campaign: &sdk.Campaign{Source: "s", Medium: "m", Name: "n", Term: "t", Content: "c"},
		Page:     &sdk.Page{URL: "https://x.test/p?q=1", Path: "/p", Title: "P", Referrer: "r", Search: "?q=1"},
		Extra:    map[string]any{"ip": "1.2.3.4"}},
}

func (e *echo) Describe(context.Context) (*sdk.Description, error) {
	return &sdk.Description{Name: "echo", Version: "1", Config: []sdk.ConfigField{{Name: "k", Secret: true, Required: true, Type: "string"}}, Capabilities: []string{sdk.CapWebhook}}, nil
}
func (e *echo) Configure(_ context.Context, cfg sdk.Config, h sdk.Host) error {
	if cfg["k"] == "" {
		return &sdk.ConfigError{Field: "k", Problem: "is required"}
	}
	e.host = h
	return nil
}
func (e *echo) HandleWebhook(ctx context.Context, r *sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	if r.Path == "/fail" {
		return nil, errors.New("cannot parse")
	}
	b, _ := json.Marshal(r)
	if err := e.host.Emit(ctx, []sdk.Event{full}); err != nil {
		return nil, err
	}
	return &sdk.WebhookResponse{Status: 201, Headers: map[string]string{"X-A": "b"}, Body: b, Events: []sdk.Event{full}}, nil
}
func (e *echo) Send(_ context.Context, m *sdk.OutboundMessage) (*sdk.SendResult, error) {
	e.last = m
	switch m.Text {
	case "perm":
		return nil, sdk.Permanent("131047", "outside window")
	case "rate":
		return nil, sdk.RateLimited(1500*time.Millisecond, "slow down")
	case "plain":
		return nil, errors.New("socket closed")
	}
	return &sdk.SendResult{ProviderMessageID: "p-" + m.ID}, nil
}
func (e *echo) Backfill(ctx context.Context, r *sdk.BackfillRequest, s sdk.BackfillSink) error {
	if r.Cursor != "c0" || !r.Since.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) {
		return errors.New("bad request")
	}
	return s.Batch(ctx, []sdk.Event{full}, "c1", sdk.Progress{Done: 1, Total: 2, Message: "half"})
}
func (e *echo) Health(context.Context) error { return nil }

func TestWireRoundTrip(t *testing.T) {
	impl := &echo{}
	h := sdktest.Start(t, impl, sdk.Config{"k": "v"})
	req := &sdk.WebhookRequest{Method: "POST", Path: "/x", Query: "a=1", Headers: map[string][]string{"X-Sig": {"1", "2"}}, Body: []byte{0, 1, 2}, URL: "https://o.test/webhooks/echo/x?a=1"}
	resp, err := h.Connector.HandleWebhook(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var back sdk.WebhookRequest
	_ = json.Unmarshal(resp.Body, &back)
	if !reflect.DeepEqual(&back, req) || resp.Status != 201 || resp.Headers["X-A"] != "b" {
		t.Fatalf("webhook request/response changed on the wire: %+v", back)
	}
	if len(resp.Events) != 1 || !reflect.DeepEqual(resp.Events[0], full) {
		t.Fatalf("event changed on the wire:\n got %+v\nwant %+v", resp.Events[0], full)
	}
	if em := h.Emitted(); len(em) != 1 || !reflect.DeepEqual(em[0], full) {
		t.Fatalf("emitted event changed: %+v", em)
	}
	if _, err := h.Connector.HandleWebhook(context.Background(), &sdk.WebhookRequest{Path: "/fail"}); err == nil || err.Error() != "cannot parse" {
		t.Fatalf("plugin error: %v", err)
	}

	msg := &sdk.OutboundMessage{ID: "m1", Channel: "whatsapp", To: map[string]string{"wa_id": "1555"}, Text: "hi", Subject: "s", HTML: "<b>", Template: &sdk.Template{Name: "t", Language: "en", Params: []string{"a"}},
		Properties: map[string]any{"x": 1.0}, ProfileID: "p", ConversationID: "c", JourneyRun: "j"}
	if res, err := h.Send(msg); err != nil || res.ProviderMessageID != "p-m1" || !reflect.DeepEqual(impl.last, msg) {
		t.Fatalf("send: %v %v %+v", res, err, impl.last)
	}
	for text, want := range map[string]sdk.SendError{
		"perm":  {Kind: sdk.KindPermanent, Code: "131047", Reason: "outside window"},
		"rate":  {Kind: sdk.KindRateLimited, RetryAfter: 1500 * time.Millisecond, Reason: "slow down"},
		"plain": {Kind: sdk.KindRetryable, Reason: "socket closed"},
	} {
		_, err := h.Send(&sdk.OutboundMessage{ID: "x", Text: text})
		var se *sdk.SendError
		if !errors.As(err, &se) || *se != want {
			t.Fatalf("%s: got %#v want %#v", text, err, want)
		}
	}

	evs, prog, err := h.Backfill(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), "c0")
	if err != nil || len(evs) != 1 || !reflect.DeepEqual(prog, []sdk.Progress{{Done: 1, Total: 2, Message: "half"}}) {
		t.Fatalf("backfill: %v %v %v", evs, prog, err)
	}

	err = h.Connector.Configure(context.Background(), sdk.Config{}, h)
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Field != "k" || ce.Problem != "is required" {
		t.Fatalf("config error: %#v", err)
	}
}
