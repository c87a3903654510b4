package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// inDir runs the test in a fresh working directory so no stray omni.yaml
// is picked up.
func inDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	inDir(t)
	cfg, err := Load(flags(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP != "127.0.0.1:8090" || cfg.DataDir != "./omni_data" || !cfg.Bus.Embedded || cfg.Ingest.MaxBatchBytes != 500*1024 {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
	if got := cfg.NATSStoreDir(); got != filepath.Join("omni_data", "nats") {
		t.Fatalf("store dir = %q", got)
	}
}

func TestPrecedenceFlagOverEnvOverFileOverDefault(t *testing.T) {
	dir := inDir(t)
	write(t, dir, "omni.yaml", "http: 127.0.0.1:1111\ndata_dir: /from/file\nlog:\n  level: warn\nbus:\n  max_store_mb: 64\n")

	// file over default
	cfg, err := Load(flags(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP != "127.0.0.1:1111" || cfg.Log.Level != "warn" || cfg.Bus.MaxStoreMB != 64 {
		t.Fatalf("file not applied: %+v", cfg)
	}
	if cfg.Log.Format != "text" {
		t.Fatalf("default lost: %q", cfg.Log.Format)
	}

	// env over file (nested key with _)
	t.Setenv("OMNI_HTTP", "127.0.0.1:2222")
	t.Setenv("OMNI_BUS_MAX_STORE_MB", "128")
	cfg, err = Load(flags(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP != "127.0.0.1:2222" || cfg.Bus.MaxStoreMB != 128 || cfg.DataDir != "/from/file" {
		t.Fatalf("env not applied over file: %+v", cfg)
	}

	// flag over env
	cfg, err = Load(flags(t, "--http", "127.0.0.1:3333", "--data-dir", "/from/flag"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP != "127.0.0.1:3333" || cfg.DataDir != "/from/flag" {
		t.Fatalf("flag not applied over env: %+v", cfg)
	}
}

func TestExplicitConfigFile(t *testing.T) {
	dir := inDir(t)
	p := write(t, dir, "custom.yaml", "durability: strict\n")
	cfg, err := Load(flags(t, "--config", p))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Durability != "strict" || cfg.File != p {
		t.Fatalf("explicit file not used: %+v", cfg)
	}
	_, err = Load(flags(t, "--config", filepath.Join(dir, "missing.yaml")))
	assertKeyErr(t, err, "--config", "cannot read")
}

func assertKeyErr(t *testing.T, err error, key, problem string) {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want config error for %s, got %v", key, err)
	}
	if ce.Key != key || !strings.Contains(ce.Problem, problem) {
		t.Fatalf("want %s: …%s…, got %v", key, problem, err)
	}
	if !strings.Contains(err.Error(), key) {
		t.Fatalf("message does not name the key: %v", err)
	}
}

func TestUnknownKeys(t *testing.T) {
	dir := inDir(t)
	write(t, dir, "omni.yaml", "bus:\n  embeded: true\n")
	_, err := Load(flags(t))
	assertKeyErr(t, err, "bus.embeded", "unknown key")

	os.Remove(filepath.Join(dir, "omni.yaml"))
	t.Setenv("OMNI_HTTP_ADDR", "x")
	_, err = Load(flags(t))
	assertKeyErr(t, err, "OMNI_HTTP_ADDR", "unknown environment variable")
}

// OMNI_ variables that are read outside the configuration (the scaffold's
// checkout, the tests' fixtures) are not mistaken for typos; a near miss
// of one still is.
func TestNonConfigEnvIsNotRejected(t *testing.T) {
	inDir(t)
	t.Setenv("OMNI_SOURCE", "/src/omni")
	t.Setenv("OMNI_FIXTURES_DIR", "/src/shared/fixtures")
	if _, err := Load(flags(t)); err != nil {
		t.Fatalf("OMNI_SOURCE / OMNI_FIXTURES_DIR rejected: %v", err)
	}
	t.Setenv("OMNI_FIXTURE_DIR", "/src/shared/fixtures")
	_, err := Load(flags(t))
	assertKeyErr(t, err, "OMNI_FIXTURE_DIR", "unknown environment variable")
}

func TestConnectorSettingsAreFreeForm(t *testing.T) {
	dir := inDir(t)
	write(t, dir, "omni.yaml", "connectors:\n  shopify:\n    shop: demo.myshopify.com\n    api_secret: s3cret\n")
	cfg, err := Load(flags(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Connectors["shopify"]["shop"] != "demo.myshopify.com" {
		t.Fatalf("connector settings lost: %+v", cfg.Connectors)
	}
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "s3cret") || !strings.Contains(out, "demo.myshopify.com") {
		t.Fatalf("secret not masked or setting missing:\n%s", out)
	}
}

func TestBadValues(t *testing.T) {
	cases := []struct {
		env, value, key, problem string
	}{
		{"OMNI_HTTP", "nope", "http", "host:port"},
		{"OMNI_BUS_MAX_STORE_MB", "lots", "bus.max_store_mb", "whole number"},
		{"OMNI_BUS_MAX_STORE_MB", "4", "bus.max_store_mb", "at least 16"},
		{"OMNI_BUS_EMBEDDED", "maybe", "bus.embedded", "true or false"},
		{"OMNI_BUS_URL", "http://x", "bus.url", "nats://"},
		{"OMNI_BUS_DEDUPE_WINDOW", "soon", "bus.dedupe_window", "duration"},
		{"OMNI_LOG_LEVEL", "loud", "log.level", "debug, info"},
		{"OMNI_LOG_FORMAT", "xml", "log.format", "text or json"},
		{"OMNI_DURABILITY", "always", "durability", "normal or strict"},
		{"OMNI_ROLE", "reader", "role", "all, frontend or writer"},
		{"OMNI_ROLE", "frontend", "role", "set bus.url"},
		{"OMNI_ROLE", "writer", "role", "set bus.url"},
		{"OMNI_BUS_REPLICAS", "3", "bus.replicas", "embedded bus is one server"},
		{"OMNI_BUS_REPLICAS", "0", "bus.replicas", "between 1 and 5"},
		{"OMNI_BUS_URL", "nats://a:4222,http://b", "bus.url", "comma-separated"},
		{"OMNI_INGEST_DEFAULT_REGION", "XX", "ingest.default_region", "region code"},
		{"OMNI_INGEST_ACK_FIRST", "10s", "ingest.ack_first", "between 0s and 5s"},
		{"OMNI_INGEST_ACK_FIRST", "soon", "ingest.ack_first", "duration"},
		{"OMNI_JOURNEYS_QUIET_HOURS", "night", "journeys.quiet_hours", "HH:MM-HH:MM"},
		{"OMNI_JOURNEYS_FREQUENCY_CAP", "many", "journeys.frequency_cap", "COUNT/DURATION"},
		{"OMNI_PUBLIC_URL", "shop.omni-shop.dev", "public_url", "absolute http(s) URL"},
		{"OMNI_PUBLIC_URL", "ftp://shop.omni-shop.dev", "public_url", "absolute http(s) URL"},
		{"OMNI_PUBLIC_URL", "https://shop.omni-shop.dev/?a=1", "public_url", "without query"},
		{"OMNI_MESSAGING_FREQUENCY_CAP", "2/24h,lots", "messaging.frequency_cap", "COUNT/PERIOD"},
		{"OMNI_MESSAGING_QUIET_HOURS", "21-8", "messaging.quiet_hours", "HH:MM-HH:MM"},
		{"OMNI_MESSAGING_TIMEZONE", "Mars/Olympus", "messaging.timezone", "IANA time zone"},
	}
	for _, c := range cases {
		t.Run(c.env+"="+c.value, func(t *testing.T) {
			inDir(t)
			t.Setenv(c.env, c.value)
			_, err := Load(flags(t))
			assertKeyErr(t, err, c.key, c.problem)
		})
	}
}

func TestEmbeddedOffNeedsURL(t *testing.T) {
	inDir(t)
	t.Setenv("OMNI_BUS_EMBEDDED", "false")
	_, err := Load(flags(t))
	assertKeyErr(t, err, "bus.embedded", "bus.url")
	t.Setenv("OMNI_BUS_URL", "nats://10.0.0.1:4222")
	cfg, err := Load(flags(t))
	if err != nil || cfg.Bus.URL != "nats://10.0.0.1:4222" {
		t.Fatalf("external bus: %v %+v", err, cfg)
	}
}

// A front end and a writer share an external cluster, listed by any of its
// servers; its streams may be replicated.
func TestRolesOnACluster(t *testing.T) {
	inDir(t)
	t.Setenv("OMNI_ROLE", "frontend")
	t.Setenv("OMNI_BUS_URL", "nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://127.0.0.1:4224")
	t.Setenv("OMNI_BUS_REPLICAS", "3")
	cfg, err := Load(flags(t))
	if err != nil || cfg.Role != RoleFrontend || cfg.Bus.Replicas != 3 {
		t.Fatalf("front end on a cluster: %v %+v", err, cfg)
	}
	if Default().Role != RoleAll || Default().Bus.Replicas != 1 {
		t.Fatalf("defaults: role %q replicas %d", Default().Role, Default().Bus.Replicas)
	}
}

func TestExampleFileIsValidAndComplete(t *testing.T) {
	b, err := os.ReadFile("omni.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := inDir(t)
	p := write(t, dir, "omni.yaml", string(b))
	if _, err := Load(flags(t, "--config", p)); err != nil {
		t.Fatalf("example config does not load: %v", err)
	}
	for _, k := range KnownKeys() {
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(b), leaf+":") {
			t.Errorf("example does not document %s", k)
		}
	}
}

// The key that decrypts connector secrets must live outside data_dir, which
// is what PocketBase's backups zip.
func TestSecretKeyFileOutsideDataDir(t *testing.T) {
	dir := inDir(t)
	cfg, err := Load(flags(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.SecretKeyPath(); got != "omni_data.key" {
		t.Errorf("default key file = %q, want omni_data.key beside the data dir", got)
	}
	t.Setenv("OMNI_DATA_DIR", ".")
	if cfg, err = Load(flags(t)); err != nil || cfg.SecretKeyPath() != dir+".key" {
		t.Errorf("data_dir . : key %q, %v; want %s.key", cfg.SecretKeyPath(), err, dir)
	}

	t.Setenv("OMNI_DATA_DIR", "/srv/omni/data")
	for _, inside := range []string{"/srv/omni/data/secret.key", "/srv/omni/data/sub/k", "/srv/omni/data"} {
		t.Setenv("OMNI_SECRET_KEY_FILE", inside)
		_, err := Load(flags(t))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != "secret_key_file" || !strings.Contains(err.Error(), "inside data_dir") {
			t.Errorf("secret_key_file %s: %v", inside, err)
		}
	}
	t.Setenv("OMNI_SECRET_KEY_FILE", "/srv/omni/data-keys/secret.key")
	cfg, err = Load(flags(t))
	if err != nil || cfg.SecretKeyPath() != "/srv/omni/data-keys/secret.key" {
		t.Fatalf("outside: %q %v", cfg.SecretKeyPath(), err)
	}
	// A path, not a secret: config print shows it.
	out, err := cfg.YAML()
	if err != nil || !strings.Contains(out, "secret_key_file: /srv/omni/data-keys/secret.key") {
		t.Errorf("config print:\n%s", out)
	}
}

// The identity blocklist is a list in the file (numbers such as -1 read as
// text), comma-separated in the environment, and a bad regular expression
// is refused at start naming the key.
func TestIdentityBlocklist(t *testing.T) {
	dir := inDir(t)
	cfg, err := Load(flags(t))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Profiles.Identity.DefaultBlocklist || len(cfg.Profiles.Identity.Blocklist) != 0 {
		t.Fatalf("defaults: %+v", cfg.Profiles.Identity)
	}
	write(t, dir, "omni.yaml", "profiles:\n  identity:\n    blocklist: [\"+44 20 7946 0000\", -1, \"/^guest-[0-9]+$/\"]\n    default_blocklist: false\n")
	cfg, err = Load(flags(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Profiles.Identity.Blocklist, "|"); got != "+44 20 7946 0000|-1|/^guest-[0-9]+$/" || cfg.Profiles.Identity.DefaultBlocklist {
		t.Fatalf("from file: %q %+v", got, cfg.Profiles.Identity)
	}
	t.Setenv("OMNI_PROFILES_IDENTITY_BLOCKLIST", "front@shop.com,noreply@*")
	cfg, err = Load(flags(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Profiles.Identity.Blocklist, "|"); got != "front@shop.com|noreply@*" {
		t.Fatalf("from env: %q", got)
	}
	t.Setenv("OMNI_PROFILES_IDENTITY_BLOCKLIST", "/guest-(/")
	_, err = Load(flags(t))
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "profiles.identity.blocklist" || !strings.Contains(err.Error(), "regular expression") {
		t.Fatalf("bad regexp: %v", err)
	}
}

func TestPublicURLDefaultsToTheHTTPAddressAndFlagOverrides(t *testing.T) {
	inDir(t)
	t.Setenv("OMNI_HTTP", "0.0.0.0:9000")
	cfg, err := Load(flags(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.PublicBaseURL(); got != "http://127.0.0.1:9000" || !cfg.PublicURLIsLoopback() {
		t.Fatalf("default public URL %q (loopback %v), want http://127.0.0.1:9000 (loopback)", got, cfg.PublicURLIsLoopback())
	}
	t.Setenv("OMNI_PUBLIC_URL", "https://env.omni-shop.dev")
	cfg, err = Load(flags(t, "--public-url", "https://shop.omni-shop.dev/"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.PublicBaseURL(); got != "https://shop.omni-shop.dev" || cfg.PublicURLIsLoopback() {
		t.Fatalf("public URL %q (loopback %v), want the flag's, without the trailing slash", got, cfg.PublicURLIsLoopback())
	}
}

func TestMessagingCapsReadDaysAndLists(t *testing.T) {
	inDir(t)
	t.Setenv("OMNI_MESSAGING_FREQUENCY_CAP", "1/12h,4/3d")
	cfg, err := Load(flags(t))
	if err != nil {
		t.Fatal(err)
	}
	caps, err := ParseFrequencyCaps(cfg.Messaging.FrequencyCap)
	if err != nil || len(caps) != 2 || caps[0] != (FrequencyCap{1, 12 * time.Hour}) || caps[1] != (FrequencyCap{4, 72 * time.Hour}) {
		t.Fatalf("caps %v %v", caps, err)
	}
	from, to, err := ParseQuietHours("21:30-07:15")
	if err != nil || from != 21*60+30 || to != 7*60+15 {
		t.Fatalf("quiet hours %d %d %v", from, to, err)
	}
}
