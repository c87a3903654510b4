package square

import (
	"testing"

	"github.com/omni/omni/internal/testkit/vendorfixtures"
)

func fixture(t testing.TB, name string) []byte { return vendorfixtures.Read(t, "square", name) }
