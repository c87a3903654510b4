package graph

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Where is a condition on an event's properties: a trigger's "where", a
// wait-for-event's, a goal's. The shape follows the segment rule language:
//
//	{"property": "total", "op": "gt", "value": 50}
//	{"and": [...]}, {"or": [...]}, {"not": {...}}
//
// Properties are dotted paths into the event's properties ("line_items.0.sku"
// is not supported: paths name object keys). Ops: eq, neq, gt, gte, lt,
// lte, contains, in, exists, not_exists. Comparisons are numeric when both
// sides read as numbers (Shopify sends "129.00" as a string), else textual.
type Where struct {
	And      []*Where `json:"and,omitempty"`
	Or       []*Where `json:"or,omitempty"`
	Not      *Where   `json:"not,omitempty"`
	Property string   `json:"property,omitempty"`
	Op       string   `json:"op,omitempty"`
	Value    any      `json:"value,omitempty"`
}

var propertyRE = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$-]*(\.[A-Za-z0-9_$-]+)*$`)

var whereOps = "eq, neq, gt, gte, lt, lte, contains, in, exists, not_exists"

// check reports the first problem, naming its path under prefix.
func (w *Where) check(prefix string) error {
	if w == nil {
		return nil
	}
	kinds := 0
	for _, b := range []bool{len(w.And) > 0, len(w.Or) > 0, w.Not != nil, w.Property != ""} {
		if b {
			kinds++
		}
	}
	if kinds != 1 {
		return fmt.Errorf("%s: must be exactly one of {\"property\":…,\"op\":…}, {\"and\":[…]}, {\"or\":[…]} or {\"not\":…}", prefix)
	}
	for i, c := range w.And {
		if err := c.check(fmt.Sprintf("%s.and[%d]", prefix, i)); err != nil {
			return err
		}
	}
	for i, c := range w.Or {
		if err := c.check(fmt.Sprintf("%s.or[%d]", prefix, i)); err != nil {
			return err
		}
	}
	if w.Not != nil {
		return w.Not.check(prefix + ".not")
	}
	if w.Property == "" {
		return nil
	}
	if !propertyRE.MatchString(w.Property) {
		return fmt.Errorf("%s.property: %q is not a property name such as total or shipping_address.country", prefix, w.Property)
	}
	switch w.Op {
	case "eq", "neq", "gt", "gte", "lt", "lte", "contains":
		if !scalar(w.Value) {
			return fmt.Errorf("%s.value: must be a string, number or boolean for op %q", prefix, w.Op)
		}
	case "in":
		list, ok := w.Value.([]any)
		if !ok || len(list) == 0 {
			return fmt.Errorf("%s.value: must be a non-empty array for op \"in\"", prefix)
		}
	case "exists", "not_exists":
	case "":
		return fmt.Errorf("%s.op: is required (%s)", prefix, whereOps)
	default:
		return fmt.Errorf("%s.op: unknown operator %q (%s)", prefix, w.Op, whereOps)
	}
	return nil
}

func scalar(v any) bool {
	switch v.(type) {
	case string, float64, bool, int, int64:
		return true
	}
	return false
}

// Match reports whether props satisfy w; a nil Where matches everything.
func (w *Where) Match(props map[string]any) bool {
	if w == nil {
		return true
	}
	switch {
	case len(w.And) > 0:
		for _, c := range w.And {
			if !c.Match(props) {
				return false
			}
		}
		return true
	case len(w.Or) > 0:
		for _, c := range w.Or {
			if c.Match(props) {
				return true
			}
		}
		return false
	case w.Not != nil:
		return !w.Not.Match(props)
	}
	v, found := Lookup(props, w.Property)
	switch w.Op {
	case "exists":
		return found && v != nil && v != ""
	case "not_exists":
		return !found || v == nil || v == ""
	}
	if !found || v == nil {
		return w.Op == "neq"
	}
	switch w.Op {
	case "eq":
		return compare(v, w.Value) == 0
	case "neq":
		return compare(v, w.Value) != 0
	case "gt":
		return ordered(v, w.Value) && compare(v, w.Value) > 0
	case "gte":
		return ordered(v, w.Value) && compare(v, w.Value) >= 0
	case "lt":
		return ordered(v, w.Value) && compare(v, w.Value) < 0
	case "lte":
		return ordered(v, w.Value) && compare(v, w.Value) <= 0
	case "contains":
		if list, ok := v.([]any); ok {
			for _, x := range list {
				if compare(x, w.Value) == 0 {
					return true
				}
			}
			return false
		}
		return strings.Contains(strings.ToLower(text(v)), strings.ToLower(text(w.Value)))
	case "in":
		for _, x := range w.Value.([]any) {
			if compare(v, x) == 0 {
				return true
			}
		}
	}
	return false
}

// Lookup reads a dotted path from nested maps.
func Lookup(props map[string]any, path string) (any, bool) {
	var cur any = props
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Number reads v as a number: JSON numbers, and strings such as "129.00".
func Number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

func ordered(a, b any) bool {
	_, an := Number(a)
	_, bn := Number(b)
	if an && bn {
		return true
	}
	_, as := a.(string)
	_, bs := b.(string)
	return as && bs
}

func compare(a, b any) int {
	if x, ok := Number(a); ok {
		if y, ok := Number(b); ok {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	}
	if x, ok := a.(bool); ok {
		if y, ok := b.(bool); ok && x == y {
			return 0
		}
		return 1
	}
	return strings.Compare(text(a), text(b))
}

func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
