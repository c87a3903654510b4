package events

import (
	"encoding/json"
	"slices"
)

// ColumnsJSON appends the identities, properties and context of the event
// to b as the events table stores them: the bytes json.Marshal writes for
// each (properties "null" when nil), in that order, and returns where the
// first two end. The writer encodes every event through this, without
// encoding/json's reflection (as Marshal does, encode.go); columns_test.go
// holds it byte-equal to json.Marshal of each member.
func (e *Event) ColumnsJSON(b []byte) (out []byte, idsEnd, propsEnd int) {
	start := len(b)
	b = appendIdentities(b, e.Identities)
	idsEnd = len(b)
	ok := true
	if e.Properties == nil {
		b = append(b, "null"...)
	} else {
		b, ok = appendValue(b, e.Properties, true)
	}
	propsEnd = len(b)
	if ok {
		b, ok = appendContext(b, &e.Context)
	}
	if ok {
		return b, idsEnd, propsEnd
	}
	// A value only encoding/json writes (or refuses: NaN, which then
	// leaves that column empty, as the insert always did).
	b = b[:start]
	ids, _ := json.Marshal(e.Identities)
	b = append(b, ids...)
	idsEnd = len(b)
	props := []byte("null")
	if e.Properties != nil {
		props, _ = json.Marshal(e.Properties)
	}
	b = append(b, props...)
	propsEnd = len(b)
	c, _ := json.Marshal(e.Context)
	return append(b, c...), idsEnd, propsEnd
}

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
