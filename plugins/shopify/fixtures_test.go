package shopify

import (
	"testing"

	"github.com/omni/omni/plugins/internal/vendorfixtures"
)

func fixture(t testing.TB, name string) []byte { return vendorfixtures.Read(t, "shopify", name) }
