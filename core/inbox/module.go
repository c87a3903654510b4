// Package inbox is where staff answer customers: every message.received
// (WhatsApp, email, SMS, the website chat widget) opens or continues the
// customer's conversation on that channel, agents reply from one list, and
// replies go out through the messaging gate (kind "conversation") like
// every other send. Beside each conversation sits the customer's unified
// profile. A bot answers simple questions and hands off to a person;
// conversations carry SLA due times and end with a CSAT question.
//
// It meets the rest of Omni on the bus and the tables: inbound messages
// ride the events transaction (a Processor after profiles), replies are
// send requests on the MESSAGING stream (outbox.RequestSend) whose ledger
// row id is the conversation message's id, so delivery status is read from
// the send ledger. conversation.opened/resolved and survey.answered go out
// through the relay for journeys and metrics.
package inbox

import (
	"context"
	"log/slog"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/eventstore"
)

// Collections of the module.
const (
	ConversationsCollection = "conversations"
	MessagesCollection      = "conversation_messages"
	SettingsCollection      = "inbox_settings"
	CannedCollection        = "canned_responses"
	RulesCollection         = "inbox_rules"
	WidgetsCollection       = "chat_widgets"
	VisitorsCollection      = "chat_visitors"
	AgentsCollection        = "inbox_agents"
)

// Conversation statuses. Pending: the bot is handling it (no person yet).
const (
	StatusOpen     = "open"
	StatusPending  = "pending"
	StatusSnoozed  = "snoozed"
	StatusResolved = "resolved"
)

// Message authors and directions.
const (
	AuthorCustomer = "customer"
	AuthorAgent    = "agent"
	AuthorBot      = "bot"
	AuthorJourney  = "journey"
	AuthorSystem   = "system"

	DirectionIn   = "in"
	DirectionOut  = "out"
	DirectionNote = "note" // private: staff only, never sent
)

// Channels a conversation can be on.
var Channels = []string{"whatsapp", "email", "sms", "chat"}

// Derived event types the inbox emits (conversation.resolved and
// survey.answered are in core/events).
const (
	EventConversationOpened = "conversation.opened"
)

// Options tune the module; zero values get the defaults.
type Options struct {
	// Now is the clock (tests move it); default time.Now.
	Now func() time.Time
	// ReopenWindow: a customer's message within this long after their
	// conversation on the channel was resolved reopens it; later, a new
	// conversation starts (default 7 days; inbox_settings "general"
	// reopen_window overrides it).
	ReopenWindow time.Duration
	// Tick is how often background work (snooze wake-ups, SLA breaches,
	// re-driving replies whose publish was lost) looks for what is due
	// (default 1s).
	Tick time.Duration
}

// Module is the inbox module.
type Module struct {
	opts Options
	o    *app.Omni
	app  core.App
	bus  *bus.Bus
	log  *slog.Logger

	live   *live       // pushes to staff and chat visitors (live.go)
	sender *sender     // replies onto the bus (send.go)
	widget *widgetPart // the website chat's live streams and delivery (widget.go)
	survey surveyLinks // signed survey page links (csat.go)
	// settings caches inbox_settings for the events path (settings.go).
	settings settingsCache
	// batch is the events writer's current batch (batch.go).
	batch batchState
	stop  context.CancelFunc
	done  chan struct{}
}

// New creates the module; list it in main.go after journeys.
func New(opts Options) *Module {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReopenWindow <= 0 {
		opts.ReopenWindow = 7 * 24 * time.Hour
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	return &Module{opts: opts, live: newLive()}
}

func (m *Module) Name() string { return "inbox" }

func (m *Module) Init(s *app.Setup) error {
	m.o, m.app, m.bus, m.log = s.Omni, s.PB, s.Bus, s.Log.With("module", "inbox")
	m.live.app = m.app
	m.watchSettings(m.app)
	s.PersonOwned(ConversationsCollection, "profile")
	s.PersonOwned(MessagesCollection, "profile")
	m.sender = newSender(m)
	// Inbound messages open conversations in the transaction that stores
	// them, after profiles has resolved the customer.
	s.Processor(inboundProcessor{m})
	s.OnCommit(func(b []*eventstore.Stored) { m.afterCommit() })
	return m.initParts(s)
}

func (m *Module) Start(ctx context.Context, se *core.ServeEvent) error {
	m.routes(se)
	bg, cancel := context.WithCancel(context.Background())
	m.stop, m.done = cancel, make(chan struct{})
	go m.background(bg)
	return m.startParts(ctx, se)
}

func (m *Module) Stop(ctx context.Context) {
	if m.stop != nil {
		m.stop()
		select {
		case <-m.done:
		case <-ctx.Done():
		}
	}
	m.stopParts(ctx)
}

// routes registers every part's routes. Conversations live under
// /api/v1/conversations (the names scripts rely on); the rest of the
// staff API under /api/v1/inbox; the chat widget's public routes under
// /widget.
func (m *Module) routes(se *core.ServeEvent) {
	conv := se.Router.Group("/api/v1/conversations")
	m.conversationRoutes(conv) // api.go
	inbox := se.Router.Group("/api/v1/inbox")
	m.settingsRoutes(inbox)   // settings_api.go: GET /settings, PUT /settings/{key}
	m.agentRoutes(inbox)      // agents.go: presence, assignment settings
	m.automationRoutes(inbox) // automation.go: hours, bot rules
	m.csatRoutes(se, inbox)   // csat.go, sla.go
	m.contextRoutes(inbox)    // context_api.go: the customer beside the chat
	m.widgetRoutes(se, inbox) // widget.go
}

// background runs the module's periodic work until ctx ends.
func (m *Module) background(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.opts.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.sender.wake:
			m.sender.drain(ctx)
		case <-t.C:
			m.sender.drain(ctx)
			m.tick(ctx, m.opts.Now())
		}
	}
}
