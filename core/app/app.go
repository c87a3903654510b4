// Package app wires Omni together: configuration → bus → PocketBase →
// modules, and owns the start-up and shutdown order
// (HTTP → consumers drain → bus → database).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/pocketbase/pocketbase"
	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/hook"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/datalock"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/memtune"
	"github.com/omni/omni/core/relay"
	"github.com/omni/omni/core/staff"
	"github.com/omni/omni/core/store"
	_ "github.com/omni/omni/core/store/migrations" // collections
	"github.com/omni/omni/core/topology"
	"github.com/omni/omni/core/webhooks"
)

// Omni is one running Omni process.
type Omni struct {
	Config *config.Config
	Log    *slog.Logger
	PB     *pocketbase.PocketBase
	Bus    *bus.Bus
	Events *eventstore.Store
	Health *api.Health
	// Relay publishes events staged inside transactions (relay.Stage)
	// after they commit; Kick it after such a commit.
	Relay *relay.Relay

	modules      []Module // domain modules, in order
	started      []Module
	core         []Module // the events consumer, then the relay
	coreStarted  []Module
	personOwned  []PersonOwned
	stopOnce     sync.Once
	lock         *datalock.Lock  // exclusive use of the data dir while serving
	memStop      chan struct{}   // stops memtune.ReleaseWhenIdle
	stopCkpt     func()          // stops store.StartCheckpoints
	cron         cronGuard       // PocketBase's cron jobs, waited for before the database closes
	inFlight     ingest.InFlight // tracking calls being answered, for the events consumer (ingest.ack_first)
	lease        *topology.Lease // the writer lease on an external bus (topology.go)
	stopMirror   func()          // a front end's copy of the sources and connectors
	webhookRelay *webhooks.Relay // a front end's /webhooks/
}

// New creates the PocketBase app for cfg. Nothing is opened yet.
func New(cfg *config.Config, log *slog.Logger) *Omni {
	pb := pocketbase.NewWithConfig(pocketbase.Config{
		DefaultDataDir:  cfg.DataDir,
		DefaultDev:      false, // explicit: never infer dev mode from the binary's path
		HideStartBanner: true,
		DBConnect:       store.Connect, // smaller page caches for readers (docs/benchmarks.md, memory)
	})
	// PocketBase warns at every start when the SQLite driver is not the
	// version it was released with. Omni runs a newer one, with the libc
	// its go.mod names (TestSQLiteDriverAndLibcAgree checks that instead).
	pb.OnBootstrap().Unbind(pocketbase.ModerncDepsCheckHookId)
	o := &Omni{Config: cfg, Log: log, PB: pb}
	ingest.RegisterSourceHooks(pb)
	staff.RegisterHooks(pb) // role changes and the last owner
	return o
}

// Use adds a module; call before Serve.
func (o *Omni) Use(m Module) { o.modules = append(o.modules, m) }

// Open bootstraps the database and applies migrations (for CLI commands
// and before serving).
func (o *Omni) Open() error {
	if !o.PB.IsBootstrapped() {
		if err := os.MkdirAll(o.Config.DataDir, 0o750); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		if err := o.PB.Bootstrap(); err != nil {
			return fmt.Errorf("open database: %w", err)
		}
	}
	if err := o.PB.RunAllMigrations(); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return nil
}

// Serve opens everything and serves HTTP on ln (or on Config.HTTP when ln is
// nil) until Shutdown. ready, if not nil, is closed once requests are taken.
func (o *Omni) Serve(ln net.Listener, ready chan<- struct{}) (err error) {
	started := time.Now()
	// One server per data dir: a second one would run a second JetStream
	// on the same store. Released by Shutdown (or by the OS if we die).
	lock, err := datalock.Acquire(o.Config.DataDir)
	if err != nil {
		return err
	}
	o.lock = lock
	addr := o.Config.HTTP
	if ln != nil {
		addr = ln.Addr().String()
	} else {
		// Take the port before anything else starts (and before "omni
		// serving" is logged), so a port in use is the one line the
		// operator sees, not an error after a successful-looking start.
		if ln, err = listenHTTP(addr); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				ln.Close() // PocketBase closes it only once it serves
			}
		}()
	}
	if err := o.Open(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	o.Bus, err = bus.Open(ctx, bus.Options{
		URL:          o.Config.Bus.URL,
		Credentials:  o.Config.Bus.Credentials,
		Listen:       o.Config.Bus.Listen,
		StoreDir:     o.Config.NATSStoreDir(),
		MaxStore:     int64(o.Config.Bus.MaxStoreMB) << 20,
		MaxMemory:    int64(o.Config.Bus.MaxMemoryMB) << 20,
		DedupeWindow: o.Config.Bus.DedupeWindow,
		MaxAge:       o.Config.Bus.MaxAge,
		Strict:       o.Config.Durability == "strict",
		Replicas:     o.Config.Bus.Replicas,
		Logger:       o.Log,
	})
	if err != nil {
		return err
	}
	if o.Config.Bus.URL != "" {
		o.Log.Info("bus: connected to external NATS", "url", o.Config.Bus.URL)
	} else if o.Config.Bus.Listen != "" {
		o.Log.Info("bus: embedded NATS listening", "url", o.Bus.ClientURL())
	}

	o.Health = &api.Health{App: o.PB, Bus: o.Bus, Consumers: map[string]api.ConsumerLag{}, Started: started}
	if o.frontend() {
		// No module, consumer or relay: see topology.go.
		o.modules = nil
		if err := o.prepareFrontend(ctx); err != nil {
			o.Bus.Close()
			return err
		}
	} else {
		if err := o.takeWriterLease(ctx, addr); err != nil {
			o.lease.Release()
			o.Bus.Close()
			return err
		}
		o.Events = eventstore.New(o.PB, o.Bus, o.Log, eventstore.Options{
			Busy: o.inFlight.Busy, HoldWhileBusy: o.Config.Ingest.AckFirst})
		o.Relay = relay.New(o.PB, o.Bus, o.Log)
		// The events consumer and the relay are modules run after the domain
		// ones, in that order, at start and at stop alike (see core_modules.go).
		o.core = []Module{eventsModule{o.Events}, relayModule{o.Relay}}
	}

	// Every module declares its parts before anything runs (see Module).
	for _, m := range append(append([]Module{}, o.modules...), o.core...) {
		if err := m.Init(&Setup{Omni: o, Ctx: ctx, module: m.Name()}); err != nil {
			o.lease.Release()
			o.Bus.Close()
			return fmt.Errorf("%s: %w", m.Name(), err)
		}
	}

	o.PB.OnServe().BindFunc(func(se *core.ServeEvent) error {
		se.InstallerFunc = nil // staff and superusers are created explicitly
		se.Listener = ln
		if o.frontend() {
			se.Router.BindFunc(frontendOnly)
			o.webhookRelay.Register(se)
		}
		ingest.New(o.PB, o.Bus, ingest.Options{
			MaxBatchBytes: o.Config.Ingest.MaxBatchBytes,
			MaxEventBytes: o.Config.Ingest.MaxEventBytes,
			DefaultRegion: o.Config.Ingest.DefaultRegion,
			InFlight:      &o.inFlight,
		}, o.Log).Register(se.Router)
		o.Health.Register(se.Router)
		if !o.frontend() {
			api.RegisterDeadEvents(se.Router)
		}
		for _, m := range o.modules {
			if err := m.Start(ctx, se); err != nil {
				return fmt.Errorf("%s: %w", m.Name(), err)
			}
			o.started = append(o.started, m)
		}
		for _, m := range o.core {
			if err := m.Start(ctx, se); err != nil {
				return fmt.Errorf("%s: %w", m.Name(), err)
			}
			o.coreStarted = append(o.coreStarted, m)
		}
		return se.Next()
	})
	// Runs after PocketBase's own graceful HTTP shutdown (priority -9999).
	o.PB.OnTerminate().Bind(&hook.Handler[*core.TerminateEvent]{
		Id:       "omniShutdown",
		Priority: 100,
		Func: func(te *core.TerminateEvent) error {
			o.stop()
			o.cron.close(o.PB.Cron()) // before ResetBootstrapState closes the database
			return te.Next()
		},
	})

	if ready != nil {
		o.PB.OnServe().Bind(&hook.Handler[*core.ServeEvent]{
			Id:       "omniReady",
			Priority: 9999,
			Func: func(se *core.ServeEvent) error {
				err := se.Next()
				if err == nil {
					close(ready)
				}
				return err
			},
		})
	}
	// A burst's heap goes back to the OS once the load stops (docs/benchmarks.md, memory).
	memtune.ApplyDefaultLimit()
	o.memStop = make(chan struct{})
	go memtune.ReleaseWhenIdle(o.memStop, 10*time.Second)
	o.cron.guard(o.PB.Cron()) // its jobs are made with the app; it starts as it serves
	// A backup schedule saved in the settings replaces the backup job once
	// PocketBase's own handler is done: this one runs first, so its part
	// after Next runs last.
	o.PB.OnSettingsReload().Bind(&hook.Handler[*core.SettingsReloadEvent]{
		Id:       "omniCronGuard",
		Priority: -100,
		Func: func(e *core.SettingsReloadEvent) error {
			err := e.Next()
			o.cron.guard(o.PB.Cron())
			return err
		},
	})
	// WAL checkpoints beside the writer instead of inside its commits.
	o.stopCkpt = store.StartCheckpoints(o.PB.ConcurrentDB(), o.PB.NonconcurrentDB(), store.CheckpointInterval)
	if err := startPprof(o.Log); err != nil {
		o.stop()
		return err
	}
	o.Log.Info("omni serving", "role", o.Config.Role, "http", "http://"+addr, "data_dir", o.Config.DataDir, "version", api.Version, "startup", time.Since(started).Round(time.Millisecond))
	err = apis.Serve(o.PB, apis.ServeConfig{HttpAddr: addr, AllowedOrigins: []string{"*"}})
	if err != nil {
		o.stop()
	}
	return err
}

// listenHTTP opens the HTTP address; failing that, the error names the
// setting and the address (e.g. another program already has the port).
func listenHTTP(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	problem := err.Error()
	var sysErr *os.SyscallError
	if errors.As(err, &sysErr) {
		problem = sysErr.Err.Error() // "address already in use", without Go's "listen tcp …: bind:" prefix
	}
	hint := "choose another address with --http or OMNI_HTTP"
	if errors.Is(err, syscall.EADDRINUSE) {
		hint = "another program is listening there; stop it or " + hint
	}
	return nil, &config.Error{Key: "http", Problem: fmt.Sprintf("cannot listen on %s: %s (%s)", addr, problem, hint)}
}

// stop drains modules and consumers, then closes the bus, once.
func (o *Omni) stop() {
	o.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// Domain modules in reverse order; then the events consumer drains
		// what it was handed (processors still run), then the relay
		// publishes what that last batch staged.
		for i := len(o.started) - 1; i >= 0; i-- {
			o.started[i].Stop(ctx)
		}
		for _, m := range o.coreStarted {
			m.Stop(ctx)
		}
		if o.stopMirror != nil {
			o.stopMirror()
		}
		o.lease.Release() // after the last consumer stopped
		if o.Bus != nil {
			o.Bus.Close()
		}
		if o.memStop != nil {
			close(o.memStop)
		}
		if o.stopCkpt != nil {
			o.stopCkpt() // before Shutdown closes the database
		}
		o.Log.Info("omni stopped")
	})
}

// Shutdown stops serving and releases everything (HTTP, consumers, bus,
// database), in that order.
func (o *Omni) Shutdown() error {
	err := o.PB.OnTerminate().Trigger(&core.TerminateEvent{App: o.PB}, func(e *core.TerminateEvent) error {
		return e.App.ResetBootstrapState()
	})
	o.lock.Release() // last: the database is closed
	return err
}
