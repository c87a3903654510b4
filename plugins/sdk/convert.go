package sdk

import (
	"encoding/json"
	"time"

	pb "github.com/omni/omni/plugins/sdk/internal/proto"
)

// Conversions between the public Go types and the wire messages.

func jsonBytes(v any) []byte {
	if v == nil {
		return nil
	}
	switch m := v.(type) {
	case map[string]any:
		if len(m) == 0 {
			return nil
		}
	}
	b, _ := json.Marshal(v)
	return b
}

func jsonMap(b []byte) map[string]any {
	if len(b) == 0 {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func eventToPB(e *Event) *pb.Event {
	out := &pb.Event{
		Id:                 e.ID,
		Type:               e.Type,
		Name:               e.Name,
		OccurredAtUnixNano: unixNano(e.OccurredAt),
		Identities:         e.Identities,
		PropertiesJson:     jsonBytes(e.Properties),
		Context: &pb.EventContext{
			Channel:    e.Context.Channel,
			JourneyRun: e.Context.JourneyRun,
			ExtraJson:  jsonBytes(e.Context.Extra),
		},
	}
	if c := e.Context.Campaign; c != nil {
		out.Context.Campaign = &pb.Campaign{Source: c.Source, Medium: c.Medium, Name: c.Name, Term: c.Term, Content: c.Content}
	}
	if p := e.Context.Page; p != nil {
		out.Context.Page = &pb.Page{Url: p.URL, Path: p.Path, Title: p.Title, Referrer: p.Referrer, Search: p.Search}
	}
	return out
}

func eventFromPB(e *pb.Event) Event {
	out := Event{
		ID:         e.GetId(),
		Type:       e.GetType(),
		Name:       e.GetName(),
		OccurredAt: fromUnixNano(e.GetOccurredAtUnixNano()),
		Identities: e.GetIdentities(),
		Properties: jsonMap(e.GetPropertiesJson()),
	}
	if c := e.GetContext(); c != nil {
		out.Context = EventContext{Channel: c.GetChannel(), JourneyRun: c.GetJourneyRun(), Extra: jsonMap(c.GetExtraJson())}
		if cp := c.GetCampaign(); cp != nil {
			out.Context.Campaign = &Campaign{Source: cp.Source, Medium: cp.Medium, Name: cp.Name, Term: cp.Term, Content: cp.Content}
		}
		if p := c.GetPage(); p != nil {
			out.Context.Page = &Page{URL: p.Url, Path: p.Path, Title: p.Title, Referrer: p.Referrer, Search: p.Search}
		}
	}
	return out
}

func eventsToPB(evs []Event) []*pb.Event {
	out := make([]*pb.Event, len(evs))
	for i := range evs {
		out[i] = eventToPB(&evs[i])
	}
	return out
}

func eventsFromPB(evs []*pb.Event) []Event {
	if len(evs) == 0 {
		return nil
	}
	out := make([]Event, len(evs))
	for i, e := range evs {
		out[i] = eventFromPB(e)
	}
	return out
}

func descriptionToPB(d *Description) *pb.Description {
	out := &pb.Description{Name: d.Name, Version: d.Version, DisplayName: d.DisplayName, Description: d.Description, Capabilities: d.Capabilities}
	for _, f := range d.Config {
		out.Config = append(out.Config, &pb.ConfigField{Name: f.Name, Label: f.Label, Help: f.Help, Type: f.Type, Required: f.Required, Secret: f.Secret, Default: f.Default})
	}
	return out
}

func descriptionFromPB(d *pb.Description) *Description {
	out := &Description{Name: d.GetName(), Version: d.GetVersion(), DisplayName: d.GetDisplayName(), Description: d.GetDescription(), Capabilities: d.GetCapabilities()}
	for _, f := range d.GetConfig() {
		out.Config = append(out.Config, ConfigField{Name: f.Name, Label: f.Label, Help: f.Help, Type: f.Type, Required: f.Required, Secret: f.Secret, Default: f.Default})
	}
	return out
}

func webhookRequestToPB(r *WebhookRequest) *pb.WebhookRequest {
	out := &pb.WebhookRequest{Method: r.Method, Path: r.Path, Query: r.Query, Body: r.Body, Url: r.URL}
	if len(r.Headers) > 0 {
		out.Headers = make(map[string]*pb.HeaderValues, len(r.Headers))
		for k, v := range r.Headers {
			out.Headers[k] = &pb.HeaderValues{Values: v}
		}
	}
	return out
}

func webhookRequestFromPB(r *pb.WebhookRequest) *WebhookRequest {
	out := &WebhookRequest{Method: r.GetMethod(), Path: r.GetPath(), Query: r.GetQuery(), Body: r.GetBody(), URL: r.GetUrl()}
	if len(r.GetHeaders()) > 0 {
		out.Headers = make(map[string][]string, len(r.Headers))
		for k, v := range r.Headers {
			out.Headers[k] = v.GetValues()
		}
	}
	return out
}

func webhookResponseToPB(r *WebhookResponse) *pb.WebhookResponse {
	return &pb.WebhookResponse{Status: int32(r.Status), Headers: r.Headers, Body: r.Body, Events: eventsToPB(r.Events)}
}

func webhookResponseFromPB(r *pb.WebhookResponse) *WebhookResponse {
	return &WebhookResponse{Status: int(r.GetStatus()), Headers: r.GetHeaders(), Body: r.GetBody(), Events: eventsFromPB(r.GetEvents())}
}

func outboundToPB(m *OutboundMessage) *pb.OutboundMessage {
	out := &pb.OutboundMessage{Id: m.ID, Channel: m.Channel, To: m.To, Text: m.Text, Subject: m.Subject, Html: m.HTML,
		PropertiesJson: jsonBytes(m.Properties), ProfileId: m.ProfileID, ConversationId: m.ConversationID, JourneyRun: m.JourneyRun}
	if t := m.Template; t != nil {
		out.Template = &pb.Template{Name: t.Name, Language: t.Language, Params: t.Params}
	}
	return out
}

func outboundFromPB(m *pb.OutboundMessage) *OutboundMessage {
	out := &OutboundMessage{ID: m.GetId(), Channel: m.GetChannel(), To: m.GetTo(), Text: m.GetText(), Subject: m.GetSubject(), HTML: m.GetHtml(),
		Properties: jsonMap(m.GetPropertiesJson()), ProfileID: m.GetProfileId(), ConversationID: m.GetConversationId(), JourneyRun: m.GetJourneyRun()}
	if t := m.GetTemplate(); t != nil {
		out.Template = &Template{Name: t.Name, Language: t.Language, Params: t.Params}
	}
	return out
}

func sendErrorToPB(err error) *pb.SendError {
	se := AsSendError(err)
	return &pb.SendError{Kind: string(se.Kind), Reason: se.Reason, RetryAfterMs: se.RetryAfter.Milliseconds(), Code: se.Code}
}

func sendErrorFromPB(e *pb.SendError) *SendError {
	kind := ErrorKind(e.GetKind())
	switch kind {
	case KindRetryable, KindPermanent, KindRateLimited:
	default:
		kind = KindRetryable
	}
	return &SendError{Kind: kind, Reason: e.GetReason(), RetryAfter: time.Duration(e.GetRetryAfterMs()) * time.Millisecond, Code: e.GetCode()}
}
