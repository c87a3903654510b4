package events

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"
)

// Unmarshal decodes an event from the bus. Events written by Marshal are
// read by a scanner that knows the event's members (decodeKnown), with
// encoding/json only for the free-form properties and context.extra:
// decoding through reflection was a fifth of the events writer's CPU.
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

// skip passes over one JSON value (checked later by encoding/json) and
// returns it.
func (s *scanner) skip() []byte {
	s.ws()
	start, depth := s.i, 0
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case '"':
			if s.rawString(); !s.ok {
				return nil
			}
			if depth == 0 {
				return s.b[start:s.i]
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				if s.i == start {
					s.fail()
					return nil
				}
				return s.b[start:s.i] // a scalar ends
			}
			depth--
			if depth == 0 {
				s.i++
				return s.b[start:s.i]
			}
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				if s.i == start {
					s.fail()
					return nil
				}
				return s.b[start:s.i]
			}
		}
		s.i++
	}
	if depth != 0 || s.i == start {
		s.fail()
		return nil
	}
	return s.b[start:s.i]
}

// freeForm decodes an object of any JSON values (properties, extra) as
// encoding/json decodes into map[string]any; nil for null.
func (s *scanner) freeForm() map[string]any {
	raw := s.skip()
	if !s.ok {
		return nil
	}
	if string(raw) == "null" {
		return nil
	}
	if raw[0] != '{' {
		s.fail()
		return nil
	}
	var v any // through an interface: encoding/json's fast path
	if json.Unmarshal(raw, &v) != nil {
		s.fail()
		return nil
	}
	m, _ := v.(map[string]any)
	return m
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
