package events

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/omni/omni/internal/jsonenc"
)

// appendJSON writes e exactly as encoding/json would (same field order,
// omitempty, sorted map keys, HTML-safe escaping, float format), without
// reflection: Marshal runs once per ingested event, and reflection was a
// third of the tracking API's CPU. encode_test.go holds it byte-equal to
// json.Marshal. ok is false when a value needs encoding/json itself
// (an unusual type, NaN, a year outside 0–9999): the caller then uses it.
func (e *Event) appendJSON(b []byte) ([]byte, bool) {
	ok := true
	str := func(key, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		b = append(b, key...)
		b = jsonenc.String(b, v)
	}
	tm := func(key string, t time.Time) {
		if y := t.Year(); y < 0 || y >= 10000 {
			ok = false
			return
		}
		b = append(b, key...)
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, `{"id":`...)
	b = jsonenc.String(b, e.ID)
	str(`,"type":`, e.Type, false)
	str(`,"name":`, e.Name, true)
	str(`,"source":`, e.Source, false)
	tm(`,"occurred_at":`, e.OccurredAt)
	tm(`,"received_at":`, e.ReceivedAt)
	b = append(b, `,"identities":`...)
	b = appendIdentities(b, e.Identities)
	if len(e.Properties) > 0 {
		b = append(b, `,"properties":`...)
		b, ok = appendValue(b, e.Properties, ok)
	}
	b = append(b, `,"context":`...)
	if ok {
		b, ok = appendContext(b, &e.Context)
	}
	return append(b, '}'), ok
}

// appendIdentities writes ids as json.Marshal does (keys sorted).
func appendIdentities(b []byte, ids Identities) []byte {
	if ids == nil {
		return append(b, "null"...)
	}
	var arr [8]string
	keys := arr[:0]
	for k := range ids {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.String(b, k)
		b = append(b, ':')
		b = jsonenc.String(b, ids[k])
	}
	return append(b, '}')
}

// appendContext writes c as json.Marshal(c) does.
func appendContext(b []byte, c *Context) ([]byte, bool) {
	b = append(b, '{')
	n := len(b)
	field := func(key string) {
		if len(b) > n {
			b = append(b, ',')
		}
		b = append(b, key...)
	}
	str := func(key, v string) {
		if v != "" {
			field(key)
			b = jsonenc.String(b, v)
		}
	}
	object := func(key string, fields []struct{ k, v string }) {
		field(key)
		m := len(b)
		for _, f := range fields {
			if f.v != "" {
				if len(b) > m {
					b = append(b, ',')
				}
				b = append(b, f.k...)
				b = jsonenc.String(b, f.v)
			}
		}
		b = append(b, '}')
	}
	str(`"channel":`, c.Channel)
	if cp := c.Campaign; cp != nil {
		object(`"campaign":{`, []struct{ k, v string }{{`"source":`, cp.Source}, {`"medium":`, cp.Medium}, {`"name":`, cp.Name}, {`"term":`, cp.Term}, {`"content":`, cp.Content}})
	}
	str(`"journey_run":`, c.JourneyRun)
	if p := c.Page; p != nil {
		object(`"page":{`, []struct{ k, v string }{{`"url":`, p.URL}, {`"path":`, p.Path}, {`"title":`, p.Title}, {`"referrer":`, p.Referrer}, {`"search":`, p.Search}})
	}
	str(`"ip":`, c.IP)
	str(`"user_agent":`, c.UserAgent)
	str(`"locale":`, c.Locale)
	ok := true
	if len(c.Extra) > 0 {
		field(`"extra":`)
		b, ok = appendValue(b, c.Extra, true)
	}
	return append(b, '}'), ok
}

// appendValue encodes a decoded-JSON value; ok turns false on anything
// else, so the caller falls back to encoding/json.
func appendValue(b []byte, v any, ok bool) ([]byte, bool) {
	if !ok {
		return b, false
	}
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case string:
		return jsonenc.String(b, x), true
	case bool:
		return strconv.AppendBool(b, x), true
	case float64:
		return jsonenc.Float(b, x)
	case map[string]any:
		if x == nil {
			return append(b, "null"...), true
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.String(b, k)
			b = append(b, ':')
			if b, ok = appendValue(b, x[k], true); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	case []any:
		if x == nil {
			return append(b, "null"...), true
		}
		b = append(b, '[')
		for i, el := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendValue(b, el, true); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	}
	return b, false
}

// marshalFallback is the reflective encoder, for what appendJSON declines.
func (e *Event) marshalFallback() ([]byte, error) { return json.Marshal(e) }
