package metrics

import "github.com/pocketbase/pocketbase/core"

func (m *Module) journeysReport(app core.App, q Query) (*Report, error) { return nil, errNotBuilt }
