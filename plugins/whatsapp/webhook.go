package whatsapp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
)

// SignatureHeader carries sha256=<hex HMAC-SHA256(app secret, raw body)>.
const SignatureHeader = "X-Hub-Signature-256"

// HandleWebhook answers Meta's GET verification handshake and turns signed
// POST deliveries into events.
func (c *Connector) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	s, _, err := c.settings()
	if err != nil {
		return sdk.JSONResponse(http.StatusServiceUnavailable, "whatsapp connector is not configured"), nil
	}
	switch req.Method {
	case http.MethodGet:
		return verifyHandshake(s, req.Query), nil
	case http.MethodPost:
	default:
		return sdk.JSONResponse(http.StatusMethodNotAllowed, "only GET (verification) and POST (notifications) are accepted"), nil
	}
	if !ValidSignature(s.appSecret, req.Body, req.Header(SignatureHeader)) {
		return sdk.JSONResponse(http.StatusUnauthorized, "X-Hub-Signature-256 does not match the body (check app_secret)"), nil
	}
	evs, foreign, err := parseFor(req.Body, c.now(), s.phoneNumberID)
	if err != nil {
		return sdk.JSONResponse(http.StatusBadRequest, err.Error()), nil
	}
	c.noteForeign(foreign)
	for _, ev := range evs {
		if ev.Type == events.MessageReceived {
			c.noteInbound(ev.Identities[events.WhatsAppID], ev.OccurredAt)
		}
	}
	return &sdk.WebhookResponse{Status: http.StatusOK, Events: evs,
		Headers: map[string]string{"Content-Type": "application/json"},
		Body:    []byte(`{"status":200,"message":"ok"}`)}, nil
}

// noteForeign logs, once per number, that notifications for another phone
// number id were ignored: they are answered 200 (Meta would otherwise
// retry them for days) but not stored. A misrouted app shows up in the
// log without flooding it.
func (c *Connector) noteForeign(ids []string) {
	_, host, _ := c.settings()
	for _, id := range ids {
		c.foreignMu.Lock()
		seen := c.foreignSeen[id]
		if !seen && len(c.foreignSeen) < maxForeignRemembered {
			c.foreignSeen[id] = true
		}
		c.foreignMu.Unlock()
		if !seen && host != nil {
			host.Log("warn", "ignoring notifications for another WhatsApp phone number (this connector is set up for "+c.phoneNumberID()+")",
				"phone_number_id", id)
		}
	}
}

// maxForeignRemembered bounds the set of numbers already logged.
const maxForeignRemembered = 1000

// verifyHandshake implements Meta's subscription check: echo hub.challenge
// as plain text when hub.verify_token matches, 403 otherwise.
func verifyHandshake(s *settings, rawQuery string) *sdk.WebhookResponse {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return sdk.JSONResponse(http.StatusBadRequest, "query string is malformed")
	}
	if q.Get("hub.mode") != "subscribe" ||
		!hmac.Equal([]byte(q.Get("hub.verify_token")), []byte(s.verifyToken)) {
		return sdk.JSONResponse(http.StatusForbidden, "hub.mode must be subscribe and hub.verify_token must match verify_token")
	}
	return &sdk.WebhookResponse{Status: http.StatusOK,
		Headers: map[string]string{"Content-Type": "text/plain; charset=utf-8"},
		Body:    []byte(q.Get("hub.challenge"))}
}

// ValidSignature checks X-Hub-Signature-256 against the raw body.
func ValidSignature(appSecret string, body []byte, header string) bool {
	sig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok || appSecret == "" {
		return false
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// Sign returns the X-Hub-Signature-256 value for body (used by tests and
// tools that replay deliveries).
func Sign(appSecret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
