// Command omni-klaviyo runs the klaviyo connector as a standalone plugin
// executable (drop it in plugins_dir). Omni also has it built in:
// omni plugin run klaviyo.
package main

import (
	"github.com/omni/omni/plugins/klaviyo"
	"github.com/omni/omni/plugins/sdk"
)

func main() { sdk.Serve(klaviyo.New()) }
