// Package config loads Omni's configuration from defaults, omni.yaml, OMNI_*
// environment variables and command-line flags (in rising precedence) and
// validates it, so a bad setting stops start-up with one line naming the key.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix is prepended to every environment variable Omni reads.
const EnvPrefix = "OMNI"

// Config is the effective configuration of one Omni process.
type Config struct {
	HTTP       string `mapstructure:"http"`
	DataDir    string `mapstructure:"data_dir"`
	PluginsDir string `mapstructure:"plugins_dir"`
	// Durability is "normal" (survives a process crash) or "strict" (fsync
	// before every acknowledgement, survives power loss, slower).
	Durability string `mapstructure:"durability"`
	// Role is what this process runs: "all" (one binary: API, admin,
	// SQLite and the consumers), "frontend" (stateless: the tracking API
	// publishing to an external bus; no SQLite writer) or "writer" (owns
	// SQLite and consumes the streams of an external bus). See
	// docs/operations.md#topology.
	Role string `mapstructure:"role"`
	// SecretKey encrypts connector secrets at rest (any string; env
	// OMNI_SECRET_KEY). When empty, the key is read from SecretKeyFile.
	SecretKey string `mapstructure:"secret_key"`
	// SecretKeyFile holds the generated key when SecretKey is empty; created
	// on first start. It must be outside DataDir so a backup of the data
	// (PocketBase's backups zip all of it) cannot decrypt the secrets in it.
	// Empty means SecretKeyPath's default, beside the data dir.
	SecretKeyFile string          `mapstructure:"secret_key_file"`
	Log           LogConfig       `mapstructure:"log"`
	Bus           BusConfig       `mapstructure:"bus"`
	Ingest        IngestConfig    `mapstructure:"ingest"`
	Journeys      JourneysConfig  `mapstructure:"journeys"`
	Profiles      ProfilesConfig  `mapstructure:"profiles"`
	Messaging     MessagingConfig `mapstructure:"messaging"`
	Metrics       MetricsConfig   `mapstructure:"metrics"`
	// PublicURL is the shop's address as customers reach it: unsubscribe
	// links, preference pages and vendors' status callbacks are built from
	// it. Empty in the file means "http://" + HTTP (see PublicBaseURL).
	PublicURL  string                    `mapstructure:"public_url"`
	Connectors map[string]map[string]any `mapstructure:"connectors"`

	// File is the config file that was read, if any.
	File string `mapstructure:"-"`
}

// SharedBus reports whether other processes can reach this process's bus
// (an external cluster, or the embedded server listening on TCP): only
// then can there be front ends, and another writer to keep out.
func (c *Config) SharedBus() bool { return c.Bus.URL != "" || c.Bus.Listen != "" }

type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

type BusConfig struct {
	// Embedded runs NATS inside the Omni process; URL (when set) connects to
	// an external NATS cluster instead.
	Embedded     bool          `mapstructure:"embedded"`
	URL          string        `mapstructure:"url"`
	Credentials  string        `mapstructure:"credentials"`
	Listen       string        `mapstructure:"listen"`
	StoreDir     string        `mapstructure:"store_dir"`
	MaxStoreMB   int           `mapstructure:"max_store_mb"`
	MaxMemoryMB  int           `mapstructure:"max_memory_mb"`
	DedupeWindow time.Duration `mapstructure:"dedupe_window"`
	MaxAge       time.Duration `mapstructure:"max_age"`
	// Replicas is how many servers of an external cluster keep each
	// stream (3 on a 3-node cluster); the embedded server is one node.
	Replicas int `mapstructure:"replicas"`
}

type IngestConfig struct {
	MaxBatchBytes int    `mapstructure:"max_batch_bytes"`
	MaxEventBytes int    `mapstructure:"max_event_bytes"`
	MaxWebhookKB  int    `mapstructure:"max_webhook_kb"`
	DefaultRegion string `mapstructure:"default_region"`
	// AckFirst is how long the events consumer may hold a batch while
	// tracking calls are being answered, so a burst is acknowledged on
	// every core and stored right after; by the age of the batch's oldest
	// event, so under load that never stops nothing waits longer. 0 stores
	// at once.
	AckFirst time.Duration `mapstructure:"ack_first"`
}

type JourneysConfig struct {
	QuietHours   string `mapstructure:"quiet_hours"`
	FrequencyCap string `mapstructure:"frequency_cap"`
}

type ProfilesConfig struct {
	// IdentityCap bounds identities of one multi-valued kind (email, phone,
	// wa_id) per profile, so a shared value cannot collapse many customers.
	IdentityCap int `mapstructure:"identity_cap"`
	// BaseCurrency (ISO code) turns on base-currency lifetime value.
	BaseCurrency string `mapstructure:"base_currency"`
	// ExchangeRates is "EUR=1.08,GBP=1.27": one unit in the base currency.
	ExchangeRates string `mapstructure:"exchange_rates"`
	// Identity: which identifiers never match people.
	Identity IdentityConfig `mapstructure:"identity"`
	// WriteDelay is how long a change of the values events derive (last
	// seen, orders, computed traits) may wait before the profile's row is
	// written, so that a customer's burst of events rewrites it once.
	WriteDelay time.Duration `mapstructure:"write_delay"`
}

// MessagingConfig is messaging.*: the send gate's rules.
type MessagingConfig struct {
	// FrequencyCap lists "COUNT/PERIOD" limits on marketing sends per
	// customer, all channels together, e.g. ["2/24h", "5/7d"].
	FrequencyCap []string `mapstructure:"frequency_cap"`
	// QuietHours is "HH:MM-HH:MM" in the customer's time zone; marketing
	// that falls inside waits for the window's end. Empty: none.
	QuietHours string `mapstructure:"quiet_hours"`
	// Timezone is the shop's IANA zone, used for customers without one.
	Timezone string `mapstructure:"timezone"`
	// TrackEmail adds an open pixel and tracked links to marketing email
	// with an HTML part, so opens and clicks reach metrics and journeys.
	TrackEmail bool `mapstructure:"track_email"`
}

// MetricsConfig is metrics.*.
type MetricsConfig struct {
	// Enabled keeps the metrics rollups current as events are stored. Off,
	// the reports answer from what was rolled up before (run
	// `omni metrics rebuild` after turning it back on).
	Enabled bool `mapstructure:"enabled"`
	// MaxDelay is how far the rollups may fall behind the stored events
	// while events keep arriving: they catch up when ingest pauses, and
	// alongside it (sharing the writer) once they are this far behind.
	// 0 rolls every stored batch up in its own transaction (current at
	// once, at the cost of ingest).
	MaxDelay time.Duration `mapstructure:"max_delay"`
}

// IdentityConfig is profiles.identity.*.
type IdentityConfig struct {
	// Blocklist adds identifiers that are kept on events but never used to
	// match people: exact values, globs with * or /regular expressions/
	// (docs/profiles.md#junk-identifiers).
	Blocklist []string `mapstructure:"blocklist"`
	// DefaultBlocklist keeps Omni's built-in list (placeholders such as
	// "null" and "-1", test and no-reply addresses) on top of Blocklist.
	DefaultBlocklist bool `mapstructure:"default_blocklist"`
}

// defaults lists every known key with its default value; a key missing here
// is unknown and rejected.
var defaults = map[string]any{
	"http":                    "127.0.0.1:8090",
	"data_dir":                "./omni_data",
	"plugins_dir":             "",
	"durability":              "normal",
	"role":                    RoleAll,
	"secret_key":              "",
	"secret_key_file":         "",
	"log.level":               "info",
	"log.format":              "text",
	"bus.embedded":            true,
	"bus.url":                 "",
	"bus.credentials":         "",
	"bus.listen":              "",
	"bus.store_dir":           "",
	"bus.max_store_mb":        1024,
	"bus.max_memory_mb":       64,
	"bus.dedupe_window":       "2m",
	"bus.max_age":             "720h",
	"bus.replicas":            1,
	"ingest.max_batch_bytes":  500 * 1024,
	"ingest.max_event_bytes":  32 * 1024,
	"ingest.max_webhook_kb":   1024,
	"ingest.default_region":   "US",
	"ingest.ack_first":        "2s",
	"journeys.quiet_hours":    "21:00-08:00",
	"journeys.frequency_cap":  "3/24h",
	"profiles.identity_cap":   5,
	"profiles.write_delay":    "5s",
	"public_url":              "",
	"messaging.frequency_cap": []string{"2/24h", "5/7d"},
	"messaging.quiet_hours":   "21:00-08:00",
	"messaging.timezone":      "UTC",
	"messaging.track_email":   true,
	"profiles.base_currency":  "",
	"profiles.exchange_rates": "",
	"metrics.enabled":         true,
	"metrics.max_delay":       "1m",

	"profiles.identity.blocklist":         []string{},
	"profiles.identity.default_blocklist": true,
}

// freeFormPrefixes are sections whose sub-keys are owned by someone else
// (each connector declares its own schema).
var freeFormPrefixes = []string{"connectors."}

// Error is a configuration problem tied to one key.
type Error struct {
	Key     string
	Problem string
}

func (e *Error) Error() string { return fmt.Sprintf("config: %s: %s", e.Key, e.Problem) }

// Flags registers the flags that override configuration on a command.
func Flags(fs *pflag.FlagSet) {
	fs.String("config", "", "path to omni.yaml (default: ./omni.yaml when present)")
	fs.String("http", "", "HTTP listen address (default "+defaults["http"].(string)+")")
	fs.String("data-dir", "", "data directory (default "+defaults["data_dir"].(string)+")")
	fs.String("public-url", "", "the shop's public base URL for links in messages (default http://<http address>)")
}

// KnownKeys returns the sorted list of configuration keys.
func KnownKeys() []string {
	keys := make([]string, 0, len(defaults))
	for k := range defaults {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// EnvName is the environment variable that sets key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Load builds the effective configuration. flags may be nil; only flags the
// user actually set override the other sources.
func Load(flags *pflag.FlagSet) (*Config, error) {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
		_ = v.BindEnv(k, EnvName(k))
	}
	if err := checkEnv(os.Environ()); err != nil {
		return nil, err
	}

	file := ""
	if flags != nil {
		if f := flags.Lookup("config"); f != nil {
			file = f.Value.String()
		}
		bind := map[string]string{"http": "http", "data-dir": "data_dir", "public-url": "public_url"}
		for flag, key := range bind {
			if f := flags.Lookup(flag); f != nil {
				_ = v.BindPFlag(key, f)
			}
		}
	}
	if file == "" {
		file = os.Getenv(EnvPrefix + "_CONFIG")
	}

	v.SetConfigType("yaml")
	if file == "" {
		// Look for ./omni.yaml or ./omni.yml only (viper's own search would
		// also pick up the extension-less "omni" binary itself).
		for _, name := range []string{"omni.yaml", "omni.yml"} {
			if st, err := os.Stat(name); err == nil && !st.IsDir() {
				file = name
				break
			}
		}
	}
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			var pathErr *fs.PathError
			if errors.As(err, &pathErr) {
				return nil, &Error{Key: "--config", Problem: fmt.Sprintf("cannot read %s: %v", file, pathErr.Err)}
			}
			return nil, &Error{Key: "--config", Problem: fmt.Sprintf("cannot parse %s: %v", file, err)}
		}
	}

	if err := checkKeys(v.AllKeys()); err != nil {
		return nil, err
	}

	cfg := &Config{File: v.ConfigFileUsed()}
	if err := decode(v, cfg); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Default returns the configuration with every key at its default.
func Default() *Config {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	cfg := &Config{}
	if err := decode(v, cfg); err != nil {
		panic(err) // defaults are constants; a failure is a programming error
	}
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return cfg
}

// decode converts each key separately so a bad value is reported by its key.
func decode(v *viper.Viper, cfg *Config) error {
	for _, key := range KnownKeys() {
		sub := viper.New()
		sub.Set("x", v.Get(key))
		var val any
		var err error
		switch defaults[key].(type) {
		case bool:
			var b bool
			err = sub.UnmarshalKey("x", &b)
			val = b
		case int:
			var n int
			err = sub.UnmarshalKey("x", &n)
			val = n
		case []string:
			// A YAML list, or a comma-separated string from the environment.
			var l []string
			err = sub.UnmarshalKey("x", &l)
			val = l
		default:
			var s string
			err = sub.UnmarshalKey("x", &s)
			val = s
		}
		if err != nil {
			return &Error{Key: key, Problem: describeDecodeErr(defaults[key], v.Get(key))}
		}
		if err := setField(cfg, key, val); err != nil {
			return &Error{Key: key, Problem: err.Error()}
		}
	}
	if raw := v.GetStringMap("connectors"); len(raw) > 0 {
		cfg.Connectors = map[string]map[string]any{}
		for name, val := range raw {
			m, ok := val.(map[string]any)
			if !ok {
				return &Error{Key: "connectors." + name, Problem: "must be a map of settings"}
			}
			cfg.Connectors[name] = m
		}
	}
	return nil
}

func describeDecodeErr(def, got any) string {
	kind := "a string"
	switch def.(type) {
	case bool:
		kind = "true or false"
	case int:
		kind = "a whole number"
	case []string:
		kind = "a list of strings"
	}
	return fmt.Sprintf("expected %s, got %q", kind, fmt.Sprint(got))
}

func setField(cfg *Config, key string, val any) error {
	s, _ := val.(string)
	n, _ := val.(int)
	b, _ := val.(bool)
	l, _ := val.([]string)
	dur := func() (time.Duration, error) {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("not a duration")
		}
		return d, nil
	}
	var err error
	switch key {
	case "http":
		cfg.HTTP = s
	case "data_dir":
		cfg.DataDir = s
	case "plugins_dir":
		cfg.PluginsDir = s
	case "durability":
		cfg.Durability = s
	case "role":
		cfg.Role = s
	case "secret_key":
		cfg.SecretKey = s
	case "secret_key_file":
		cfg.SecretKeyFile = s
	case "log.level":
		cfg.Log.Level = s
	case "log.format":
		cfg.Log.Format = s
	case "bus.embedded":
		cfg.Bus.Embedded = b
	case "bus.url":
		cfg.Bus.URL = s
	case "bus.credentials":
		cfg.Bus.Credentials = s
	case "bus.listen":
		cfg.Bus.Listen = s
	case "bus.store_dir":
		cfg.Bus.StoreDir = s
	case "bus.max_store_mb":
		cfg.Bus.MaxStoreMB = n
	case "bus.max_memory_mb":
		cfg.Bus.MaxMemoryMB = n
	case "bus.dedupe_window":
		cfg.Bus.DedupeWindow, err = dur()
	case "bus.max_age":
		cfg.Bus.MaxAge, err = dur()
	case "bus.replicas":
		cfg.Bus.Replicas = n
	case "ingest.max_batch_bytes":
		cfg.Ingest.MaxBatchBytes = n
	case "ingest.max_event_bytes":
		cfg.Ingest.MaxEventBytes = n
	case "ingest.max_webhook_kb":
		cfg.Ingest.MaxWebhookKB = n
	case "ingest.default_region":
		cfg.Ingest.DefaultRegion = s
	case "ingest.ack_first":
		cfg.Ingest.AckFirst, err = dur()
	case "journeys.quiet_hours":
		cfg.Journeys.QuietHours = s
	case "journeys.frequency_cap":
		cfg.Journeys.FrequencyCap = s
	case "profiles.identity_cap":
		cfg.Profiles.IdentityCap = n
	case "public_url":
		cfg.PublicURL = s
	case "messaging.frequency_cap":
		cfg.Messaging.FrequencyCap = l
	case "messaging.quiet_hours":
		cfg.Messaging.QuietHours = s
	case "messaging.timezone":
		cfg.Messaging.Timezone = s
	case "messaging.track_email":
		cfg.Messaging.TrackEmail = b
	case "profiles.base_currency":
		cfg.Profiles.BaseCurrency = s
	case "profiles.exchange_rates":
		cfg.Profiles.ExchangeRates = s
	case "profiles.write_delay":
		cfg.Profiles.WriteDelay, err = dur()
	case "metrics.enabled":
		cfg.Metrics.Enabled = b
	case "metrics.max_delay":
		cfg.Metrics.MaxDelay, err = dur()
	case "profiles.identity.blocklist":
		cfg.Profiles.Identity.Blocklist = l
	case "profiles.identity.default_blocklist":
		cfg.Profiles.Identity.DefaultBlocklist = b
	default:
		return fmt.Errorf("unhandled key")
	}
	if err != nil {
		return fmt.Errorf("expected a duration such as 90s, 2m or 24h, got %q", s)
	}
	return nil
}

func isKnown(key string) bool {
	if _, ok := defaults[key]; ok {
		return true
	}
	for _, p := range freeFormPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func checkKeys(keys []string) error {
	sort.Strings(keys)
	for _, k := range keys {
		if !isKnown(k) {
			return &Error{Key: k, Problem: "unknown key (see config/omni.example.yaml for the keys Omni knows)"}
		}
	}
	return nil
}

// nonConfigEnv lists the OMNI_* variables that are not configuration keys
// but are read elsewhere, so the typo check in Load lets them through. Add
// a variable here when Omni (or its tests) starts reading a new one.
var nonConfigEnv = map[string]string{
	EnvPrefix + "_CONFIG":       "path to omni.yaml (like --config)",
	EnvPrefix + "_SOURCE":       "an Omni source checkout for `omni plugin new` to build against (like --omni-source)",
	EnvPrefix + "_FIXTURES_DIR": "where tests find the vendors' sample payloads (internal/testkit/vendorfixtures)",
	EnvPrefix + "_PPROF":        "a loopback host:port where `omni serve` serves Go's profiler (core/app/pprof.go)",
}

// checkEnv rejects OMNI_* variables that set nothing, which are almost
// always typos that would otherwise be silently ignored.
func checkEnv(environ []string) error {
	known := map[string]bool{}
	for name := range nonConfigEnv {
		known[name] = true
	}
	for k := range defaults {
		known[EnvName(k)] = true
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix+"_") || known[name] {
			continue
		}
		if strings.HasPrefix(name, EnvPrefix+"_CONNECTORS_") {
			continue
		}
		return &Error{Key: name, Problem: "unknown environment variable (see config/omni.example.yaml for the keys Omni knows)"}
	}
	return nil
}

// Roles (Config.Role).
const (
	RoleAll      = "all"
	RoleFrontend = "frontend"
	RoleWriter   = "writer"
)

// Validate checks values that decode fine but make no sense.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
		return &Error{Key: "http", Problem: fmt.Sprintf("expected host:port such as 127.0.0.1:8090, got %q", c.HTTP)}
	}
	if strings.TrimSpace(c.DataDir) == "" {
		return &Error{Key: "data_dir", Problem: "must not be empty"}
	}
	if inside(c.SecretKeyPath(), c.DataDir) {
		return &Error{Key: "secret_key_file", Problem: fmt.Sprintf("%s is inside data_dir (%s), so every backup of the data would carry the key that decrypts it; choose a path outside data_dir", c.SecretKeyPath(), c.DataDir)}
	}
	if c.Durability != "normal" && c.Durability != "strict" {
		return &Error{Key: "durability", Problem: fmt.Sprintf("expected normal or strict, got %q", c.Durability)}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return &Error{Key: "log.level", Problem: fmt.Sprintf("expected debug, info, warn or error, got %q", c.Log.Level)}
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return &Error{Key: "log.format", Problem: fmt.Sprintf("expected text or json, got %q", c.Log.Format)}
	}
	if c.Bus.URL != "" {
		// One server or a comma-separated list of a cluster's servers.
		for _, one := range strings.Split(c.Bus.URL, ",") {
			u, err := url.Parse(strings.TrimSpace(one))
			if err != nil || (u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
				return &Error{Key: "bus.url", Problem: fmt.Sprintf("expected nats://host:port or a comma-separated list of them, got %q", c.Bus.URL)}
			}
		}
	} else if !c.Bus.Embedded {
		return &Error{Key: "bus.embedded", Problem: "is false but bus.url is empty: set bus.url to an external NATS server or leave the embedded one on"}
	}
	if c.Bus.Replicas < 1 || c.Bus.Replicas > 5 {
		return &Error{Key: "bus.replicas", Problem: fmt.Sprintf("must be between 1 and 5, got %d", c.Bus.Replicas)}
	}
	if c.Bus.Replicas > 1 && c.Bus.URL == "" {
		return &Error{Key: "bus.replicas", Problem: fmt.Sprintf("is %d but the embedded bus is one server: set bus.url to a NATS cluster of at least %d servers, or use 1", c.Bus.Replicas, c.Bus.Replicas)}
	}
	switch c.Role {
	case RoleAll:
	case RoleFrontend, RoleWriter:
		if c.Bus.URL == "" {
			return &Error{Key: "role", Problem: fmt.Sprintf("%s needs an external NATS cluster shared with the other nodes: set bus.url (the embedded bus is private to one process; for one binary use role: all)", c.Role)}
		}
	default:
		return &Error{Key: "role", Problem: fmt.Sprintf("expected all, frontend or writer, got %q", c.Role)}
	}
	if c.Bus.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Bus.Listen); err != nil {
			return &Error{Key: "bus.listen", Problem: fmt.Sprintf("expected host:port such as 127.0.0.1:4222, got %q", c.Bus.Listen)}
		}
	}
	if c.Bus.MaxStoreMB < 16 {
		return &Error{Key: "bus.max_store_mb", Problem: fmt.Sprintf("must be at least 16, got %d", c.Bus.MaxStoreMB)}
	}
	if c.Bus.MaxMemoryMB < 1 {
		return &Error{Key: "bus.max_memory_mb", Problem: fmt.Sprintf("must be at least 1, got %d", c.Bus.MaxMemoryMB)}
	}
	if c.Bus.DedupeWindow < time.Second {
		return &Error{Key: "bus.dedupe_window", Problem: "must be at least 1s"}
	}
	if c.Bus.MaxAge < c.Bus.DedupeWindow {
		return &Error{Key: "bus.max_age", Problem: "must not be shorter than bus.dedupe_window"}
	}
	if c.Ingest.AckFirst < 0 || c.Ingest.AckFirst > 5*time.Second {
		// The consumer redelivers what it holds unacknowledged for 10 s.
		return &Error{Key: "ingest.ack_first", Problem: "must be between 0s and 5s"}
	}
	if c.Profiles.WriteDelay < 0 || c.Profiles.WriteDelay > time.Minute {
		return &Error{Key: "profiles.write_delay", Problem: "must be between 0s and 1m"}
	}
	if c.Metrics.MaxDelay < 0 || c.Metrics.MaxDelay > time.Hour {
		return &Error{Key: "metrics.max_delay", Problem: "must be between 0s and 1h"}
	}
	if c.Ingest.MaxEventBytes < 1024 {
		return &Error{Key: "ingest.max_event_bytes", Problem: fmt.Sprintf("must be at least 1024, got %d", c.Ingest.MaxEventBytes)}
	}
	if c.Ingest.MaxBatchBytes < c.Ingest.MaxEventBytes {
		return &Error{Key: "ingest.max_batch_bytes", Problem: "must not be smaller than ingest.max_event_bytes"}
	}
	if c.Ingest.MaxWebhookKB < 1 {
		return &Error{Key: "ingest.max_webhook_kb", Problem: fmt.Sprintf("must be at least 1, got %d", c.Ingest.MaxWebhookKB)}
	}
	region := strings.ToUpper(c.Ingest.DefaultRegion)
	if phonenumbers.GetCountryCodeForRegion(region) == 0 {
		return &Error{Key: "ingest.default_region", Problem: fmt.Sprintf("expected a two-letter region code such as US or GB, got %q", c.Ingest.DefaultRegion)}
	}
	c.Ingest.DefaultRegion = region
	if err := validateQuietHours(c.Journeys.QuietHours); err != nil {
		return &Error{Key: "journeys.quiet_hours", Problem: err.Error()}
	}
	if c.Profiles.IdentityCap < 1 || c.Profiles.IdentityCap > 1000 {
		return &Error{Key: "profiles.identity_cap", Problem: "must be between 1 and 1000"}
	}
	if b := c.Profiles.BaseCurrency; b != "" && (len(b) != 3 || strings.ToUpper(b) != b) {
		return &Error{Key: "profiles.base_currency", Problem: "must be a 3-letter upper-case ISO currency code such as USD"}
	}
	for _, part := range strings.Split(c.Profiles.ExchangeRates, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if !ok || err != nil || f <= 0 || len(strings.TrimSpace(k)) != 3 {
			return &Error{Key: "profiles.exchange_rates", Problem: fmt.Sprintf("%q: expected CUR=rate pairs such as EUR=1.08,GBP=1.27", part)}
		}
	}
	for _, entry := range c.Profiles.Identity.Blocklist {
		if err := CheckBlocklistEntry(entry); err != nil {
			return &Error{Key: "profiles.identity.blocklist", Problem: err.Error()}
		}
	}
	if _, _, err := ParseFrequencyCap(c.Journeys.FrequencyCap); err != nil {
		return &Error{Key: "journeys.frequency_cap", Problem: err.Error()}
	}
	if err := validatePublicURL(c.PublicURL); err != nil {
		return &Error{Key: "public_url", Problem: err.Error()}
	}
	if _, err := ParseFrequencyCaps(c.Messaging.FrequencyCap); err != nil {
		return &Error{Key: "messaging.frequency_cap", Problem: err.Error()}
	}
	if _, _, err := ParseQuietHours(c.Messaging.QuietHours); err != nil {
		return &Error{Key: "messaging.quiet_hours", Problem: err.Error()}
	}
	if _, err := time.LoadLocation(c.Messaging.Timezone); err != nil || c.Messaging.Timezone == "" {
		return &Error{Key: "messaging.timezone", Problem: fmt.Sprintf("expected an IANA time zone such as Europe/London or UTC, got %q", c.Messaging.Timezone)}
	}
	return nil
}

// validatePublicURL accepts an absolute http(s) URL with a host and no
// query or fragment (paths are appended to it); empty means the default.
func validatePublicURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("expected an absolute http(s) URL without query such as https://shop.omni-shop.dev, got %q", s)
	}
	return nil
}

// PublicBaseURL is public_url without a trailing slash, or by default
// http://<http address> (0.0.0.0 and [::] become 127.0.0.1).
func (c *Config) PublicBaseURL() string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	host, port, err := net.SplitHostPort(c.HTTP)
	if err != nil {
		return "http://" + c.HTTP
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// PublicURLIsLoopback reports whether customers could not reach the
// public base URL (it names localhost or a loopback address): links in
// messages would not work, so the admin asks for public_url.
func (c *Config) PublicURLIsLoopback() bool {
	u, err := url.Parse(c.PublicBaseURL())
	if err != nil {
		return true
	}
	h := u.Hostname()
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// FrequencyCap is at most Count marketing sends within Period.
type FrequencyCap struct {
	Count  int
	Period time.Duration
}

// ParseFrequencyCaps reads entries like "2/24h" or "5/7d" (d = 24h).
func ParseFrequencyCaps(entries []string) ([]FrequencyCap, error) {
	var caps []FrequencyCap
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		n, d, ok := strings.Cut(e, "/")
		count, err := strconv.Atoi(strings.TrimSpace(n))
		var period time.Duration
		if ok && err == nil && count > 0 {
			d = strings.TrimSpace(d)
			if days, found := strings.CutSuffix(d, "d"); found {
				var k int
				if k, err = strconv.Atoi(days); err == nil && k > 0 {
					period = time.Duration(k) * 24 * time.Hour
				}
			} else if period, err = time.ParseDuration(d); err != nil {
				period = 0
			}
		}
		if period <= 0 {
			return nil, fmt.Errorf("%q: expected COUNT/PERIOD such as 2/24h or 5/7d", e)
		}
		caps = append(caps, FrequencyCap{Count: count, Period: period})
	}
	return caps, nil
}

// ParseQuietHours reads "HH:MM-HH:MM" into minutes after midnight; the
// window may wrap midnight (21:00-08:00). Empty means no quiet hours
// (from == to == -1).
func ParseQuietHours(s string) (from, to int, err error) {
	if strings.TrimSpace(s) == "" {
		return -1, -1, nil
	}
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	t1, err1 := time.Parse("15:04", strings.TrimSpace(a))
	t2, err2 := time.Parse("15:04", strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || t1.Equal(t2) {
		return 0, 0, fmt.Errorf("expected HH:MM-HH:MM such as 21:00-08:00, got %q", s)
	}
	return t1.Hour()*60 + t1.Minute(), t2.Hour()*60 + t2.Minute(), nil
}

func validateQuietHours(s string) error {
	if s == "" {
		return nil
	}
	from, to, ok := strings.Cut(s, "-")
	if ok {
		_, err1 := time.Parse("15:04", from)
		_, err2 := time.Parse("15:04", to)
		if err1 == nil && err2 == nil {
			return nil
		}
	}
	return fmt.Errorf("expected HH:MM-HH:MM such as 21:00-08:00, got %q", s)
}

// ParseFrequencyCap reads "N/duration", e.g. "3/24h": at most N marketing
// sends per profile within the duration. Empty means no cap.
func ParseFrequencyCap(s string) (int, time.Duration, error) {
	if s == "" {
		return 0, 0, nil
	}
	n, d, ok := strings.Cut(s, "/")
	var count int
	if ok {
		if _, err := fmt.Sscanf(n, "%d", &count); err == nil && count > 0 {
			if dur, err := time.ParseDuration(d); err == nil && dur > 0 {
				return count, dur, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("expected COUNT/DURATION such as 3/24h, got %q", s)
}

// SecretKeyPath is the file holding the connector secrets key:
// secret_key_file, or by default a file beside the data dir named after it
// (./omni_data → ./omni_data.key), outside what a backup of the data holds.
func (c *Config) SecretKeyPath() string {
	if c.SecretKeyFile != "" {
		return c.SecretKeyFile
	}
	dir := c.DataDir
	if abs, err := filepath.Abs(dir); err == nil && filepath.Clean(dir) == "." {
		dir = abs // "." has no name to put ".key" after
	}
	return filepath.Clean(dir) + ".key"
}

// inside reports whether path is dir or lies under it.
func inside(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// NATSStoreDir is where the embedded JetStream keeps its files.
func (c *Config) NATSStoreDir() string {
	if c.Bus.StoreDir != "" {
		return c.Bus.StoreDir
	}
	return filepath.Join(c.DataDir, "nats")
}

// CheckBlocklistEntry rejects an identity blocklist entry that can never
// match: an empty one, or a /regular expression/ that does not compile.
// The profiles module reads the entries (docs/profiles.md#junk-identifiers).
func CheckBlocklistEntry(entry string) error {
	e := strings.TrimSpace(entry)
	if e == "" {
		return fmt.Errorf("an entry is empty")
	}
	if len(e) > 300 {
		return fmt.Errorf("entry %.40q… is longer than 300 characters", e)
	}
	if len(e) >= 2 && strings.HasPrefix(e, "/") && strings.HasSuffix(e, "/") {
		if _, err := regexp.Compile(e[1 : len(e)-1]); err != nil {
			return fmt.Errorf("entry %q is not a valid regular expression: %v", e, err)
		}
	}
	return nil
}
