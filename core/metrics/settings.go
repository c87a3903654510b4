package metrics

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// settingsPart holds the owner's report settings (metrics_settings, key →
// JSON), cached in memory; PUT /api/v1/metrics/settings/{key} changes them.
type settingsPart struct {
	m  *Module
	mu sync.RWMutex
	kv map[string]json.RawMessage
}

// Currency is the "currency" setting: the base currency reports are in and
// the value of one unit of each other currency in it.
type Currency struct {
	Base  string             `json:"base"`
	Rates map[string]float64 `json:"rates"`
}

func (s *settingsPart) load(app core.App) error {
	var rows []struct {
		Key   string `db:"key"`
		Value string `db:"value"`
	}
	if err := app.DB().NewQuery("SELECT key, value FROM " + SettingsCollection).All(&rows); err != nil {
		return err
	}
	kv := map[string]json.RawMessage{}
	for _, r := range rows {
		kv[r.Key] = json.RawMessage(r.Value)
	}
	s.mu.Lock()
	s.kv = kv
	s.mu.Unlock()
	return nil
}

// get decodes the setting key into v; false when it is not set (v keeps
// its defaults).
func (s *settingsPart) get(key string, v any) bool {
	s.mu.RLock()
	raw, ok := s.kv[key]
	s.mu.RUnlock()
	return ok && json.Unmarshal(raw, v) == nil
}

// currency is the base currency and rates in force: the owner's setting,
// else omni.yaml (profiles.base_currency, profiles.exchange_rates), else
// the currency profiles adopted from the first connector order.
func (s *settingsPart) currency(app core.App) (base string, rates map[string]float64) {
	var c Currency
	s.get("currency", &c)
	base, rates = strings.ToUpper(c.Base), map[string]float64{}
	if s.m.o != nil {
		cfg := s.m.o.Config.Profiles
		if base == "" {
			base = strings.ToUpper(strings.TrimSpace(cfg.BaseCurrency))
		}
		for _, kv := range strings.Split(cfg.ExchangeRates, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); ok && err == nil && f > 0 {
				rates[strings.ToUpper(strings.TrimSpace(k))] = f
			}
		}
	}
	for k, v := range c.Rates {
		if v > 0 {
			rates[strings.ToUpper(k)] = v
		}
	}
	if base == "" && app != nil {
		_ = app.DB().NewQuery("SELECT value FROM profile_settings WHERE key = {:k}").Bind(dbx.Params{"k": "base_currency"}).Row(&base)
	}
	return base, rates
}

func (s *settingsPart) routes(g *router.RouterGroup[*core.RequestEvent]) {}
