package inbox

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/store"
)

// setting reads inbox_settings[key] into v; false when unset or unreadable
// (the caller keeps its defaults).
func (m *Module) setting(key string, v any) bool {
	raw, ok := m.settings.get(key)
	if !ok {
		version := m.settings.version.Load()
		var err error
		if raw, err = rawSetting(m.app.DB(), key); err != nil {
			return false // unreadable now: defaults, and no caching
		}
		m.settings.put(key, raw, version)
	}
	return raw != "" && json.Unmarshal([]byte(raw), v) == nil
}

// settingsCache keeps inbox_settings' raw values: the events path reads
// the bot, hours and assignment settings for every customer message.
// Every write bumps version once it is committed (saveSetting's callers,
// record hooks for writes through the records API), and a value read
// under an older version is never served.
type settingsCache struct {
	version atomic.Uint64
	mu      sync.Mutex
	raw     map[string]cachedSetting
}

type cachedSetting struct {
	raw     string
	version uint64
}

func (c *settingsCache) get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.raw[key]
	if !ok || e.version != c.version.Load() {
		return "", false
	}
	return e.raw, true
}

func (c *settingsCache) put(key, raw string, version uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw == nil {
		c.raw = map[string]cachedSetting{}
	}
	c.raw[key] = cachedSetting{raw: raw, version: version}
}

// changed forgets every cached value (call after a write commits).
func (c *settingsCache) changed() { c.version.Add(1) }

// watchSettings forgets the cache when a record of inbox_settings is
// written other than through saveSetting (the admin UI, a restore tool).
func (m *Module) watchSettings(app core.App) {
	forget := func(e *core.RecordEvent) error {
		m.settings.changed()
		return e.Next()
	}
	app.OnRecordAfterCreateSuccess(SettingsCollection).BindFunc(forget)
	app.OnRecordAfterUpdateSuccess(SettingsCollection).BindFunc(forget)
	app.OnRecordAfterDeleteSuccess(SettingsCollection).BindFunc(forget)
}

// rawSetting is the stored JSON of key, "" when unset.
func rawSetting(db dbx.Builder, key string) (string, error) {
	var raw string
	err := db.Select("value").From(SettingsCollection).Where(dbx.HashExp{"key": key}).Row(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return raw, err
}

// saveSetting writes inbox_settings[key] = v (an upsert).
func saveSetting(app core.App, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	now := store.FormatTime(time.Now())
	_, err = app.DB().NewQuery(`INSERT INTO ` + SettingsCollection + ` (id, key, value, created, updated) VALUES ({:id}, {:key}, {:value}, {:now}, {:now})
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated`).
		Bind(dbx.Params{"id": store.NewRecordID(), "key": key, "value": string(b), "now": now}).Execute()
	return err
}

// ParseDuration reads "30m", "4h", "7d", "2w" (Go durations plus days
// and weeks).
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil || f < 0 {
				return 0, fmt.Errorf("%q is not a duration (such as 30m, 4h, 7d)", s)
			}
			return time.Duration(f * float64(unit)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (such as 30m, 4h, 7d)", s)
	}
	return d, nil
}

// settingKeys are the owner's inbox settings, each checked by its part:
// the check reads the body, fills defaults and names a bad field as
// "<key>.<field>". defaults gives the value when nothing is saved.
var settingKeys = []string{"general", "hours", "assignment", "sla", "csat", "bot"}

// checkSetting validates and normalises a setting's new value.
func (m *Module) checkSetting(key string, raw json.RawMessage) (any, error) {
	switch key {
	case "general":
		return checkGeneral(raw)
	case "hours":
		return checkHours(raw) // automation.go
	case "bot":
		return checkBot(raw) // automation.go
	case "assignment":
		return checkAssignment(raw) // agents.go
	case "sla":
		return checkSLASetting(raw) // sla.go
	case "csat":
		return checkCSAT(raw) // csat.go
	}
	return nil, fmt.Errorf("unknown setting %q", key)
}

// settingDefault is a setting's value when the owner never saved one.
func settingDefault(key string) any {
	switch key {
	case "general":
		return General{ReopenWindow: "7d"}
	case "hours":
		return defaultHours() // automation.go
	case "bot":
		return defaultBot() // automation.go
	case "assignment":
		return defaultAssignment() // agents.go
	case "sla":
		return defaultSLA() // sla.go
	case "csat":
		return defaultCSAT() // csat.go
	}
	return nil
}

// General holds settings no part owns.
type General struct {
	// ReopenWindow: a customer writing within this long after their
	// conversation was resolved reopens it.
	ReopenWindow string `json:"reopen_window"`
}

func checkGeneral(raw json.RawMessage) (any, error) {
	var g General
	if err := strictJSON(raw, &g); err != nil {
		return nil, fieldErr("general", err.Error())
	}
	if g.ReopenWindow == "" {
		g.ReopenWindow = "7d"
	}
	if _, err := ParseDuration(g.ReopenWindow); err != nil {
		return nil, fieldErr("general.reopen_window", err.Error())
	}
	return g, nil
}
