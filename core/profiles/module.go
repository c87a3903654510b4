// Package profiles resolves every stored event to one profile per person
// (identity graph with guarded merges), keeps computed traits, the consent
// ledger and live segment membership, and serves search, timeline and GDPR
// export/erase. See docs/profiles.md.
package profiles

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	validation "github.com/go-ozzo/ozzo-validation/v4"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/memtune"
	"github.com/omni/omni/core/relay"
	"github.com/omni/omni/core/store"
)

// Consent statuses.
const (
	ConsentSubscribed   = "subscribed"
	ConsentUnsubscribed = "unsubscribed"
)

func validConsentChannel(ch string) bool {
	return ch == events.ChannelEmail || ch == events.ChannelSMS || ch == events.ChannelWhatsApp
}

// Options configure the module; zero values take the configuration file's
// settings (profiles.*) or the documented defaults.
type Options struct {
	// Now is the clock (tests inject one); default time.Now.
	Now func() time.Time
	// IdentityCap bounds identities of one multi-valued kind per profile.
	IdentityCap int
	// Currency sets the base currency and exchange rates.
	Currency *Currency
	// Interval of the scheduled re-evaluation (default 5m; <0 disables).
	Interval time.Duration
	// WriteDelay, when not zero, replaces profiles.write_delay: how long
	// a change of the columns events derive may wait before the row is
	// written (behind.go); negative: none waits.
	WriteDelay time.Duration
	// Observe, when set, is told how long each step took: "resolve" (one
	// event: identities, merges, traits), "merge" (one merge),
	// "resolve-batch" (one whole BeforeInsert), "flush" (its writing of the
	// changed profiles), "segments-batch" (one whole ProcessBatch). Used by
	// bench/profiles and BenchmarkBeforeInsert.
	Observe func(step string, d time.Duration)
}

// Module is the profiles app.Module and eventstore.Processor.
type Module struct {
	opts        Options
	now         func() time.Time
	identityCap int
	currency    Currency     // guarded by curMu once running (currency.go)
	base        BaseCurrency // which base currency is in force, and why
	curMu       sync.RWMutex
	adopted     *BaseCurrency // adopted by the batch in progress (cacheMu)

	app  core.App
	bus  *bus.Bus
	log  *slog.Logger
	segs segmentCache
	tomb tombstones

	defaultRegion  string
	identity       config.IdentityConfig
	fileConnectors map[string]map[string]any // omni.yaml connectors.* (shop identifiers)
	block          atomic.Pointer[blocklist]

	pending []*events.Event // emits of the batch being stored
	// inflight is the batch between BeforeInsert and ProcessBatch.
	inflight *inflight
	cacheMu  sync.Mutex // taken inside a transaction, never around one
	cache    resolveCache
	// behind holds the rows whose derived columns wait to be written
	// (behind.go), for up to delay; noDefer is set once stopping.
	behind  behindSet
	delay   time.Duration
	noDefer bool
	// heldBack and rowsWritten count, since start, the changes left
	// waiting and the profile rows written (RowWrites, health);
	// waitingNow is len(behind.rows) as last seen under cacheMu, so that
	// health never waits for an events batch to read it.
	heldBack, rowsWritten, waitingNow atomic.Int64
	// writing is the events transaction between a BeforeInsert that
	// succeeded and its commit (or failure).
	writing core.App
	// unIdle unregisters forgetCache from memtune at Stop.
	unIdle  func()
	waiters eventstore.Waiters // requests waiting for an event they published to be stored
	changed []string           // profile ids of the batch being stored
	seq     int

	relay   *relay.Relay // publishes events staged with relay.Stage after commit
	pubMu   sync.Mutex
	stopped bool
	quit    chan struct{}
	wg      sync.WaitGroup
	movMu   sync.Mutex
	movTabs []ownedTable
	omni    *app.Omni // for the person-owned registry, complete after Init
	movAt   time.Time
}

// New creates the module.
func New(opts Options) *Module {
	m := &Module{opts: opts, now: opts.Now}
	if m.now == nil {
		m.now = time.Now
	}
	return m
}

// Name implements app.Module.
func (m *Module) Name() string { return "profiles" }

// Init loads segments and tombstones and declares the processors that
// resolve each stored batch (before any other module's processor).
func (m *Module) Init(s *app.Setup) error {
	o := s.Omni
	m.omni = o
	m.app, m.bus, m.log = o.PB, o.Bus, o.Log.With("component", "profiles")
	m.defaultRegion = o.Config.Ingest.DefaultRegion
	m.identityCap = m.opts.IdentityCap
	if m.identityCap <= 0 {
		m.identityCap = o.Config.Profiles.IdentityCap
	}
	if m.identityCap <= 0 {
		m.identityCap = 5
	}
	if m.opts.Currency != nil {
		m.currency = *m.opts.Currency
	} else {
		rates, err := ParseRates(o.Config.Profiles.ExchangeRates)
		if err != nil {
			return fmt.Errorf("profiles.exchange_rates: %w", err)
		}
		m.currency = Currency{Base: strings.ToUpper(strings.TrimSpace(o.Config.Profiles.BaseCurrency)), Rates: rates}
	}
	if err := m.loadBaseCurrency(m.app); err != nil {
		return fmt.Errorf("load the base currency: %w", err)
	}
	if err := m.loadSegments(m.app); err != nil {
		return fmt.Errorf("load segments: %w", err)
	}
	if err := m.tomb.load(m.app); err != nil {
		return fmt.Errorf("load tombstones: %w", err)
	}
	m.delay = o.Config.Profiles.WriteDelay
	if m.opts.WriteDelay != 0 {
		m.delay = max(m.opts.WriteDelay, 0)
	}
	if err := m.recoverBehind(m.app); err != nil {
		return err
	}
	store.SetProfileSync(m.app, m.CatchUp)
	m.identity, m.fileConnectors = o.Config.Profiles.Identity, o.Config.Connectors
	if err := m.reloadBlocklist(m.app); err != nil {
		return err
	}
	m.relay = o.Relay
	m.quit = make(chan struct{})

	// Staff tags and notes follow the person like other modules' rows.
	s.PersonOwned("profile_tags", "profile")
	s.PersonOwned("profile_notes", "profile")
	s.Processor(m)
	redactions := &vendorErasures{m: m} // after m: it acts on the profiles m resolved
	s.Processor(redactions)
	s.OnCommit(redactions.afterCommit)
	s.OnCommit(func([]*eventstore.Stored) {
		m.cacheMu.Lock()
		m.cache.unconfirmed = false
		m.behind.confirm()
		m.waitingNow.Store(int64(len(m.behind.rows)))
		m.writing = nil
		pending, changed := m.pending, m.changed
		m.pending, m.changed = nil, nil
		m.cacheMu.Unlock()
		m.emit(pending)
		m.notify(changed)
		m.commitBaseCurrency()
	})
	s.OnCommit(m.waiters.Committed)
	s.ReportHealth(m.health)
	return nil
}

// Start registers the routes, the record hooks and the segment scheduler.
func (m *Module) Start(ctx context.Context, se *core.ServeEvent) error {
	// Once a load has stopped: the cached profiles with their traits
	// (cacheBounds) would otherwise stay in the heap until the next burst,
	// which reads them back in a few indexed look-ups each.
	m.unIdle = memtune.AtIdle(m.forgetCache)
	m.registerHooks(m.app)
	m.Register(se.Router)
	m.registerBlocklist(se.Router)
	m.registerLimits(se.Router)

	interval := m.opts.Interval
	if interval == 0 {
		interval = 5 * time.Minute
	}
	if interval > 0 {
		m.wg.Add(1)
		go m.tick(interval, m.reevaluate)
	}
	if m.delay > 0 {
		m.wg.Add(1)
		go m.tick(max(m.delay/2, 100*time.Millisecond), m.flushIdle) // waiting rows while the writer is idle
	}
	return nil
}

// Stop ends the scheduler (staged events stay with the relay).
func (m *Module) Stop(ctx context.Context) {
	m.pubMu.Lock()
	if m.stopped {
		m.pubMu.Unlock()
		return
	}
	m.stopped = true
	m.pubMu.Unlock()
	if m.unIdle != nil {
		m.unIdle()
	}
	// From now on every change is written at once (the events consumer
	// stops after the modules), and what waits is written now.
	m.cacheMu.Lock()
	m.noDefer = true
	m.cacheMu.Unlock()
	close(m.quit)
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		m.log.Warn("stop timed out waiting for the segment scheduler")
	}
	if err := m.CatchUp(m.app); err != nil {
		m.log.Error("write waiting profile rows at stop; the next start recomputes them", "error", err)
	}
	// A stopped module keeps no cached profiles, whoever still holds it.
	m.forgetCache()
}

// ParseRates reads "EUR=1.08,GBP=1.27".
func ParseRates(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		k = strings.ToUpper(strings.TrimSpace(k))
		if !ok || err != nil || f <= 0 || len(k) != 3 {
			return nil, fmt.Errorf("%q: expected CUR=rate such as EUR=1.08", part)
		}
		out[k] = f
	}
	return out, nil
}

// emit is called after a transaction that staged evs (relay.Stage) has
// committed: the relay publishes them now, or at the next start after a
// crash.
func (m *Module) emit(evs []*events.Event) {
	if len(evs) > 0 {
		m.relay.Kick()
	}
}

// reevaluate is the scheduled pass's tick.
func (m *Module) reevaluate() {
	if err := m.Reevaluate(context.Background()); err != nil {
		m.log.Error("scheduled segment re-evaluation failed", "error", err)
	}
}

// tick runs do every interval until Stop (m.wg counts it).
func (m *Module) tick(every time.Duration, do func()) {
	defer m.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.quit:
			return
		case <-t.C:
			do()
		}
	}
}

// movable lists other modules' person-owned tables (app.Setup.PersonOwned)
// that exist with their profile column (cached briefly: collections can be
// edited at /_/).
func (m *Module) movable(app core.App) []ownedTable {
	m.movMu.Lock()
	defer m.movMu.Unlock()
	if time.Since(m.movAt) < 10*time.Second && m.movAt.After(time.Time{}) {
		return m.movTabs
	}
	var out []ownedTable
	for _, po := range m.omni.PersonOwned() {
		c, err := app.FindCachedCollectionByNameOrId(po.Collection)
		if err != nil || c.Fields.GetByName(po.Field) == nil {
			m.log.Warn("a person-owned collection is missing or has no profile field; merges and erasures skip it",
				"collection", po.Collection, "field", po.Field, "module", po.Module)
			continue
		}
		out = append(out, ownedTable{name: c.Name, field: po.Field})
	}
	m.movTabs, m.movAt = out, time.Now()
	return out
}

// ownedTable is a person-owned collection and its profile column.
type ownedTable struct{ name, field string }

func (m *Module) health(ctx context.Context) api.Component {
	var n, segs int
	_ = m.app.DB().NewQuery("SELECT COUNT(*) FROM profiles WHERE merged_into=''").Row(&n)
	list, _ := m.segs.snapshot()
	segs = len(list)
	held, written := m.RowWrites()
	if m.cacheMu.TryLock() { // else as the last batch left it
		m.waitingNow.Store(int64(len(m.behind.rows)))
		m.cacheMu.Unlock()
	}
	return api.Component{Name: "profiles", Status: map[string]any{"profiles": n, "segments": segs,
		"rows_waiting": m.waitingNow.Load(), "changes_held_back": held, "rows_written": written}}
}

// RowWrites reports, since start, how many profile changes were left
// waiting (profiles.write_delay) and how many profile rows were written:
// what the write-behind saves is the first against the second.
func (m *Module) RowWrites() (heldBack, written int64) {
	return m.heldBack.Load(), m.rowsWritten.Load()
}

// registerHooks validates segment rules on every save and keeps the
// in-memory segment list and memberships current.
func (m *Module) registerHooks(pb core.App) {
	pb.OnRecordValidate("segments").BindFunc(func(e *core.RecordEvent) error {
		raw, _ := e.Record.GetRaw("rule").(interface{ String() string })
		var b []byte
		if raw != nil {
			b = []byte(raw.String())
		} else {
			b = []byte(e.Record.GetString("rule"))
		}
		if _, err := m.ValidateRule(b, e.Record.Id); err != nil {
			return validation.Errors{"rule": validation.NewError("validation_invalid_rule", "invalid rule at "+err.Error())}
		}
		return e.Next()
	})
	changed := func(e *core.RecordEvent) error {
		if err := m.loadSegments(e.App); err != nil {
			m.log.Error("reload segments", "error", err)
		}
		if err := m.backfill(e.App, e.Record.Id); err != nil {
			m.log.Error("segment backfill failed", "segment", e.Record.Id, "error", err)
		}
		return e.Next()
	}
	// Profiles and identities are normally written only by this package;
	// an edit through the admin UI drops the resolution cache, and an
	// edited profile's segments follow the edit (the events path trusts
	// a stored profile's memberships, see loadedState).
	for _, name := range []string{"profiles", "identities"} {
		pb.OnRecordAfterDeleteSuccess(name).BindFunc(m.dropCache)
		pb.OnRecordAfterCreateSuccess(name).BindFunc(m.dropCache)
	}
	pb.OnRecordAfterUpdateSuccess("identities").BindFunc(m.dropCache)
	pb.OnRecordAfterUpdateSuccess("profiles").BindFunc(m.reevaluateEdited)
	// A superuser deleting a tombstone at /_/ removes it like the owner API.
	pb.OnRecordAfterDeleteSuccess("profile_tombstones").BindFunc(func(e *core.RecordEvent) error {
		m.tomb.remove(e.Record.GetString("hash"))
		return e.Next()
	})
	// The blocklist follows owners' entries and connector settings (the
	// shop's own emails and phones).
	reblock := func(e *core.RecordEvent) error {
		if err := m.reloadBlocklist(e.App); err != nil {
			m.log.Error("reload the identity blocklist; the previous list stays in force", "error", err)
		}
		return e.Next()
	}
	for _, name := range []string{"profile_blocklist", "connectors"} {
		pb.OnRecordAfterCreateSuccess(name).BindFunc(reblock)
		pb.OnRecordAfterDeleteSuccess(name).BindFunc(reblock)
	}
	pb.OnRecordAfterUpdateSuccess("profile_blocklist").BindFunc(reblock)
	// The connector host saves its records often (state, backfill
	// progress); only a change of settings can change the shop's identifiers.
	pb.OnRecordAfterUpdateSuccess("connectors").BindFunc(func(e *core.RecordEvent) error {
		before, _ := json.Marshal(e.Record.Original().Get("config"))
		after, _ := json.Marshal(e.Record.Get("config"))
		if string(before) == string(after) {
			return e.Next()
		}
		return reblock(e)
	})
	pb.OnRecordAfterCreateSuccess("segments").BindFunc(changed)
	pb.OnRecordAfterUpdateSuccess("segments").BindFunc(changed)
	pb.OnRecordAfterDeleteSuccess("segments").BindFunc(func(e *core.RecordEvent) error {
		if err := m.loadSegments(e.App); err != nil {
			m.log.Error("reload segments", "error", err)
		}
		_, _ = e.App.DB().NewQuery("DELETE FROM segment_members WHERE segment={:s}").Bind(map[string]any{"s": e.Record.Id}).Execute()
		return e.Next()
	})
}

// forgetCache empties the resolution cache; the next batch reads what it
// needs from the database.
func (m *Module) forgetCache() {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	m.cache.reset()
}

// forgetEdited writes what waits and forgets the cache after an edit of
// profiles or identities outside the events path: a waiting row holds the
// traits, names and identities from before the edit.
func (m *Module) forgetEdited() {
	if err := m.CatchUp(m.app); err != nil {
		m.log.Error("write waiting profile rows after an edit", "error", err)
	}
	m.forgetCache()
}

func (m *Module) dropCache(e *core.RecordEvent) error {
	m.forgetEdited()
	return e.Next()
}

// reevaluateEdited drops the cache after an edit of a profile row at /_/
// and evaluates the profile's segments against what was saved.
func (m *Module) reevaluateEdited(e *core.RecordEvent) error {
	m.forgetEdited()
	if e.Record.GetString("merged_into") == "" {
		var emits []*events.Event
		err := m.app.RunInTransaction(func(tx core.App) error {
			var err error
			emits, err = m.evaluateStored(tx, e.Record.Id)
			return err
		})
		if err != nil {
			m.log.Error("evaluate the segments of an edited profile", "profile", e.Record.Id, "error", err)
		} else {
			m.emit(emits)
			m.notify([]string{e.Record.Id})
		}
	}
	return e.Next()
}

// Consent returns the ledger entry of one channel for a profile (merged
// ids resolve). Status "" means no consent event was ever seen.
func Consent(app core.App, profileID, channel string) (ConsentEntry, error) {
	if !validConsentChannel(channel) {
		return ConsentEntry{}, fmt.Errorf("consent: unknown channel %q (email, sms, whatsapp)", channel)
	}
	row, err := findProfile(app, profileID)
	if err != nil {
		return ConsentEntry{}, err
	}
	p, err := row.decode()
	if err != nil {
		return ConsentEntry{}, err
	}
	return p.consent[channel], nil
}

// CanContact is true only when the person subscribed on that channel.
func CanContact(app core.App, profileID, channel string) bool {
	c, err := Consent(app, profileID, channel)
	return err == nil && c.Status == ConsentSubscribed
}

// ErrNotFound is returned for unknown (or erased) profiles.
var ErrNotFound = errors.New("profile not found")

// findProfile loads a profile row, following merges.
func findProfile(app core.App, id string) (*profileRow, error) {
	for i := 0; i < 64; i++ {
		var row profileRow
		err := app.DB().NewQuery("SELECT id, merged_into, created, name, email, phone, traits, computed, consent FROM profiles WHERE id={:id}").
			Bind(map[string]any{"id": id}).One(&row)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		if row.MergedInto == "" {
			return &row, nil
		}
		id = row.MergedInto
	}
	return nil, fmt.Errorf("profile %s: merge chain too long", id)
}
