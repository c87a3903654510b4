package journeys

import "context"

// engine walks due runs through their steps (see docs/journeys.md).
type engine struct{ m *Module }

func newEngine(m *Module) *engine { return &engine{m: m} }

func (e *engine) start() error { return nil }

func (e *engine) stop(ctx context.Context) {}
