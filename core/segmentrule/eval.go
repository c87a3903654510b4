package segmentrule

import (
	"cmp"
	"strings"
	"time"
	"unicode/utf8"
)

// Truth is a rule's answer for one profile as Eval gives it: what the
// compiled SQL would give (True, False, or Null, which a segment counts as
// false), or Unknown where only the database can say (event counts, staff
// tags) or where Go would not reproduce SQLite's answer exactly.
type Truth int8

const (
	Unknown Truth = iota
	False
	True
	Null
)

// Holds reports whether t is a decided answer that makes a member: what
// COALESCE(condition, 0) is in SQL. Unknown holds nothing.
func (t Truth) Holds() bool { return t == True }

// Decided reports whether t is an answer (Null counts: it is false).
func (t Truth) Decided() bool { return t != Unknown }

// Values is what Eval reads of one profile, one Read at a time, at the
// path the rule names (lifetime_value.USD, not lifetime_value). The value
// is what SQLite's json_extract would return, as a Go value: nil (absent
// or JSON null), float64 (numbers, and booleans as 1 or 0), string,
// []any (array) or map[string]any (object). ok is false when the reader
// cannot say exactly (Eval answers Unknown). A "column" read is the
// column's text; a "consent" read is the channel's status.
type Values interface {
	Value(r Read) (v any, ok bool)
}

// EventCounter is what Values may also answer: how many stored events of
// type typ the profile has (within the last withinDays days of now when
// withinDays is set), as the rule's COUNT over the events table gives
// it; ok is false when it cannot say exactly. Without it, and where it
// cannot say, an event condition is Unknown.
type EventCounter interface {
	EventCount(typ string, withinDays *int, now time.Time) (n int, ok bool)
}

// EventMinimum is what Values may also answer where it cannot count
// exactly: a number of the profile's stored events of type typ (within
// the last withinDays days of now when withinDays is set) that it knows
// of, never more than the rule's COUNT gives. Some comparisons that count
// already decides: one known order makes "at least 1 order" true and "no
// order" false, whatever the others.
type EventMinimum interface {
	EventsAtLeast(typ string, withinDays *int, now time.Time) int
}

// Eval answers r for one profile at now without the database, following
// the SQL that Compile makes from r operator by operator (NULLs, SQLite's
// ordering of numbers before text, the JSON array test of "contains"),
// so that wherever it decides, it decides as that SQL does. lookup
// resolves segment references as for NewCompiler; a reference that does
// not resolve, or a cycle, is Unknown (it does not compile).
func Eval(r *Rule, now time.Time, lookup func(string) (*Rule, bool), vals Values) Truth {
	e := evaluator{now: now, lookup: lookup, vals: vals}
	return e.eval(r)
}

type evaluator struct {
	now    time.Time
	lookup func(string) (*Rule, bool)
	vals   Values
	stack  []string
}

func (e *evaluator) eval(r *Rule) Truth {
	switch {
	case len(r.And) > 0:
		out := True
		for _, x := range r.And {
			switch e.eval(x) {
			case False:
				return False
			case Unknown:
				out = Unknown
			case Null:
				if out == True {
					out = Null
				}
			}
		}
		return out
	case len(r.Or) > 0:
		out := False
		for _, x := range r.Or {
			switch e.eval(x) {
			case True:
				return True
			case Unknown:
				out = Unknown
			case Null:
				if out == False {
					out = Null
				}
			}
		}
		return out
	case r.Not != nil:
		// NOT COALESCE(x, 0)
		switch e.eval(r.Not) {
		case True:
			return False
		case False, Null:
			return True
		}
		return Unknown
	case r.Trait == tagsTrait:
		return Unknown // staff tags are rows of profile_tags
	case r.Trait != "":
		return e.trait(r)
	case r.Event != "":
		if counter, ok := e.vals.(EventCounter); ok {
			if n, ok := counter.EventCount(r.Event, r.WithinDays, e.now); ok {
				return ordered(r.Op, cmp.Compare(n, *r.Count))
			}
		}
		if least, ok := e.vals.(EventMinimum); ok {
			return atLeast(r.Op, least.EventsAtLeast(r.Event, r.WithinDays, e.now), *r.Count)
		}
		return Unknown
	case r.Consent != "":
		v, ok := e.vals.Value(Read{"consent", r.Consent})
		if !ok {
			return Unknown
		}
		if r.Status == "unknown" {
			return truth(v == nil)
		}
		switch x := v.(type) {
		case nil:
			return Null
		case string:
			return truth(x == r.Status)
		}
		return Unknown
	case r.Segment != "":
		if contains(e.stack, r.Segment) || e.lookup == nil {
			return Unknown
		}
		sub, ok := e.lookup(r.Segment)
		if !ok {
			return Unknown
		}
		e.stack = append(e.stack, r.Segment)
		t := e.eval(sub)
		e.stack = e.stack[:len(e.stack)-1]
		return t
	}
	return Unknown
}

// ordered is "x op y" given c, x compared with y (-1, 0 or 1), for the
// operators of sqlOps; Unknown for any other.
func ordered(op string, c int) Truth {
	switch op {
	case "eq":
		return truth(c == 0)
	case "neq":
		return truth(c != 0)
	case "gt":
		return truth(c > 0)
	case "gte":
		return truth(c >= 0)
	case "lt":
		return truth(c < 0)
	case "lte":
		return truth(c <= 0)
	}
	return Unknown
}

// atLeast answers "count op want" knowing only that count is at least n:
// where every count from n up gives the same answer.
func atLeast(op string, n, want int) Truth {
	switch op {
	case "gte":
		if n >= want {
			return True
		}
	case "gt", "neq":
		if n > want {
			return True
		}
	case "eq", "lte":
		if n > want {
			return False
		}
	case "lt":
		if n >= want {
			return False
		}
	}
	return Unknown
}

func truth(b bool) Truth {
	if b {
		return True
	}
	return False
}

func (e *evaluator) trait(r *Rule) Truth {
	read := traitRead(r.Trait)
	v, ok := e.vals.Value(read)
	if !ok {
		return Unknown
	}
	v, ok = jsonValue(v)
	if !ok {
		return Unknown
	}
	column := read.Source == "column"
	if column {
		// A column has TEXT affinity: SQLite turns a number compared with
		// it into text (5.0 as "5.0"), which only strings here mirror.
		if _, isText := v.(string); !isText {
			return Unknown
		}
	}
	switch r.Op {
	case "eq", "neq", "gt", "gte", "lt", "lte":
		p, ok := param(dateParam(r.Value))
		if !ok || (column && !isString(p)) {
			return Unknown
		}
		if v == nil {
			if r.Op == "neq" {
				return True // expr IS NULL OR expr != p
			}
			return Null
		}
		c, ok := compare(v, p)
		if !ok {
			return Unknown
		}
		return ordered(r.Op, c)
	case "contains":
		p, ok := param(r.Value)
		if !ok {
			return Unknown
		}
		if list, isArray := v.([]any); isArray && !column {
			// EXISTS (SELECT 1 FROM json_each(…) WHERE value = p)
			for _, el := range list {
				el, ok := jsonValue(el)
				if !ok {
					return Unknown
				}
				if el == nil {
					continue
				}
				c, ok := compare(el, p)
				if !ok {
					return Unknown
				}
				if c == 0 {
					return True
				}
			}
			return False
		}
		// instr(expr, p) > 0
		switch x := v.(type) {
		case nil:
			return Null
		case string:
			if s, isText := p.(string); isText {
				return truth(strings.Contains(x, s))
			}
		}
		return Unknown // a number or an object as text, or a number as needle
	case "in":
		if v == nil {
			return Null
		}
		list, _ := r.Value.([]any)
		for _, x := range list {
			p, ok := param(x)
			if !ok || (column && !isString(p)) {
				return Unknown
			}
			c, ok := compare(v, p)
			if !ok {
				return Unknown
			}
			if c == 0 {
				return True
			}
		}
		return False
	case "exists", "not_exists":
		var present bool // expr IS NOT NULL AND expr != ''
		switch x := v.(type) {
		case nil:
		case string:
			present = x != ""
		default: // a number, or an object or array as JSON text, is never ''
			present = true
		}
		return truth(present == (r.Op == "exists"))
	case "within_days", "older_than_days":
		days, _ := r.Value.(float64)
		since := fmtT(e.now.Add(-time.Duration(int(days)) * day))
		var older Truth // expr IS NULL OR expr = '' OR expr < since
		within := Null  // expr >= since
		switch x := v.(type) {
		case nil:
			older = True
		case string:
			older, within = truth(x == "" || x < since), truth(x >= since)
		case float64: // numbers sort before text
			older, within = True, False
		default:
			return Unknown
		}
		if r.Op == "within_days" {
			return within
		}
		return older
	}
	return Unknown
}

// maxExactNumber bounds the numbers Eval compares: past 2^53 a float64
// no longer holds every integer SQLite might have stored exactly.
const maxExactNumber = 1 << 53

// jsonValue checks v is one of the values Values may return, with
// booleans as json_extract gives them (1 or 0).
func jsonValue(v any) (any, bool) {
	switch x := v.(type) {
	case nil, []any, map[string]any:
		return v, true
	case string:
		// encoding/json stores invalid UTF-8 as U+FFFD, which SQLite
		// then reads: the bytes held here are not what it compares.
		return x, utf8.ValidString(x)
	case bool:
		if x {
			return float64(1), true
		}
		return float64(0), true
	case float64:
		return x, x > -maxExactNumber && x < maxExactNumber
	}
	return nil, false
}

// param is a rule's value as Compiler.Param binds it (booleans as 1 or 0).
func param(v any) (any, bool) {
	v, ok := jsonValue(v)
	switch v.(type) {
	case string, float64:
		return v, ok
	}
	return nil, false
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}

// compare orders a stored value against a bound one as SQLite does when
// neither side has an affinity: numbers before text, numbers by value,
// text byte by byte. An object or array (JSON text to SQLite) is not
// compared here.
func compare(v, p any) (int, bool) {
	switch x := v.(type) {
	case float64:
		switch y := p.(type) {
		case float64:
			switch {
			case x < y:
				return -1, true
			case x > y:
				return 1, true
			}
			return 0, true
		case string:
			return -1, true
		}
	case string:
		switch y := p.(type) {
		case float64:
			return 1, true
		case string:
			return strings.Compare(x, y), true
		}
	}
	return 0, false
}

// EventWindows maps each event type r counts to the widest window, in
// days, over which one of its conditions counts that type; 0 when one
// counts all time. An event of that type older than its window leaves
// every count r makes as it was.
func EventWindows(r *Rule, lookup func(string) (*Rule, bool)) map[string]int {
	out := map[string]int{}
	eachCondition(r, lookup, func(c *Rule) {
		if c.Event == "" {
			return
		}
		w, seen := out[c.Event]
		switch {
		case c.WithinDays == nil:
			out[c.Event] = 0
		case !seen || (w != 0 && *c.WithinDays > w):
			out[c.Event] = *c.WithinDays
		}
	})
	return out
}

// StateConditions lists r's conditions that Eval can answer from a
// profile's values alone (traits, columns, consent; not events or staff
// tags), segment references followed, in a fixed order. Eval of each is
// that condition's answer: when none of them, no counted event and no tag
// changed, neither did r's.
func StateConditions(r *Rule, lookup func(string) (*Rule, bool)) []*Rule {
	var out []*Rule
	eachCondition(r, lookup, func(c *Rule) {
		if (c.Trait != "" && c.Trait != tagsTrait) || c.Consent != "" {
			out = append(out, c)
		}
	})
	return out
}
