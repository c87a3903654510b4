// Package vendorhttp is the small HTTP client the built-in connectors share
// for calling vendor APIs: it retries rate limits (429 + Retry-After),
// 5xx answers and network errors with capped exponential backoff and jitter.
package vendorhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds what we read from a vendor answer.
const maxBody = 32 << 20

// idlePerHost is how many idle connections to one vendor host are kept
// for the next call: above the connector host's concurrent sends per
// connector (8), so a campaign reuses its TLS connections instead of
// opening most of them again for every message, as Go's default of 2 does.
const idlePerHost = 16

// transport is Go's default transport with idlePerHost; one for every
// client, so calls from a connector share its connections.
var transport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = idlePerHost
	return t
}()

// HTTPClient returns a client with the given timeout that keeps enough
// idle connections per vendor host for concurrent sends.
func HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: transport}
}

// Client retries vendor calls.
type Client struct {
	HTTP *http.Client
	// MaxAttempts bounds tries per call (default 6).
	MaxAttempts int
	// MaxBackoff caps one wait (default 60s). A longer Retry-After is
	// still honoured up to MaxRetryAfter.
	MaxBackoff    time.Duration
	MaxRetryAfter time.Duration
	// Sleep waits between attempts; tests replace it to record the waits.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRetry, if set, is told about every retry (for logging).
	OnRetry func(status int, wait time.Duration, err error)
}

// Response is a complete vendor answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// StatusError is a non-2xx answer that was not (or no longer) retried.
type StatusError struct {
	Status int
	Body   []byte
}

func (e *StatusError) Error() string {
	b := string(e.Body)
	if len(b) > 300 {
		b = b[:300] + "…"
	}
	return fmt.Sprintf("vendor answered HTTP %d: %s", e.Status, strings.TrimSpace(b))
}

// IsStatus reports whether err is a StatusError with that status.
func IsStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}

// SleepCtx waits d or until ctx is done.
func SleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Do sends the request newReq builds (a fresh one per attempt) and returns
// the 2xx answer, retrying 429, 5xx and transport errors.
func (c *Client) Do(ctx context.Context, newReq func(ctx context.Context) (*http.Request, error)) (*Response, error) {
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = 6
	}
	hc := c.HTTP
	if hc == nil {
		hc = HTTPClient(30 * time.Second)
	}
	sleep := c.Sleep
	if sleep == nil {
		sleep = SleepCtx
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		req, err := newReq(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		var wait time.Duration
		status := 0
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = err
			wait = c.backoff(i)
		} else {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
			resp.Body.Close()
			status = resp.StatusCode
			switch {
			case rerr != nil:
				lastErr = rerr
				wait = c.backoff(i)
			case status >= 200 && status < 300:
				return &Response{Status: status, Header: resp.Header, Body: body}, nil
			case status == http.StatusTooManyRequests || status >= 500:
				lastErr = &StatusError{Status: status, Body: body}
				wait = c.backoff(i)
				if ra, ok := RetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
					wait = ra
					if max := c.maxRetryAfter(); wait > max {
						wait = max
					}
				}
			default:
				return nil, &StatusError{Status: status, Body: body}
			}
		}
		if i == attempts-1 {
			break
		}
		if c.OnRetry != nil {
			c.OnRetry(status, wait, lastErr)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
	return nil, lastErr
}

func (c *Client) maxRetryAfter() time.Duration {
	if c.MaxRetryAfter > 0 {
		return c.MaxRetryAfter
	}
	return 10 * time.Minute
}

// backoff is 0.5s·2^i with ±25% jitter, capped.
func (c *Client) backoff(i int) time.Duration {
	max := c.MaxBackoff
	if max <= 0 {
		max = 60 * time.Second
	}
	d := 500 * time.Millisecond << min(i, 16)
	if d > max {
		d = max
	}
	j := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return d + j
}

// RetryAfter parses a Retry-After header: delta seconds (Shopify sends
// "2.0") or an HTTP date.
func RetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f < 0 {
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}
