package twilio

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
)

// maxMedia bounds the MMS attachments read from one message (Twilio
// allows 10).
const maxMedia = 10

// inboundEvents turns an incoming-message webhook into message.received
// and, for STOP/START keywords, consent.changed.
func inboundEvents(p url.Values, now time.Time) ([]sdk.Event, error) {
	sid := p.Get("MessageSid")
	if sid == "" {
		sid = p.Get("SmsMessageSid")
	}
	from := strings.TrimSpace(p.Get("From"))
	if sid == "" || from == "" {
		return nil, fmt.Errorf("an incoming message needs MessageSid and From")
	}
	if !validE164(from) {
		// WhatsApp, Messenger or RCS senders ("whatsapp:+1…") and short
		// codes are not SMS customers this connector knows how to name.
		return nil, nil
	}
	at := now.UTC()
	body := p.Get("Body")
	props := map[string]any{
		"message_id":          sid,
		"provider_message_id": sid,
		"from":                from,
		"to":                  p.Get("To"),
		"conversation_key":    from,
	}
	if body != "" {
		props["text"] = body
	}
	setIf(props, "messaging_service_sid", p.Get("MessagingServiceSid"))
	setIf(props, "from_country", p.Get("FromCountry"))
	if n, err := strconv.Atoi(p.Get("NumSegments")); err == nil && n > 0 {
		props["num_segments"] = n
	}
	if n, err := strconv.Atoi(p.Get("NumMedia")); err == nil && n > 0 {
		props["num_media"] = n
		var urls, types []any
		for i := 0; i < n && i < maxMedia; i++ {
			if u := p.Get("MediaUrl" + strconv.Itoa(i)); u != "" {
				urls = append(urls, u)
				types = append(types, p.Get("MediaContentType"+strconv.Itoa(i)))
			}
		}
		if len(urls) > 0 {
			props["media_urls"], props["media_content_types"] = urls, types
		}
	}
	kind := optOutType(p.Get("OptOutType"), body)
	if kind != "" {
		props["opt_out_type"] = kind
	}
	ids := map[string]string{events.Phone: from}
	evs := []sdk.Event{{ID: sid, Type: events.MessageReceived, OccurredAt: at, Identities: ids,
		Properties: props, Context: sdk.EventContext{Channel: events.ChannelSMS}}}

	// HELP changes nothing: Twilio answers it itself under Advanced Opt-Out.
	status := ""
	switch kind {
	case optOut:
		status = "unsubscribed"
	case optIn:
		status = "subscribed"
	}
	if status != "" {
		keyword := strings.ToUpper(strings.TrimSpace(body))
		if len(keyword) > 20 || keyword == "" {
			keyword = kind
		}
		evs = append(evs, sdk.Event{ID: sid + ":consent", Type: events.ConsentChanged, OccurredAt: at,
			Identities: map[string]string{events.Phone: from},
			Properties: map[string]any{"channel": events.ChannelSMS, "status": status, "source": Name,
				"reason": "replied " + keyword, "keyword": keyword, "message_id": sid},
			Context: sdk.EventContext{Channel: events.ChannelSMS}})
	}
	return evs, nil
}

// statusTypes maps MessageStatus to events. queued/accepted/sending/sent
// make none: the host records message.sent when Twilio accepts a send.
var statusTypes = map[string]string{
	"delivered":   events.MessageDelivered,
	"read":        events.MessageRead,
	"undelivered": events.MessageFailed,
	"failed":      events.MessageFailed,
	"canceled":    events.MessageFailed,
}

// statusEvents turns a status callback into at most one event, its id
// stable per (sid, status) so Twilio's retries are stored once.
// outboundID comes from the callback URL Send set.
func statusEvents(p url.Values, outboundID string, now time.Time) ([]sdk.Event, error) {
	sid := p.Get("MessageSid")
	if sid == "" {
		sid = p.Get("SmsSid")
	}
	status := strings.ToLower(p.Get("MessageStatus"))
	if status == "" {
		status = strings.ToLower(p.Get("SmsStatus"))
	}
	if sid == "" || status == "" {
		return nil, fmt.Errorf("a status callback needs MessageSid and MessageStatus")
	}
	typ, ok := statusTypes[status]
	if !ok {
		return nil, nil
	}
	props := map[string]any{"provider_message_id": sid, "message_id": sid, "status": status}
	setIf(props, "outbound_id", outboundID)
	if code := strings.TrimSpace(p.Get("ErrorCode")); code != "" && code != "0" {
		props["error_code"] = code
		reason := errorReasons[code]
		if m := p.Get("ErrorMessage"); m != "" {
			reason = strings.TrimPrefix(reason+": "+m, ": ")
		}
		if reason == "" {
			reason = "twilio error " + code
		}
		props["error_reason"] = reason
		if undeliverableCodes[code] {
			props["permanent"] = true
		}
	} else if typ == events.MessageFailed {
		props["error_reason"] = "twilio status " + status
	}
	ids := map[string]string{}
	if to := strings.TrimSpace(p.Get("To")); validE164(to) {
		ids[events.Phone] = to
	} else {
		// Without the customer's number the event still joins the ledger
		// by outbound_id; it must name someone to be stored.
		ids[events.AnonymousID] = "twilio:" + sid
	}
	return []sdk.Event{{ID: sid + ":" + status, Type: typ, OccurredAt: now.UTC(), Identities: ids,
		Properties: props, Context: sdk.EventContext{Channel: events.ChannelSMS}}}, nil
}

func setIf(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}
