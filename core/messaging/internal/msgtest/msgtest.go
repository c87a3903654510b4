// Package msgtest starts the templates and preference-center routes in a
// test server the way the messaging module does (templates.Register and
// prefs.Register from Start), for the tests of those packages.
package msgtest

import (
	"context"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/messaging/links"
	"github.com/omni/omni/core/messaging/prefs"
	"github.com/omni/omni/core/messaging/templates"
)

// Module registers the templates and prefs routes; Signer is set once
// started, so tests can make the links a message would carry.
type Module struct {
	omni   *app.Omni
	Signer *links.Signer
}

func (m *Module) Name() string { return "messaging-test" }

func (m *Module) Init(s *app.Setup) error { m.omni = s.Omni; return nil }

func (m *Module) Start(ctx context.Context, se *core.ServeEvent) error {
	signer, err := links.Open(m.omni.Config.DataDir, m.omni.Config.PublicBaseURL())
	if err != nil {
		return err
	}
	m.Signer = signer
	templates.Register(se, m.omni, m.Signer)
	prefs.Register(se, m.omni, m.Signer)
	return nil
}

func (m *Module) Stop(ctx context.Context) {}
