package messaging

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/messaging/customers"
	"github.com/omni/omni/core/messaging/templates"
	"github.com/omni/omni/core/store"
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
	// Templates and the gate read computed values (orders, last seen, the
	// WhatsApp window) as they stand, not as last written. On failure the
	// row reads as last written.
	_ = store.SyncProfiles(app, id)
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

// customerVars is the customer variable of templates, built the way the
// template preview builds it (core/messaging/customers), so a message reads
// as its preview did.
func (p *profile) customerVars(app core.App) map[string]any {
	if c, err := customers.Load(app, p.ID); err == nil {
		return c.Vars
	}
	return p.fallbackVars()
}

// fallbackVars are the variables from what the gate read itself.
func (p *profile) fallbackVars() map[string]any {
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

// loadTemplate reads the request's template by id or name (the templates
// collection, checked when it was saved).
func (m *Module) loadTemplate(r *Request) (template, error) {
	if r.Template == "" {
		return template{}, nil
	}
	t, err := templates.Find(m.app, r.Template)
	if err != nil {
		return template{}, badField("template", fmt.Sprintf("no template with id or name %q", r.Template))
	}
	if t.Channel != "" && len(r.Channels) == 1 && t.Channel != r.Channels[0] {
		return template{}, badField("template", fmt.Sprintf("template %q is for %s, not %s", t.Name, t.Channel, r.Channels[0]))
	}
	if r.Kind == "" {
		// A send without a kind is what its template is (marketing by
		// default, so an unsaid kind never skips the consent check).
		r.Kind = t.Kind
		if r.Kind != KindMarketing && r.Kind != KindTransactional && r.Kind != KindConversation {
			r.Kind = KindMarketing
		}
	}
	return template{ref: t.ID, subject: t.Subject, body: t.Body, html: t.HTML,
		waName: t.WATemplate, waLanguage: t.WALanguage, waParams: t.WAParams}, nil
}
