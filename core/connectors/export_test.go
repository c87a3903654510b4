package connectors

// PID returns the process id of a connector's plugin (0 when not running).
func (m *Module) PID(name string) int {
	if i := m.instance(name); i != nil {
		return i.pid()
	}
	return 0
}
