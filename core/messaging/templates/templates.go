// Package templates keeps message templates as records (the "templates"
// collection), checks them on every save (Liquid syntax and unknown
// variables, as 400s naming the field and line), renders them for a
// customer, and serves the editor's preview (POST /api/v1/templates/preview).
package templates

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	validation "github.com/go-ozzo/ozzo-validation/v4"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/messaging/customers"
	"github.com/omni/omni/core/messaging/render"
)

// Collection is the templates collection.
const Collection = "templates"

// Channels and kinds a template may have.
var (
	Channels = []string{"email", "sms", "whatsapp"}
	Kinds    = []string{"marketing", "transactional", "conversation"}
)

// DefaultKind is the kind of a template saved without one.
const DefaultKind = "marketing"

// Template is a template's content, from a record or from the editor.
type Template struct {
	ID         string   `json:"id,omitempty"`
	Name       string   `json:"name,omitempty"`
	Channel    string   `json:"channel"`
	Kind       string   `json:"kind,omitempty"`
	Subject    string   `json:"subject,omitempty"`
	Body       string   `json:"body,omitempty"`
	HTML       string   `json:"html,omitempty"`
	WATemplate string   `json:"wa_template,omitempty"`
	WALanguage string   `json:"wa_language,omitempty"`
	WAParams   []string `json:"wa_params,omitempty"`
}

// FromRecord reads a template record.
func FromRecord(r *core.Record) Template {
	t := Template{ID: r.Id, Name: r.GetString("name"), Channel: r.GetString("channel"), Kind: r.GetString("kind"),
		Subject: r.GetString("subject"), Body: r.GetString("body"), HTML: r.GetString("html"),
		WATemplate: r.GetString("wa_template"), WALanguage: r.GetString("wa_language")}
	t.WAParams, _ = params(r)
	if t.Kind == "" {
		t.Kind = DefaultKind
	}
	return t
}

// params reads wa_params: a JSON list of strings (each may hold Liquid).
func params(r *core.Record) ([]string, error) {
	raw := strings.TrimSpace(fmt.Sprint(r.GetRaw("wa_params")))
	if raw == "" || raw == "null" || raw == "<nil>" {
		return nil, nil
	}
	var out []string
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return nil, errors.New(`must be a list of strings, like ["{{ customer.first_name }}", "{{ event.properties.order_id }}"]`)
	}
	return out, nil
}

// Find loads a template by id or by name.
func Find(app core.App, idOrName string) (Template, error) {
	r, err := app.FindRecordById(Collection, idOrName)
	if err != nil {
		r, err = app.FindFirstRecordByData(Collection, "name", idOrName)
	}
	if err != nil {
		return Template{}, fmt.Errorf("template %q not found", idOrName)
	}
	return FromRecord(r), nil
}

// Problem is a template problem in one field.
type Problem struct {
	Field string `json:"field"`
	render.Problem
}

// Check lists what is wrong with t for vars (render.CheckVars at save
// time): Liquid problems per field, and what the channel needs.
func Check(t Template, vars map[string]any) []Problem {
	var out []Problem
	add := func(field string, ps []render.Problem) {
		for _, p := range ps {
			out = append(out, Problem{Field: field, Problem: p})
		}
	}
	need := func(field, msg string) {
		out = append(out, Problem{Field: field, Problem: render.Problem{Kind: "required", Message: msg}})
	}
	switch t.Channel {
	case "email":
		if strings.TrimSpace(t.Subject) == "" {
			need("subject", "an email needs a subject")
		}
		if strings.TrimSpace(t.Body) == "" && strings.TrimSpace(t.HTML) == "" {
			need("body", "an email needs a text body or an HTML body")
		}
	case "sms":
		if strings.TrimSpace(t.Body) == "" {
			need("body", "an SMS needs a body")
		}
	case "whatsapp":
		if strings.TrimSpace(t.Body) == "" && t.WATemplate == "" {
			need("body", "a WhatsApp message needs a body or an approved template name (wa_template)")
		}
		if t.WATemplate != "" && t.WALanguage == "" {
			need("wa_language", "an approved template needs its language code, e.g. en_US")
		}
	default:
		need("channel", "must be email, sms or whatsapp")
	}
	add("subject", render.Check(t.Subject, vars))
	add("body", render.Check(t.Body, vars))
	add("html", render.CheckHTML(t.HTML, vars))
	for i, p := range t.WAParams {
		add(fmt.Sprintf("wa_params.%d", i), render.Check(p, vars))
	}
	return out
}

// Rendered is a template rendered for one customer.
type Rendered struct {
	Subject  string    `json:"subject"`
	Text     string    `json:"text"`
	HTML     string    `json:"html"`
	WhatsApp *WhatsApp `json:"whatsapp,omitempty"`
}

// WhatsApp is an approved WhatsApp template with its rendered parameters.
type WhatsApp struct {
	Name     string   `json:"name"`
	Language string   `json:"language"`
	Params   []string `json:"params"`
}

// Render renders t with vars (render.Vars): subject and text as they are,
// the HTML body with its outputs escaped. The error names the field and
// line; templates are checked on save, so at send time an error means the
// data is unusual (a filter given text where it needs a number).
func Render(t Template, vars map[string]any) (Rendered, error) {
	var out Rendered
	var err error
	if out.Subject, err = render.Render(t.Subject, vars); err != nil {
		return out, fmt.Errorf("subject: %w", err)
	}
	if out.Text, err = render.Render(t.Body, vars); err != nil {
		return out, fmt.Errorf("body: %w", err)
	}
	if t.Channel == "email" && t.HTML != "" {
		if out.HTML, err = render.RenderHTML(t.HTML, vars); err != nil {
			return out, fmt.Errorf("html: %w", err)
		}
	}
	if t.WATemplate != "" {
		wa := &WhatsApp{Name: t.WATemplate, Language: t.WALanguage, Params: make([]string, len(t.WAParams))}
		for i, p := range t.WAParams {
			if wa.Params[i], err = render.Render(p, vars); err != nil {
				return out, fmt.Errorf("wa_params.%d: %w", i, err)
			}
		}
		out.WhatsApp = wa
	}
	return out, nil
}

// validate is the record hook: a template that does not check is refused
// with a 400 naming each field and the first problem's line.
func validate(e *core.RecordEvent) error {
	if e.Record.GetString("kind") == "" {
		e.Record.Set("kind", DefaultKind)
	}
	t := FromRecord(e.Record)
	verrs := validation.Errors{}
	if _, err := params(e.Record); err != nil {
		verrs["wa_params"] = validation.NewError("validation_invalid_value", err.Error())
	}
	names, err := customers.TraitNames(e.App)
	if err != nil {
		return fmt.Errorf("templates: list trait names: %w", err)
	}
	for _, p := range Check(t, render.CheckVars(names)) {
		field, _, _ := strings.Cut(p.Field, ".")
		if _, seen := verrs[field]; seen {
			continue
		}
		code := "validation_template_" + p.Kind
		verrs[field] = validation.NewError(code, p.String())
	}
	if len(verrs) > 0 {
		return verrs
	}
	return e.Next()
}
