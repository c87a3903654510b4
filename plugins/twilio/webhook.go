package twilio

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/omni/omni/plugins/sdk"
)

// SignatureHeader carries base64(HMAC-SHA1(auth token, URL + sorted params)).
const SignatureHeader = "X-Twilio-Signature"

// Webhook paths under /webhooks/twilio.
const (
	PathInbound = "/sms"    // the number's "A message comes in" URL
	PathStatus  = "/status" // StatusCallback of every send
)

// emptyTwiML tells Twilio not to answer the customer itself: replies go
// through Omni's gate and ledger like any other send.
var emptyTwiML = []byte(`<?xml version="1.0" encoding="UTF-8"?><Response/>`)

// HandleWebhook verifies a Twilio webhook and turns it into events.
func (c *Connector) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	s, host, err := c.settings()
	if err != nil {
		return sdk.JSONResponse(http.StatusServiceUnavailable, "twilio connector is not configured"), nil
	}
	path := strings.TrimRight(req.Path, "/")
	if path != PathInbound && path != PathStatus {
		return sdk.JSONResponse(http.StatusNotFound, "unknown twilio webhook: use /webhooks/twilio/sms for incoming messages and /webhooks/twilio/status for delivery statuses"), nil
	}
	if req.Method != http.MethodPost {
		return sdk.JSONResponse(http.StatusMethodNotAllowed, "Twilio webhooks must be configured as HTTP POST"), nil
	}
	params, err := url.ParseQuery(string(req.Body))
	if err != nil {
		return sdk.JSONResponse(http.StatusBadRequest, "body must be application/x-www-form-urlencoded"), nil
	}
	if !ValidSignature(s.authToken, signedURLs(s, req), params, req.Header(SignatureHeader)) {
		if host != nil && c.refusalLog.allow(c.now()) {
			host.Log("warn", "twilio webhook refused: X-Twilio-Signature does not match (check auth_token, and webhook_base_url behind a proxy)",
				"url", req.URL)
		}
		return sdk.JSONResponse(http.StatusForbidden, "X-Twilio-Signature does not match this URL and body (check auth_token and webhook_base_url)"), nil
	}
	var evs []sdk.Event
	var perr error
	if path == PathInbound {
		evs, perr = inboundEvents(params, c.now())
	} else {
		query, _ := url.ParseQuery(req.Query)
		evs, perr = statusEvents(params, query.Get("outbound_id"), c.now())
	}
	if perr != nil {
		return sdk.JSONResponse(http.StatusBadRequest, perr.Error()), nil
	}
	return &sdk.WebhookResponse{Status: http.StatusOK, Events: evs,
		Headers: map[string]string{"Content-Type": "text/xml; charset=utf-8"}, Body: emptyTwiML}, nil
}

// signedURLs are the URLs Twilio may have signed: the one configured as
// webhook_base_url (when a proxy rewrites what Omni sees), else the URL
// as received.
func signedURLs(s *settings, req *sdk.WebhookRequest) []string {
	if s.webhookBase == "" {
		return []string{req.URL}
	}
	u := s.webhookBase + "/webhooks/" + Name + req.Path
	if req.Query != "" {
		u += "?" + req.Query
	}
	return []string{u, req.URL}
}

// ValidSignature checks header against every candidate URL, each with and
// without its port: Twilio is not consistent about including a port, so
// its own libraries try both (and so a proxy adding :443 does not matter).
func ValidSignature(authToken string, urls []string, params url.Values, header string) bool {
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header))
	if err != nil || len(got) == 0 || authToken == "" {
		return false
	}
	ok := false
	for _, u := range urls {
		for _, v := range portVariants(u) {
			// Every variant is computed so timing says nothing about which matched.
			if hmac.Equal(got, signature(authToken, v, params)) {
				ok = true
			}
		}
	}
	return ok
}

// Sign returns the X-Twilio-Signature value Twilio would send (for tests
// and tools that replay webhooks).
func Sign(authToken, fullURL string, params url.Values) string {
	return base64.StdEncoding.EncodeToString(signature(authToken, fullURL, params))
}

// signature is HMAC-SHA1 over the URL followed by each POST parameter,
// sorted by name, as name+value with no separators.
func signature(authToken, fullURL string, params url.Values) []byte {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(fullURL))
	for _, k := range names {
		vals := append([]string(nil), params[k]...)
		sort.Strings(vals)
		for _, v := range vals {
			m.Write([]byte(k))
			m.Write([]byte(v))
		}
	}
	return m.Sum(nil)
}

// portVariants is the URL as given, without its port, and with the
// scheme's default port.
func portVariants(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return out
	}
	host := u.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	def := "80"
	if u.Scheme == "https" {
		def = "443"
	}
	without, with := *u, *u
	without.Host = host
	with.Host = net.JoinHostPort(u.Hostname(), def)
	for _, v := range []string{without.String(), with.String()} {
		if v != raw {
			out = append(out, v)
		}
	}
	return out
}

// everyMinute lets a repeated warning through at most once a minute, so
// a misconfigured proxy or a stranger posting junk cannot flood the log.
type everyMinute struct{ last atomic.Int64 }

func (e *everyMinute) allow(now time.Time) bool {
	prev := e.last.Load()
	return now.Unix()-prev >= 60 && e.last.CompareAndSwap(prev, now.Unix())
}
