// Package render renders message templates written in Liquid (the language
// of Shopify and Klaviyo templates, which shop owners already know) and
// checks them before they are saved: syntax errors with their line, and
// variables the template names that Omni does not provide.
//
// A template has a text body and, for email, an optional HTML body. In the
// HTML body every {{ … }} output is HTML-escaped (a customer's name cannot
// inject markup); end an output with "| raw" to insert trusted HTML as is.
// The text body and the subject are rendered without escaping.
package render

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/osteele/liquid"
	"github.com/osteele/liquid/parser"
)

// Problem is one thing wrong with a template, for the editor's preview.
type Problem struct {
	Line    int    `json:"line"`           // 1-based; 0 when unknown
	Kind    string `json:"kind"`           // "syntax" or "unknown_variable"
	Message string `json:"message"`        // for people
	Path    string `json:"path,omitempty"` // the variable, for unknown_variable
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s", p.Line, p.Message)
	}
	return p.Message
}

// Problem kinds.
const (
	KindSyntax  = "syntax"
	KindUnknown = "unknown_variable"
)

var engine = newEngine()

func newEngine() *liquid.Engine {
	e := liquid.NewEngine()
	registerFilters(e)
	return e
}

// Render renders src with vars, without escaping (subjects, text and SMS
// bodies). An error carries the line it happened on.
func Render(src string, vars map[string]any) (string, error) {
	return renderSource(src, vars)
}

// RenderHTML renders an HTML body: every output is HTML-escaped unless it
// ends with "| raw" (or already escapes).
func RenderHTML(src string, vars map[string]any) (string, error) {
	return renderSource(escapeOutputs(src), vars)
}

func renderSource(src string, vars map[string]any) (out string, err error) {
	// The library is well tested, but a panic must never take down a send
	// or a request, whatever a template holds.
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("template could not be rendered: %v", r)
		}
	}()
	tpl, perr := parse(src)
	if perr != nil {
		return "", sourceError(perr)
	}
	s, rerr := tpl.RenderString(vars)
	if rerr != nil {
		return "", sourceError(rerr)
	}
	return s, nil
}

// parse parses with lines counted from 1, as editors show them.
func parse(src string) (*liquid.Template, liquid.SourceError) {
	return engine.ParseTemplateLocation([]byte(src), "", 1)
}

// Error is a template error with the line it is on.
type Error struct {
	Line    int
	Message string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Message)
	}
	return e.Message
}

// sourceError turns the library's error into one naming the line, with the
// message alone (the library prefixes its own "Liquid error (line n):").
func sourceError(err liquid.SourceError) error {
	msg := err.Error()
	if c := err.Cause(); c != nil {
		msg = c.Error()
	}
	msg = strings.TrimSpace(liquidPrefix.ReplaceAllString(msg, ""))
	if m := filterError.FindStringSubmatch(msg); m != nil {
		if inner, err := strconv.Unquote(`"` + m[2] + `"`); err == nil {
			msg = inner // the filter's own message names it ("money: …")
		}
	}
	return &Error{Line: err.LineNumber(), Message: msg}
}

// filterError is the library's wrapping of an error a filter returned.
var filterError = regexp.MustCompile(`^error applying filter "(\w+)" \("(.*)"\)$`)

var liquidPrefix = regexp.MustCompile(`^Liquid (?:syntax )?error(?: \(line \d+\))?: ?`)

// lineOf returns the line of a render error, 0 if it has none.
func lineOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Line
	}
	return 0
}

// rawSuffix and escapedSuffix end outputs that must not be escaped again.
var (
	rawSuffix     = regexp.MustCompile(`\|\s*raw\s*$`)
	escapedSuffix = regexp.MustCompile(`\|\s*escape(?:_once)?\s*$`)
)

// escapeOutputs rewrites each {{ expr }} of an HTML body to
// {{ expr | escape }} (osteele/liquid has no auto-escaping). It uses the
// library's own scanner, so what counts as an output is exactly what the
// parser will see; text inside {% raw %} and {% comment %} is left alone,
// and no newline is added, so lines in errors stay true.
func escapeOutputs(src string) string {
	toks := parser.Scan(src, parser.SourceLoc{LineNo: 1}, nil)
	var b strings.Builder
	b.Grow(len(src) + 32)
	inRaw, inComment := false, false
	for _, t := range toks {
		switch t.Type {
		case parser.TagTokenType:
			switch {
			case inRaw && t.Name == "endraw":
				inRaw = false
			case inComment && t.Name == "endcomment":
				inComment = false
			case !inRaw && !inComment && t.Name == "raw":
				inRaw = true
			case !inRaw && !inComment && t.Name == "comment":
				inComment = true
			}
			b.WriteString(t.Source)
		case parser.ObjTokenType:
			if inRaw || inComment || escapedSuffix.MatchString(t.Args) {
				b.WriteString(t.Source)
				continue
			}
			at := strings.Index(t.Source[2:], t.Args) + 2
			end := at + len(t.Args)
			args := t.Args
			if rawSuffix.MatchString(args) {
				args = rawSuffix.ReplaceAllString(args, "| raw")
			} else {
				args += " | escape"
			}
			b.WriteString(t.Source[:at])
			b.WriteString(args)
			b.WriteString(t.Source[end:])
		default:
			b.WriteString(t.Source) // text; trim markers have no source
		}
	}
	return b.String()
}
