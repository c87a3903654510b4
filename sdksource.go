package main

import "embed"

// omniSDK is what `omni plugin new` writes beside a new connector project
// so that it builds from this binary alone (the Omni module is on no module
// proxy): the SDK packages, and Omni's go.mod and go.sum, which pin the
// SDK's dependencies at the versions this binary was built with. These are
// the real files, so the copy cannot drift. The SDK imports nothing else of
// this module; should it ever, embed that package too
// (TestPluginNewFromTheBinaryAlone builds a generated project and fails
// otherwise).
//
//go:embed go.mod go.sum plugins/sdk
var omniSDK embed.FS
