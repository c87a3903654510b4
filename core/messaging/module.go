// Package messaging is the one gate every message to a customer goes
// through (consent, undeliverable addresses, the WhatsApp 24-hour window,
// frequency caps, quiet hours, channel fallback) and the send ledger that
// records each message from the request to its last delivery status.
//
// It reaches the connectors only through the OUTBOX stream (core/outbox) and
// learns outcomes from the status events, so it imports no other module.
// Journeys and the inbox ask it to send over the bus (outbox.RequestSend).
package messaging

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
	_ "time/tzdata" // customers' time zones, whatever the host has installed

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/messaging/links"
	"github.com/omni/omni/core/messaging/prefs"
	"github.com/omni/omni/core/messaging/templates"
	"github.com/omni/omni/core/outbox"
)

// Collections of the module.
const (
	Collection             = "messages"
	SuppressionsCollection = "message_suppressions"
)

// SendConsumer is the durable consumer of send requests from other modules.
const SendConsumer = "messaging-send"

// Options tune the module; zero values get the defaults.
type Options struct {
	// Now is the clock (tests move it to cross quiet hours).
	Now func() time.Time
	// Tick is how often scheduled messages and unpublished queued rows are
	// looked at (default 15s).
	Tick time.Duration
}

// Module is the messaging gate and send ledger.
type Module struct {
	opts     Options
	o        *app.Omni
	app      core.App
	bus      *bus.Bus
	log      *slog.Logger
	rules    rules
	links    *links.Signer
	requests jetstream.Consumer
	cc       jetstream.ConsumeContext

	// mu serialises the gate's decide-and-record per process, so two
	// concurrent marketing sends cannot both pass the frequency cap.
	mu   sync.Mutex
	stop chan struct{}
	done chan struct{}
}

// New creates the module; list it in main.go after profiles.
func New(opts Options) *Module {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = 15 * time.Second
	}
	return &Module{opts: opts}
}

func (m *Module) Name() string { return "messaging" }

// rules are the gate's configuration, parsed once.
type rules struct {
	caps           []config.FrequencyCap
	quietFrom      int // minutes after midnight; -1 for none
	quietTo        int
	shopTZ         *time.Location
	publicURL      string
	statusCallback string // Twilio's status webhook under public_url
	trackEmail     bool   // open pixel and tracked links in marketing HTML email
}

func parseRules(c *config.Config) (rules, error) {
	caps, err := config.ParseFrequencyCaps(c.Messaging.FrequencyCap)
	if err != nil {
		return rules{}, err
	}
	from, to, err := config.ParseQuietHours(c.Messaging.QuietHours)
	if err != nil {
		return rules{}, err
	}
	tz, err := time.LoadLocation(c.Messaging.Timezone)
	if err != nil {
		return rules{}, err
	}
	base := c.PublicBaseURL()
	return rules{caps: caps, quietFrom: from, quietTo: to, shopTZ: tz, publicURL: base,
		statusCallback: base + "/webhooks/twilio/status", trackEmail: c.Messaging.TrackEmail}, nil
}

func (m *Module) Init(s *app.Setup) error {
	m.o, m.app, m.bus, m.log = s.Omni, s.PB, s.Bus, s.Log.With("module", "messaging")
	r, err := parseRules(s.Config)
	if err != nil {
		return fmt.Errorf("messaging: %w", err)
	}
	m.rules = r
	if m.links, err = links.Open(s.Config.DataDir, r.publicURL); err != nil {
		return fmt.Errorf("messaging: link key: %w", err)
	}

	s.PersonOwned(Collection, "profile")
	s.PersonOwned(SuppressionsCollection, "profile")
	s.PersonOwned(PausesCollection, "profile")
	s.Processor(ledgerProcessor{m})

	// The MESSAGING stream is created with the others (core/bus); the
	// consumer exists before any module can publish a request.
	m.requests, err = s.Consumer(outbox.SendStream, jetstream.ConsumerConfig{
		Durable: SendConsumer, FilterSubject: outbox.SendSubject, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Minute, MaxDeliver: -1, MaxAckPending: 256,
	})
	return err
}

func (m *Module) Start(ctx context.Context, se *core.ServeEvent) error {
	g := se.Router.Group("/api/v1/messages")
	g.POST("", m.handleSend).Bind(api.RequireStaff())
	g.GET("", m.handleList).Bind(api.RequireStaff())
	se.Router.GET("/api/v1/messaging/settings", m.handleSettings).Bind(api.RequireStaff())
	m.pauseRoutes(se)                    // pause.go: POST/DELETE /api/v1/profiles/{id}/marketing-pause
	templates.Register(se, m.o, m.links) // the templates' checks and preview
	prefs.Register(se, m.o, m.links)     // the customer's /p/ pages

	cc, err := bus.Consume(m.requests, m.handleRequest, 32, func(err error) { m.log.Debug("send requests consumer", "error", err) })
	if err != nil {
		return fmt.Errorf("messaging: consume: %w", err)
	}
	m.cc = cc
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	go m.loop()
	return nil
}

func (m *Module) Stop(ctx context.Context) {
	if m.cc != nil {
		m.cc.Stop()
	}
	if m.stop != nil {
		close(m.stop)
		select {
		case <-m.done:
		case <-ctx.Done():
		}
	}
}
