package journeys

func (m *Module) enrolRoutes(g routeGroup) {}
