package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// nested returns {"a":{"a":…{"a":1}}} with depth objects, as decoded JSON.
func nested(depth int) map[string]any {
	var v any = 1.0
	for i := 0; i < depth; i++ {
		v = map[string]any{"a": v}
	}
	return v.(map[string]any)
}

func keys(n int) map[string]any {
	m := map[string]any{}
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("k%d", i)] = i
	}
	return m
}

// TestBoundsAtTheLimitPassAndOneBeyondFails checks each bound both ways and
// that the error names the field by its path.
func TestBoundsAtTheLimitPassAndOneBeyondFails(t *testing.T) {
	now := time.Now().UTC()
	good := func() *Event {
		return &Event{ID: "x", Type: "order.placed", Source: "web", OccurredAt: now, ReceivedAt: now, Identities: Identities{Email: "a@b.c"}}
	}
	aPath := func(n int) string { return "properties" + strings.Repeat(".a", n) }
	cases := []struct {
		name      string
		ok, bad   func(e *Event)
		field     string
		wantInMsg string
	}{
		// properties itself is level 1: nested(32) is 32 levels, the most allowed.
		{"depth", func(e *Event) { e.Properties = nested(MaxDepth) }, func(e *Event) { e.Properties = nested(MaxDepth + 1) },
			aPath(MaxDepth), "nesting deeper than 32"},
		{"depth in arrays", func(e *Event) { e.Properties = map[string]any{"l": []any{nested(MaxDepth - 2)}} },
			func(e *Event) { e.Properties = map[string]any{"l": []any{nested(MaxDepth - 1)}} },
			"properties.l[0]" + strings.Repeat(".a", MaxDepth-2), "nesting deeper"},
		{"keys", func(e *Event) { e.Properties = keys(MaxKeys) }, func(e *Event) { e.Properties = keys(MaxKeys + 1) }, "properties", "more than 500"},
		{"nested keys", func(e *Event) { e.Properties = map[string]any{"x": keys(MaxKeys)} },
			func(e *Event) { e.Properties = map[string]any{"x": keys(MaxKeys + 1)} }, "properties.x", "more than 500"},
		{"string", func(e *Event) { e.Properties = map[string]any{"s": strings.Repeat("x", MaxStringBytes)} },
			func(e *Event) { e.Properties = map[string]any{"s": strings.Repeat("x", MaxStringBytes+1)} }, "properties.s", "64 KB"},
		{"context string", func(e *Event) { e.Context.UserAgent = strings.Repeat("x", MaxStringBytes) },
			func(e *Event) { e.Context.UserAgent = strings.Repeat("x", MaxStringBytes+1) }, "context.user_agent", "64 KB"},
		{"context.extra depth", func(e *Event) { e.Context.Extra = nested(MaxDepth) }, func(e *Event) { e.Context.Extra = nested(MaxDepth + 1) },
			"context.extra" + strings.Repeat(".a", MaxDepth), "nesting"},
		{"name", func(e *Event) { e.Name = strings.Repeat("n", MaxNameLength) }, func(e *Event) { e.Name = strings.Repeat("n", MaxNameLength+1) }, "name", "200"},
		{"id", func(e *Event) { e.ID = strings.Repeat("i", MaxIDLength) }, func(e *Event) { e.ID = strings.Repeat("i", MaxIDLength+1) }, "id", "256"},
		{"identity", func(e *Event) { e.Identities[UserID] = strings.Repeat("u", MaxIDLength) },
			func(e *Event) { e.Identities[UserID] = strings.Repeat("u", MaxIDLength+1) }, "identities.user_id", "256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := good()
			c.ok(e)
			if err := e.Validate(now); err != nil {
				t.Fatalf("at the limit: %v", err)
			}
			e = good()
			c.bad(e)
			err := e.Validate(now)
			fe, ok := err.(*FieldError)
			if !ok || fe.Field != c.field || !strings.Contains(fe.Message, c.wantInMsg) {
				t.Fatalf("beyond the limit: got %v, want field %s (%s)", err, c.field, c.wantInMsg)
			}
		})
	}
}

// TestDeepSegmentMessageNamesTheClientField: the 1,500-deep order from the
// issue is refused with the path of the field the client sent.
func TestDeepSegmentMessageNamesTheClientField(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 1500) + "1" + strings.Repeat("}", 1500)
	cases := map[string]string{
		`{"type":"track","event":"Order Completed","userId":"u","properties":` + deep + `}`:        "properties" + strings.Repeat(".a", MaxDepth),
		`{"type":"identify","userId":"u","traits":` + deep + `}`:                                   "traits" + strings.Repeat(".a", MaxDepth),
		`{"type":"track","event":"x","userId":"u","context":{"library":` + deep + `}}`:             "context.library" + strings.Repeat(".a", MaxDepth-1),
		`{"type":"track","event":"` + strings.Repeat("e", 201) + `","userId":"u"}`:                 "event",
		`{"type":"track","event":"x","userId":"u","messageId":"` + strings.Repeat("m", 257) + `"}`: "messageId",
		`{"type":"track","event":"x","anonymousId":"` + strings.Repeat("m", 257) + `"}`:            "anonymousId",
	}
	for raw, field := range cases {
		m, err := DecodeSegment(json.RawMessage(raw), "")
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		_, err = FromSegment(m, "s", time.Now(), func() string { return "g" })
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != field {
			t.Errorf("%.60s…: want field %s, got %v", raw, field, err)
		}
	}
}
