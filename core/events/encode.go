package events

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
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
		b = appendString(b, v)
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
	b = appendString(b, e.ID)
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
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, ids[k])
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
			b = appendString(b, v)
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
				b = appendString(b, f.v)
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
		return appendString(b, x), true
	case bool:
		return strconv.AppendBool(b, x), true
	case float64:
		return appendFloat(b, x)
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
			b = appendString(b, k)
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

// appendFloat is encoding/json's float64 format.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9, as encoding/json does.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

const hexDigits = "0123456789abcdef"

// appendString is encoding/json's string encoding with HTML escaping on.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// marshalFallback is the reflective encoder, for what appendJSON declines.
func (e *Event) marshalFallback() ([]byte, error) { return json.Marshal(e) }
