package inbox

import (
	"context"
	"time"

	"github.com/pocketbase/pocketbase/core"
)

// slaOnCustomerMessage sets the first- or next-response due time.
func (m *Module) slaOnCustomerMessage(tx core.App, f *Filed) error { return nil }

// checkSLA counts breaches of due times that passed.
func (m *Module) checkSLA(ctx context.Context, now time.Time) {}
