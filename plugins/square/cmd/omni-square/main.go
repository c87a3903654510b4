// Command omni-square is the Square connector as a standalone plugin
// executable (Omni also runs it built in as `omni plugin run square`).
package main

import (
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/square"
)

func main() { sdk.Serve(square.New()) }
