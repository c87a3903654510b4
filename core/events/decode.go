package events

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// Unmarshal decodes an event from the bus. Events written by Marshal are
// read by a scanner that knows the event's members (decodeKnown), without
// encoding/json's reflection and its separate validating pass: decoding
// was a fifth of the events consumer's CPU.
// Anything the scanner does not expect (an unknown or differently cased
// member, an escaped key, a repeated member, invalid JSON) is decoded by
// encoding/json as before, so the result and errors are the same;
// decode_test.go holds the two equal.
func Unmarshal(b []byte) (*Event, error) {
	if e, ok := decodeKnown(b); ok {
		return e, nil
	}
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// scanner reads JSON from b; any surprise sets ok false and the caller
// gives up (encoding/json then decides).
type scanner struct {
	b  []byte
	i  int
	ok bool
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips whitespace and reports whether the next byte is c (taking it).
func (s *scanner) next(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) fail() { s.ok = false }

// null takes a null literal if one comes next.
func (s *scanner) null() bool {
	s.ws()
	if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// rawString returns the next string token with its quotes, and whether it
// is plain (no escape, valid UTF-8): its content is then the value.
func (s *scanner) rawString() (tok []byte, plain bool) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		s.fail()
		return nil, false
	}
	start := s.i
	plain = true
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			tok = s.b[start:s.i]
			return tok, plain && utf8.Valid(tok)
		case c == '\\':
			plain = false
			j++
		case c < 0x20:
			s.fail() // invalid JSON: let encoding/json say so
			return nil, false
		}
	}
	s.fail()
	return nil, false
}

// str decodes the next string value.
func (s *scanner) str() string {
	tok, plain := s.rawString()
	if !s.ok {
		return ""
	}
	if plain {
		return string(tok[1 : len(tok)-1])
	}
	var v string
	if json.Unmarshal(tok, &v) != nil {
		s.fail()
	}
	return v
}

// key reads an object key and its colon; only plain keys are expected.
func (s *scanner) key() string {
	tok, plain := s.rawString()
	if !s.ok || !plain || !s.next(':') {
		s.fail()
		return ""
	}
	return string(tok[1 : len(tok)-1])
}

// object calls member for each key of an object (or nothing for null);
// member reads the value.
func (s *scanner) object(member func(key string)) {
	if s.null() {
		return
	}
	if !s.next('{') {
		s.fail()
		return
	}
	if s.next('}') {
		return
	}
	for s.ok {
		member(s.key())
		if !s.ok || s.next('}') {
			return
		}
		if !s.next(',') {
			s.fail()
		}
	}
}

// freeForm decodes an object of any JSON values (properties, extra) as
// encoding/json decodes into map[string]any; nil for null.
func (s *scanner) freeForm() map[string]any {
	if s.null() {
		return nil
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		s.fail()
		return nil
	}
	m, _ := s.value(0).(map[string]any)
	return m
}

// maxDepth bounds nesting; deeper input is left to encoding/json.
const maxDepth = 200

// value decodes any JSON value into the types encoding/json gives an
// interface: map[string]any, []any, string, float64, bool or nil.
func (s *scanner) value(depth int) any {
	s.ws()
	if s.i >= len(s.b) || depth > maxDepth {
		s.fail()
		return nil
	}
	switch c := s.b[s.i]; {
	case c == '{':
		m := map[string]any{}
		s.i++
		if s.next('}') {
			return m
		}
		for s.ok {
			k := s.objectKey()
			if !s.ok {
				return nil
			}
			m[k] = s.value(depth + 1)
			if !s.ok || s.next('}') {
				return m
			}
			if !s.next(',') {
				s.fail()
			}
		}
		return nil
	case c == '[':
		a := []any{}
		s.i++
		if s.next(']') {
			return a
		}
		for s.ok {
			a = append(a, s.value(depth+1))
			if !s.ok || s.next(']') {
				return a
			}
			if !s.next(',') {
				s.fail()
			}
		}
		return nil
	case c == '"':
		return s.str()
	case c == 't' && bytes.HasPrefix(s.b[s.i:], []byte("true")):
		s.i += 4
		return true
	case c == 'f' && bytes.HasPrefix(s.b[s.i:], []byte("false")):
		s.i += 5
		return false
	case c == 'n' && bytes.HasPrefix(s.b[s.i:], []byte("null")):
		s.i += 4
		return nil
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	s.fail()
	return nil
}

// objectKey reads a key of a free-form object (escapes allowed) and its
// colon.
func (s *scanner) objectKey() string {
	k := s.str()
	if !s.ok || !s.next(':') {
		s.fail()
	}
	return k
}

// number reads a number in JSON's grammar as a float64; out of range
// fails (encoding/json refuses it).
func (s *scanner) number() float64 {
	b, start := s.b, s.i
	i := start
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		s.fail()
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			s.fail()
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			s.fail()
			return 0
		}
	}
	f, err := strconv.ParseFloat(string(b[start:i]), 64)
	if err != nil {
		s.fail()
		return 0
	}
	s.i = i
	return f
}

func (s *scanner) time(t *time.Time) {
	if s.null() {
		return
	}
	tok, _ := s.rawString()
	if s.ok && t.UnmarshalJSON(tok) != nil {
		s.fail()
	}
}

// fields reads an object whose members are all strings into the
// pointers given for keys (in the same order); a repeated or unknown key
// gives up.
func (s *scanner) fields(keys []string, ptrs ...*string) {
	var seen uint32
	s.object(func(k string) {
		i := 0
		for i < len(keys) && keys[i] != k {
			i++
		}
		if i == len(keys) || seen&(1<<i) != 0 {
			s.fail()
			return
		}
		seen |= 1 << i
		if !s.null() {
			*ptrs[i] = s.str()
		}
	})
}

var (
	campaignKeys = []string{"source", "medium", "name", "term", "content"}
	pageKeys     = []string{"url", "path", "title", "referrer", "search"}
	contextKeys  = []string{"channel", "campaign", "journey_run", "page", "ip", "user_agent", "locale", "extra"}
)

// decodeKnown decodes an event whose members are all the known ones, each
// at most once; ok is false for anything else.
func decodeKnown(b []byte) (*Event, bool) {
	s := &scanner{b: b, ok: true}
	e := &Event{}
	var seen uint16
	once := func(bit uint16) bool {
		if seen&bit != 0 {
			s.fail()
			return false
		}
		seen |= bit
		return true
	}
	strField := func(bit uint16, p *string) {
		if once(bit) && !s.null() {
			*p = s.str()
		}
	}
	if s.null() {
		return nil, false // encoding/json leaves the event empty: rare, let it
	}
	s.object(func(k string) {
		switch k {
		case "id":
			strField(1<<0, &e.ID)
		case "type":
			strField(1<<1, &e.Type)
		case "name":
			strField(1<<2, &e.Name)
		case "source":
			strField(1<<3, &e.Source)
		case "occurred_at":
			if once(1 << 4) {
				s.time(&e.OccurredAt)
			}
		case "received_at":
			if once(1 << 5) {
				s.time(&e.ReceivedAt)
			}
		case "identities":
			if once(1 << 6) {
				s.identities(e)
			}
		case "properties":
			if once(1 << 7) {
				e.Properties = s.freeForm()
			}
		case "context":
			if once(1 << 8) {
				s.context(&e.Context)
			}
		default:
			s.fail()
		}
	})
	s.ws()
	if !s.ok || s.i != len(b) {
		return nil, false
	}
	return e, true
}

func (s *scanner) identities(e *Event) {
	if s.null() {
		return
	}
	e.Identities = Identities{}
	s.object(func(k string) {
		if _, dup := e.Identities[k]; dup {
			s.fail()
			return
		}
		if s.null() {
			s.fail()
			return
		}
		e.Identities[k] = s.str()
	})
}

func (s *scanner) context(c *Context) {
	var seen uint32
	s.object(func(k string) {
		i := 0
		for i < len(contextKeys) && contextKeys[i] != k {
			i++
		}
		if i == len(contextKeys) || seen&(1<<i) != 0 {
			s.fail()
			return
		}
		seen |= 1 << i
		switch k {
		case "channel":
			c.Channel = s.optStr()
		case "journey_run":
			c.JourneyRun = s.optStr()
		case "ip":
			c.IP = s.optStr()
		case "user_agent":
			c.UserAgent = s.optStr()
		case "locale":
			c.Locale = s.optStr()
		case "campaign":
			if s.null() {
				return
			}
			cp := &Campaign{}
			c.Campaign = cp
			s.fields(campaignKeys, &cp.Source, &cp.Medium, &cp.Name, &cp.Term, &cp.Content)
		case "page":
			if s.null() {
				return
			}
			p := &Page{}
			c.Page = p
			s.fields(pageKeys, &p.URL, &p.Path, &p.Title, &p.Referrer, &p.Search)
		case "extra":
			c.Extra = s.freeForm()
		}
	})
}

// optStr reads a string member, null leaving it empty.
func (s *scanner) optStr() string {
	if s.null() {
		return ""
	}
	return s.str()
}
