package whatsapp

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
)

// notification is the webhook envelope (only the fields Omni maps).
type notification struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Changes []struct {
			Field string      `json:"field"`
			Value changeValue `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type changeValue struct {
	MessagingProduct string `json:"messaging_product"`
	Metadata         struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	} `json:"metadata"`
	Contacts []struct {
		Profile struct {
			Name     string `json:"name"`
			Username string `json:"username"`
		} `json:"profile"`
		WaID         string `json:"wa_id"`
		UserID       string `json:"user_id"`
		ParentUserID string `json:"parent_user_id"`
	} `json:"contacts"`
	Messages        []inboundMessage `json:"messages"`
	Statuses        []status         `json:"statuses"`
	UserPreferences []struct {
		WaID      string `json:"wa_id"`
		Detail    string `json:"detail"`
		Category  string `json:"category"`
		Value     string `json:"value"`
		Timestamp any    `json:"timestamp"`
	} `json:"user_preferences"`
}

type media struct {
	ID       string `json:"id"`
	MimeType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	Caption  string `json:"caption"`
	Filename string `json:"filename"`
	Animated *bool  `json:"animated"`
	Voice    *bool  `json:"voice"`
}

type inboundMessage struct {
	From      string `json:"from"`
	ID        string `json:"id"`
	Timestamp any    `json:"timestamp"`
	Type      string `json:"type"`
	Text      *struct {
		Body string `json:"body"`
	} `json:"text"`
	Image    *media `json:"image"`
	Audio    *media `json:"audio"`
	Video    *media `json:"video"`
	Document *media `json:"document"`
	Sticker  *media `json:"sticker"`
	Button   *struct {
		Payload string `json:"payload"`
		Text    string `json:"text"`
	} `json:"button"`
	Interactive *struct {
		Type        string `json:"type"`
		ButtonReply *struct {
			ID    string `json:"id"`
			Title string `json:"title"`
		} `json:"button_reply"`
		ListReply *struct {
			ID          string `json:"id"`
			Title       string `json:"title"`
			Description string `json:"description"`
		} `json:"list_reply"`
		NFMReply *struct {
			Name         string `json:"name"`
			Body         string `json:"body"`
			ResponseJSON string `json:"response_json"`
		} `json:"nfm_reply"`
	} `json:"interactive"`
	Location *struct {
		Latitude  float64 `json:"latitude"`
		Longitude float64 `json:"longitude"`
		Name      string  `json:"name"`
		Address   string  `json:"address"`
		URL       string  `json:"url"`
	} `json:"location"`
	Reaction *struct {
		MessageID string `json:"message_id"`
		Emoji     string `json:"emoji"`
	} `json:"reaction"`
	Context *struct {
		From string `json:"from"`
		ID   string `json:"id"`
	} `json:"context"`
	Referral map[string]any `json:"referral"`
	Errors   []metaError    `json:"errors"`
}

type status struct {
	ID                         string `json:"id"`
	Status                     string `json:"status"`
	Timestamp                  any    `json:"timestamp"`
	RecipientID                string `json:"recipient_id"`
	RecipientType              string `json:"recipient_type"`
	RecipientParticipantID     string `json:"recipient_participant_id"`
	RecipientParticipantUserID string `json:"recipient_participant_user_id"`
	BizOpaqueCallbackData      string `json:"biz_opaque_callback_data"`
	Conversation               *struct {
		ID                  string `json:"id"`
		ExpirationTimestamp any    `json:"expiration_timestamp"`
		Origin              struct {
			Type string `json:"type"`
		} `json:"origin"`
	} `json:"conversation"`
	Pricing *struct {
		Billable     *bool  `json:"billable"`
		PricingModel string `json:"pricing_model"`
		Category     string `json:"category"`
	} `json:"pricing"`
	Errors []metaError `json:"errors"`
}

// metaError is an error object as Meta sends it in webhooks and responses.
type metaError struct {
	Code         int    `json:"code"`
	Title        string `json:"title"`
	Message      string `json:"message"`
	Type         string `json:"type"`
	ErrorSubcode int    `json:"error_subcode"`
	FBTraceID    string `json:"fbtrace_id"`
	Href         string `json:"href"`
	ErrorData    any    `json:"error_data"`
}

func (e metaError) asProperties() map[string]any {
	m := map[string]any{"code": e.Code}
	if e.Title != "" {
		m["title"] = e.Title
	}
	if e.Message != "" {
		m["message"] = e.Message
	}
	switch d := e.ErrorData.(type) {
	case map[string]any:
		if det, ok := d["details"].(string); ok && det != "" {
			m["details"] = det
		}
	case string:
		if d != "" {
			m["details"] = d
		}
	}
	return m
}

// statusTypes maps Meta's status values to unified event types. "played"
// (a voice message was listened to) is the read receipt for audio.
var statusTypes = map[string]string{
	"sent":      events.MessageSent,
	"delivered": events.MessageDelivered,
	"read":      events.MessageRead,
	"played":    events.MessageRead,
	"failed":    events.MessageFailed,
}

// ParseNotification turns one webhook body into events. It returns an
// error only when the body is not a WhatsApp notification at all.
func ParseNotification(body []byte, now time.Time) ([]sdk.Event, error) {
	evs, _, err := parseFor(body, now, "")
	return evs, err
}

// parseFor is ParseNotification keeping only changes for the phone number
// phoneNumberID (all when empty). One Meta app can serve several numbers
// and signs every number's notifications with the same app secret, so a
// valid signature does not mean the number is ours. foreign lists the
// other numbers' ids whose changes were skipped.
func parseFor(body []byte, now time.Time, phoneNumberID string) (out []sdk.Event, foreign []string, err error) {
	var n notification
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, nil, fmt.Errorf("body is not valid JSON: %v", err)
	}
	if n.Object != "whatsapp_business_account" {
		return nil, nil, fmt.Errorf("object must be whatsapp_business_account, got %q", n.Object)
	}
	for _, entry := range n.Entry {
		for _, ch := range entry.Changes {
			v := ch.Value
			if pnid := v.Metadata.PhoneNumberID; phoneNumberID != "" && pnid != "" && pnid != phoneNumberID {
				foreign = append(foreign, pnid)
				continue
			}
			base := map[string]any{}
			if entry.ID != "" {
				base["waba_id"] = entry.ID
			}
			if v.Metadata.PhoneNumberID != "" {
				base["phone_number_id"] = v.Metadata.PhoneNumberID
			}
			if v.Metadata.DisplayPhoneNumber != "" {
				base["business_phone"] = v.Metadata.DisplayPhoneNumber
			}
			names := map[string]string{}
			bsuids := map[string]string{}
			for _, ct := range v.Contacts {
				key := ct.WaID
				if key == "" {
					key = ct.UserID
				}
				names[key] = ct.Profile.Name
				if ct.UserID != "" {
					bsuids[key] = ct.UserID
				}
			}
			for _, m := range v.Messages {
				out = append(out, messageEvents(m, names, bsuids, base, now)...)
			}
			for _, st := range v.Statuses {
				if ev, ok := statusEvent(st, base, now); ok {
					out = append(out, ev)
				}
			}
			for _, p := range v.UserPreferences {
				if p.WaID == "" || p.Category != "marketing_messages" {
					continue
				}
				var st string
				switch strings.ToLower(p.Value) {
				case "stop":
					st = "unsubscribed"
				case "resume":
					st = "subscribed"
				default:
					continue
				}
				at := unixTime(p.Timestamp, now)
				out = append(out, sdk.Event{
					ID:         fmt.Sprintf("wa-pref:%s:%s:%d", p.WaID, st, at.Unix()),
					Type:       events.ConsentChanged,
					OccurredAt: at,
					Identities: waIdentities(p.WaID),
					Properties: merge(base, map[string]any{
						"channel": "whatsapp", "status": st, "source": "whatsapp",
						"category": "marketing", "detail": p.Detail,
					}),
					Context: sdk.EventContext{Channel: events.ChannelWhatsApp},
				})
			}
		}
	}
	return out, foreign, nil
}

func messageEvents(m inboundMessage, names, bsuids map[string]string, base map[string]any, now time.Time) []sdk.Event {
	if m.ID == "" || m.From == "" {
		return nil
	}
	at := unixTime(m.Timestamp, now)
	props := merge(base, map[string]any{"message_id": m.ID, "message_type": m.Type})
	if name := names[m.From]; name != "" {
		props["profile_name"] = name
	}
	if uid := bsuids[m.From]; uid != "" {
		props["whatsapp_user_id"] = uid
	}
	var text string
	switch m.Type {
	case "text":
		if m.Text != nil {
			text = m.Text.Body
		}
	case "image", "audio", "video", "document", "sticker":
		if md := m.mediaOf(); md != nil {
			props["media_id"] = md.ID
			setIf(props, "mime_type", md.MimeType)
			setIf(props, "media_sha256", md.SHA256)
			setIf(props, "filename", md.Filename)
			if md.Animated != nil {
				props["animated"] = *md.Animated
			}
			if md.Voice != nil {
				props["voice"] = *md.Voice
			}
			text = md.Caption
		}
	case "button":
		if m.Button != nil {
			text = m.Button.Text
			setIf(props, "button_payload", m.Button.Payload)
		}
	case "interactive":
		if in := m.Interactive; in != nil {
			props["interactive_type"] = in.Type
			switch {
			case in.ButtonReply != nil:
				text = in.ButtonReply.Title
				props["reply_id"] = in.ButtonReply.ID
			case in.ListReply != nil:
				text = in.ListReply.Title
				props["reply_id"] = in.ListReply.ID
				setIf(props, "reply_description", in.ListReply.Description)
			case in.NFMReply != nil:
				text = in.NFMReply.Body
				setIf(props, "flow_name", in.NFMReply.Name)
				setIf(props, "flow_response_json", in.NFMReply.ResponseJSON)
			}
		}
	case "location":
		if l := m.Location; l != nil {
			props["latitude"], props["longitude"] = l.Latitude, l.Longitude
			setIf(props, "location_name", l.Name)
			setIf(props, "location_address", l.Address)
			setIf(props, "location_url", l.URL)
		}
	case "reaction":
		if r := m.Reaction; r != nil {
			props["reacted_message_id"] = r.MessageID
			props["emoji"] = r.Emoji // empty means the reaction was removed
		}
	}
	if text != "" {
		props["text"] = text
	}
	if m.Context != nil && m.Context.ID != "" {
		props["reply_to_message_id"] = m.Context.ID
	}
	if len(m.Referral) > 0 {
		props["referral"] = m.Referral
	}
	if len(m.Errors) > 0 {
		props["errors"] = errorList(m.Errors)
	}
	ids := waIdentities(m.From)
	evs := []sdk.Event{{
		ID:         m.ID,
		Type:       events.MessageReceived,
		OccurredAt: at,
		Identities: ids,
		Properties: props,
		Context:    sdk.EventContext{Channel: events.ChannelWhatsApp},
	}}
	// Keywords count only as a whole message typed (or a quick-reply
	// button pressed) by the customer.
	kw := text
	if m.Type == "button" && m.Button != nil && m.Button.Payload != "" && consentKeyword(kw) == "" {
		kw = m.Button.Payload
	}
	if m.Type == "text" || m.Type == "button" || m.Type == "interactive" {
		if st := consentKeyword(kw); st != "" {
			evs = append(evs, sdk.Event{
				ID:         m.ID + ":consent",
				Type:       events.ConsentChanged,
				OccurredAt: at,
				Identities: waIdentities(m.From),
				Properties: merge(base, map[string]any{
					"channel": "whatsapp", "status": st, "source": "whatsapp",
					"keyword": strings.ToUpper(strings.TrimSpace(kw)), "message_id": m.ID,
				}),
				Context: sdk.EventContext{Channel: events.ChannelWhatsApp},
			})
		}
	}
	return evs
}

func (m *inboundMessage) mediaOf() *media {
	switch m.Type {
	case "image":
		return m.Image
	case "audio":
		return m.Audio
	case "video":
		return m.Video
	case "document":
		return m.Document
	case "sticker":
		return m.Sticker
	}
	return nil
}

func statusEvent(st status, base map[string]any, now time.Time) (sdk.Event, bool) {
	typ, ok := statusTypes[st.Status]
	if !ok || st.ID == "" {
		return sdk.Event{}, false
	}
	recipient := st.RecipientID
	props := merge(base, map[string]any{"message_id": st.ID, "status": st.Status})
	if st.RecipientType == "group" {
		props["group_id"] = st.RecipientID
		recipient = st.RecipientParticipantID
		setIf(props, "whatsapp_user_id", st.RecipientParticipantUserID)
	}
	if recipient == "" {
		return sdk.Event{}, false
	}
	if st.BizOpaqueCallbackData != "" {
		props["callback_data"] = st.BizOpaqueCallbackData
		// Omni's own sends put the outbox message id here (see Send).
		if id, ok := strings.CutPrefix(st.BizOpaqueCallbackData, callbackPrefix); ok {
			props["outbound_id"] = id
		}
	}
	if cv := st.Conversation; cv != nil {
		setIf(props, "conversation_id", cv.ID)
		setIf(props, "conversation_origin", cv.Origin.Type)
	}
	if p := st.Pricing; p != nil {
		setIf(props, "pricing_category", p.Category)
		setIf(props, "pricing_model", p.PricingModel)
		if p.Billable != nil {
			props["billable"] = *p.Billable
		}
	}
	if len(st.Errors) > 0 {
		props["errors"] = errorList(st.Errors)
		props["error_code"] = st.Errors[0].Code
		reason := st.Errors[0].Title
		if reason == "" {
			reason = st.Errors[0].Message
		}
		setIf(props, "error_reason", reason)
	}
	return sdk.Event{
		ID:         st.ID + ":" + st.Status,
		Type:       typ,
		OccurredAt: unixTime(st.Timestamp, now),
		Identities: waIdentities(recipient),
		Properties: props,
		Context:    sdk.EventContext{Channel: events.ChannelWhatsApp},
	}, true
}

func errorList(errs []metaError) []any {
	out := make([]any, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.asProperties())
	}
	return out
}

// waIdentities gives wa_id and, when the id is a phone number (digits
// only), the E.164 phone. Users with a username may have no phone.
func waIdentities(waID string) map[string]string {
	ids := map[string]string{events.WhatsAppID: waID}
	if isDigits(waID) && len(waID) >= 7 && len(waID) <= 15 {
		ids[events.Phone] = "+" + waID
	}
	return ids
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// unixTime reads Meta's timestamps (unix seconds as a string, sometimes a
// number); a missing or absurd value falls back to now.
func unixTime(v any, now time.Time) time.Time {
	var sec int64
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return now.UTC()
		}
		sec = n
	case float64:
		sec = int64(x)
	default:
		return now.UTC()
	}
	if sec <= 946684800 || sec > now.Add(48*time.Hour).Unix() {
		return now.UTC()
	}
	return time.Unix(sec, 0).UTC()
}

func merge(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func setIf(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}
