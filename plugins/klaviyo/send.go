package klaviyo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
)

// Channels this connector sends on (capability send:<channel>).
const (
	// ChannelEmail records the email metric event carrying the message.
	ChannelEmail = events.ChannelEmail
	// ChannelProfile creates or updates a profile, with consent changes.
	ChannelProfile = "klaviyo_profile"
	// ChannelEvent records any metric event (properties.metric names it).
	ChannelEvent = "klaviyo_event"
)

// profileAttributes are the top-level profile attributes Klaviyo knows;
// other traits go into attributes.properties.
var profileAttributes = map[string]bool{
	"first_name": true, "last_name": true, "organization": true, "title": true,
	"image": true, "locale": true, "location": true,
}

// Send dispatches on msg.Channel: email, klaviyo_profile or klaviyo_event.
func (c *Connector) Send(ctx context.Context, msg *sdk.OutboundMessage) (*sdk.SendResult, error) {
	s, _, err := c.settings()
	if err != nil {
		return nil, sdk.Retryable(err.Error())
	}
	switch msg.Channel {
	case ChannelEmail, "":
		return c.sendEmail(ctx, s, msg)
	case ChannelProfile:
		return c.syncProfile(ctx, s, msg)
	case ChannelEvent:
		return c.trackEvent(ctx, s, msg)
	case sdk.ChannelErase:
		return c.erase(ctx, s, msg)
	}
	return nil, sdk.Permanent("unsupported_channel", fmt.Sprintf("the klaviyo connector sends on email, %s and %s, not %q", ChannelProfile, ChannelEvent, msg.Channel))
}

// profileRef is the JSON:API profile object of an event or import.
func profileRef(msg *sdk.OutboundMessage) map[string]any {
	attrs := map[string]any{}
	if e := events.NormalizeEmail(msg.To[events.Email]); e != "" {
		attrs["email"] = e
	}
	if p := strings.TrimSpace(msg.To[events.Phone]); strings.HasPrefix(p, "+") {
		attrs["phone_number"] = p // Klaviyo requires E.164
	}
	if msg.ProfileID != "" {
		attrs["external_id"] = msg.ProfileID // Omni's profile id, so Klaviyo joins back
	}
	data := map[string]any{"type": "profile", "attributes": attrs}
	if id := strings.TrimSpace(msg.To[events.KlaviyoProfile]); id != "" {
		data["id"] = id
	}
	return data
}

func hasIdentifier(p map[string]any) bool {
	attrs := p["attributes"].(map[string]any)
	return p["id"] != nil || attrs["email"] != nil || attrs["phone_number"] != nil || attrs["external_id"] != nil
}

// eventBody builds a POST /api/events body (EventCreateQueryV2).
func eventBody(metric string, profile map[string]any, props map[string]any, uniqueID string, at time.Time, value any, currency string) map[string]any {
	attrs := map[string]any{
		"properties": props,
		"time":       at.UTC().Format(time.RFC3339),
		"metric":     map[string]any{"data": map[string]any{"type": "metric", "attributes": map[string]any{"name": metric}}},
		"profile":    map[string]any{"data": profile},
	}
	if uniqueID != "" {
		attrs["unique_id"] = uniqueID
	}
	if value != nil {
		attrs["value"] = value
	}
	if currency != "" {
		attrs["value_currency"] = currency
	}
	return map[string]any{"data": map[string]any{"type": "event", "attributes": attrs}}
}

// sendEmail records the email metric with the message in its properties;
// the flow built on that metric renders and sends it.
func (c *Connector) sendEmail(ctx context.Context, s *settings, msg *sdk.OutboundMessage) (*sdk.SendResult, error) {
	if events.NormalizeEmail(msg.To[events.Email]) == "" {
		return nil, sdk.Permanent("missing_recipient", "to.email is required to send email through Klaviyo")
	}
	if msg.Subject == "" && msg.Template == nil {
		return nil, sdk.Permanent("empty_message", "an email needs a subject (or a template)")
	}
	if msg.ID == "" {
		return nil, sdk.Permanent("missing_id", "message id is required (it is Klaviyo's unique_id, so retries do not send twice)")
	}
	props := map[string]any{}
	for k, v := range msg.Properties {
		props[k] = v
	}
	props["subject"] = msg.Subject
	props["html"] = msg.HTML
	props["text"] = msg.Text
	props["omni_message_id"] = msg.ID
	if msg.Template != nil {
		props["template"] = msg.Template.Name
		props["template_language"] = msg.Template.Language
		props["template_params"] = msg.Template.Params
	}
	if msg.JourneyRun != "" {
		props["journey_run"] = msg.JourneyRun
	}
	if msg.ConversationID != "" {
		props["conversation_id"] = msg.ConversationID
	}
	uid := "omni:" + msg.ID
	body := eventBody(s.emailMetric, profileRef(msg), props, uid, c.now(), nil, "")
	if _, err := c.call(ctx, s, http.MethodPost, s.baseURL+"/api/events", body); err != nil {
		return nil, sendError(err)
	}
	return &sdk.SendResult{ProviderMessageID: uid}, nil
}

// trackEvent records properties.metric for the recipient with
// properties.properties; value, value_currency, unique_id, time and
// profile_attributes (first_name, …) are taken from properties when present.
func (c *Connector) trackEvent(ctx context.Context, s *settings, msg *sdk.OutboundMessage) (*sdk.SendResult, error) {
	metric, _ := msg.Properties["metric"].(string)
	if strings.TrimSpace(metric) == "" {
		return nil, sdk.Permanent("missing_metric", "properties.metric names the Klaviyo metric to record")
	}
	prof := profileRef(msg)
	if !hasIdentifier(prof) {
		return nil, sdk.Permanent("missing_recipient", "to needs an email, an E.164 phone, a klaviyo_profile_id or a profile id")
	}
	if pa, ok := msg.Properties["profile_attributes"].(map[string]any); ok {
		attrs := prof["attributes"].(map[string]any)
		for k, v := range pa {
			if _, set := attrs[k]; !set {
				attrs[k] = v
			}
		}
	}
	props := map[string]any{}
	if p, ok := msg.Properties["properties"].(map[string]any); ok {
		for k, v := range p {
			props[k] = v
		}
	}
	currency, _ := msg.Properties["value_currency"].(string)
	uid := msg.ID
	if u, _ := msg.Properties["unique_id"].(string); u != "" {
		uid = u
	}
	at := c.now()
	if ts, _ := msg.Properties["time"].(string); ts != "" {
		if t, err := time.Parse(time.RFC3339, ts); err == nil {
			at = t
		}
	}
	body := eventBody(metric, prof, props, uid, at, msg.Properties["value"], currency)
	if _, err := c.call(ctx, s, http.MethodPost, s.baseURL+"/api/events", body); err != nil {
		return nil, sendError(err)
	}
	return &sdk.SendResult{ProviderMessageID: uid}, nil
}

// syncProfile upserts the profile through /api/profile-import, then applies
// consent: properties.email_consent / sms_consent = "subscribed" creates a
// subscription bulk job (only on a real opt-in: Klaviyo lifts suppressions
// for it), "unsubscribed" a bulk unsubscribe job.
func (c *Connector) syncProfile(ctx context.Context, s *settings, msg *sdk.OutboundMessage) (*sdk.SendResult, error) {
	prof := profileRef(msg)
	if !hasIdentifier(prof) {
		return nil, sdk.Permanent("missing_recipient", "to needs an email, an E.164 phone or a profile id")
	}
	attrs := prof["attributes"].(map[string]any)
	custom := map[string]any{}
	traits := msg.Properties
	if t, ok := msg.Properties["traits"].(map[string]any); ok {
		traits = t
	}
	for k, v := range traits {
		switch {
		case k == "email_consent" || k == "sms_consent" || k == "traits" || k == "consented_at":
		case profileAttributes[k]:
			attrs[k] = v
		default:
			custom[k] = v
		}
	}
	if len(custom) > 0 {
		attrs["properties"] = custom
	}
	raw, err := c.call(ctx, s, http.MethodPost, s.baseURL+"/api/profile-import", map[string]any{"data": prof})
	if err != nil {
		return nil, sendError(err)
	}
	var out struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(raw, &out)

	subscribe, unsubscribe := map[string]bool{}, map[string]bool{}
	for _, ch := range []string{"email", "sms"} {
		switch v, _ := msg.Properties[ch+"_consent"].(string); strings.ToLower(v) {
		case "subscribed":
			subscribe[ch] = true
		case "unsubscribed":
			unsubscribe[ch] = true
		case "":
		default:
			return nil, sdk.Permanent("invalid_consent", fmt.Sprintf("properties.%s_consent must be subscribed or unsubscribed, not %q", ch, v))
		}
	}
	if len(subscribe) > 0 {
		if err := c.consentJob(ctx, s, "profile-subscription-bulk-create-job", attrs, subscribe, msg); err != nil {
			return nil, err
		}
	}
	if len(unsubscribe) > 0 {
		if err := c.consentJob(ctx, s, "profile-subscription-bulk-delete-job", attrs, unsubscribe, msg); err != nil {
			return nil, err
		}
	}
	return &sdk.SendResult{ProviderMessageID: out.Data.ID}, nil
}

// consentJob posts a subscribe or unsubscribe bulk job for one profile.
func (c *Connector) consentJob(ctx context.Context, s *settings, jobType string, attrs map[string]any, channels map[string]bool, msg *sdk.OutboundMessage) error {
	p := map[string]any{}
	subs := map[string]any{}
	subscribing := jobType == "profile-subscription-bulk-create-job"
	for ch := range channels {
		key := map[string]string{"email": "email", "sms": "phone_number"}[ch]
		if attrs[key] == nil {
			return sdk.Permanent("missing_recipient", fmt.Sprintf("%s consent needs to.%s", ch, map[string]string{"email": "email", "sms": "phone"}[ch]))
		}
		p[key] = attrs[key]
		if subscribing {
			m := map[string]any{"consent": "SUBSCRIBED"}
			if at, _ := msg.Properties["consented_at"].(string); at != "" {
				m["consented_at"] = at
			}
			subs[ch] = map[string]any{"marketing": m}
		} else {
			subs[ch] = map[string]any{"marketing": map[string]any{"consent": "UNSUBSCRIBED"}}
		}
	}
	p["subscriptions"] = subs
	jobAttrs := map[string]any{"profiles": map[string]any{"data": []any{map[string]any{"type": "profile", "attributes": p}}}}
	if subscribing {
		if src, _ := msg.Properties["custom_source"].(string); src != "" {
			jobAttrs["custom_source"] = src
		} else {
			jobAttrs["custom_source"] = "Omni"
		}
		// consented_at is only accepted on historical imports.
		if _, ok := msg.Properties["consented_at"].(string); ok {
			jobAttrs["historical_import"] = true
		}
	}
	data := map[string]any{"type": jobType, "attributes": jobAttrs}
	if s.listID != "" {
		data["relationships"] = map[string]any{"list": map[string]any{"data": map[string]any{"type": "list", "id": s.listID}}}
	}
	path := "/api/profile-subscription-bulk-create-jobs"
	if !subscribing {
		path = "/api/profile-subscription-bulk-delete-jobs"
	}
	if _, err := c.call(ctx, s, http.MethodPost, s.baseURL+path, map[string]any{"data": data}); err != nil {
		return sendError(err)
	}
	return nil
}

// erase asks Klaviyo to delete every profile matching the person's emails,
// E.164 phones and Klaviyo profile ids: one Data Privacy deletion job per
// identifier, as the API takes exactly one. A retry after a partial
// failure repeats the jobs already accepted, which deletes nothing more.
func (c *Connector) erase(ctx context.Context, s *settings, msg *sdk.OutboundMessage) (*sdk.SendResult, error) {
	var profiles []map[string]any
	ids := sdk.ErasureIdentities(msg)
	for _, e := range ids[events.Email] {
		if e = events.NormalizeEmail(e); e != "" {
			profiles = append(profiles, map[string]any{"type": "profile", "attributes": map[string]any{"email": e}})
		}
	}
	for _, p := range ids[events.Phone] {
		if p = strings.TrimSpace(p); strings.HasPrefix(p, "+") {
			profiles = append(profiles, map[string]any{"type": "profile", "attributes": map[string]any{"phone_number": p}})
		}
	}
	for _, id := range ids[events.KlaviyoProfile] {
		if id = strings.TrimSpace(id); id != "" {
			profiles = append(profiles, map[string]any{"type": "profile", "id": id})
		}
	}
	if len(profiles) == 0 {
		// Klaviyo can only match these three; nothing of this person can be there.
		return &sdk.SendResult{ProviderMessageID: "klaviyo-erase:no-identifier"}, nil
	}
	for _, p := range profiles {
		body := map[string]any{"data": map[string]any{"type": "data-privacy-deletion-job",
			"attributes": map[string]any{"profile": map[string]any{"data": p}}}}
		if _, err := c.call(ctx, s, http.MethodPost, s.baseURL+"/api/data-privacy-deletion-jobs", body); err != nil {
			return nil, sendError(err)
		}
	}
	return &sdk.SendResult{ProviderMessageID: fmt.Sprintf("klaviyo-erase:%d-jobs", len(profiles))}, nil
}
