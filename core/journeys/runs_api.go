package journeys

func (m *Module) runRoutes(g routeGroup) {}
