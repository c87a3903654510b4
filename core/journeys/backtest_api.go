package journeys

func (m *Module) backtestRoutes(g routeGroup) {}
