package metrics

import (
	"github.com/spf13/cobra"

	"github.com/omni/omni/core/app"
)

// Extension wires the module into the binary: the module under `serve`
// and the `metrics` command (rebuild).
func Extension(opts Options) app.Extension {
	return app.Extension{
		Commands: func(env *app.Env) []*cobra.Command { return []*cobra.Command{metricsCmd(env, opts)} },
		Modules:  func(o *app.Omni) []app.Module { return []app.Module{New(opts)} },
	}
}

func metricsCmd(env *app.Env, opts Options) *cobra.Command {
	c := &cobra.Command{Use: "metrics", Short: "Reports: rebuild the rollups from the events table"}
	// rebuild.go adds `rebuild`.
	c.AddCommand(rebuildCmd(env, opts))
	return c
}
