// Package events defines Omni's unified event model: the one shape every
// channel's data is turned into before it reaches the bus.
package events

import (
	"fmt"
	"strings"
	"time"
)

// Identity kinds an event may carry. Profiles resolve on these.
const (
	Email           = "email"
	Phone           = "phone"
	ShopifyCustomer = "shopify_customer_id"
	SquareCustomer  = "square_customer_id"
	KlaviyoProfile  = "klaviyo_profile_id"
	WhatsAppID      = "wa_id"
	UserID          = "user_id"
	AnonymousID     = "anonymous_id"
)

// IdentityKinds lists every identity kind, strongest first.
var IdentityKinds = []string{UserID, ShopifyCustomer, SquareCustomer, KlaviyoProfile, Email, Phone, WhatsAppID, AnonymousID}

// KindValue is one identity of a customer, as the identities table stores
// it (kind, value).
type KindValue struct {
	Kind  string `db:"kind"`
	Value string `db:"value"`
}

// Strongest returns the strongest of ids in IdentityKinds' order (of two
// of the same kind, the first), and false when none is of a known kind.
// An event Omni emits about a customer carries it, so that it resolves to
// that customer and joins nobody else.
func Strongest(ids []KindValue) (KindValue, bool) {
	best, rank := KindValue{}, len(IdentityKinds)
	for _, id := range ids {
		if r := kindRank(id.Kind); r < rank {
			best, rank = id, r
		}
	}
	return best, rank < len(IdentityKinds)
}

// kindRank is kind's place in IdentityKinds (len(IdentityKinds) when it is
// not there).
func kindRank(kind string) int {
	for i, k := range IdentityKinds {
		if k == kind {
			return i
		}
	}
	return len(IdentityKinds)
}

// Well-known event types (dotted and stable).
const (
	OrderPlaced          = "order.placed"
	OrderCancelled       = "order.cancelled"
	OrderRefunded        = "order.refunded"
	CheckoutStarted      = "checkout.started"
	CheckoutUpdated      = "checkout.updated"
	CustomerUpdated      = "customer.updated"
	ConsentChanged       = "consent.changed"
	PageViewed           = "page.viewed"
	ScreenViewed         = "screen.viewed"
	Identify             = "identify"
	Track                = "track"
	Group                = "group"
	Alias                = "alias"
	MessageReceived      = "message.received"
	MessageSent          = "message.sent"
	MessageDelivered     = "message.delivered"
	MessageRead          = "message.read"
	MessageFailed        = "message.failed"
	EmailOpened          = "email.opened"
	EmailClicked         = "email.clicked"
	ConversationResolved = "conversation.resolved"
	SurveyAnswered       = "survey.answered"
	SegmentEntered       = "segment.entered"
	SegmentExited        = "segment.exited"
	ProfileErased        = "profile.erased"
)

// Channels an event can happen on.
const (
	ChannelWeb      = "web"
	ChannelApp      = "app"
	ChannelServer   = "server"
	ChannelEmail    = "email"
	ChannelSMS      = "sms"
	ChannelWhatsApp = "whatsapp"
	ChannelPOS      = "pos"
	ChannelChat     = "chat"
)

// Identities maps an identity kind to its value.
type Identities map[string]string

// Event is the unified event. ID is stable for one real-world occurrence
// (a vendor's webhook id, a Segment messageId) so redeliveries dedupe.
type Event struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	Name       string         `json:"name,omitempty"` // original name of a custom track event
	Source     string         `json:"source"`
	OccurredAt time.Time      `json:"occurred_at"`
	ReceivedAt time.Time      `json:"received_at"`
	Identities Identities     `json:"identities"`
	Properties map[string]any `json:"properties,omitempty"`
	Context    Context        `json:"context"`
}

// Context says where an event happened and what led to it.
type Context struct {
	Channel    string         `json:"channel,omitempty"`
	Campaign   *Campaign      `json:"campaign,omitempty"`
	JourneyRun string         `json:"journey_run,omitempty"`
	Page       *Page          `json:"page,omitempty"`
	IP         string         `json:"ip,omitempty"`
	UserAgent  string         `json:"user_agent,omitempty"`
	Locale     string         `json:"locale,omitempty"`
	Extra      map[string]any `json:"extra,omitempty"`
}

// Campaign holds UTM-style attribution fields.
type Campaign struct {
	Source  string `json:"source,omitempty"`
	Medium  string `json:"medium,omitempty"`
	Name    string `json:"name,omitempty"`
	Term    string `json:"term,omitempty"`
	Content string `json:"content,omitempty"`
}

// Page describes the web page an event happened on.
type Page struct {
	URL      string `json:"url,omitempty"`
	Path     string `json:"path,omitempty"`
	Title    string `json:"title,omitempty"`
	Referrer string `json:"referrer,omitempty"`
	Search   string `json:"search,omitempty"`
}

// FieldError is a validation problem with one field of an event.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Validation bounds for timestamps: far-future or ancient times are almost
// always unit mistakes (seconds vs milliseconds).
var (
	minTime       = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxClockSkew  = 24 * time.Hour
	maxTypeLength = 100
)

// Validate checks an already normalised event, including the size bounds
// (bounds.go), and names the first field that fails.
func (e *Event) Validate(now time.Time) error {
	switch {
	case strings.TrimSpace(e.ID) == "":
		return &FieldError{"id", "is required"}
	case !validType(e.Type):
		return &FieldError{"type", fmt.Sprintf("%q is not a valid type (lower-case words joined by dots, such as order.placed)", e.Type)}
	case strings.TrimSpace(e.Source) == "":
		return &FieldError{"source", "is required"}
	case e.OccurredAt.IsZero():
		return &FieldError{"occurred_at", "is required"}
	case e.OccurredAt.Before(minTime):
		return &FieldError{"occurred_at", "is before 2000-01-01 (seconds given as milliseconds?)"}
	case e.OccurredAt.After(now.Add(maxClockSkew)):
		return &FieldError{"occurred_at", "is more than 24h in the future"}
	case len(e.Identities) == 0:
		return &FieldError{"identities", "at least one identity (userId, anonymousId, email, phone, …) is required"}
	}
	for kind := range e.Identities {
		if !KnownIdentity(kind) {
			return &FieldError{"identities." + pathKey(kind), "is not a known identity kind"}
		}
	}
	return e.checkBounds()
}

// KnownIdentity reports whether kind is an identity kind Omni resolves on.
func KnownIdentity(kind string) bool {
	return kindRank(kind) < len(IdentityKinds)
}

func validType(t string) bool {
	if t == "" || len(t) > maxTypeLength {
		return false
	}
	// Parts joined by dots, each non-empty, of a-z and _, digits after
	// the first character; checked in place (this runs for every event).
	partStart := true
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '.':
			if partStart {
				return false
			}
			partStart = true
			continue
		case (c >= 'a' && c <= 'z') || c == '_' || (!partStart && c >= '0' && c <= '9'):
		default:
			return false
		}
		partStart = false
	}
	return !partStart
}

// TrackingIDPrefix starts the id of every event that came in through the
// tracking API. Connector events may not use it, so no connector id can
// collide with a tracking message.
const TrackingIDPrefix = "src:"

// TrackingID is the stored id (and bus dedupe id) of a tracking-API message:
// its messageId scoped by the record id of the source that sent it, so a
// source can only dedupe its own messages (a public write key cannot
// pre-empt a vendor's webhook by reusing its id). Record ids are
// [a-z0-9]{15}, so the scope cannot contain the ":" that ends it.
func TrackingID(sourceID, messageID string) string {
	return TrackingIDPrefix + sourceID + ":" + messageID
}

// Subject is the bus subject an event is published on.
func (e *Event) Subject() string {
	return "omni.events." + subjectToken(e.Source) + "." + e.Type
}

// subjectToken makes a string safe as one NATS subject token. A source
// name that already is one (the usual case) comes back as it is: this runs
// for every event ingest publishes.
func subjectToken(s string) string {
	if s != "" && !strings.ContainsFunc(s, notTokenChar) {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if notTokenChar(r) {
			b.WriteByte('_')
		} else {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

// notTokenChar reports whether r may not stand in a subject token as it is.
func notTokenChar(r rune) bool {
	return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' && r != '-'
}

// Marshal encodes the event for the bus: the same bytes as json.Marshal,
// without its reflection where it can (encode.go).
func (e *Event) Marshal() ([]byte, error) {
	if b, ok := e.appendJSON(make([]byte, 0, 512)); ok {
		return b, nil
	}
	return e.marshalFallback()
}
