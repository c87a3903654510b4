package connectors

import (
	"sort"
	"sync"

	"github.com/omni/omni/plugins/sdk"
)

var (
	builtinMu sync.RWMutex
	builtins  = map[string]func() sdk.Connector{}
)

// RegisterBuiltin makes a connector compiled into this binary available
// under name; Omni runs it as a subprocess of itself (`omni plugin run
// NAME`). Call it from main or an init function:
//
//	connectors.RegisterBuiltin("shopify", shopify.New)
func RegisterBuiltin(name string, newConnector func() sdk.Connector) {
	builtinMu.Lock()
	defer builtinMu.Unlock()
	builtins[name] = newConnector
}

// Builtin returns the constructor of a built-in connector.
func Builtin(name string) (func() sdk.Connector, bool) {
	builtinMu.RLock()
	defer builtinMu.RUnlock()
	f, ok := builtins[name]
	return f, ok
}

// BuiltinNames lists the built-in connectors, sorted.
func BuiltinNames() []string {
	builtinMu.RLock()
	defer builtinMu.RUnlock()
	out := make([]string, 0, len(builtins))
	for n := range builtins {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
