package whatsapp

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
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/internal/vendorhttp"
	"github.com/omni/omni/plugins/sdk"
)

// CodeOutsideWindow is the SendError code for a free-form message outside
// the 24-hour customer-service window, whether Omni knew it beforehand or
// Meta answered 131047. Callers fall back to a template or another channel.
const CodeOutsideWindow = "131047"

// callbackPrefix marks biz_opaque_callback_data set by Omni, so status
// notifications can be joined back to the outbox message.
const callbackPrefix = "omni:"

type sendRequest struct {
	MessagingProduct string        `json:"messaging_product"`
	RecipientType    string        `json:"recipient_type"`
	To               string        `json:"to"`
	Type             string        `json:"type"`
	Text             *textBody     `json:"text,omitempty"`
	Template         *templateBody `json:"template,omitempty"`
	Context          *replyContext `json:"context,omitempty"`
	BizOpaque        string        `json:"biz_opaque_callback_data,omitempty"`
}

type textBody struct {
	Body       string `json:"body"`
	PreviewURL bool   `json:"preview_url"`
}

type templateBody struct {
	Name     string `json:"name"`
	Language struct {
		Code string `json:"code"`
	} `json:"language"`
	Components []any `json:"components,omitempty"`
}

type replyContext struct {
	MessageID string `json:"message_id"`
}

type sendResponse struct {
	Contacts []struct {
		Input string `json:"input"`
		WaID  string `json:"wa_id"`
	} `json:"contacts"`
	Messages []struct {
		ID            string `json:"id"`
		MessageStatus string `json:"message_status"`
	} `json:"messages"`
}

// Send delivers a text message (inside the 24-hour window) or a template
// message (msg.Template set), mapping Meta's errors to typed SDK errors.
func (c *Connector) Send(ctx context.Context, msg *sdk.OutboundMessage) (*sdk.SendResult, error) {
	s, host, err := c.settings()
	if err != nil {
		return nil, sdk.Retryable(err.Error())
	}
	if msg.Channel != "" && msg.Channel != events.ChannelWhatsApp {
		return nil, sdk.Permanent("unsupported_channel", fmt.Sprintf("the whatsapp connector cannot send on channel %q", msg.Channel))
	}
	to := recipient(msg.To)
	if to == "" {
		return nil, sdk.Permanent("missing_recipient", "to needs a wa_id or a phone number")
	}
	body := sendRequest{MessagingProduct: "whatsapp", RecipientType: "individual", To: to}
	if msg.ID != "" {
		body.BizOpaque = callbackPrefix + msg.ID
	}
	if reply, _ := msg.Properties["reply_to_message_id"].(string); reply != "" {
		body.Context = &replyContext{MessageID: reply}
	}
	switch {
	case msg.Template != nil:
		if strings.TrimSpace(msg.Template.Name) == "" {
			return nil, sdk.Permanent("invalid_template", "template.name is required")
		}
		t := &templateBody{Name: msg.Template.Name, Components: templateComponents(msg)}
		t.Language.Code = msg.Template.Language
		if t.Language.Code == "" {
			t.Language.Code = "en_US"
		}
		body.Type, body.Template = "template", t
	case strings.TrimSpace(msg.Text) != "":
		if last, ok := c.windowStart(to, msg.Properties); ok && c.now().Sub(last) > serviceWindow {
			return nil, sdk.Permanent(CodeOutsideWindow, fmt.Sprintf(
				"outside the 24-hour customer service window (customer last wrote %s ago): send an approved template or use another channel",
				c.now().Sub(last).Round(time.Minute)))
		}
		preview := strings.Contains(msg.Text, "https://") || strings.Contains(msg.Text, "http://")
		body.Type, body.Text = "text", &textBody{Body: msg.Text, PreviewURL: preview}
	default:
		return nil, sdk.Permanent("empty_message", "a whatsapp message needs text or a template")
	}

	payload, err := json.Marshal(body)
	if err != nil {
		return nil, sdk.Permanent("encode", err.Error())
	}
	endpoint := s.baseURL + "/" + s.apiVersion + "/" + url.PathEscape(s.phoneNumberID) + "/messages"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(payload))
	if err != nil {
		return nil, sdk.Permanent("request", err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+s.accessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, sdk.Retryable("graph api unreachable: " + err.Error())
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		serr := mapSendError(resp.StatusCode, resp.Header.Get("Retry-After"), raw)
		if se := sdk.AsSendError(serr); se.Code == "131050" && host != nil {
			c.recordOptOut(ctx, host, to, msg.ID)
		}
		return nil, serr
	}
	var out sendResponse
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Messages) == 0 || out.Messages[0].ID == "" {
		// Meta accepted the request; without the wamid statuses cannot be
		// joined, but reporting failure would make the host send it twice.
		return &sdk.SendResult{ProviderMessageID: "unknown:" + msg.ID}, nil
	}
	return &sdk.SendResult{ProviderMessageID: out.Messages[0].ID}, nil
}

// recipient picks the WhatsApp id, else the phone number, as digits.
func recipient(to map[string]string) string {
	for _, k := range []string{events.WhatsAppID, events.Phone} {
		v := strings.TrimSpace(to[k])
		if v == "" {
			continue
		}
		var b strings.Builder
		for _, r := range v {
			if r >= '0' && r <= '9' {
				b.WriteRune(r)
			}
		}
		if b.Len() >= 7 {
			return b.String()
		}
		if k == events.WhatsAppID {
			return v // a username-era id (BSUID) is sent as is
		}
	}
	return ""
}

// windowStart is the customer's last inbound message time, from this
// process's memory or from properties.last_inbound_at (RFC 3339) supplied
// by the inbox; the later one wins.
func (c *Connector) windowStart(to string, props map[string]any) (time.Time, bool) {
	last, ok := c.lastInboundAt(to)
	if s, _ := props["last_inbound_at"].(string); s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil && t.After(last) {
			last, ok = t, true
		}
	}
	return last, ok
}

// templateComponents turns Template.Params into body text parameters, or
// passes properties.template_components through for headers and buttons.
func templateComponents(msg *sdk.OutboundMessage) []any {
	if comps, ok := msg.Properties["template_components"].([]any); ok && len(comps) > 0 {
		return comps
	}
	if len(msg.Template.Params) == 0 {
		return nil
	}
	params := make([]any, 0, len(msg.Template.Params))
	for _, p := range msg.Template.Params {
		params = append(params, map[string]any{"type": "text", "text": p})
	}
	return []any{map[string]any{"type": "body", "parameters": params}}
}

func parseMetaError(body []byte) *metaError {
	var env struct {
		Error *metaError `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil || env.Error == nil {
		return nil
	}
	return env.Error
}

// Meta error codes Omni treats specially (see docs/connectors/whatsapp.md).
var (
	// rateLimitCodes are the only ones worth retrying, after a pause.
	rateLimitCodes = map[int]time.Duration{
		4:      time.Minute,     // application request limit
		80007:  time.Minute,     // WABA rate limit
		130429: time.Second,     // throughput (messages per second per number)
		131056: 6 * time.Second, // pair rate: about one message per 6 s to one user
	}
	permanentReasons = map[int]string{
		131047: "outside the 24-hour customer service window (re-engagement required): send an approved template or use another channel",
		131050: "the customer stopped marketing messages from this business",
		131026: "message undeliverable (not a WhatsApp user, old app, or terms not accepted)",
		131048: "spam rate limit: too many messages were blocked or reported",
		131049: "not delivered to keep the marketing ecosystem healthy (per-user marketing limit)",
		131051: "unsupported message type",
		131053: "media upload error",
		131062: "this recipient (business-scoped user id) cannot be messaged this way",
		131064: "messaging limit reached for this business portfolio",
		132000: "template parameter count does not match the template",
		132001: "template does not exist in this language or is not approved",
		132012: "template parameter format mismatch",
		132015: "template is paused because of low quality",
		132016: "template is disabled",
		190:    "access token expired or invalid: generate a new system-user token",
		100:    "invalid parameter",
		10:     "permission denied: the token lacks whatsapp_business_messaging",
	}
)

// mapSendError turns a non-2xx Graph API answer into a typed SDK error.
func mapSendError(statusCode int, retryAfter string, body []byte) error {
	me := parseMetaError(body)
	code := 0
	msg := http.StatusText(statusCode)
	if me != nil {
		code = me.Code
		if me.Message != "" {
			msg = me.Message
		}
		if det, ok := me.asProperties()["details"].(string); ok {
			msg += " (" + det + ")"
		}
	}
	if pause, ok := rateLimitCodes[code]; ok || statusCode == http.StatusTooManyRequests {
		if d, ok := vendorhttp.RetryAfter(retryAfter, time.Now()); ok {
			pause = d
		} else if pause == 0 {
			pause = time.Second
		}
		label := fmt.Sprintf("meta %d", code)
		if code == 0 {
			label = fmt.Sprintf("graph api HTTP %d", statusCode)
		}
		err := sdk.RateLimited(pause, label+": "+msg).(*sdk.SendError)
		if code != 0 {
			err.Code = strconv.Itoa(code)
		}
		return err
	}
	if reason, ok := permanentReasons[code]; ok {
		return sdk.Permanent(strconv.Itoa(code), reason+": "+msg)
	}
	if statusCode >= 500 {
		if code != 0 {
			return &sdk.SendError{Kind: sdk.KindRetryable, Code: strconv.Itoa(code), Reason: fmt.Sprintf("meta %d (HTTP %d): %s", code, statusCode, msg)}
		}
		return sdk.Retryable(fmt.Sprintf("graph api HTTP %d: %s", statusCode, msg))
	}
	c := "http_" + strconv.Itoa(statusCode)
	if code != 0 {
		c = strconv.Itoa(code)
	}
	return sdk.Permanent(c, fmt.Sprintf("meta %d (HTTP %d): %s", code, statusCode, msg))
}

// recordOptOut stores the opt-out Meta reported with error 131050.
func (c *Connector) recordOptOut(ctx context.Context, host sdk.Host, to, msgID string) {
	ev := sdk.Event{
		ID:         "wa-send:" + to + ":131050:" + msgID,
		Type:       events.ConsentChanged,
		OccurredAt: c.now().UTC(),
		Identities: waIdentities(to),
		Properties: map[string]any{"channel": "whatsapp", "status": "unsubscribed", "source": "whatsapp",
			"category": "marketing", "reason": "meta error 131050"},
		Context: sdk.EventContext{Channel: events.ChannelWhatsApp},
	}
	if err := host.Emit(ctx, []sdk.Event{ev}); err != nil {
		host.Log("warn", "could not record whatsapp marketing opt-out", "error", err.Error())
	}
}
