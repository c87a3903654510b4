package journeys

func (m *Module) journeyRoutes(g routeGroup) {}
