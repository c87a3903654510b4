// Command omni-twilio runs the twilio connector as a standalone plugin
// executable (drop it in plugins_dir). Omni also has it built in:
// omni plugin run twilio.
package main

import (
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/twilio"
)

func main() { sdk.Serve(twilio.New()) }
