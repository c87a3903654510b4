// Package builtin lists the connectors compiled into the omni binary.
// Adding one is one line in connectors below.
package builtin

import (
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/plugins/email"
	"github.com/omni/omni/plugins/example"
	"github.com/omni/omni/plugins/klaviyo"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/shopify"
	"github.com/omni/omni/plugins/square"
	"github.com/omni/omni/plugins/twilio"
	"github.com/omni/omni/plugins/whatsapp"
)

// connectorsList maps a connector name to its constructor.
var connectorsList = map[string]func() sdk.Connector{
	example.Name: example.New,
	email.Name:   email.New,
	"klaviyo":    klaviyo.New,
	shopify.Name: shopify.New,
	square.Name:  square.New,
	twilio.Name:  twilio.New,
	"whatsapp":   whatsapp.New,
}

func init() {
	for name, newC := range connectorsList {
		connectors.RegisterBuiltin(name, newC)
	}
}

// Extension is the connector host with every built-in registered; main
// passes it to cli.Main.
func Extension(opts connectors.Options) app.Extension { return connectors.Extension(opts) }
