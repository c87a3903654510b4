package twilio

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/internal/vendorhttp"
	"github.com/omni/omni/plugins/sdk"
)

// maxBody is Twilio's limit on Body (characters).
const maxBody = 1600

// Twilio error codes Omni acts on (https://www.twilio.com/docs/api/errors).
const (
	CodeUnsubscribed  = "21610" // the recipient replied STOP: Twilio blocks every send
	CodeInvalidNumber = "21211" // the To number is not a valid phone number
	// CodeInvalidCallback: Twilio cannot use the StatusCallback URL.
	CodeInvalidCallback = "21609"
)

// errorReasons explains the codes a shop is likely to meet, for the
// failure shown on the message. Unknown codes keep Twilio's message.
var errorReasons = map[string]string{
	"21211": "invalid phone number",
	"21408": "sending to this region is not enabled in the Twilio console (Messaging → Settings → Geo permissions)",
	"21606": "the From number cannot send SMS (or is not in this account)",
	"21610": "the customer replied STOP to this number; Twilio blocks messages until they reply START",
	"21612": "Twilio cannot route to this number from the sender",
	"21614": "the number is not a mobile number (landline?)",
	"21617": "message body too long",
	"30003": "unreachable handset (off or out of coverage)",
	"30004": "message blocked by the recipient or carrier",
	"30005": "unknown destination handset (number not in service)",
	"30006": "landline or unreachable carrier",
	"30007": "blocked by carrier filtering (spam)",
	"30008": "unknown error from the carrier",
	"30034": "US A2P 10DLC: the sender is not registered for messaging",
}

// undeliverableCodes mean the number itself cannot receive SMS: the
// message failed for good and the gate should stop using that number.
var undeliverableCodes = map[string]bool{"21211": true, "21614": true, "30005": true, "30006": true}

// twilioError is Twilio's REST error body.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func parseTwilioError(body []byte) *twilioError {
	var e twilioError
	if json.Unmarshal(body, &e) != nil || (e.Code == 0 && e.Message == "") {
		return nil
	}
	return &e
}

// Send posts one SMS to the Messages API.
func (c *Connector) Send(ctx context.Context, msg *sdk.OutboundMessage) (*sdk.SendResult, error) {
	s, host, err := c.settings()
	if err != nil {
		return nil, sdk.Retryable(err.Error())
	}
	if msg.Channel != "" && msg.Channel != events.ChannelSMS {
		return nil, sdk.Permanent("unsupported_channel", fmt.Sprintf("the twilio connector sends sms, not %q", msg.Channel))
	}
	to := strings.TrimSpace(msg.To[events.Phone])
	if to == "" {
		return nil, sdk.Permanent("missing_recipient", "to needs a phone number")
	}
	if !validE164(to) {
		return nil, sdk.Permanent(CodeInvalidNumber, fmt.Sprintf("%q is not an E.164 phone number", to))
	}
	text := msg.Text
	if strings.TrimSpace(text) == "" {
		return nil, sdk.Permanent("empty_message", "an sms needs text")
	}
	if n := utf8.RuneCountInString(text); n > maxBody {
		return nil, sdk.Permanent("21617", fmt.Sprintf("message body is %d characters; Twilio accepts at most %d", n, maxBody))
	}

	form := url.Values{"To": {to}, "Body": {text}}
	if s.serviceSID != "" {
		form.Set("MessagingServiceSid", s.serviceSID)
	} else {
		form.Set("From", s.from)
	}
	if cb := statusCallback(msg); cb != "" {
		// Twilio refuses the whole send (21609) for a callback it cannot
		// reach, such as the default loopback public_url; a local fake
		// API (test_base_url) reaches local URLs.
		if reachable(cb) || s.baseURL != DefaultBaseURL {
			form.Set("StatusCallback", cb)
		} else {
			c.warnCallback(host, cb)
		}
	}
	status, retryAfter, raw, err := c.post(ctx, s, form)
	if err == nil && status == http.StatusBadRequest && form.Has("StatusCallback") {
		if te := parseTwilioError(raw); te != nil && strconv.Itoa(te.Code) == CodeInvalidCallback {
			// Better sent without delivery statuses than not sent.
			c.warnCallback(host, form.Get("StatusCallback"))
			form.Del("StatusCallback")
			status, retryAfter, raw, err = c.post(ctx, s, form)
		}
	}
	if err != nil {
		return nil, sdk.Retryable("twilio api unreachable: " + err.Error())
	}
	if status/100 != 2 {
		serr := mapSendError(status, retryAfter, raw)
		if se := sdk.AsSendError(serr); se.Code == CodeUnsubscribed && host != nil {
			c.recordOptOut(ctx, host, to, msg.ID)
		}
		return nil, serr
	}
	var out struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.SID == "" {
		// Twilio accepted it; reporting a failure would send it twice.
		return &sdk.SendResult{ProviderMessageID: "unknown:" + msg.ID}, nil
	}
	return &sdk.SendResult{ProviderMessageID: out.SID}, nil
}

// post creates one message and returns Twilio's answer.
func (c *Connector) post(ctx context.Context, s *settings, form url.Values) (status int, retryAfter string, body []byte, err error) {
	endpoint := s.baseURL + "/2010-04-01/Accounts/" + url.PathEscape(s.accountSID) + "/Messages.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", nil, err
	}
	req.SetBasicAuth(s.user, s.pass)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header.Get("Retry-After"), body, nil
}

// reachable is false for callback URLs Twilio can never call: loopback,
// private and link-local addresses, localhost.
func reachable(cb string) bool {
	u, err := url.Parse(cb)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || h == "" {
		return false
	}
	if ip := net.ParseIP(h); ip != nil {
		return !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified())
	}
	return true
}

// warnCallback says once that delivery statuses will not arrive.
func (c *Connector) warnCallback(host sdk.Host, cb string) {
	if host == nil || c.callbackWarned.Swap(true) {
		return
	}
	host.Log("warn", "sending sms without delivery statuses: Twilio cannot reach the status callback URL; set public_url to the address Twilio can call",
		"status_callback_url", cb)
}

// statusCallback is properties.status_callback_url with outbound_id=ID
// added, so the status webhook can name Omni's message without a lookup.
func statusCallback(msg *sdk.OutboundMessage) string {
	base, _ := msg.Properties["status_callback_url"].(string)
	base = strings.TrimSpace(base)
	if base == "" {
		return ""
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	if msg.ID != "" {
		q := u.Query()
		q.Set("outbound_id", msg.ID)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// mapSendError turns a non-2xx Messages API answer into a typed error:
// 429 waits, 5xx and auth failures retry (the message is not at fault),
// any other 4xx is permanent with Twilio's code.
func mapSendError(statusCode int, retryAfter string, body []byte) error {
	te := parseTwilioError(body)
	code, msg := "", http.StatusText(statusCode)
	if te != nil {
		if te.Code != 0 {
			code = strconv.Itoa(te.Code)
		}
		if te.Message != "" {
			msg = te.Message
		}
	}
	label := fmt.Sprintf("twilio HTTP %d", statusCode)
	if code != "" {
		label = fmt.Sprintf("twilio %s (HTTP %d)", code, statusCode)
	}
	switch {
	case statusCode == http.StatusTooManyRequests || code == "20429":
		pause, ok := vendorhttp.RetryAfter(retryAfter, time.Now())
		if !ok {
			pause = time.Second
		}
		err := sdk.RateLimited(pause, label+": "+msg).(*sdk.SendError)
		err.Code = code
		return err
	case statusCode >= 500, statusCode == http.StatusUnauthorized:
		// 401 (code 20003) is a credentials problem: keep the message
		// queued until the settings are fixed rather than lose it.
		return &sdk.SendError{Kind: sdk.KindRetryable, Code: code, Reason: label + ": " + msg}
	}
	if code == "" {
		code = "http_" + strconv.Itoa(statusCode)
	}
	if reason, ok := errorReasons[code]; ok {
		msg = reason + ": " + msg
	}
	return sdk.Permanent(code, label+": "+msg)
}

// recordOptOut stores what error 21610 proves: the customer replied STOP
// to this number (perhaps before Omni was set up), so SMS consent is
// unsubscribed.
func (c *Connector) recordOptOut(ctx context.Context, host sdk.Host, to, msgID string) {
	ev := sdk.Event{
		ID:         "twilio-send:" + CodeUnsubscribed + ":" + msgID,
		Type:       events.ConsentChanged,
		OccurredAt: c.now().UTC(),
		Identities: map[string]string{events.Phone: to},
		Properties: map[string]any{"channel": events.ChannelSMS, "status": "unsubscribed", "source": Name,
			"reason": "twilio error 21610: the customer replied STOP", "outbound_id": msgID},
		Context: sdk.EventContext{Channel: events.ChannelSMS},
	}
	if err := host.Emit(ctx, []sdk.Event{ev}); err != nil {
		host.Log("warn", "could not record the sms opt-out Twilio reported", "error", err.Error())
	}
}
