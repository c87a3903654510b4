package events

import "encoding/json"

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
