package inbox

import (
	"encoding/json"

	"context"
	"time"

	"github.com/pocketbase/pocketbase/core"
)

// slaOnCustomerMessage sets the first- or next-response due time.
func (m *Module) slaOnCustomerMessage(tx core.App, f *Filed) error { return nil }

// checkSLA counts breaches of due times that passed.
func (m *Module) checkSLA(ctx context.Context, now time.Time) {}

func defaultSLA() any { return map[string]any{} }

func checkSLASetting(raw json.RawMessage) (any, error) { return nil, fieldErr("sla", "not built yet") }
