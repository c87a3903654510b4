package klaviyo

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/omni/omni/plugins/sdk"
)

// System webhook headers.
const (
	SignatureHeader = "Klaviyo-Signature"
	TimestampHeader = "Klaviyo-Timestamp"
	WebhookIDHeader = "Klaviyo-Webhook-Id"
)

// Sign returns the Klaviyo-Signature for body and the Klaviyo-Timestamp
// header value: lowercase hex HMAC-SHA256(secret, body || timestamp).
func Sign(secret string, body []byte, timestamp string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	m.Write([]byte(timestamp))
	return hex.EncodeToString(m.Sum(nil))
}

// ValidSignature checks Klaviyo-Signature in constant time.
func ValidSignature(secret string, body []byte, timestamp, signature string) bool {
	if secret == "" || timestamp == "" {
		return false
	}
	got, err := hex.DecodeString(strings.TrimSpace(signature))
	if err != nil {
		return false
	}
	want, _ := hex.DecodeString(Sign(secret, body, timestamp))
	return hmac.Equal(got, want)
}

type systemWebhook struct {
	Meta struct {
		Timestamp        string `json:"timestamp"`
		KlaviyoWebhookID string `json:"klaviyo_webhook_id"`
		KlaviyoAccountID string `json:"klaviyo_account_id"`
		Version          string `json:"version"`
	} `json:"meta"`
	Data []struct {
		Topic      string `json:"topic"`
		ExternalID string `json:"external_id"`
		Payload    struct {
			Data     resource   `json:"data"`
			Included []resource `json:"included"`
		} `json:"payload"`
	} `json:"data"`
}

// HandleWebhook accepts Klaviyo system webhooks (signed with the webhook's
// secret_key) and maps email engagement topics to events.
func (c *Connector) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	s, _, err := c.settings()
	if err != nil {
		return sdk.JSONResponse(http.StatusServiceUnavailable, "klaviyo connector is not configured"), nil
	}
	if req.Method != http.MethodPost {
		return sdk.JSONResponse(http.StatusMethodNotAllowed, "system webhooks are POSTed"), nil
	}
	if s.webhookSecret == "" {
		return sdk.JSONResponse(http.StatusNotFound, "system webhooks are off: set webhook_secret to the webhook's secret_key"), nil
	}
	if !ValidSignature(s.webhookSecret, req.Body, req.Header(TimestampHeader), req.Header(SignatureHeader)) {
		return sdk.JSONResponse(http.StatusUnauthorized, "Klaviyo-Signature does not match the body and Klaviyo-Timestamp (check webhook_secret)"), nil
	}
	evs, err := ParseSystemWebhook(req.Body, req.Header(WebhookIDHeader), c.now())
	if err != nil {
		return sdk.JSONResponse(http.StatusBadRequest, err.Error()), nil
	}
	return &sdk.WebhookResponse{Status: http.StatusOK, Events: evs,
		Headers: map[string]string{"Content-Type": "application/json"},
		Body:    []byte(`{"status":200,"message":"ok"}`)}, nil
}

// ParseSystemWebhook maps a system webhook body; topics Omni does not map
// are skipped. webhookID (the header) must match meta.klaviyo_webhook_id.
func ParseSystemWebhook(body []byte, webhookID string, now time.Time) ([]sdk.Event, error) {
	var w systemWebhook
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("body is not valid JSON: %v", err)
	}
	if webhookID != "" && w.Meta.KlaviyoWebhookID != "" && webhookID != w.Meta.KlaviyoWebhookID {
		return nil, fmt.Errorf("meta.klaviyo_webhook_id does not match the Klaviyo-Webhook-Id header")
	}
	var out []sdk.Event
	for i, item := range w.Data {
		m, name, ok := mappingByTopic(item.Topic)
		if !ok {
			continue
		}
		ev := item.Payload.Data
		if ev.ID == "" {
			ev.ID = item.ExternalID
		}
		profiles := map[string]resource{}
		for _, inc := range item.Payload.Included {
			if inc.Type == "profile" {
				profiles[inc.ID] = inc
			}
		}
		e, ok := eventToOmni(ev, name, m, profiles, now)
		if !ok {
			return nil, fmt.Errorf("data[%d]: event has no id or no profile to attach to", i)
		}
		e.Properties["klaviyo_account_id"] = w.Meta.KlaviyoAccountID
		out = append(out, e)
	}
	return out, nil
}
