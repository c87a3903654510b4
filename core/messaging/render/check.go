package render

import (
	"reflect"
	"sort"
	"strings"

	"github.com/osteele/liquid/parser"
)

// Any stands for a value whose shape is not known when a template is
// checked (the properties of the event that will trigger it): any path
// below it is accepted.
var Any = anyShape{}

type anyShape struct{}

// Check returns what is wrong with src for the given variables: syntax
// errors (with their line) and variables that vars does not have, such as
// {{ customer.frist_name }}. It looks at every branch of the template, not
// only those a render would take, so a typo in an {% if %} that is false
// today is still found. It never fails: a template it cannot read is a
// problem in the list.
func Check(src string, vars map[string]any) (problems []Problem) {
	defer func() {
		if r := recover(); r != nil {
			problems = append(problems, Problem{Kind: KindSyntax, Message: "the template could not be read"})
		}
	}()
	if _, err := parse(src); err != nil {
		e := sourceError(err).(*Error)
		return []Problem{{Line: e.Line, Kind: KindSyntax, Message: e.Message}}
	}
	refs, locals, unsupported := references(src)
	problems = append(problems, unsupported...)
	seen := map[string]bool{}
	for _, r := range refs {
		if r.filter {
			if !filterNames[r.path[0]] && !seen["|"+r.path[0]] {
				seen["|"+r.path[0]] = true
				problems = append(problems, Problem{Line: r.line, Kind: KindSyntax,
					Message: "unknown filter " + r.path[0]})
			}
			continue
		}
		if locals[r.path[0]] || seen[r.String()] {
			continue
		}
		if bad, ok := missing(vars, r.path); ok {
			seen[r.String()] = true
			problems = append(problems, Problem{Line: r.line, Kind: KindUnknown, Path: bad,
				Message: "unknown variable " + bad + suggestion(vars, r.path)})
		}
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
	return problems
}

// CheckHTML checks an HTML body (as it will be rendered, with escaping).
func CheckHTML(src string, vars map[string]any) []Problem {
	return Check(escapeOutputs(src), vars)
}

// ref is one variable path a template reads, e.g. customer.first_name.
type ref struct {
	path   []string
	line   int
	filter bool // path[0] is a filter name
}

func (r ref) String() string { return strings.Join(r.path, ".") }

// Tags that may appear; anything else that parses (include, render, …)
// would read files or is not part of Omni's Liquid.
var knownTags = map[string]bool{
	"if": true, "elsif": true, "else": true, "endif": true, "unless": true, "endunless": true,
	"case": true, "when": true, "endcase": true, "for": true, "endfor": true, "break": true,
	"continue": true, "tablerow": true, "endtablerow": true, "assign": true, "capture": true,
	"endcapture": true, "cycle": true, "increment": true, "decrement": true, "comment": true,
	"endcomment": true, "raw": true, "endraw": true,
}

// references lists the variable paths src reads, the names it defines
// itself (assign, capture, for …) and tags Omni does not allow.
func references(src string) (refs []ref, locals map[string]bool, problems []Problem) {
	locals = map[string]bool{"forloop": true, "tablerowloop": true}
	inRaw, inComment := false, false
	for _, t := range parser.Scan(src, parser.SourceLoc{LineNo: 1}, nil) {
		line := t.SourceLoc.LineNo
		switch t.Type {
		case parser.ObjTokenType:
			if !inRaw && !inComment {
				refs = append(refs, scanExpr(t.Args, line)...)
			}
		case parser.TagTokenType:
			switch {
			case inRaw:
				inRaw = t.Name != "endraw"
				continue
			case inComment:
				inComment = t.Name != "endcomment"
				continue
			}
			args := t.Args
			switch t.Name {
			case "raw":
				inRaw = true
			case "comment":
				inComment = true
			case "for", "tablerow": // for item in collection
				name, rest, _ := strings.Cut(strings.TrimSpace(args), " ")
				locals[name] = true
				rest = strings.TrimSpace(rest)
				rest = strings.TrimPrefix(rest, "in")
				refs = append(refs, scanExpr(rest, line)...)
			case "assign": // assign x = expr
				name, rest, _ := strings.Cut(args, "=")
				locals[strings.TrimSpace(name)] = true
				refs = append(refs, scanExpr(rest, line)...)
			case "capture", "increment", "decrement":
				locals[strings.TrimSpace(args)] = true
			default:
				if !knownTags[t.Name] {
					problems = append(problems, Problem{Line: line, Kind: KindSyntax,
						Message: "the " + t.Name + " tag is not available in message templates"})
					continue
				}
				refs = append(refs, scanExpr(args, line)...)
			}
		}
	}
	return refs, locals, problems
}

var exprKeywords = map[string]bool{
	"and": true, "or": true, "not": true, "contains": true, "in": true, "true": true, "false": true,
	"nil": true, "null": true, "empty": true, "blank": true, "reversed": true, "limit": true,
	"offset": true, "with": true, "as": true, "cols": true,
}

func identStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func identChar(c byte) bool {
	return identStart(c) || (c >= '0' && c <= '9') || c == '-' || c == '?'
}

// scanExpr finds the variable paths in one Liquid expression: identifiers
// followed by .name or ["name"], skipping strings, numbers, keywords,
// filter names (after |) and named arguments (name:).
func scanExpr(s string, line int) (refs []ref) {
	afterPipe, afterIndex := false, false
	for i := 0; i < len(s); {
		c := s[i]
		wasIndex := afterIndex
		afterIndex = false
		switch {
		case c == '.' && wasIndex && i+1 < len(s) && identStart(s[i+1]):
			// items[0].title: properties of a computed index are not known
			// here (the path before the index was checked).
			i++
			for i < len(s) && identChar(s[i]) {
				i++
			}
			afterIndex = true
		case c == ']':
			afterIndex = true
			i++
		case c == '"' || c == '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return refs
			}
			i += j + 2
			afterPipe = false
		case c >= '0' && c <= '9':
			for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' && !strings.HasPrefix(s[i:], "..")) {
				i++
			}
			afterPipe = false
		case identStart(c):
			j := i
			for j < len(s) && identChar(s[j]) {
				j++
			}
			name := s[i:j]
			filter := afterPipe
			afterPipe = false
			if filter {
				refs = append(refs, ref{path: []string{name}, line: line, filter: true})
				i = j
				continue
			}
			if exprKeywords[name] || strings.HasPrefix(strings.TrimLeft(s[j:], " \t\r\n"), ":") {
				i = j
				continue
			}
			path := []string{name}
			for j < len(s) {
				if s[j] == '.' && j+1 < len(s) && identStart(s[j+1]) {
					k := j + 1
					for k < len(s) && identChar(s[k]) {
						k++
					}
					path = append(path, s[j+1:k])
					j = k
					continue
				}
				if s[j] == '[' {
					if key, n, ok := quotedIndex(s[j:]); ok {
						path = append(path, key)
						j += n
						continue
					}
				}
				break // a computed index: the inner expression is scanned on its own
			}
			refs = append(refs, ref{path: path, line: line})
			i = j
		case c == '|':
			afterPipe = true
			i++
		default:
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				afterPipe = false
			}
			i++
		}
	}
	return refs
}

// quotedIndex reads ["key"] or ['key'] at the start of s.
func quotedIndex(s string) (key string, n int, ok bool) {
	if len(s) < 4 || (s[1] != '"' && s[1] != '\'') {
		return "", 0, false
	}
	end := strings.IndexByte(s[2:], s[1])
	if end < 0 || 2+end+1 >= len(s) || s[2+end+1] != ']' {
		return "", 0, false
	}
	return s[2 : 2+end], end + 4, true
}

// missing reports the first part of path that vars does not have, as a
// dotted path ("customer.frist_name"). Lists and strings have size, first
// and last; a value set to nil or to Any accepts anything below it.
func missing(vars map[string]any, path []string) (string, bool) {
	var cur any = vars
	for i, key := range path {
		switch v := cur.(type) {
		case anyShape:
			return "", false
		case nil:
			if i == 0 {
				break
			}
			return "", false // known but empty today; its shape is unknown
		case map[string]any:
			next, ok := v[key]
			if !ok {
				return strings.Join(path[:i+1], "."), true
			}
			cur = next
			continue
		}
		if cur == nil {
			return strings.Join(path[:i+1], "."), true
		}
		rv := reflect.ValueOf(cur)
		switch rv.Kind() {
		case reflect.Slice, reflect.Array, reflect.String:
			if key == "size" || (rv.Kind() != reflect.String && (key == "first" || key == "last")) {
				if key == "size" {
					return "", false
				}
				if rv.Len() == 0 {
					return "", false
				}
				cur = rv.Index(map[bool]int{true: 0, false: rv.Len() - 1}[key == "first"]).Interface()
				continue
			}
		case reflect.Map:
			if rv.Type().Key().Kind() == reflect.String {
				mv := rv.MapIndex(reflect.ValueOf(key).Convert(rv.Type().Key()))
				if mv.IsValid() {
					cur = mv.Interface()
					continue
				}
			}
		}
		return strings.Join(path[:i+1], "."), true
	}
	return "", false
}

// suggestion offers the closest name next to an unknown one ("did you
// mean customer.first_name?"), for the common typo.
func suggestion(vars map[string]any, path []string) string {
	var cur any = vars
	for i, key := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		next, ok := m[key]
		if ok {
			cur = next
			continue
		}
		best, bestD := "", 3
		for k := range m {
			if d := distance(k, key); d < bestD || d == bestD && k < best {
				best, bestD = k, d
			}
		}
		if best == "" {
			return ""
		}
		return " (did you mean " + strings.Join(append(append([]string{}, path[:i]...), best), ".") + "?)"
	}
	return ""
}

// distance is the Levenshtein distance, for suggestions.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
