package vendorhttp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omni/omni/plugins/sdk/sdktest"
)

func TestRetriesRateLimitWithRetryAfter(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "2.0")
			w.WriteHeader(429)
		case 2:
			w.WriteHeader(503)
		default:
			w.Write([]byte(`ok`))
		}
	}))
	defer srv.Close()
	var waits []time.Duration
	c := &Client{Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
	resp, err := c.Do(context.Background(), func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	})
	if err != nil || string(resp.Body) != "ok" {
		t.Fatalf("resp=%v err=%v", resp, err)
	}
	if len(waits) != 2 || waits[0] != 2*time.Second {
		t.Fatalf("waits = %v, want first 2s from Retry-After", waits)
	}
}

func TestDoesNotRetryClientErrors(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(403)
		w.Write([]byte(`{"errors":"denied"}`))
	}))
	defer srv.Close()
	c := &Client{Sleep: func(context.Context, time.Duration) error { return nil }}
	_, err := c.Do(context.Background(), func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	})
	if !IsStatus(err, 403) || n.Load() != 1 {
		t.Fatalf("err=%v calls=%d", err, n.Load())
	}
}

func TestRetryAfterDate(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d, ok := RetryAfter(now.Add(5*time.Second).Format(http.TimeFormat), now)
	if !ok || d != 5*time.Second {
		t.Fatalf("d=%v ok=%v", d, ok)
	}
	if _, ok := RetryAfter("soon", now); ok {
		t.Fatal("garbage parsed")
	}
}

// Concurrent calls to one vendor reuse their connections: eight senders
// making five calls each open eight connections, not a new one for most
// calls (Go's default keeps only two idle per host).
func TestConcurrentCallsReuseConnections(t *testing.T) {
	srv, opened := sdktest.CountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	c := &Client{}
	const senders, rounds = 8, 5
	for range rounds {
		var wg sync.WaitGroup
		for range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Do(context.Background(), func(ctx context.Context) (*http.Request, error) {
					return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
				}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	if n := opened(); n > senders {
		t.Fatalf("%d calls opened %d connections, want at most %d", senders*rounds, n, senders)
	}
}
