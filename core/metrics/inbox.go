package metrics

import "github.com/pocketbase/pocketbase/core"

func (m *Module) inboxReport(app core.App, q Query) (*Report, error) { return nil, errNotBuilt }
