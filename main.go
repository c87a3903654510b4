// Command omni is the single Omni binary: server, CLI and built-in
// connector plugins (run as subprocesses of itself).
package main

import (
	"os"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/cli"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/core/inbox"
	"github.com/omni/omni/core/journeys"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/metrics"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/webui"
	"github.com/omni/omni/plugins/builtin"
)

func main() {
	app.SampleHeapOnlyWhenProfiling()
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr,
		app.Extension{Modules: func(o *app.Omni) []app.Module {
			return []app.Module{profiles.New(profiles.Options{}), messaging.New(messaging.Options{}), journeys.New(journeys.Options{}), inbox.New(inbox.Options{})}
		}},
		metrics.Extension(metrics.Options{}),
		builtin.Extension(connectors.Options{SDKSource: omniSDK}),
		webui.Extension(),
	))
}
