// Package customers reads what messaging needs to know about a customer
// from the profiles tables: the template variables, consent per channel and
// the identity to attach a consent change to. It reads rows; it does not
// import the profiles module (modules meet on the bus and the tables).
package customers

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/messaging/render"
	"github.com/omni/omni/core/store"
)

// ErrNotFound is returned for profiles that do not exist or were erased.
var ErrNotFound = errors.New("customer not found")

// Channels a customer can be messaged on, in the order pages show them.
var Channels = []string{"email", "sms", "whatsapp"}

// Consent statuses (as the consent ledger writes them).
const (
	Subscribed   = "subscribed"
	Unsubscribed = "unsubscribed"
)

// Customer is one customer as messaging sees it.
type Customer struct {
	ID      string
	Name    string
	Email   string
	Phone   string
	Traits  map[string]any
	Vars    map[string]any    // render.CustomerFields and the traits
	Consent map[string]string // channel → subscribed | unsubscribed | "" (never asked)
}

type row struct {
	ID         string `db:"id"`
	MergedInto string `db:"merged_into"`
	Name       string `db:"name"`
	Email      string `db:"email"`
	Phone      string `db:"phone"`
	Traits     string `db:"traits"`
	Computed   string `db:"computed"`
	Consent    string `db:"consent"`
	FirstSeen  string `db:"first_seen"`
	LastSeen   string `db:"last_seen"`
}

// Load reads a customer, following merges to the surviving profile.
func Load(app core.App, id string) (*Customer, error) {
	_ = store.SyncProfiles(app, id) // computed values as they stand; else as last written
	var r row
	for i := 0; ; i++ {
		if i == 64 || id == "" {
			return nil, ErrNotFound
		}
		err := app.DB().NewQuery(`SELECT id, merged_into, name, email, phone, traits, computed, consent, first_seen, last_seen
FROM profiles WHERE id={:id}`).Bind(dbx.Params{"id": id}).One(&r)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		if r.MergedInto == "" {
			break
		}
		id = r.MergedInto
	}
	c := &Customer{ID: r.ID, Name: r.Name, Email: r.Email, Phone: r.Phone, Traits: map[string]any{}, Consent: map[string]string{}}
	var computed map[string]any
	var consent map[string]struct {
		Status string `json:"status"`
	}
	for _, f := range []struct {
		raw string
		to  any
	}{{r.Traits, &c.Traits}, {r.Computed, &computed}, {r.Consent, &consent}} {
		if f.raw == "" || f.raw == "null" {
			continue
		}
		if err := json.Unmarshal([]byte(f.raw), f.to); err != nil {
			return nil, fmt.Errorf("customer %s: stored profile does not parse: %w", r.ID, err)
		}
	}
	if c.Traits == nil {
		c.Traits = map[string]any{}
	}
	for ch, e := range consent {
		c.Consent[ch] = e.Status
	}
	c.Vars = vars(r, c.Traits, computed)
	return c, nil
}

// vars are the customer's template variables: the traits under their own
// names, then the documented ones (which win, so customer.email is always
// the profile's email).
func vars(r row, traits, computed map[string]any) map[string]any {
	v := make(map[string]any, len(traits)+len(render.CustomerFields))
	for k, t := range traits {
		v[k] = t
	}
	first, last := text(traits, "first_name", "firstName"), text(traits, "last_name", "lastName")
	if first == "" && last == "" && r.Name != "" {
		first, last, _ = strings.Cut(r.Name, " ")
	}
	set := func(k string, val any) {
		if val != nil && val != "" {
			v[k] = val
		}
	}
	set("id", r.ID)
	set("first_name", first)
	set("last_name", last)
	set("name", r.Name)
	set("email", r.Email)
	set("phone", r.Phone)
	set("city", text(traits, "city"))
	set("country", text(traits, "country"))
	set("timezone", text(traits, "timezone", "time_zone"))
	set("first_seen", r.FirstSeen)
	set("last_seen", r.LastSeen)
	for _, k := range []string{"orders_count", "last_order_at", "lifecycle_stage", "buying_stage", "engagement_level", "preferred_channel"} {
		set(k, computed[k])
	}
	if v["orders_count"] == nil {
		v["orders_count"] = 0
	}
	// lifetime_value is one number: in the base currency when one is set,
	// else in the customer's only currency; by currency when there are many.
	ltv, _ := computed["lifetime_value"].(map[string]any)
	aov, _ := computed["average_order_value"].(map[string]any)
	set("lifetime_value_by_currency", nonEmpty(ltv))
	if base, ok := computed["lifetime_value_base"].(float64); ok {
		set("lifetime_value", base)
		set("average_order_value", computed["average_order_value_base"])
		set("currency", computed["base_currency"])
	} else if len(ltv) == 1 {
		for cur, val := range ltv {
			set("lifetime_value", val)
			set("average_order_value", aov[cur])
			set("currency", cur)
		}
	}
	if v["lifetime_value"] == nil {
		v["lifetime_value"] = 0
	}
	return v
}

func nonEmpty(m map[string]any) any {
	if len(m) == 0 {
		return nil
	}
	return m
}

func text(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok && strings.TrimSpace(s) != "" {
			return strings.TrimSpace(s)
		}
	}
	return ""
}

// Identity returns the strongest identity of the profile, the one a
// consent change is recorded against (so it resolves to this profile and
// joins nothing else); "" when none is left.
func Identity(app core.App, profileID string) (kind, value string, err error) {
	var rows []events.KindValue
	if err := app.DB().NewQuery("SELECT kind, value FROM identities WHERE profile={:p} ORDER BY created").
		Bind(dbx.Params{"p": profileID}).All(&rows); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", "", err
	}
	s, _ := events.Strongest(rows)
	return s.Kind, s.Value, nil
}

// maxTraitNames bounds the trait names a template check accepts.
const maxTraitNames = 500

// TraitNames lists the trait names the shop's profiles carry, so a
// template may use {{ customer.favorite_color }} when profiles have it.
func TraitNames(app core.App) ([]string, error) {
	var rows []struct {
		Key string `db:"key"`
	}
	err := app.DB().NewQuery(`SELECT DISTINCT j.key AS key FROM (SELECT traits FROM profiles
WHERE merged_into='' ORDER BY updated DESC LIMIT 2000) p, json_each(CASE WHEN json_valid(p.traits) THEN p.traits ELSE '{}' END) j
LIMIT {:n}`).Bind(dbx.Params{"n": maxTraitNames}).All(&rows)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = r.Key
	}
	return names, nil
}

// Shop is the shop as templates and the preference pages show it: the name
// set in the admin's settings (Application name), else the public URL's
// host.
func Shop(app core.App, publicURL string) render.Shop {
	name := strings.TrimSpace(app.Settings().Meta.AppName)
	if name == "" || name == "Acme" { // PocketBase's placeholder, never a shop's
		if u, err := url.Parse(publicURL); err == nil && u.Hostname() != "" {
			name = u.Hostname()
		}
	}
	return render.Shop{Name: name, URL: publicURL}
}
