// Command omni-email runs the email connector as a standalone plugin
// executable (drop it in plugins_dir). Omni also has it built in:
// omni plugin run email.
package main

import (
	"github.com/omni/omni/plugins/email"
	"github.com/omni/omni/plugins/sdk"
)

func main() { sdk.Serve(email.New()) }
