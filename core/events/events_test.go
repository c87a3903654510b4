package events

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestNormalizeIdentities(t *testing.T) {
	n := Normalizer{DefaultRegion: "GB"}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	e := &Event{ID: "1", Type: " Order.Placed ", Source: "s", ReceivedAt: now, Identities: Identities{
		Email:       "  Jane.Doe@Example.COM ",
		Phone:       "07700 900123",
		WhatsAppID:  "447700900123",
		AnonymousID: "   ",
	}}
	n.Normalize(e)
	if e.Identities[Email] != "jane.doe@example.com" {
		t.Errorf("email = %q", e.Identities[Email])
	}
	if e.Identities[Phone] != "+447700900123" {
		t.Errorf("phone = %q", e.Identities[Phone])
	}
	if _, ok := e.Identities[AnonymousID]; ok {
		t.Error("blank identity kept")
	}
	if e.Type != "order.placed" {
		t.Errorf("type = %q", e.Type)
	}
	if !e.OccurredAt.Equal(now) || e.OccurredAt.Location() != time.UTC {
		t.Errorf("occurred_at = %v", e.OccurredAt)
	}
}

func TestPhoneForms(t *testing.T) {
	n := Normalizer{DefaultRegion: "US"}
	for in, want := range map[string]string{
		"+1 (415) 555-2671": "+14155552671",
		"415-555-2671":      "+14155552671",
		"16505551234":       "+16505551234", // WhatsApp style, no plus
		"+44 20 7946 0958":  "+442079460958",
	} {
		got, ok := n.Phone(in)
		if !ok || got != want {
			t.Errorf("Phone(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := n.Phone("call me"); ok {
		t.Error("nonsense parsed as a phone")
	}
	e := &Event{Identities: Identities{Phone: "12", UserID: "u"}, ReceivedAt: time.Now()}
	n.Normalize(e)
	if _, ok := e.Identities[Phone]; ok || e.Properties["invalid_phone"] != "12" {
		t.Errorf("invalid phone not moved aside: %+v %+v", e.Identities, e.Properties)
	}
}

func TestValidate(t *testing.T) {
	now := time.Now().UTC()
	good := func() *Event {
		return &Event{ID: "x", Type: "order.placed", Source: "web", OccurredAt: now, ReceivedAt: now, Identities: Identities{Email: "a@b.c"}}
	}
	if err := good().Validate(now); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(e *Event){
		"id":                  func(e *Event) { e.ID = "" },
		"type":                func(e *Event) { e.Type = "Order Placed" },
		"source":              func(e *Event) { e.Source = "" },
		"occurred_at":         func(e *Event) { e.OccurredAt = now.Add(48 * time.Hour) },
		"identities":          func(e *Event) { e.Identities = nil },
		"identities.favcolor": func(e *Event) { e.Identities["favcolor"] = "red" },
	}
	for field, mutate := range cases {
		e := good()
		mutate(e)
		err := e.Validate(now)
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

func TestFromSegmentTrack(t *testing.T) {
	raw := `{"type":"track","event":"Order Completed","userId":42,"messageId":"m-1",
	  "properties":{"revenue":25.5,"currency":"EUR"},
	  "context":{"traits":{"email":"A@b.co"},"campaign":{"source":"newsletter","medium":"email"},"page":{"url":"https://shop/x"},"library":{"name":"analytics-go"}},
	  "timestamp":"2026-01-01T10:00:00Z","sentAt":"2026-01-01T10:00:05Z"}`
	m, err := DecodeSegment(json.RawMessage(raw), "")
	if err != nil {
		t.Fatal(err)
	}
	recv := time.Date(2026, 1, 1, 10, 0, 7, 0, time.UTC)
	e, err := FromSegment(m, "web", recv, func() string { return "generated" })
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != OrderPlaced || e.Name != "Order Completed" || e.ID != "m-1" {
		t.Fatalf("mapped wrong: %+v", e)
	}
	if e.Identities[UserID] != "42" || e.Identities[Email] != "A@b.co" {
		t.Fatalf("identities: %+v", e.Identities)
	}
	// client clock was 5s behind the send; event moves to receivedAt-5s
	if want := recv.Add(-5 * time.Second); !e.OccurredAt.Equal(want) {
		t.Fatalf("skew correction: %v want %v", e.OccurredAt, want)
	}
	if e.Context.Campaign == nil || e.Context.Campaign.Source != "newsletter" || e.Context.Page.URL != "https://shop/x" {
		t.Fatalf("context: %+v", e.Context)
	}
	if e.Context.Extra["library"] == nil || e.Properties["revenue"] != 25.5 {
		t.Fatalf("unknown fields lost: %+v %+v", e.Context.Extra, e.Properties)
	}
}

func TestFromSegmentRejects(t *testing.T) {
	cases := map[string]string{
		`{"type":"track","userId":"u"}`:                       "event",
		`{"type":"track","event":"x"}`:                        "userId",
		`{"type":"explode","userId":"u"}`:                     "type",
		`{"userId":"u"}`:                                      "type",
		`{"type":"alias","userId":"u"}`:                       "previousId",
		`{"type":"alias","anonymousId":"a","previousId":"p"}`: "userId",
		`{"type":"group","userId":"u"}`:                       "groupId",
	}
	for raw, field := range cases {
		m, err := DecodeSegment(json.RawMessage(raw), "")
		if err == nil {
			_, err = FromSegment(m, "s", time.Now(), func() string { return "g" })
		}
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != field {
			t.Errorf("%s: want field %s, got %v", raw, field, err)
		}
	}
	_, err := DecodeSegment(json.RawMessage(`{"type":"track","properties":"notamap"}`), "")
	if err == nil || !strings.Contains(err.Error(), "properties") {
		t.Errorf("type error should name the field: %v", err)
	}
}

func TestSubjectIsSafe(t *testing.T) {
	for source, want := range map[string]string{
		"My Shop.com": "omni.events.my_shop_com.order.placed",
		"shop-1_a":    "omni.events.shop-1_a.order.placed",
		"":            "omni.events._.order.placed",
		"Ünïcode":     "omni.events._n_code.order.placed",
		"a>b*c":       "omni.events.a_b_c.order.placed",
	} {
		e := &Event{Source: source, Type: "order.placed"}
		if got := e.Subject(); got != want {
			t.Errorf("source %q: subject = %q, want %q", source, got, want)
		}
	}
}

// Segment's browser library sends no channel: the channel comes from the
// library that sent the call, then from what the context carries, so a
// browsing customer's track and identify calls are web, not server.
func TestSegmentChannelFromLibraryAndContext(t *testing.T) {
	cases := []struct {
		name, raw, want string
	}{
		{"analytics.js track", `{"type":"track","event":"Product Viewed","anonymousId":"a","context":{"library":{"name":"analytics.js","version":"4.1.0"}}}`, ChannelWeb},
		{"analytics-next identify", `{"type":"identify","userId":"u","context":{"library":{"name":"@segment/analytics-next","version":"1.70.0"}}}`, ChannelWeb},
		{"ios", `{"type":"track","event":"x","userId":"u","context":{"library":{"name":"analytics-ios"}}}`, ChannelApp},
		{"android", `{"type":"track","event":"x","userId":"u","context":{"library":{"name":"analytics-android"}}}`, ChannelApp},
		{"react native", `{"type":"identify","userId":"u","context":{"library":{"name":"@segment/analytics-react-native"}}}`, ChannelApp},
		{"flutter", `{"type":"track","event":"x","userId":"u","context":{"library":{"name":"analytics_flutter"}}}`, ChannelApp},
		{"swift", `{"type":"track","event":"x","userId":"u","context":{"library":{"name":"analytics-swift"}}}`, ChannelApp},
		{"node", `{"type":"track","event":"x","userId":"u","context":{"library":{"name":"analytics-node"}}}`, ChannelServer},
		{"python page", `{"type":"page","userId":"u","context":{"library":{"name":"analytics-python"}}}`, ChannelServer},
		{".NET", `{"type":"track","event":"x","userId":"u","context":{"library":{"name":"analytics.NET"}}}`, ChannelServer},
		{"unknown library, page context", `{"type":"track","event":"x","userId":"u","context":{"library":{"name":"my-tracker"},"page":{"url":"https://shop/x"}}}`, ChannelWeb},
		{"no library, user agent", `{"type":"identify","userId":"u","context":{"userAgent":"Mozilla/5.0 (Macintosh)"}}`, ChannelWeb},
		{"no library, device", `{"type":"track","event":"x","userId":"u","context":{"device":{"type":"ios"}}}`, ChannelApp},
		{"no library, page call", `{"type":"page","userId":"u"}`, ChannelWeb},
		{"no library, screen call", `{"type":"screen","userId":"u","name":"Cart"}`, ChannelApp},
		{"nothing", `{"type":"track","event":"x","userId":"u"}`, ChannelServer},
		{"channel field wins", `{"type":"track","event":"x","userId":"u","channel":"server","context":{"library":{"name":"analytics.js"}}}`, ChannelServer},
		{"context.channel wins", `{"type":"track","event":"x","userId":"u","context":{"channel":"pos","library":{"name":"analytics.js"}}}`, "pos"},
	}
	for _, c := range cases {
		m, err := DecodeSegment(json.RawMessage(c.raw), "")
		if err != nil {
			t.Fatal(err)
		}
		e, err := FromSegment(m, "s", time.Now(), func() string { return "g" })
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if e.Context.Channel != c.want {
			t.Errorf("%s: channel %q, want %q", c.name, e.Context.Channel, c.want)
		}
	}
}

// analytics.page('Product') and screen('Cart') name the event.
func TestSegmentPageNameIsTheEventName(t *testing.T) {
	for raw, want := range map[string]string{
		`{"type":"page","anonymousId":"a","name":"Product","properties":{"url":"https://shop/p/1"}}`: "Product",
		`{"type":"screen","anonymousId":"a","name":"Cart"}`:                                          "Cart",
	} {
		m, _ := DecodeSegment(json.RawMessage(raw), "")
		e, err := FromSegment(m, "s", time.Now(), func() string { return "g" })
		if err != nil {
			t.Fatal(err)
		}
		if e.Name != want || e.Properties["name"] != want {
			t.Errorf("%s: name %q, properties.name %v; want %q", raw, e.Name, e.Properties["name"], want)
		}
	}
}

func TestStrongestPicksByIdentityKindsOrderThenFirst(t *testing.T) {
	for _, c := range []struct {
		name string
		ids  []KindValue
		want KindValue
		ok   bool
	}{
		{"none", nil, KindValue{}, false},
		{"unknown kinds only", []KindValue{{"fax", "1"}, {"", "x"}}, KindValue{}, false},
		{"email beats phone and anonymous id", []KindValue{{AnonymousID, "a1"}, {Phone, "+1"}, {Email, "e@x"}},
			KindValue{Email, "e@x"}, true},
		{"user id beats everything", []KindValue{{Email, "e@x"}, {UserID, "u1"}, {ShopifyCustomer, "s1"}},
			KindValue{UserID, "u1"}, true},
		{"the first of the strongest kind", []KindValue{{Email, "first@x"}, {"fax", "1"}, {Email, "second@x"}},
			KindValue{Email, "first@x"}, true},
	} {
		got, ok := Strongest(c.ids)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: Strongest = %v, %v; want %v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
