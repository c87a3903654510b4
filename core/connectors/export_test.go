package connectors

import (
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
