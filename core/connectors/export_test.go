package connectors

// PID returns the process id of a connector's plugin (0 when not running).
func (m *Module) PID(name string) int {
	if i := m.instance(name); i != nil {
		return i.pid()
	}
	return 0
}

// StartBackfill starts the recorded backfill of a connector, as a plugin
// coming up (onRunning) or a sync does.
func (m *Module) StartBackfill(name string) { m.backfills.start(name) }

// BackfillRunning reports whether a backfill goroutine runs for name.
func (m *Module) BackfillRunning(name string) bool { return m.backfills.running(name) }
