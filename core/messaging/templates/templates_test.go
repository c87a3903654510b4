package templates_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/messaging/internal/msgtest"
	"github.com/omni/omni/core/messaging/templates"
	"github.com/omni/omni/core/profiles"
)

const records = "/api/collections/templates/records"

// TestTemplatesAreCheckedOnSave: owners create and edit templates through
// the records API; a syntax error or an unknown variable is a 400 naming
// the field and the line; agents may read but not write.
func TestTemplatesAreCheckedOnSave(t *testing.T) {
	e := msgtest.Start(t, profiles.New(profiles.Options{}))
	e.Customer(t, events.Identities{events.Email: "ann@omni-shop.dev"}, map[string]any{"first_name": "Ann", "favorite_tea": "oolong"})

	good := map[string]any{"name": "Abandoned cart", "channel": "email",
		"subject": `{{ customer.first_name | default: "Hi" }}, your cart`,
		"body":    "Hi {{ customer.first_name | default: \"there\" }},\nyou left {{ event.properties.items | size }} items: {{ event.properties.checkout_url }}\nLove {{ customer.favorite_tea }}? {{ unsubscribe_url }}",
		"html":    `<p>Hi {{ customer.first_name }}</p><a href="{{ preferences_url }}">Preferences</a>`}
	code, body := e.Do(t, "POST", records, good, omnitest.Auth(e.Owner))
	if code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}
	var rec struct {
		ID   string `json:"id"`
		Kind string `json:"kind"`
	}
	_ = json.Unmarshal(body, &rec)
	if rec.Kind != templates.DefaultKind {
		t.Fatalf("kind defaults to %q, got %q", templates.DefaultKind, rec.Kind)
	}

	cases := []struct {
		name  string
		patch map[string]any
		field string
		want  string
	}{
		{"unknown variable", map[string]any{"body": "Hello\n{{ customer.frist_name }}"}, "body", "line 2: unknown variable customer.frist_name (did you mean customer.first_name?)"},
		{"syntax error", map[string]any{"html": "<p>\n\n{% if customer.email %}</p>"}, "html", "line 3: unterminated \"if\" block"},
		{"unknown filter", map[string]any{"subject": "{{ shop.name | shout }}"}, "subject", "line 1: unknown filter shout"},
		{"file access", map[string]any{"body": "{% include 'x' %}"}, "body", "not available"},
		{"email without subject", map[string]any{"subject": ""}, "subject", "needs a subject"},
		{"bad channel", map[string]any{"channel": "fax"}, "channel", ""},
	}
	for _, c := range cases {
		code, body := e.Do(t, "PATCH", records+"/"+rec.ID, c.patch, omnitest.Auth(e.Owner))
		err := omnitest.WantFieldError(t, code, body, 400, c.field)
		if !strings.HasPrefix(err.Message, c.field+": ") || !strings.Contains(err.Message, c.want) {
			t.Errorf("%s: message %q does not say %q", c.name, err.Message, c.want)
		}
		// A new template with the same problem is refused too.
		n := map[string]any{}
		for k, v := range good {
			n[k] = v
		}
		for k, v := range c.patch {
			n[k] = v
		}
		n["name"] = "new " + c.name
		code, body = e.Do(t, "POST", records, n, omnitest.Auth(e.Owner))
		omnitest.WantFieldError(t, code, body, 400, c.field)
	}
	// Nothing refused was saved.
	var n int
	_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM templates").Row(&n)
	if n != 1 {
		t.Fatalf("%d templates saved, want 1", n)
	}

	// An SMS and a WhatsApp template with an approved template's parameters.
	for _, tpl := range []map[string]any{
		{"name": "sms", "channel": "sms", "kind": "transactional", "body": "{{ shop.name }}: order {{ event.properties.order_id }} shipped"},
		{"name": "wa", "channel": "whatsapp", "wa_template": "order_shipped", "wa_language": "en_US", "wa_params": []string{"{{ customer.first_name }}"}},
	} {
		if code, body := e.Do(t, "POST", records, tpl, omnitest.Auth(e.Owner)); code != 200 {
			t.Fatalf("create %s: %d %s", tpl["name"], code, body)
		}
	}
	code, body = e.Do(t, "POST", records, map[string]any{"name": "wa2", "channel": "whatsapp", "wa_template": "x", "wa_language": "en", "wa_params": []string{"{{ customer.nope }}"}}, omnitest.Auth(e.Owner))
	omnitest.WantFieldError(t, code, body, 400, "wa_params")

	// Agents read, never write.
	if code, body := e.Do(t, "GET", records, nil, omnitest.Auth(e.Agent)); code != 200 || !strings.Contains(string(body), "Abandoned cart") {
		t.Fatalf("agent list: %d %s", code, body)
	}
	if code, _ := e.Do(t, "PATCH", records+"/"+rec.ID, map[string]any{"body": "x"}, omnitest.Auth(e.Agent)); code != 404 && code != 403 {
		t.Fatalf("agent update: %d", code)
	}
}

type preview struct {
	Subject  string `json:"subject"`
	Text     string `json:"text"`
	HTML     string `json:"html"`
	Problems []struct {
		Field   string `json:"field"`
		Line    int    `json:"line"`
		Kind    string `json:"kind"`
		Message string `json:"message"`
	} `json:"problems"`
	WhatsApp *templates.WhatsApp `json:"whatsapp"`
}

func (p preview) problems() string {
	var b []string
	for _, x := range p.Problems {
		b = append(b, x.Field+":"+x.Kind+":"+x.Message)
	}
	return strings.Join(b, "; ")
}

// TestPreviewRendersForARealCustomer: the editor's preview renders unsaved
// content and saved templates for a chosen customer and event, with links
// signed for that customer, HTML escaped, and problems listed, not refused.
func TestPreviewRendersForARealCustomer(t *testing.T) {
	e := msgtest.Start(t, profiles.New(profiles.Options{}))
	pid := e.Customer(t, events.Identities{events.Email: "ann@omni-shop.dev"}, map[string]any{"first_name": "Ann <3", "favorite_tea": "oolong"})

	do := func(body any) preview {
		t.Helper()
		code, raw := e.Do(t, "POST", "/api/v1/templates/preview", body, omnitest.Auth(e.Agent))
		if code != 200 {
			t.Fatalf("preview: %d %s", code, raw)
		}
		var p preview
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := do(map[string]any{"channel": "email", "profile": pid,
		"subject": "{{ customer.first_name }}, {{ event.properties.items | size }} items",
		"body":    "Hi {{ customer.first_name | default: \"there\" }} ({{ customer.email }}), {{ event.properties.total | money: event.properties.currency }}\n{{ unsubscribe_url }}",
		"html":    `<p>Hi {{ customer.first_name }}</p><a href="{{ preferences_url }}">x</a>`,
		"event":   map[string]any{"type": "checkout.started", "properties": map[string]any{"items": []any{1, 2}, "total": 42, "currency": "GBP"}}})
	if len(p.Problems) != 0 {
		t.Fatalf("problems: %s", p.problems())
	}
	if p.Subject != "Ann <3, 2 items" || !strings.HasPrefix(p.Text, "Hi Ann <3 (ann@omni-shop.dev), £42.00\n") {
		t.Fatalf("subject %q text %q", p.Subject, p.Text)
	}
	unsub := strings.TrimSpace(p.Text[strings.LastIndex(p.Text, "\n"):])
	tok := unsub[strings.Index(unsub, "/p/u/")+len("/p/u/"):]
	if gotPID, ch, err := e.Mod.Signer.Verify(tok); err != nil || gotPID != pid || ch != "email" {
		t.Fatalf("unsubscribe link %q: %q %q %v", unsub, gotPID, ch, err)
	}
	if !strings.HasPrefix(p.HTML, "<p>Hi Ann &lt;3</p><a href=\"") || !strings.Contains(p.HTML, "/p/prefs/") {
		t.Fatalf("html %q", p.HTML)
	}

	// Problems are listed with field and line; what can render still does.
	p = do(map[string]any{"channel": "sms", "profile": pid, "body": "Hi\n{{ customer.frist_name }} {{ \"x\" | money }}"})
	if p.problems() != "body:unknown_variable:unknown variable customer.frist_name (did you mean customer.first_name?); body:render:with this customer: line 2: money: \"x\" is not a number" {
		t.Fatalf("problems: %s", p.problems())
	}

	// A saved template, by name, for the stored event that triggered it.
	if code, raw := e.Do(t, "POST", records, map[string]any{"name": "wa", "channel": "whatsapp", "body": "Hi {{ customer.first_name }}",
		"wa_template": "cart", "wa_language": "en_US", "wa_params": []string{"{{ customer.favorite_tea | upcase }}"}}, omnitest.Auth(e.Owner)); code != 200 {
		t.Fatalf("create: %d %s", code, raw)
	}
	p = do(map[string]any{"template": "wa", "profile": pid})
	if p.Text != "Hi Ann <3" || p.WhatsApp == nil || p.WhatsApp.Name != "cart" || len(p.WhatsApp.Params) != 1 || p.WhatsApp.Params[0] != "OOLONG" {
		t.Fatalf("whatsapp preview: %+v %+v", p, p.WhatsApp)
	}

	// Without a customer it still renders (documented defaults apply).
	p = do(map[string]any{"channel": "sms", "body": `Hi {{ customer.first_name | default: "there" }}`})
	if p.Text != "Hi there" {
		t.Fatalf("no customer: %q", p.Text)
	}

	// Bad requests name their field; guests are refused.
	code, raw := e.Do(t, "POST", "/api/v1/templates/preview", map[string]any{"channel": "sms", "body": "x", "profile": "nope"}, omnitest.Auth(e.Agent))
	omnitest.WantFieldError(t, code, raw, 404, "profile")
	code, raw = e.Do(t, "POST", "/api/v1/templates/preview", map[string]any{"template": "nope"}, omnitest.Auth(e.Agent))
	omnitest.WantFieldError(t, code, raw, 404, "template")
	code, raw = e.Do(t, "POST", "/api/v1/templates/preview", map[string]any{"channel": "sms", "body": "x", "event": "nope"}, omnitest.Auth(e.Agent))
	omnitest.WantFieldError(t, code, raw, 404, "event")
	code, raw = e.Do(t, "POST", "/api/v1/templates/preview", map[string]any{"channel": "sms", "body": "x"}, nil)
	omnitest.WantError(t, code, raw, 401)
}
