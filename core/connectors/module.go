// Package connectors is Omni's connector host: it discovers built-in and
// third-party connector plugins, runs and supervises them as subprocesses
// (hashicorp/go-plugin over gRPC), routes vendor webhooks to them, feeds
// them outbound messages from the OUTBOX stream and runs backfills.
package connectors

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	outboxwire "github.com/omni/omni/core/outbox"
	"github.com/omni/omni/plugins/sdk"
)

// Collection is the PocketBase collection of installed connectors.
const Collection = "connectors"

// Reserved keys in the connectors.<name> config section; everything else
// there is a setting handed to the connector.
const (
	// KeySHA256 pins an external plugin executable to a checksum.
	KeySHA256 = "sha256"
)

// Options tune the host; zero values get defaults.
type Options struct {
	// Command builds the command that runs a built-in connector. Default:
	// this executable with `plugin run NAME`.
	Command func(name string) (*exec.Cmd, error)
	// SendTimeout bounds one Send call (default 30s).
	SendTimeout time.Duration
	// WebhookTimeout bounds one HandleWebhook call (default 4s): the
	// vendor must get its answer (503 + Retry-After if need be) before it
	// gives up itself; Shopify waits 5s.
	WebhookTimeout time.Duration
	// HealthInterval between the connector's Health calls, which ask the
	// vendor; the answer is shown as the vendor state and never causes a
	// restart (default 10s).
	HealthInterval time.Duration
	// HealthTimeout bounds one Health call (default 10s).
	HealthTimeout time.Duration
	// LivenessInterval between liveness pings of the plugin process
	// (default 1s). LivenessMisses pings in a row that get no answer
	// within LivenessTimeout (default 2 and 2s) make the host kill and
	// restart the plugin: a hung process is replaced within about
	// LivenessInterval + LivenessMisses × LivenessTimeout (5s by default).
	LivenessInterval time.Duration
	LivenessTimeout  time.Duration
	LivenessMisses   int
	// ExitPoll is how often the process is checked for exit (default 100ms).
	ExitPoll time.Duration
	// MinBackoff and MaxBackoff bound restart delays (default 200ms, 30s).
	MinBackoff, MaxBackoff time.Duration
	// StartTimeout bounds the handshake (default 20s).
	StartTimeout time.Duration
	// SyncInterval is how often records are re-read to pick up changes made
	// by the CLI in another process (default 2s).
	SyncInterval time.Duration
	// GiveUpAfter is how long a message that keeps failing with retryable
	// errors is retried before it is recorded as message.failed (default 24h).
	GiveUpAfter time.Duration
	// MaxAckPending bounds the outbox messages delivered and not yet
	// acknowledged, across all connectors (default 1000).
	MaxAckPending int
	// Now is the clock of the give-up of held messages (default time.Now).
	Now func() time.Time
	// SendConcurrency is the number of concurrent sends (default 32).
	SendConcurrency int
	// SendsPerConnector caps one connector's concurrent sends (default 8).
	SendsPerConnector int
	// SDKSource holds Omni's go.mod, go.sum and plugins/sdk for `omni
	// plugin new`, which writes them into the new project (the SDK module
	// is on no proxy). main embeds them; nil means the command needs
	// --omni-source.
	SDKSource fs.FS
}

func (o *Options) defaults() {
	if o.Command == nil {
		o.Command = SelfCommand
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.SendTimeout, 30*time.Second)
	def(&o.WebhookTimeout, 4*time.Second)
	def(&o.HealthInterval, 10*time.Second)
	def(&o.HealthTimeout, 10*time.Second)
	def(&o.LivenessInterval, time.Second)
	def(&o.LivenessTimeout, 2*time.Second)
	if o.LivenessMisses <= 0 {
		o.LivenessMisses = 2
	}
	def(&o.ExitPoll, 100*time.Millisecond)
	def(&o.MinBackoff, 200*time.Millisecond)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.StartTimeout, 20*time.Second)
	def(&o.SyncInterval, 2*time.Second)
	def(&o.GiveUpAfter, 24*time.Hour)
	if o.MaxAckPending <= 0 {
		o.MaxAckPending = 1000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SendConcurrency <= 0 {
		o.SendConcurrency = 32
	}
	if o.SendsPerConnector <= 0 {
		o.SendsPerConnector = 8
	}
}

// SelfCommand runs a built-in connector as `<this executable> plugin run NAME`.
func SelfCommand(name string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	return exec.Command(exe, "plugin", "run", name), nil
}

// Module is the connector host, an app.Module.
type Module struct {
	opts   Options
	o      *app.Omni
	app    core.App
	log    *slog.Logger
	cfg    *config.Config
	sealer *Sealer
	norm   events.Normalizer

	mu        sync.RWMutex
	instances map[string]*instance
	applied   map[string]string // name → enabled+config fingerprint last acted on

	stopOnce sync.Once
	syncMu   sync.Mutex // one sync at a time (API calls and the loop)
	outbox   *outbox
	erasures *erasures
	relayed  *relayed
	// erasureConsumer is created in Init, consumed from Start.
	erasureConsumer jetstream.Consumer
	backfills       *backfills
	stopSync        chan struct{}
	syncDone        chan struct{}
}

// New creates the module.
func New(opts Options) *Module {
	opts.defaults()
	return &Module{opts: opts, instances: map[string]*instance{}, applied: map[string]string{}}
}

func (m *Module) Name() string { return "connectors" }

// Init opens the secrets, discovers connectors and creates the outbox and
// erasure consumers, before anything publishes.
func (m *Module) Init(s *app.Setup) error {
	o := s.Omni
	m.o, m.app, m.cfg = o, o.PB, o.Config
	m.log = o.Log.With("component", "connectors")
	m.norm = events.Normalizer{DefaultRegion: o.Config.Ingest.DefaultRegion}
	var err error
	if m.sealer, err = OpenSealer(o.PB, o.Config, m.log); err != nil {
		return err
	}
	// The key lives outside data_dir; should an old one reappear there
	// (say, from restoring an old backup), backups still leave it out.
	o.PB.OnBackupCreate().BindFunc(func(e *core.BackupEvent) error {
		e.Exclude = append(e.Exclude, LegacyKeyFile)
		return e.Next()
	})
	if err := m.discover(); err != nil {
		return err
	}
	m.backfills = newBackfills(m)
	m.outbox = newOutbox(m)
	if err := m.outbox.create(s); err != nil {
		return err
	}
	m.erasures = &erasures{m: m}
	if m.erasureConsumer, err = m.erasures.create(s); err != nil {
		return err
	}
	m.relayed = newRelayed(m)
	if err := m.relayed.create(s); err != nil {
		return err
	}
	s.ReportHealth(m.health)
	return nil
}

// Start registers the routes and launches the enabled connectors, their
// sends and erasure requests.
func (m *Module) Start(ctx context.Context, se *core.ServeEvent) error {
	o := m.o
	// Even superusers see settings only through /api/v1/connectors, masked.
	o.PB.OnRecordEnrich(Collection).BindFunc(func(e *core.RecordEnrichEvent) error {
		e.Record.Set("config", MaskedConfig(e.Record, schemaOf(e.Record)))
		return e.Next()
	})
	m.registerWebhooks(se)
	m.registerAPI(se)
	m.bindStaffMail(se)
	m.sync()
	if err := m.outbox.start(); err != nil {
		return err
	}
	if err := m.erasures.start(m.erasureConsumer); err != nil {
		return err
	}
	if err := m.relayed.start(); err != nil {
		return err
	}
	m.stopSync, m.syncDone = make(chan struct{}), make(chan struct{})
	go m.syncLoop()
	return nil
}

// Stop stops sends, backfills and every plugin; calls after the first do
// nothing.
func (m *Module) Stop(ctx context.Context) {
	m.stopOnce.Do(func() { m.stop() })
}

func (m *Module) stop() {
	if m.stopSync != nil {
		close(m.stopSync)
		<-m.syncDone
	}
	if m.erasures != nil {
		m.erasures.stop()
	}
	if m.relayed != nil {
		m.relayed.stop()
	}
	if m.outbox != nil {
		m.outbox.stop()
	}
	if m.backfills != nil {
		m.backfills.stopAll()
	}
	m.mu.RLock()
	insts := make([]*instance, 0, len(m.instances))
	for _, i := range m.instances {
		insts = append(insts, i)
	}
	m.mu.RUnlock()
	var wg sync.WaitGroup
	for _, i := range insts {
		wg.Add(1)
		go func() { defer wg.Done(); i.shutdown() }()
	}
	wg.Wait()
}

// Installed is one connector found on this machine.
type Installed struct {
	Name string
	Kind string // builtin | external
	Path string
}

// Discover lists built-in connectors and executables in pluginsDir.
func Discover(pluginsDir string) ([]Installed, error) {
	var out []Installed
	seen := map[string]bool{}
	for _, n := range BuiltinNames() {
		out = append(out, Installed{Name: n, Kind: "builtin"})
		seen[n] = true
	}
	if pluginsDir == "" {
		return out, nil
	}
	entries, err := os.ReadDir(pluginsDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return out, nil
		}
		return nil, fmt.Errorf("plugins_dir: %w", err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		name := strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
		name = strings.TrimPrefix(name, "omni-connector-")
		if !validName(name) || seen[name] {
			continue
		}
		seen[name] = true
		abs, _ := filepath.Abs(filepath.Join(pluginsDir, e.Name()))
		out = append(out, Installed{Name: name, Kind: "external", Path: abs})
	}
	return out, nil
}

func validName(n string) bool { return outboxwire.ValidName(n) && n != outboxwire.Webchat }

// discover makes sure every installed connector has a record and an instance.
func (m *Module) discover() error {
	found, err := Discover(m.cfg.PluginsDir)
	if err != nil {
		return err
	}
	for _, f := range found {
		if _, err := EnsureRecord(m.app, f); err != nil {
			return err
		}
		m.mu.Lock()
		if _, ok := m.instances[f.Name]; !ok {
			m.instances[f.Name] = newInstance(m, f.Name, f.Kind, f.Path)
		}
		m.mu.Unlock()
	}
	return nil
}

// EnsureRecord finds or creates the connectors record of f.
func EnsureRecord(a core.App, f Installed) (*core.Record, error) {
	rec, err := a.FindFirstRecordByData(Collection, "name", f.Name)
	if err == nil {
		if rec.GetString("kind") != f.Kind || rec.GetString("path") != f.Path {
			rec.Set("kind", f.Kind)
			rec.Set("path", f.Path)
			if err := a.Save(rec); err != nil {
				return nil, err
			}
		}
		return rec, nil
	}
	coll, err := a.FindCollectionByNameOrId(Collection)
	if err != nil {
		return nil, err
	}
	rec = core.NewRecord(coll)
	rec.Set("name", f.Name)
	rec.Set("kind", f.Kind)
	rec.Set("path", f.Path)
	rec.Set("enabled", false)
	rec.Set("config", map[string]string{})
	rec.Set("state", StateDisabled)
	rec.Set("backfill_state", "idle")
	if err := a.Save(rec); err != nil {
		return nil, fmt.Errorf("create connector record %s: %w", f.Name, err)
	}
	return rec, nil
}

func (m *Module) instance(name string) *instance {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.instances[name]
}

func (m *Module) names() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.instances))
	for n := range m.instances {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// command builds the plugin command and the pinned checksum, if any.
func (m *Module) command(i *instance) (*exec.Cmd, []byte, error) {
	var sum []byte
	if pin := m.fileConfig(i.name)[KeySHA256]; pin != "" {
		b, err := hex.DecodeString(strings.TrimSpace(pin))
		if err != nil || len(b) != 32 {
			return nil, nil, fmt.Errorf("connectors.%s.sha256 must be 64 hex characters", i.name)
		}
		sum = b
	}
	if i.kind == "external" {
		return exec.Command(i.path), sum, nil
	}
	cmd, err := m.opts.Command(i.name)
	return cmd, sum, err
}

// fileConfig is the connectors.<name> section of the config file, as strings.
func (m *Module) fileConfig(name string) map[string]string {
	return FileConfig(m.cfg, name)
}

// FileConfig returns connectors.<name> from the configuration as strings.
func FileConfig(cfg *config.Config, name string) map[string]string {
	out := map[string]string{}
	for k, v := range cfg.Connectors[name] {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// loadConfig returns the decrypted settings of a connector (record values
// over config-file values) and the secret values in it.
func (m *Module) loadConfig(name string) (sdk.Config, []string, error) {
	rec, err := m.app.FindFirstRecordByData(Collection, "name", name)
	if err != nil {
		return nil, nil, err
	}
	return DecryptConfig(rec, m.sealer, m.fileConfig(name))
}

// DecryptConfig merges file settings with the record's (record wins) and
// decrypts secret values.
func DecryptConfig(rec *core.Record, s *Sealer, file map[string]string) (sdk.Config, []string, error) {
	cfg := sdk.Config{}
	for k, v := range file {
		if k != KeySHA256 {
			cfg[k] = v
		}
	}
	stored := storedConfig(rec)
	var secrets []string
	for k, v := range stored {
		plain, err := s.Open(v, rec.GetString("name")+"."+k)
		if err != nil {
			return nil, nil, fmt.Errorf("config %s: %w", k, err)
		}
		if IsSealed(v) {
			secrets = append(secrets, plain)
		}
		cfg[k] = plain
	}
	for _, f := range schemaOf(rec) {
		if f.Secret && cfg[f.Name] != "" && !IsSealed(stored[f.Name]) {
			secrets = append(secrets, cfg[f.Name])
		}
		if cfg[f.Name] == "" && f.Default != "" {
			cfg[f.Name] = f.Default
		}
	}
	return cfg, secrets, nil
}

func storedConfig(rec *core.Record) map[string]string {
	out := map[string]string{}
	raw := rec.Get("config")
	var b []byte
	switch v := raw.(type) {
	case types.JSONRaw:
		b = v
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	_ = json.Unmarshal(b, &out)
	return out
}

func schemaOf(rec *core.Record) []sdk.ConfigField {
	var out []sdk.ConfigField
	b, _ := json.Marshal(rec.Get("schema"))
	_ = json.Unmarshal(b, &out)
	return out
}

func capabilitiesOf(rec *core.Record) []string {
	var out []string
	b, _ := json.Marshal(rec.Get("capabilities"))
	_ = json.Unmarshal(b, &out)
	return out
}

// updateFields writes some fields of a connector record with one UPDATE,
// so background state changes never overwrite settings saved meanwhile by
// an API call or the CLI (a full record Save would).
func updateFields(a core.App, name string, fields map[string]any) error {
	params := dbx.Params{}
	for k, v := range fields {
		switch v.(type) {
		case string, int, int64, float64, bool:
			params[k] = v
		default:
			b, _ := json.Marshal(v)
			params[k] = string(b)
		}
	}
	params["updated"] = types.NowDateTime().String()
	_, err := a.DB().Update(Collection, params, dbx.HashExp{"name": name}).Execute()
	return err
}

// persistState writes a connector's state to its record.
func (m *Module) persistState(name string, st Status) {
	err := updateFields(m.app, name, map[string]any{"state": st.stateText(), "last_error": st.LastError, "state_changed": types.NowDateTime().String()})
	if err != nil {
		m.log.Warn("could not save connector state", "connector", name, "error", err)
	}
}

func (m *Module) saveDescription(name string, d *sdk.Description) {
	if d.Config == nil {
		d.Config = []sdk.ConfigField{}
	}
	if d.Capabilities == nil {
		d.Capabilities = []string{}
	}
	err := updateFields(m.app, name, map[string]any{"schema": d.Config, "capabilities": d.Capabilities, "version": d.Version})
	if err != nil {
		m.log.Warn("could not save connector description", "connector", name, "error", err)
	}
}

// onRunning resumes an interrupted or requested backfill.
func (m *Module) onRunning(i *instance) {
	rec, err := m.app.FindFirstRecordByData(Collection, "name", i.name)
	if err != nil {
		return
	}
	switch rec.GetString("backfill_state") {
	case "running", "requested":
		m.backfills.start(i.name)
	}
}

// sync picks up new plugin files, then starts, stops or reconfigures
// instances to match the records.
func (m *Module) sync() {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	if err := m.discover(); err != nil {
		m.log.Warn("could not scan for connectors", "error", err)
	}
	recs, err := m.app.FindAllRecords(Collection)
	if err != nil {
		m.log.Warn("could not read connectors", "error", err)
		return
	}
	for _, rec := range recs {
		name := rec.GetString("name")
		i := m.instance(name)
		if i == nil {
			if st := rec.GetString("state"); st != "not installed" {
				_ = updateFields(m.app, name, map[string]any{"state": "not installed"})
			}
			continue
		}
		enabled := rec.GetBool("enabled")
		cfgJSON, _ := json.Marshal(rec.Get("config"))
		fp := fmt.Sprintf("%t|%s", enabled, cfgJSON)
		m.mu.Lock()
		prev, seen := m.applied[name]
		m.applied[name] = fp
		m.mu.Unlock()
		switch {
		case !enabled && (!seen || strings.HasPrefix(prev, "true")):
			i.shutdown()
			i.setState(StateDisabled, "")
		case enabled && (!seen || strings.HasPrefix(prev, "false")):
			i.start()
		case enabled && prev != fp:
			i.poke()
		}
		if enabled && rec.GetString("backfill_state") == "requested" && !m.backfills.running(name) {
			if _, err := i.ready(); err == nil {
				m.backfills.start(name)
			}
		}
	}
	if m.relayed != nil {
		m.relayed.publishStates(recs) // for the front ends
	}
}

func (m *Module) syncLoop() {
	defer close(m.syncDone)
	t := time.NewTicker(m.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stopSync:
			return
		case <-t.C:
			m.sync()
			// Parked messages an owner asked to retry, possibly from
			// another process (the CLI).
			m.outbox.redrive()
			// Held messages of connectors running again, or held too long.
			m.outbox.release()
			m.backfills.redrive()
			m.relayed.redrive()
		}
	}
}

// health is the connectors section of /api/v1/health. A failed connector
// or an unreachable vendor does not make the node unhealthy (the rest of
// Omni keeps working), but it is degraded, with the reason.
func (m *Module) health(ctx context.Context) api.Component {
	out := map[string]any{}
	var problems []string
	held, _ := m.HeldCounts()
	for _, n := range m.names() {
		st := m.instance(n).status()
		c := map[string]any{"state": st.stateText(), "last_error": st.LastError, "restarts": st.Restarts}
		// Informational: a connector being fixed is not a node problem,
		// but its queued messages are given up after GiveUpAfter.
		if held[n] > 0 {
			c["held"], c["held_note"] = held[n], heldNote(n, held[n])
		}
		if st.Vendor != VendorUnknown {
			c["vendor"] = st.Vendor
		}
		if st.VendorError != "" {
			c["vendor_error"] = st.VendorError
		}
		out[n] = c
		switch {
		case st.State == StateFailed || st.State == StateRestarting:
			problems = append(problems, n+" is "+st.stateText())
		case st.Vendor == VendorUnreachable:
			problems = append(problems, n+"'s vendor API is unreachable")
		}
	}
	comp := api.Component{Name: "connectors", Status: map[string]any{"degraded": len(problems) > 0, "connectors": out}}
	if len(problems) > 0 {
		comp.Level, comp.Reason = api.Degraded, strings.Join(problems, "; ")
	}
	return comp
}

// host is what a running connector calls back into.
type host struct{ i *instance }

func (h *host) Emit(ctx context.Context, evs []sdk.Event) error {
	out, err := h.i.m.convert(h.i.name, evs)
	if err != nil {
		return err
	}
	for _, err := range ingest.Publish(ctx, h.i.m.o.Bus, out) {
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *host) Log(level, msg string, keyvals ...any) {
	for j := range keyvals {
		keyvals[j] = h.i.red.redact(fmt.Sprint(keyvals[j]))
	}
	if len(keyvals)%2 == 1 {
		keyvals = append(keyvals, "")
	}
	h.i.log.Log(context.Background(), slogLevel(level), h.i.red.redact(msg), keyvals...)
}

// convert turns connector events into validated, normalised Omni events;
// the first invalid event fails the whole call.
func (m *Module) convert(source string, in []sdk.Event) ([]*events.Event, error) {
	now := time.Now().UTC()
	out := make([]*events.Event, 0, len(in))
	for idx, e := range in {
		ev, err := m.convertOne(source, e, now)
		if err != nil {
			return nil, fmt.Errorf("event %d (%s): %w", idx, e.ID, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// convertOne turns one connector event into a validated, normalised Omni
// event; the error names the field that fails (*events.FieldError).
func (m *Module) convertOne(source string, e sdk.Event, now time.Time) (*events.Event, error) {
	ev := ToEvent(source, e, now)
	m.norm.Normalize(ev)
	if err := ev.Validate(now); err != nil {
		return nil, err
	}
	if strings.HasPrefix(ev.ID, events.TrackingIDPrefix) {
		// Reserved for tracking-API ids, so a connector's id never
		// dedupes against a source's messages (or the reverse).
		return nil, &events.FieldError{Field: "id", Message: "must not start with " + events.TrackingIDPrefix}
	}
	return ev, nil
}

// ToEvent converts one connector event; source is the connector name.
func ToEvent(source string, e sdk.Event, received time.Time) *events.Event {
	ev := &events.Event{
		ID: e.ID, Type: e.Type, Name: e.Name, Source: source,
		OccurredAt: e.OccurredAt.UTC(), ReceivedAt: received,
		Identities: events.Identities{}, Properties: e.Properties,
		Context: events.Context{Channel: e.Context.Channel, JourneyRun: e.Context.JourneyRun, Extra: e.Context.Extra},
	}
	for k, v := range e.Identities {
		if v != "" {
			ev.Identities[k] = v
		}
	}
	if c := e.Context.Campaign; c != nil {
		ev.Context.Campaign = &events.Campaign{Source: c.Source, Medium: c.Medium, Name: c.Name, Term: c.Term, Content: c.Content}
	}
	if p := e.Context.Page; p != nil {
		ev.Context.Page = &events.Page{URL: p.URL, Path: p.Path, Title: p.Title, Referrer: p.Referrer, Search: p.Search}
	}
	return ev
}
