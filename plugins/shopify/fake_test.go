package shopify

import (
	"encoding/json"
	"testing"

	"github.com/omni/omni/plugins/shopify/shopifyfake"
)

type fakeShopify = shopifyfake.Server

func newFakeShopify(t testing.TB) *fakeShopify { return shopifyfake.New(t) }

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
