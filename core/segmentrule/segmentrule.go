// Package segmentrule is the rule language of segments, journey branches
// and customer-list filters: a JSON tree of trait, event, consent, tag and
// segment conditions (docs/profiles.md), parsed with errors that name the
// node and compiled to SQL over the profiles table (aliased p). It is shared
// infrastructure like core/events: profiles evaluates segments with it and
// journeys evaluates branches, without either importing the other.
package segmentrule

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
)

// Rule is one node of a segment's rule tree (see docs/profiles.md).
type Rule struct {
	And        []*Rule `json:"and,omitempty"`
	Or         []*Rule `json:"or,omitempty"`
	Not        *Rule   `json:"not,omitempty"`
	Trait      string  `json:"trait,omitempty"`
	Op         string  `json:"op,omitempty"`
	Value      any     `json:"value,omitempty"`
	Event      string  `json:"event,omitempty"`
	Count      *int    `json:"count,omitempty"`
	WithinDays *int    `json:"within_days,omitempty"`
	Consent    string  `json:"consent,omitempty"`
	Status     string  `json:"status,omitempty"`
	Segment    string  `json:"segment,omitempty"`
}

// RuleError names the node of a rule that is wrong.
type RuleError struct {
	Path    string
	Message string
}

func (e *RuleError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

func ruleErr(path, format string, args ...any) error {
	return &RuleError{Path: path, Message: fmt.Sprintf(format, args...)}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var allowedKeys = map[string][]string{
	"and": {"and"}, "or": {"or"}, "not": {"not"},
	"trait":   {"trait", "op", "value"},
	"event":   {"event", "op", "count", "within_days"},
	"consent": {"consent", "status"},
	"segment": {"segment"},
}

// ParseRule decodes and checks the shape of a rule tree (references to
// other segments are checked when compiled).
func ParseRule(raw []byte) (*Rule, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, ruleErr("", "is not valid JSON: %v", err)
	}
	return parseNode(v, "", 0)
}

const maxRuleDepth = 20

func parseNode(v any, path string, depth int) (*Rule, error) {
	if depth > maxRuleDepth {
		return nil, ruleErr(path, "rule is nested more than %d levels deep", maxRuleDepth)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, ruleErr(path, "must be an object such as {\"trait\":…}, {\"event\":…}, {\"consent\":…}, {\"segment\":…}, {\"and\":[…]}, {\"or\":[…]} or {\"not\":…}")
	}
	var kind string
	for k := range allowedKeys {
		if _, ok := obj[k]; ok {
			if kind != "" {
				a, b := kind, k
				if a > b {
					a, b = b, a
				}
				return nil, ruleErr(path, "has both %q and %q; a node is exactly one of and, or, not, trait, event, consent, segment (combine with and/or)", a, b)
			}
			kind = k
		}
	}
	if kind == "" {
		return nil, ruleErr(path, "needs one of and, or, not, trait, event, consent, segment")
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !contains(allowedKeys[kind], k) {
			return nil, ruleErr(join(path, k), "is not allowed in a %q node (allowed: %s)", kind, strings.Join(allowedKeys[kind], ", "))
		}
	}
	r := &Rule{}
	switch kind {
	case "and", "or":
		list, ok := obj[kind].([]any)
		if !ok || len(list) == 0 {
			return nil, ruleErr(join(path, kind), "must be a non-empty array of rules")
		}
		for i, item := range list {
			c, err := parseNode(item, fmt.Sprintf("%s[%d]", join(path, kind), i), depth+1)
			if err != nil {
				return nil, err
			}
			if kind == "and" {
				r.And = append(r.And, c)
			} else {
				r.Or = append(r.Or, c)
			}
		}
	case "not":
		c, err := parseNode(obj["not"], join(path, "not"), depth+1)
		if err != nil {
			return nil, err
		}
		r.Not = c
	case "trait":
		name, _ := obj["trait"].(string)
		if !pathRE.MatchString(name) {
			return nil, ruleErr(join(path, "trait"), "must be a trait name such as orders_count, lifetime_value.EUR or plan (letters, digits, _ joined by .)")
		}
		r.Trait = name
		op, _ := obj["op"].(string)
		r.Op = op
		val, has := obj["value"]
		r.Value = val
		switch op {
		case "eq", "neq", "gt", "gte", "lt", "lte":
			if !has || val == nil {
				return nil, ruleErr(join(path, "value"), "is required for op %q", op)
			}
			if !scalar(val) {
				return nil, ruleErr(join(path, "value"), "must be a string, number or boolean for op %q", op)
			}
		case "contains":
			if s, ok := val.(string); !ok || s == "" {
				if _, isNum := val.(float64); !isNum {
					return nil, ruleErr(join(path, "value"), "must be a non-empty string or a number for op \"contains\"")
				}
			}
		case "in":
			list, ok := val.([]any)
			if !ok || len(list) == 0 {
				return nil, ruleErr(join(path, "value"), "must be a non-empty array for op \"in\"")
			}
			for i, x := range list {
				if !scalar(x) {
					return nil, ruleErr(fmt.Sprintf("%s[%d]", join(path, "value"), i), "must be a string, number or boolean")
				}
			}
		case "exists", "not_exists":
			if has {
				return nil, ruleErr(join(path, "value"), "is not used with op %q", op)
			}
		case "within_days", "older_than_days":
			n, ok := val.(float64)
			if !ok || n <= 0 || n != float64(int(n)) || n > 36500 {
				return nil, ruleErr(join(path, "value"), "must be a whole number of days between 1 and 36500 for op %q", op)
			}
		case "":
			return nil, ruleErr(join(path, "op"), "is required (eq, neq, gt, gte, lt, lte, contains, in, exists, not_exists, within_days, older_than_days)")
		default:
			return nil, ruleErr(join(path, "op"), "unknown operator %q (eq, neq, gt, gte, lt, lte, contains, in, exists, not_exists, within_days, older_than_days)", op)
		}
	case "event":
		typ, _ := obj["event"].(string)
		if !eventTypeRE.MatchString(typ) {
			return nil, ruleErr(join(path, "event"), "must be an event type such as order.placed")
		}
		r.Event = typ
		op, _ := obj["op"].(string)
		if op == "" {
			op = "gte"
		}
		switch op {
		case "eq", "gt", "gte", "lt", "lte":
		default:
			return nil, ruleErr(join(path, "op"), "unknown operator %q for an event count (eq, gt, gte, lt, lte)", op)
		}
		r.Op = op
		n, ok := obj["count"].(float64)
		if _, has := obj["count"]; !has {
			n, ok = 1, true
		}
		if !ok || n < 0 || n != float64(int(n)) {
			return nil, ruleErr(join(path, "count"), "must be a whole number ≥ 0")
		}
		c := int(n)
		r.Count = &c
		if w, has := obj["within_days"]; has {
			d, ok := w.(float64)
			if !ok || d <= 0 || d != float64(int(d)) || d > 36500 {
				return nil, ruleErr(join(path, "within_days"), "must be a whole number of days between 1 and 36500")
			}
			di := int(d)
			r.WithinDays = &di
		}
	case "consent":
		ch, _ := obj["consent"].(string)
		if !ValidConsentChannel(ch) {
			return nil, ruleErr(join(path, "consent"), "must be a channel: email, sms or whatsapp")
		}
		r.Consent = ch
		st, _ := obj["status"].(string)
		switch st {
		case "subscribed", "unsubscribed", "unknown":
		default:
			return nil, ruleErr(join(path, "status"), "must be subscribed, unsubscribed or unknown")
		}
		r.Status = st
	case "segment":
		id, _ := obj["segment"].(string)
		if strings.TrimSpace(id) == "" {
			return nil, ruleErr(join(path, "segment"), "must be a segment id")
		}
		r.Segment = id
	}
	return r, nil
}

var (
	pathRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$`)
	eventTypeRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$`)
)

func scalar(v any) bool {
	switch v.(type) {
	case string, float64, bool:
		return true
	}
	return false
}

// computedTraits live in profiles.computed; everything else not a column is
// a custom trait from identify calls.
var computedTraits = map[string]bool{
	"first_seen": true, "last_seen": true, "orders_count": true, "lifetime_value": true, "orders_by_currency": true,
	"average_order_value": true, "lifetime_value_base": true, "average_order_value_base": true, "base_currency": true,
	"last_order_at": true, "channels": true, "preferred_channel": true, "last_two_way_at": true,
	"lifecycle_stage": true, "engagement_level": true, "buying_stage": true,
}

var columnTraits = map[string]bool{"email": true, "phone": true, "name": true}

// Compiler turns rules into SQL over `profiles p`, with bound parameters.
type Compiler struct {
	// Params are the bound parameters of everything compiled so far; callers
	// may add their own (named without the r prefix).
	Params dbx.Params
	// TimeBased is set once a compiled rule depends on the current time
	// (within_days and the like), so its result changes without an event.
	TimeBased bool
	now       time.Time
	n         int
	lookup    func(id string) (*Rule, bool)
	stack     []string
}

// NewCompiler compiles rules evaluated at now; lookup resolves {"segment": id}
// references to their rule (nil: a segment reference is an error).
func NewCompiler(now time.Time, lookup func(string) (*Rule, bool)) *Compiler {
	if lookup == nil {
		lookup = func(string) (*Rule, bool) { return nil, false }
	}
	return &Compiler{now: now, Params: dbx.Params{}, lookup: lookup}
}

// Inside marks the compiler as compiling segment id's own rule, so a
// reference back to it is reported as a cycle.
func (c *Compiler) Inside(id string) { c.stack = append(c.stack, id) }

// ValidTraitName reports whether name is a trait path (orders_count,
// lifetime_value.EUR, traits.plan).
func ValidTraitName(name string) bool { return pathRE.MatchString(name) }

// Param binds v and returns its placeholder.
func (c *Compiler) Param(v any) string {
	c.n++
	name := fmt.Sprintf("r%d", c.n)
	if b, ok := v.(bool); ok {
		if b {
			v = 1
		} else {
			v = 0
		}
	}
	c.Params[name] = v
	return "{:" + name + "}"
}

func traitExpr(name string) (expr, src, jpath string) {
	if columnTraits[name] {
		return "p." + name, "", ""
	}
	first, _, _ := strings.Cut(name, ".")
	if strings.HasPrefix(name, "traits.") {
		name = strings.TrimPrefix(name, "traits.")
		first = ""
	}
	// traits hold what clients sent: a value stored before the ingest
	// bounds may be nested beyond SQLite's 1,000 levels, and one
	// json_extract on it ("malformed JSON") would fail the whole segment.
	// Such a profile's traits read as absent. computed is Omni's own.
	src = "(CASE WHEN json_valid(p.traits) THEN p.traits END)"
	if computedTraits[first] {
		src = "p.computed"
	}
	jpath = "'$." + name + "'"
	return "json_extract(" + src + ", " + jpath + ")", src, jpath
}

var sqlOps = map[string]string{"eq": "=", "neq": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}

// dateParam is a rule's value as bound: a date in RFC 3339 becomes the
// stored times' format, so text comparison orders it.
func dateParam(v any) any {
	if s, ok := v.(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return fmtT(t)
		}
	}
	return v
}

// Compile returns r as an SQL condition over `profiles p`; path prefixes
// the node names in errors.
func (c *Compiler) Compile(r *Rule, path string) (string, error) {
	switch {
	case len(r.And) > 0 || len(r.Or) > 0:
		list, op, key := r.And, " AND ", "and"
		if len(r.Or) > 0 {
			list, op, key = r.Or, " OR ", "or"
		}
		parts := make([]string, len(list))
		for i, x := range list {
			s, err := c.Compile(x, fmt.Sprintf("%s[%d]", join(path, key), i))
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return "(" + strings.Join(parts, op) + ")", nil
	case r.Not != nil:
		s, err := c.Compile(r.Not, join(path, "not"))
		if err != nil {
			return "", err
		}
		return "(NOT COALESCE(" + s + ", 0))", nil
	case r.Trait == tagsTrait:
		return c.compileTags(r, path)
	case r.Trait != "":
		expr, src, jpath := traitExpr(r.Trait)
		switch r.Op {
		case "eq", "neq", "gt", "gte", "lt", "lte":
			p := c.Param(dateParam(r.Value))
			if r.Op == "neq" {
				return "(" + expr + " IS NULL OR " + expr + " != " + p + ")", nil
			}
			return "(" + expr + " " + sqlOps[r.Op] + " " + p + ")", nil
		case "contains":
			p := c.Param(r.Value)
			if src == "" {
				return "(instr(" + expr + ", " + p + ") > 0)", nil
			}
			return "(CASE WHEN json_type(" + src + ", " + jpath + ") = 'array' THEN EXISTS (SELECT 1 FROM json_each(" + src + ", " + jpath + ") WHERE value = " + p + ") ELSE instr(" + expr + ", " + p + ") > 0 END)", nil
		case "in":
			list := r.Value.([]any)
			ps := make([]string, len(list))
			for i, v := range list {
				ps[i] = c.Param(v)
			}
			return "(" + expr + " IN (" + strings.Join(ps, ", ") + "))", nil
		case "exists":
			return "(" + expr + " IS NOT NULL AND " + expr + " != '')", nil
		case "not_exists":
			return "(" + expr + " IS NULL OR " + expr + " = '')", nil
		case "within_days", "older_than_days":
			c.TimeBased = true
			days := int(r.Value.(float64))
			since := c.Param(fmtT(c.now.Add(-time.Duration(days) * day)))
			if r.Op == "within_days" {
				return "(" + expr + " >= " + since + ")", nil
			}
			return "(" + expr + " IS NULL OR " + expr + " = '' OR " + expr + " < " + since + ")", nil
		}
		return "", ruleErr(join(path, "op"), "unknown operator %q", r.Op)
	case r.Event != "":
		// +e.type keeps SQLite on the (profile, occurred_at) index instead
		// of scanning every event of that type.
		q := "(SELECT COUNT(*) FROM events e WHERE e.profile = p.id AND +e.type = " + c.Param(r.Event)
		if r.WithinDays != nil {
			c.TimeBased = true
			q += " AND e.occurred_at >= " + c.Param(c.now.Add(-time.Duration(*r.WithinDays)*day).UTC().Format(dbTime))
		}
		q += ")"
		if *r.Count == 0 && (r.Op == "eq" || r.Op == "lte") {
			return "(NOT EXISTS " + strings.Replace(q, "SELECT COUNT(*)", "SELECT 1", 1) + ")", nil
		}
		if *r.Count == 1 && r.Op == "gte" {
			return "(EXISTS " + strings.Replace(q, "SELECT COUNT(*)", "SELECT 1", 1) + ")", nil
		}
		return "(" + q + " " + sqlOps[r.Op] + " " + c.Param(*r.Count) + ")", nil
	case r.Consent != "":
		expr := "json_extract(p.consent, '$." + r.Consent + ".status')"
		if r.Status == "unknown" {
			return "(" + expr + " IS NULL)", nil
		}
		return "(" + expr + " = " + c.Param(r.Status) + ")", nil
	case r.Segment != "":
		if contains(c.stack, r.Segment) {
			return "", ruleErr(join(path, "segment"), "segment %q refers back to itself (cycle: %s)", r.Segment, strings.Join(append(c.stack, r.Segment), " → "))
		}
		sub, ok := c.lookup(r.Segment)
		if !ok {
			return "", ruleErr(join(path, "segment"), "no segment with id %q", r.Segment)
		}
		c.stack = append(c.stack, r.Segment)
		s, err := c.Compile(sub, join(path, "segment("+r.Segment+")"))
		c.stack = c.stack[:len(c.stack)-1]
		return s, err
	}
	return "", ruleErr(path, "empty rule")
}

// tagsTrait is the rule trait that reads staff tags ({"trait": "tags",
// "op": "contains", "value": "vip"}); a custom trait of that name stays
// reachable as traits.tags.
const tagsTrait = "tags"

func (c *Compiler) compileTags(r *Rule, path string) (string, error) {
	has := func(v any) string {
		s, _ := v.(string)
		return "EXISTS (SELECT 1 FROM profile_tags t WHERE t.profile = p.id AND t.tag = " + c.Param(NormalizeTag(s)) + ")"
	}
	switch r.Op {
	case "contains", "eq":
		if _, ok := r.Value.(string); !ok {
			return "", ruleErr(join(path, "value"), "must be a tag such as \"vip\"")
		}
		return "(" + has(r.Value) + ")", nil
	case "in":
		var alts []string
		for i, v := range r.Value.([]any) {
			if _, ok := v.(string); !ok {
				return "", ruleErr(fmt.Sprintf("%s[%d]", join(path, "value"), i), "must be a tag")
			}
			alts = append(alts, has(v))
		}
		return "(" + strings.Join(alts, " OR ") + ")", nil
	case "exists":
		return "(EXISTS (SELECT 1 FROM profile_tags t WHERE t.profile = p.id))", nil
	case "not_exists":
		return "(NOT EXISTS (SELECT 1 FROM profile_tags t WHERE t.profile = p.id))", nil
	}
	return "", ruleErr(join(path, "op"), "tags work with contains, in, exists or not_exists, not %q", r.Op)
}

// NormalizeTag lower-cases a tag and folds its inner whitespace, as tags are
// stored.
func NormalizeTag(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// ValidConsentChannel reports whether ch is a channel consent is kept for.
func ValidConsentChannel(ch string) bool { return ch == "email" || ch == "sms" || ch == "whatsapp" }

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

const (
	day        = 24 * time.Hour
	dbTime     = "2006-01-02 15:04:05.000Z"
	timeLayout = "2006-01-02T15:04:05.000Z"
)

func fmtT(t time.Time) string { return t.UTC().Format(timeLayout) }

// A Read is one piece of a profile a rule looks at: what must have changed
// for the rule's answer to change (other than the clock). Source is
// "column" (email, phone, name), "computed" or "traits" (Path is the JSON
// path, e.g. lifetime_value.USD), "consent" (Path is the channel), "tags",
// or "event" (Path is the event type).
type Read struct{ Source, Path string }

// Reads lists what r reads, following segment references through lookup
// (a reference that does not resolve reads nothing: it does not compile).
func Reads(r *Rule, lookup func(string) (*Rule, bool)) []Read {
	seen := map[Read]bool{}
	var out []Read
	eachCondition(r, lookup, func(c *Rule) {
		var x Read
		switch {
		case c.Trait == tagsTrait:
			x = Read{"tags", ""}
		case c.Trait != "":
			x = traitRead(c.Trait)
		case c.Event != "":
			x = Read{"event", c.Event}
		default:
			x = Read{"consent", c.Consent}
		}
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	})
	return out
}

// eachCondition calls visit with each condition of r (trait, event,
// consent; not and/or/not, and segment references followed through
// lookup, each once per path, a cycle not followed), in a fixed order.
func eachCondition(r *Rule, lookup func(string) (*Rule, bool), visit func(*Rule)) {
	visiting := map[string]bool{}
	var walk func(*Rule)
	walk = func(r *Rule) {
		if r == nil {
			return
		}
		for _, x := range r.And {
			walk(x)
		}
		for _, x := range r.Or {
			walk(x)
		}
		walk(r.Not)
		switch {
		case r.Trait != "", r.Event != "", r.Consent != "":
			visit(r)
		case r.Segment != "" && !visiting[r.Segment] && lookup != nil:
			if sub, ok := lookup(r.Segment); ok {
				visiting[r.Segment] = true
				walk(sub)
				delete(visiting, r.Segment)
			}
		}
	}
	walk(r)
}

// traitRead is where traitExpr reads a trait from.
func traitRead(name string) Read {
	if columnTraits[name] {
		return Read{"column", name}
	}
	if rest, ok := strings.CutPrefix(name, "traits."); ok {
		return Read{"traits", rest}
	}
	first, _, _ := strings.Cut(name, ".")
	if computedTraits[first] {
		return Read{"computed", name}
	}
	return Read{"traits", name}
}
