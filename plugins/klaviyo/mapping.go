package klaviyo

import (
	"encoding/json"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
)

// mapping says what a Klaviyo metric becomes in Omni.
type mapping struct {
	Type    string
	Channel string // email or sms
	Consent string // for consent.changed: subscribed / unsubscribed
	Reason  string
}

// engagementMetrics are Klaviyo's built-in metrics Omni pulls, in the
// order backfill walks them (the order is part of the cursor's meaning).
var engagementMetrics = []struct {
	Name  string
	Topic string // system webhook topic
	mapping
}{
	{"Received Email", "event:klaviyo.received_email", mapping{Type: events.MessageDelivered, Channel: "email"}},
	{"Opened Email", "event:klaviyo.opened_email", mapping{Type: events.EmailOpened, Channel: "email"}},
	{"Clicked Email", "event:klaviyo.clicked_email", mapping{Type: events.EmailClicked, Channel: "email"}},
	{"Bounced Email", "event:klaviyo.bounced_email", mapping{Type: events.MessageFailed, Channel: "email", Reason: "bounced"}},
	{"Marked Email as Spam", "event:klaviyo.marked_email_as_spam", mapping{Type: events.ConsentChanged, Channel: "email", Consent: "unsubscribed", Reason: "spam_complaint"}},
	{"Unsubscribed from Email Marketing", "event:klaviyo.unsubscribed_from_email_marketing", mapping{Type: events.ConsentChanged, Channel: "email", Consent: "unsubscribed"}},
	{"Subscribed to Email Marketing", "event:klaviyo.subscribed_to_email_marketing", mapping{Type: events.ConsentChanged, Channel: "email", Consent: "subscribed"}},
	{"Unsubscribed from SMS Marketing", "event:klaviyo.unsubscribed_from_sms_marketing", mapping{Type: events.ConsentChanged, Channel: "sms", Consent: "unsubscribed"}},
	{"Subscribed to SMS Marketing", "event:klaviyo.subscribed_to_sms_marketing", mapping{Type: events.ConsentChanged, Channel: "sms", Consent: "subscribed"}},
	// Older accounts report email unsubscribes under this name.
	{"Unsubscribed", "", mapping{Type: events.ConsentChanged, Channel: "email", Consent: "unsubscribed"}},
}

func mappingByName(name string) (mapping, bool) {
	for _, m := range engagementMetrics {
		if m.Name == name {
			return m.mapping, true
		}
	}
	return mapping{}, false
}

func mappingByTopic(topic string) (mapping, string, bool) {
	for _, m := range engagementMetrics {
		if m.Topic != "" && m.Topic == topic {
			return m.mapping, m.Name, true
		}
	}
	return mapping{}, "", false
}

// resource is a JSON:API resource object.
type resource struct {
	Type          string                     `json:"type"`
	ID            string                     `json:"id"`
	Attributes    map[string]any             `json:"attributes"`
	Relationships map[string]json.RawMessage `json:"relationships"`
}

func (r resource) related(name string) string {
	var rel struct {
		Data *struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if raw, ok := r.Relationships[name]; ok && json.Unmarshal(raw, &rel) == nil && rel.Data != nil {
		return rel.Data.ID
	}
	return ""
}

type document struct {
	Data     []resource `json:"data"`
	Included []resource `json:"included"`
	Links    struct {
		Next *string `json:"next"`
	} `json:"links"`
}

// eventToOmni maps one Klaviyo event resource. metricName comes from the
// query (polling) or the webhook topic; profiles holds included profiles.
func eventToOmni(ev resource, metricName string, m mapping, profiles map[string]resource, now time.Time) (sdk.Event, bool) {
	if ev.ID == "" {
		return sdk.Event{}, false
	}
	props := map[string]any{}
	ep, _ := ev.Attributes["event_properties"].(map[string]any)
	ids := map[string]string{}
	if pid := ev.related("profile"); pid != "" {
		ids[events.KlaviyoProfile] = pid
		if p, ok := profiles[pid]; ok {
			if e, _ := p.Attributes["email"].(string); e != "" {
				ids[events.Email] = e
			}
			if ph, _ := p.Attributes["phone_number"].(string); ph != "" {
				ids[events.Phone] = ph
			}
			if x, _ := p.Attributes["external_id"].(string); x != "" {
				props["external_id"] = x
			}
		}
	}
	if ids[events.Email] == "" {
		for _, k := range []string{"email_address", "$email", "Email"} {
			if e, _ := ep[k].(string); e != "" {
				ids[events.Email] = e
				break
			}
		}
	}
	if len(ids) == 0 {
		return sdk.Event{}, false
	}
	props["klaviyo_event_id"] = ev.ID
	props["metric"] = metricName
	if mid := ev.related("metric"); mid != "" {
		props["metric_id"] = mid
	}
	ctx := sdk.EventContext{Channel: m.Channel}
	for src, dst := range map[string]string{
		"Subject": "subject", "Campaign Name": "campaign_name", "URL": "url", "$message": "klaviyo_message_id",
		"$flow": "flow_id", "Email Domain": "email_domain", "Bounce Type": "bounce_type", "method": "method",
		"method_detail": "method_detail", "List": "list", "omni_message_id": "outbound_id", "Client Name": "client_name",
	} {
		if v, ok := ep[src]; ok && v != nil && v != "" {
			props[dst] = v
		}
	}
	if cn, _ := ep["Campaign Name"].(string); cn != "" {
		ctx.Campaign = &sdk.Campaign{Name: cn, Source: "klaviyo", Medium: m.Channel}
	}
	if m.Type == events.ConsentChanged {
		props["channel"] = m.Channel
		props["status"] = m.Consent
		props["source"] = "klaviyo"
	}
	if m.Reason != "" {
		props["reason"] = m.Reason
	}
	return sdk.Event{
		ID:         "klaviyo:event:" + ev.ID,
		Type:       m.Type,
		OccurredAt: eventTime(ev, now),
		Identities: ids,
		Properties: props,
		Context:    ctx,
	}, true
}

func eventTime(ev resource, now time.Time) time.Time {
	if s, _ := ev.Attributes["datetime"].(string); s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t.UTC()
		}
	}
	if f, ok := ev.Attributes["timestamp"].(float64); ok && f > 946684800 {
		return time.Unix(int64(f), 0).UTC()
	}
	return now.UTC()
}
