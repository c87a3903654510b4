package journeys

func (m *Module) statsRoutes(g routeGroup) {}
