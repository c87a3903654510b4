// Command omni-shopify is the Shopify connector as a standalone plugin
// executable (Omni also runs it built in as `omni plugin run shopify`).
package main

import (
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/shopify"
)

func main() { sdk.Serve(shopify.New()) }
