package events

import (
	"strings"
	"testing"
)

// A message the tracking API cannot decode is refused naming the field, in
// the API's words: no Go type names, no time layouts.
func TestDecodeSegmentNamesTheFieldInJSONWords(t *testing.T) {
	cases := []struct {
		body, field, want string
	}{
		{`{"userId":"u","traits":"vip"}`, "traits", "must be an object, got string"},
		{`{"userId":"u","event":"x","properties":[1]}`, "properties", "must be an object, got array"},
		{`{"userId":"u","event":"x","timestamp":"yesterday"}`, "timestamp", `must be an ISO 8601 time such as 2026-12-05T09:30:00Z, got "yesterday"`},
		{`{"userId":"u","event":"x","timestamp":"2026-12-05T09:30:00Z","sentAt":"soon"}`, "sentAt", `got "soon"`},
		{`{"userId":"u","event":"x","originalTimestamp":1733390000}`, "originalTimestamp", "(a string)"},
		{`{"userId":`, "body", "is not valid JSON"},
	}
	for _, c := range cases {
		_, err := DecodeSegment([]byte(c.body), "track")
		fe, ok := err.(*FieldError)
		if !ok {
			t.Errorf("%s: error %v, want a FieldError", c.body, err)
			continue
		}
		if fe.Field != c.field || !strings.Contains(fe.Message, c.want) || strings.Contains(fe.Message, "interface {}") || strings.Contains(fe.Message, "2006-01-02") {
			t.Errorf("%s: %s: %q, want %s: …%s…", c.body, fe.Field, fe.Message, c.field, c.want)
		}
	}
}
