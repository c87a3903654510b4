package sdktest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// CountingServer starts a fake vendor serving h that counts the TCP
// connections clients open to it, so a test of a connector that sends
// concurrently can check that its sends reuse connections. It is closed
// when t ends.
func CountingServer(t testing.TB, h http.Handler) (srv *httptest.Server, opened func() int) {
	var mu sync.Mutex
	n := 0
	srv = httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			n++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}
