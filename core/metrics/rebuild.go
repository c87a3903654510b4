package metrics

import (
	"github.com/spf13/cobra"

	"github.com/omni/omni/core/app"
)

func rebuildCmd(env *app.Env, opts Options) *cobra.Command {
	return &cobra.Command{Use: "rebuild", Short: "Recompute every report's rollups from the events table"}
}
