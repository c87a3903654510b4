package messaging

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

var errNoProfile = errors.New("profile not found")

// consentEntry is one channel's entry in a profile's consent column (the
// profiles module writes it; only the status matters here).
type consentEntry struct {
	Status string `json:"status"`
}

// profile is what the gate reads of a customer, with plain SQL on the
// profiles module's tables (modules share tables, not code).
type profile struct {
	ID, Name, Email, Phone string
	traits, computed       map[string]any
	consent                map[string]consentEntry
	waID                   string
}

// loadProfile reads a profile, following merges to the surviving one.
func loadProfile(app core.App, id string) (*profile, error) {
	for range 64 {
		var row struct {
			ID         string `db:"id"`
			MergedInto string `db:"merged_into"`
			Name       string `db:"name"`
			Email      string `db:"email"`
			Phone      string `db:"phone"`
			Traits     string `db:"traits"`
			Computed   string `db:"computed"`
			Consent    string `db:"consent"`
		}
		err := app.DB().NewQuery("SELECT id, merged_into, name, email, phone, traits, computed, consent FROM profiles WHERE id={:id}").
			Bind(dbx.Params{"id": id}).One(&row)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errNoProfile
		}
		if err != nil {
			return nil, err
		}
		if row.MergedInto != "" {
			id = row.MergedInto
			continue
		}
		p := &profile{ID: row.ID, Name: row.Name, Email: row.Email, Phone: row.Phone,
			traits: map[string]any{}, computed: map[string]any{}, consent: map[string]consentEntry{}}
		// A column that does not decode is treated as empty: no consent
		// means no marketing, which is the safe reading.
		for _, f := range []struct {
			raw  string
			into any
		}{{row.Traits, &p.traits}, {row.Computed, &p.computed}, {row.Consent, &p.consent}} {
			if f.raw != "" && f.raw != "null" {
				_ = json.Unmarshal([]byte(f.raw), f.into)
			}
		}
		_ = app.DB().NewQuery("SELECT value FROM identities WHERE profile={:p} AND kind='wa_id' ORDER BY created DESC LIMIT 1").
			Bind(dbx.Params{"p": p.ID}).Row(&p.waID)
		return p, nil
	}
	return nil, fmt.Errorf("profile %s: merge chain too long", id)
}

// address is where a channel reaches the customer ("" when unknown).
func (p *profile) address(ch string) string {
	switch ch {
	case "email":
		return p.Email
	case "sms":
		return p.Phone
	case "whatsapp":
		if p.waID != "" {
			return p.waID
		}
		return strings.TrimPrefix(p.Phone, "+")
	}
	return ""
}

// customerVars is the customer variable of templates: traits, then the
// computed traits, then the profile's own fields.
func (p *profile) customerVars() map[string]any {
	c := make(map[string]any, len(p.traits)+len(p.computed)+6)
	for k, v := range p.traits {
		c[k] = v
	}
	for k, v := range p.computed {
		c[k] = v
	}
	c["id"], c["email"], c["phone"] = p.ID, p.Email, p.Phone
	if p.Name != "" {
		c["name"] = p.Name
	}
	if _, ok := c["first_name"]; !ok && p.Name != "" {
		c["first_name"] = strings.Fields(p.Name)[0]
	}
	return c
}

// template is a template record's content (the templates collection).
type template struct {
	ref, subject, body, html string
	waName, waLanguage       string
	waParams                 []string
}

// loadTemplate reads the request's template by id or name.
func (m *Module) loadTemplate(r *Request) (template, error) {
	if r.Template == "" {
		return template{}, nil
	}
	rec, err := m.app.FindRecordById("templates", r.Template)
	if err != nil {
		rec, err = m.app.FindFirstRecordByData("templates", "name", r.Template)
	}
	if err != nil {
		return template{}, badField("template", fmt.Sprintf("no template with id or name %q", r.Template))
	}
	t := template{ref: rec.Id, subject: rec.GetString("subject"), body: rec.GetString("body"), html: rec.GetString("html"),
		waName: rec.GetString("wa_template"), waLanguage: rec.GetString("wa_language")}
	if raw := fmt.Sprint(rec.GetRaw("wa_params")); raw != "" && raw != "null" && raw != "<nil>" {
		_ = json.Unmarshal([]byte(raw), &t.waParams)
	}
	if ch := rec.GetString("channel"); ch != "" && len(r.Channels) == 1 && ch != r.Channels[0] {
		return template{}, badField("template", fmt.Sprintf("template %q is for %s, not %s", rec.GetString("name"), ch, r.Channels[0]))
	}
	return t, nil
}
