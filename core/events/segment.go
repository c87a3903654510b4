package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/omni/omni/internal/fastjson"
)

// SegmentMessage is one call of the Segment HTTP tracking API
// (https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/).
type SegmentMessage struct {
	Type              string         `json:"type"`
	MessageID         string         `json:"messageId"`
	UserID            any            `json:"userId"`
	AnonymousID       any            `json:"anonymousId"`
	PreviousID        any            `json:"previousId"`
	GroupID           any            `json:"groupId"`
	Event             string         `json:"event"`
	Name              string         `json:"name"`
	Category          string         `json:"category"`
	Properties        map[string]any `json:"properties"`
	Traits            map[string]any `json:"traits"`
	Context           map[string]any `json:"context"`
	Channel           string         `json:"channel"`
	Timestamp         *time.Time     `json:"timestamp"`
	OriginalTimestamp *time.Time     `json:"originalTimestamp"`
	SentAt            *time.Time     `json:"sentAt"`
	Integrations      map[string]any `json:"integrations"`
	WriteKey          string         `json:"writeKey"`
}

// segmentSpecEvents maps Segment's e-commerce spec event names to Omni types.
var segmentSpecEvents = map[string]string{
	"order completed":    OrderPlaced,
	"order placed":       OrderPlaced,
	"order refunded":     OrderRefunded,
	"order cancelled":    OrderCancelled,
	"checkout started":   CheckoutStarted,
	"checkout updated":   CheckoutUpdated,
	"email opened":       EmailOpened,
	"email link clicked": EmailClicked,
	"unsubscribed":       ConsentChanged,
}

// DecodeSegment parses one Segment message; typ is the call ("track", …)
// when it comes from the URL rather than the body.
func DecodeSegment(raw json.RawMessage, typ string) (*SegmentMessage, error) {
	var m SegmentMessage
	if err := fastjson.Unmarshal(raw, &m); err != nil {
		return nil, jsonProblem(raw, err)
	}
	if typ != "" {
		m.Type = typ
	}
	return &m, nil
}

// jsonProblem names the field a message's decoding failed on and says what
// it must be in the API's words, not Go's: "traits: must be an object, got
// string", not "field traits must be map[string]interface {}".
func jsonProblem(raw []byte, err error) *FieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &FieldError{te.Field, "must be " + jsonKind(te.Type) + ", got " + te.Value}
	}
	const timeFormat = "must be an ISO 8601 time such as 2026-12-05T09:30:00Z"
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return &FieldError{timeField(raw, pe.Value), fmt.Sprintf("%s, got %q", timeFormat, pe.Value)}
	}
	if strings.Contains(err.Error(), "Time.UnmarshalJSON") { // not a string
		return &FieldError{timeField(raw, ""), timeFormat + " (a string)"}
	}
	return &FieldError{"body", "is not valid JSON: " + err.Error()}
}

// jsonKind is what a Go type takes in JSON.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// timeField is which of a message's times holds value (the time package's
// error does not say), or with value "" which one is not a string at all:
// timestamp unless another one does.
func timeField(raw []byte, value string) string {
	var times struct {
		Timestamp         any `json:"timestamp"`
		OriginalTimestamp any `json:"originalTimestamp"`
		SentAt            any `json:"sentAt"`
	}
	_ = json.Unmarshal(raw, &times)
	for _, f := range []struct {
		name string
		v    any
	}{{"timestamp", times.Timestamp}, {"originalTimestamp", times.OriginalTimestamp}, {"sentAt", times.SentAt}} {
		s, isString := f.v.(string)
		if f.v != nil && (value == "" && !isString || value != "" && s == value) {
			return f.name
		}
	}
	return "timestamp"
}

// idString accepts the string or number ids Segment clients send.
func idString(v any) string {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case float64:
		return strings.TrimSuffix(fmt.Sprintf("%f", x), ".000000")
	case json.Number:
		return x.String()
	}
	return ""
}

// FromSegment turns a Segment message into an event. newID supplies an id
// when the client sent no messageId. The event takes over m's maps (its
// properties are m.Properties, not a copy: this runs for every tracked
// event), so m must not be used afterwards.
func FromSegment(m *SegmentMessage, source string, receivedAt time.Time, newID func() string) (*Event, error) {
	e := &Event{
		ID:         strings.TrimSpace(m.MessageID),
		Source:     source,
		ReceivedAt: receivedAt,
		Identities: make(Identities, 2),
	}
	// Track, page and screen calls keep the client's properties; the
	// others record only what their call says.
	props := func() map[string]any {
		if m.Properties == nil {
			m.Properties = map[string]any{}
		}
		return m.Properties
	}
	if err := m.checkBounds(); err != nil {
		return nil, err
	}
	if e.ID == "" {
		e.ID = newID()
	}
	if uid := idString(m.UserID); uid != "" {
		e.Identities[UserID] = uid
	}
	if aid := idString(m.AnonymousID); aid != "" {
		e.Identities[AnonymousID] = aid
	}
	if m.UserID != nil && idString(m.UserID) == "" {
		return nil, &FieldError{"userId", "must be a string or number"}
	}

	switch strings.ToLower(m.Type) {
	case "track":
		name := strings.TrimSpace(m.Event)
		if name == "" {
			return nil, &FieldError{"event", "is required for track calls"}
		}
		e.Name = name
		if t, ok := segmentSpecEvents[strings.ToLower(name)]; ok {
			e.Type = t
		} else if validType(name) && strings.Contains(name, ".") {
			e.Type = name // already an Omni type, e.g. "order.placed"
		} else {
			e.Type = Track
		}
		e.Properties = m.Properties
	case "identify":
		e.Type = Identify
		if len(m.Traits) > 0 {
			e.Properties = map[string]any{"traits": m.Traits}
		}
	case "page":
		e.Type = PageViewed
		e.Name = strings.TrimSpace(m.Name) // analytics.page('Product')
		e.Properties = props()
		if m.Name != "" {
			e.Properties["name"] = m.Name
		}
		if m.Category != "" {
			e.Properties["category"] = m.Category
		}
	case "screen":
		e.Type = ScreenViewed
		e.Name = strings.TrimSpace(m.Name)
		e.Properties = props()
		if m.Name != "" {
			e.Properties["name"] = m.Name
		}
	case "group":
		e.Type = Group
		gid := idString(m.GroupID)
		if gid == "" {
			return nil, &FieldError{"groupId", "is required for group calls"}
		}
		e.Properties = map[string]any{"group_id": gid}
		if len(m.Traits) > 0 {
			e.Properties["traits"] = m.Traits
		}
	case "alias":
		e.Type = Alias
		prev := idString(m.PreviousID)
		if prev == "" {
			return nil, &FieldError{"previousId", "is required for alias calls"}
		}
		if idString(m.UserID) == "" {
			return nil, &FieldError{"userId", "is required for alias calls (the id previousId is linked to)"}
		}
		// Profiles links previous_id (an anonymousId or an earlier userId)
		// to userId under the usual merge guards.
		e.Properties = map[string]any{"previous_id": prev}
	case "":
		return nil, &FieldError{"type", "is required (track, identify, page, screen, group or alias)"}
	default:
		return nil, &FieldError{"type", fmt.Sprintf("%q is not a Segment call (track, identify, page, screen, group or alias)", m.Type)}
	}

	if len(e.Identities) == 0 {
		return nil, &FieldError{"userId", "userId or anonymousId is required"}
	}

	// Identity traits may come with identify calls or in context.traits.
	ctxTraits, _ := m.Context["traits"].(map[string]any)
	for _, traits := range []map[string]any{ctxTraits, m.Traits} {
		if s, ok := traits["email"].(string); ok && s != "" {
			e.Identities[Email] = s
		}
		if s, ok := traits["phone"].(string); ok && s != "" {
			e.Identities[Phone] = s
		}
	}

	e.Context = segmentContext(m)
	e.OccurredAt = segmentTime(m, receivedAt)
	if len(e.Properties) == 0 {
		e.Properties = nil
	}
	return e, nil
}

// segmentTime applies Segment's clock-skew correction: when the client says
// when it sent the message, the event time is shifted by the client's skew.
// checkBounds applies the event bounds (bounds.go) to the message's own
// fields, so an error names the field the client sent.
func (m *SegmentMessage) checkBounds() error {
	ids := [...]struct {
		field string
		v     any
	}{{"messageId", m.MessageID}, {"userId", m.UserID}, {"anonymousId", m.AnonymousID}, {"previousId", m.PreviousID}, {"groupId", m.GroupID}}
	for _, id := range ids {
		if len(idString(id.v)) > MaxIDLength {
			return &FieldError{id.field, fmt.Sprintf("is longer than %d characters", MaxIDLength)}
		}
	}
	// Fixed arrays, not maps: this runs for every tracked event.
	for _, f := range [...]struct{ field, name string }{{"event", m.Event}, {"name", m.Name}, {"category", m.Category}} {
		if len(f.name) > MaxNameLength {
			return &FieldError{f.field, fmt.Sprintf("is longer than %d characters", MaxNameLength)}
		}
	}
	for _, f := range [...]struct {
		field string
		tree  map[string]any
	}{{"properties", m.Properties}, {"traits", m.Traits}, {"context", m.Context}} {
		if err := CheckTree(f.field, f.tree); err != nil {
			return err
		}
	}
	return nil
}

func segmentTime(m *SegmentMessage, receivedAt time.Time) time.Time {
	ts := m.Timestamp
	if ts == nil {
		ts = m.OriginalTimestamp
	}
	if ts == nil {
		return receivedAt
	}
	if m.SentAt != nil {
		return receivedAt.Add(ts.Sub(*m.SentAt))
	}
	return *ts
}

func segmentContext(m *SegmentMessage) Context {
	var c Context
	for k, v := range m.Context {
		switch k {
		case "ip":
			c.IP, _ = v.(string)
		case "userAgent":
			c.UserAgent, _ = v.(string)
		case "locale":
			c.Locale, _ = v.(string)
		case "channel":
			c.Channel, _ = v.(string)
		case "traits":
		case "page":
			p, _ := v.(map[string]any)
			c.Page = &Page{URL: str(p, "url"), Path: str(p, "path"), Title: str(p, "title"), Referrer: str(p, "referrer"), Search: str(p, "search")}
		case "campaign":
			p, _ := v.(map[string]any)
			c.Campaign = &Campaign{Source: str(p, "source"), Medium: str(p, "medium"), Name: str(p, "name"), Term: str(p, "term"), Content: str(p, "content")}
		default:
			if c.Extra == nil {
				c.Extra = make(map[string]any, len(m.Context))
			}
			c.Extra[k] = v
		}
	}
	if c.Channel == "" {
		c.Channel = segmentChannel(m)
	}
	if len(c.Extra) == 0 {
		c.Extra = nil
	}
	return c
}

// segmentChannel derives the channel of a message that names none in
// context.channel: from its channel field (browser, client, mobile,
// server), else from the library that sent it (Segment's browser library
// sends no channel at all), else from what the context carries: a page or
// a user agent means a browser, app or device details an app, nothing a
// server. Page calls come from browsers and screen calls from apps.
func segmentChannel(m *SegmentMessage) string {
	switch strings.ToLower(strings.TrimSpace(m.Channel)) {
	case "browser", "client":
		return ChannelWeb
	case "mobile":
		return ChannelApp
	case "server":
		return ChannelServer
	}
	lib, _ := m.Context["library"].(map[string]any)
	if ch := libraryChannel(str(lib, "name")); ch != "" {
		return ch
	}
	switch strings.ToLower(m.Type) {
	case "page":
		return ChannelWeb
	case "screen":
		return ChannelApp
	}
	if _, ok := m.Context["page"].(map[string]any); ok {
		return ChannelWeb
	}
	if ua, _ := m.Context["userAgent"].(string); strings.TrimSpace(ua) != "" {
		return ChannelWeb
	}
	for _, k := range []string{"app", "device", "os"} {
		if _, ok := m.Context[k].(map[string]any); ok {
			return ChannelApp
		}
	}
	return ChannelServer
}

// libraryChannel maps a Segment library name (context.library.name) to a
// channel; "" for a library it does not know.
func libraryChannel(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	n = strings.TrimPrefix(n, "@segment/")
	switch {
	case n == "":
		return ""
	case n == "analytics.js" || n == "analytics-next" || strings.HasPrefix(n, "analytics-browser") || n == "analytics.js-next":
		return ChannelWeb
	case strings.Contains(n, "ios"), strings.Contains(n, "android"), strings.Contains(n, "react-native"),
		strings.Contains(n, "flutter"), strings.Contains(n, "swift"), strings.Contains(n, "kotlin"), strings.Contains(n, "xamarin"):
		return ChannelApp
	case strings.HasPrefix(n, "analytics-") || strings.HasPrefix(n, "analytics.") || strings.HasPrefix(n, "analytics_"):
		// Segment's server libraries: analytics-node, -python, -ruby,
		// -go, -java, -php, analytics.NET, analytics-csharp, …
		return ChannelServer
	}
	return ""
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}
