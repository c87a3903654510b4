package inbox

import (
	"encoding/json"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
)

// automationRoutes: business hours, away messages and bot rules (owners).
func (m *Module) automationRoutes(g *router.RouterGroup[*core.RequestEvent]) {}

// automateInbound runs business hours, the bot rules, hand-off and
// assignment on a customer's message, in the events transaction.
func (m *Module) automateInbound(tx core.App, f *Filed, ev *events.Event) error { return nil }

// onJourneyHandoff opens (or continues) a conversation for a journey's
// notify step with its context attached.
func (m *Module) onJourneyHandoff(tx core.App, s *eventstore.Stored) error { return nil }

// defaultHours: open around the clock until the owner sets hours.
func defaultHours() any { return map[string]any{} }

func checkHours(raw json.RawMessage) (any, error) { return nil, fieldErr("hours", "not built yet") }

func defaultBot() any { return map[string]any{} }

func checkBot(raw json.RawMessage) (any, error) { return nil, fieldErr("bot", "not built yet") }
