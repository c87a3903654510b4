// Command omni-whatsapp runs the whatsapp connector as a standalone plugin
// executable (drop it in plugins_dir). Omni also has it built in:
// omni plugin run whatsapp.
package main

import (
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/whatsapp"
)

func main() { sdk.Serve(whatsapp.New()) }
