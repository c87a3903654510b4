package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/api"
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
	base, _, rates = s.currencyFrom(app)
	return base, rates
}

// Where the base currency in force comes from.
const (
	baseFromSettings = "settings"  // the owner's metrics setting
	baseFromConfig   = "config"    // omni.yaml profiles.base_currency
	baseFromOrders   = "connector" // adopted from the first connector order (profiles)
)

func (s *settingsPart) currencyFrom(app core.App) (base, from string, rates map[string]float64) {
	var c Currency
	s.get("currency", &c)
	base, rates = strings.ToUpper(c.Base), map[string]float64{}
	if base != "" {
		from = baseFromSettings
	}
	if s.m.o != nil {
		cfg := s.m.o.Config.Profiles
		if base == "" {
			if base = strings.ToUpper(strings.TrimSpace(cfg.BaseCurrency)); base != "" {
				from = baseFromConfig
			}
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
		// profile_settings holds JSON: a quoted string.
		var unq string
		if json.Unmarshal([]byte(base), &unq) == nil {
			base = unq
		}
		if base = strings.ToUpper(strings.TrimSpace(base)); base != "" {
			from = baseFromOrders
		}
	}
	return base, from, rates
}

// AttributionSettings is the "attribution" setting (attribution.go reads it).
type AttributionSettings struct {
	LookbackDays  float64 `json:"lookback_days"`  // touches this many days before an order count, 1..90
	HalfLifeDays  float64 `json:"half_life_days"` // time-decay: a touch this much older weighs half, (0, 90]
	PositionFirst float64 `json:"position_first"` // position-based: the first touch's share
	PositionLast  float64 `json:"position_last"`  // the last touch's share (the middle ones share the rest)
}

// InboxSettings is the "inbox" setting.
type InboxSettings struct {
	FCRDays int `json:"fcr_days"` // resolved with no customer follow-up within this many days
}

// FunnelSettings is the "funnels" setting.
type FunnelSettings struct {
	AbandonHours int `json:"abandon_hours"` // a checkout without an order this long after is abandoned
}

// settingDefaults returns each key's value when the owner has not set it.
func settingDefaults() map[string]any {
	return map[string]any{
		"currency":    &Currency{Rates: map[string]float64{}},
		"attribution": &AttributionSettings{LookbackDays: 7, HalfLifeDays: 7, PositionFirst: 0.4, PositionLast: 0.4},
		"inbox":       &InboxSettings{FCRDays: 3},
		"funnels":     &FunnelSettings{AbandonHours: 24},
	}
}

// settingKeys in the order the API lists them.
var settingKeys = []string{"currency", "attribution", "inbox", "funnels"}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// validateSetting checks a decoded value; the error names the field.
func validateSetting(key string, v any) error {
	switch x := v.(type) {
	case *Currency:
		x.Base = strings.ToUpper(strings.TrimSpace(x.Base))
		if x.Base != "" && !currencyCode.MatchString(x.Base) {
			return api.BadRequest("base", fmt.Sprintf("expected an ISO 4217 code of 3 letters such as EUR, got %q", x.Base))
		}
		rates := map[string]float64{}
		for k, r := range x.Rates {
			code := strings.ToUpper(strings.TrimSpace(k))
			if !currencyCode.MatchString(code) {
				return api.BadRequest("rates", fmt.Sprintf("%q is not an ISO 4217 code of 3 letters", k))
			}
			if !(r > 0) || math.IsInf(r, 0) {
				return api.BadRequest("rates."+code, fmt.Sprintf("one %s in the base currency must be a number above 0, got %v", code, r))
			}
			rates[code] = r
		}
		x.Rates = rates
	case *AttributionSettings:
		if !(x.LookbackDays >= 1) || x.LookbackDays > attrMaxDays {
			return api.BadRequest("lookback_days", fmt.Sprintf("expected 1 to %d days, got %v", attrMaxDays, x.LookbackDays))
		}
		if !(x.HalfLifeDays > 0) || x.HalfLifeDays > attrMaxDays {
			return api.BadRequest("half_life_days", fmt.Sprintf("expected more than 0 days (up to %d), got %v", attrMaxDays, x.HalfLifeDays))
		}
		if x.PositionFirst < 0 || x.PositionFirst > 1 {
			return api.BadRequest("position_first", fmt.Sprintf("expected a share from 0 to 1, got %v", x.PositionFirst))
		}
		if x.PositionLast < 0 || x.PositionLast > 1 || x.PositionFirst+x.PositionLast > 1 {
			return api.BadRequest("position_last", fmt.Sprintf("expected a share from 0 to 1 that leaves position_first + position_last at most 1, got %v", x.PositionLast))
		}
	case *InboxSettings:
		if x.FCRDays < 1 || x.FCRDays > 90 {
			return api.BadRequest("fcr_days", fmt.Sprintf("expected 1 to 90 days, got %d", x.FCRDays))
		}
	case *FunnelSettings:
		if x.AbandonHours < 1 || x.AbandonHours > 720 {
			return api.BadRequest("abandon_hours", fmt.Sprintf("expected 1 to 720 hours, got %d", x.AbandonHours))
		}
	default:
		return api.BadRequest("key", fmt.Sprintf("unknown setting %q", key))
	}
	return nil
}

// SettingsAnswer is GET /api/v1/metrics/settings.
type SettingsAnswer struct {
	// Settings holds every key with the owner's value or the default.
	Settings map[string]any `json:"settings"`
	// Currency is the base currency and rates in force, and where the base
	// comes from: settings, config, connector or "" (none known yet).
	Currency struct {
		Base  string             `json:"base"`
		From  string             `json:"from"`
		Rates map[string]float64 `json:"rates"`
	} `json:"currency"`
}

func (s *settingsPart) answer(app core.App) *SettingsAnswer {
	a := &SettingsAnswer{Settings: map[string]any{}}
	defs := settingDefaults()
	for _, k := range settingKeys {
		v := defs[k]
		s.get(k, v)
		a.Settings[k] = v
	}
	a.Currency.Base, a.Currency.From, a.Currency.Rates = s.currencyFrom(app)
	return a
}

func (s *settingsPart) routes(g *router.RouterGroup[*core.RequestEvent]) {
	g.GET("/settings", func(e *core.RequestEvent) error {
		return e.JSON(http.StatusOK, s.answer(e.App))
	})
	g.PUT("/settings/{key}", s.put).Bind(api.RequireOwner())
	s.m.jobRoutes(g) // rebuild.go: /rebuild
}

// put saves one setting (owners). A new currency setting re-rates the
// order facts and recomputes every customer in the background.
func (s *settingsPart) put(e *core.RequestEvent) error {
	key := e.Request.PathValue("key")
	v, ok := settingDefaults()[key]
	if !ok {
		return api.BadRequest("key", fmt.Sprintf("unknown setting %q (known: %s)", key, strings.Join(settingKeys, ", ")))
	}
	dec := json.NewDecoder(http.MaxBytesReader(e.Response, e.Request.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if err := validateSetting(key, v); err != nil {
		return err
	}
	oldBase, _, oldRates := s.currencyFrom(e.App)
	raw, _ := json.Marshal(v)
	col, err := e.App.FindCachedCollectionByNameOrId(SettingsCollection)
	if err != nil {
		return api.Internal("Could not save the setting.", err)
	}
	rec, err := e.App.FindFirstRecordByData(col, "key", key)
	if err != nil {
		rec = core.NewRecord(col)
		rec.Set("key", key)
	}
	rec.Set("value", types.JSONRaw(raw))
	if err := e.App.Save(rec); err != nil {
		return api.Internal("Could not save the setting.", err)
	}
	if err := s.load(e.App); err != nil {
		return api.Internal("Could not reload the settings.", err)
	}
	if key == "attribution" {
		s.m.recreditInBackground()
	}
	if key == "currency" {
		newBase, _, newRates := s.currencyFrom(e.App)
		if newBase != oldBase || !maps.Equal(oldRates, newRates) {
			s.m.rerateInBackground(newBase != oldBase)
		}
	}
	return e.JSON(http.StatusOK, s.answer(e.App))
}

// bodyError names the field a JSON decoding error is about.
func bodyError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return api.BadRequest(te.Field, fmt.Sprintf("expected a %s, got a JSON %s", jsonKind(te.Type.Kind().String()), te.Value))
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		f := strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
		return api.BadRequest(f, "no such field in this setting")
	}
	return api.BadRequest("body", "expected a JSON object: "+err.Error())
}

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "float"), strings.HasPrefix(goKind, "int"):
		return "number"
	case goKind == "map", goKind == "struct":
		return "object"
	}
	return goKind
}
