package connectors

import (
	"encoding/json"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
)

// PID returns the process id of a connector's plugin (0 when not running).
func (m *Module) PID(name string) int {
	if i := m.instance(name); i != nil {
		return i.pid()
	}
	return 0
}

// Convert exposes convert (validation of connector events) to tests.
func (m *Module) Convert(source string, in []sdk.Event) ([]*events.Event, error) {
	return m.convert(source, in)
}

// StartBackfill starts the recorded backfill of a connector, as a plugin
// coming up (onRunning) or a sync does.
func (m *Module) StartBackfill(name string) { m.backfills.start(name) }

// BackfillRunning reports whether a backfill goroutine runs for name.
func (m *Module) BackfillRunning(name string) bool { return m.backfills.running(name) }

// Options returns the module's options after defaults.
func (m *Module) Options() Options { return m.opts }

// VendorChecks is how many Health calls of name's plugin have answered.
func (m *Module) VendorChecks(name string) int {
	i := m.instance(name)
	if i == nil {
		return 0
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.vendorChecks
}

// Hold stores a message as the outbox does for a connector that is not
// running, before it acknowledges the bus message.
func (m *Module) Hold(name string, out *sdk.OutboundMessage, queued time.Time) error {
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return storeHeld(m, name, out.ID, data, queued)
}
