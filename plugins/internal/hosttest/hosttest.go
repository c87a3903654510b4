// Package hosttest boots a real Omni whose connector host runs the current
// test binary as a built-in connector subprocess, for connectors' end-to-end
// tests. The test package's TestMain must hand over to sdktest.ServeEnv.
package hosttest

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/sdk/sdktest"
)

// Start registers newC as the built-in name, boots Omni with settings for
// it from the config file (where test-only keys such as base URLs are
// allowed), and returns the server. The connector is not enabled yet.
// extra modules (profiles, …) run beside the connector host.
func Start(t testing.TB, name string, newC func() sdk.Connector, settings map[string]any, extra ...app.Module) *omnitest.Server {
	t.Helper()
	return StartConfigured(t, name, newC, settings, nil, extra...)
}

// StartConfigured is Start with configure editing the rest of the
// configuration first (public_url, messaging rules, …).
func StartConfigured(t testing.TB, name string, newC func() sdk.Connector, settings map[string]any, configure func(*config.Config), extra ...app.Module) *omnitest.Server {
	t.Helper()
	connectors.RegisterBuiltin(name, newC)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	mod := connectors.New(connectors.Options{
		Command: func(string) (*exec.Cmd, error) {
			cmd := exec.Command(self)
			cmd.Env = []string{sdktest.ServeEnv + "=1"}
			return cmd, nil
		},
		MinBackoff:   100 * time.Millisecond,
		SyncInterval: 100 * time.Millisecond,
	})
	return omnitest.Start(t, omnitest.Options{
		Configure: func(c *config.Config) {
			if c.Connectors == nil {
				c.Connectors = map[string]map[string]any{}
			}
			c.Connectors[name] = settings
			if configure != nil {
				configure(c)
			}
		},
		Modules: func(*app.Omni) []app.Module { return append([]app.Module{mod}, extra...) },
	})
}

// Enable turns the connector on and waits until its plugin runs.
func Enable(t testing.TB, s *omnitest.Server, name string) {
	t.Helper()
	rec, err := s.PB.FindFirstRecordByData(connectors.Collection, "name", name)
	if err != nil {
		t.Fatal(err)
	}
	rec.Set("enabled", true)
	if err := connectors.SaveSettings(s.PB, rec); err != nil {
		t.Fatal(err)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool {
		r, err := s.PB.FindFirstRecordByData(connectors.Collection, "name", name)
		return err == nil && r.GetString("state") == connectors.StateRunning
	}, "%s plugin running", name)
}

// SuperuserToken creates a superuser and returns an auth token for the
// owner-only connector API.
func SuperuserToken(t testing.TB, s *omnitest.Server) string {
	t.Helper()
	coll, err := s.PB.FindCollectionByNameOrId(core.CollectionNameSuperusers)
	if err != nil {
		t.Fatal(err)
	}
	su := core.NewRecord(coll)
	su.SetEmail("root@example.com")
	su.SetPassword("password-123456")
	if err := s.PB.Save(su); err != nil {
		t.Fatal(err)
	}
	tok, err := su.NewAuthToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
