package inbox

import (
	"encoding/json"

	"time"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
)

// csatRoutes: the signed survey page and the CSAT and SLA settings.
func (m *Module) csatRoutes(se *core.ServeEvent, g *router.RouterGroup[*core.RequestEvent]) {}

// onResolved asks for CSAT after a conversation is resolved.
func (m *Module) onResolved(tx core.App, c *Conversation, at time.Time) error { return nil }

// csatOnCustomerMessage reads a customer's answer to the CSAT question.
func (m *Module) csatOnCustomerMessage(tx core.App, f *Filed, ev *events.Event) error { return nil }

// onSurveyAnswered records a survey.answered on its conversation.
func (m *Module) onSurveyAnswered(tx core.App, s *eventstore.Stored) error { return nil }

func defaultCSAT() any { return map[string]any{} }

func checkCSAT(raw json.RawMessage) (any, error) { return nil, fieldErr("csat", "not built yet") }
