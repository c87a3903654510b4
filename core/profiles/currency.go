package profiles

import (
	"database/sql"
	"errors"
	"regexp"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
)

// Base currency: lifetime_value_base and average_order_value_base add up a
// customer's orders in one currency. Without profiles.base_currency in
// omni.yaml those figures were silently empty, so the module adopts the
// shop's own currency from the first order a connector reports (Shopify's
// order currency is the shop's, Square's the location's) and remembers it
// in profile_settings. omni.yaml always wins.

const settingBaseCurrency = "base_currency"

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// BaseCurrency says which base currency is in force and where it came
// from: "config" (omni.yaml), "connector" (adopted from a connector's
// first order) or "" (none yet).
type BaseCurrency struct {
	Code   string `json:"code"`
	Origin string `json:"origin"`
	Note   string `json:"note,omitempty"`
}

// currencyNow is the currency settings in force (the scheduler reads them
// while a batch may adopt a base currency).
func (m *Module) currencyNow() Currency {
	m.curMu.RLock()
	defer m.curMu.RUnlock()
	return m.currency
}

// Base returns the base currency in force.
func (m *Module) Base() BaseCurrency {
	m.curMu.RLock()
	defer m.curMu.RUnlock()
	return m.base
}

// loadBaseCurrency reads an adopted base currency when omni.yaml names none.
func (m *Module) loadBaseCurrency(app core.App) error {
	m.curMu.Lock()
	defer m.curMu.Unlock()
	if m.currency.Base != "" {
		m.base = BaseCurrency{Code: m.currency.Base, Origin: "config"}
		return nil
	}
	var row struct {
		Value string `db:"value"`
		Note  string `db:"note"`
	}
	err := app.DB().NewQuery("SELECT value, note FROM profile_settings WHERE key = {:k}").Bind(dbx.Params{"k": settingBaseCurrency}).One(&row)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	}
	if currencyCode.MatchString(row.Value) {
		m.currency.Base = row.Value
		m.base = BaseCurrency{Code: row.Value, Origin: "connector", Note: row.Note}
	}
	return nil
}

// shopCurrency finds, in a stored batch, the first order a connector
// reported with a currency. Tracking-API orders do not count: a site may
// send anything, a connector reports the shop's own books.
func shopCurrency(stored []*eventstore.Stored) (code, source string) {
	for _, s := range stored {
		ev := s.Event
		if ev.Type != events.OrderPlaced || strings.HasPrefix(ev.ID, events.TrackingIDPrefix) ||
			ev.Source == SourceStaff || ev.Source == "omni" {
			continue
		}
		c, _ := ev.Properties["currency"].(string)
		if c = strings.ToUpper(strings.TrimSpace(c)); currencyCode.MatchString(c) {
			return c, ev.Source
		}
	}
	return "", ""
}

// adoptBaseCurrency takes the shop's currency as the base currency, in the
// batch's transaction, when none is set: the batch uses it at once, the
// module from the commit on (commitBaseCurrency). Profiles that already
// have orders are marked due, so the scheduled pass adds their base figures.
func (m *Module) adoptBaseCurrency(b *batch, stored []*eventstore.Stored) error {
	if b.cur.Base != "" {
		return nil
	}
	code, source := shopCurrency(stored)
	if code == "" {
		return nil
	}
	tx := b.tx
	// Waiting rows would write their old due time over the one set here.
	if _, err := b.m.catchUpLocked(tx, nil, true); err != nil {
		return err
	}
	note := "the currency of the first " + sourceName(source) + " order"
	col, err := tx.FindCollectionByNameOrId("profile_settings")
	if err != nil {
		return err
	}
	rec := core.NewRecord(col)
	rec.Set("key", settingBaseCurrency)
	rec.Set("value", code)
	rec.Set("note", note)
	if err := tx.SaveNoValidate(rec); err != nil {
		return err
	}
	if _, err := tx.DB().NewQuery("UPDATE profiles SET traits_due_at = {:now} WHERE merged_into = '' AND orders_count > 0").
		Bind(dbx.Params{"now": b.nowDB}).Execute(); err != nil {
		return err
	}
	for _, p := range b.profiles {
		p.saved = nil // their traits_due_at was just reset: flush writes it again
	}
	b.rows.reset() // and the cached rows' is stale
	b.cur.Base = code
	m.adopted = &BaseCurrency{Code: code, Origin: "connector", Note: note}
	return nil
}

// commitBaseCurrency puts an adopted base currency in force once its
// batch committed (a rolled-back batch adopts nothing).
func (m *Module) commitBaseCurrency() {
	m.cacheMu.Lock()
	a := m.adopted
	m.adopted = nil
	m.cacheMu.Unlock()
	if a == nil {
		return
	}
	m.curMu.Lock()
	m.currency.Base, m.base = a.Code, *a
	m.curMu.Unlock()
	m.log.Info("base currency set from the shop's currency", "currency", a.Code, "from", a.Note)
}
