package square

import (
	"testing"

	"github.com/omni/omni/plugins/square/squarefake"
)

type fakeSquare = squarefake.Server

func newFakeSquare(t testing.TB) *fakeSquare { return squarefake.New(t) }

func seedOrder(t *testing.T, f *fakeSquare, id, customerID string) { f.SeedOrder(t, id, customerID) }

func seedCustomer(t *testing.T, f *fakeSquare, id, email, phone string) {
	f.SeedCustomer(t, id, email, phone)
}
