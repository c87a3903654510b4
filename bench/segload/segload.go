// Package segload is the Segment-compatible load generator every ingest
// comparison uses: the same bodies (track events, unique UUID messageIds,
// 100 a batch by default), built before the clock starts, posted to
// /v1/batch with HTTP Basic auth (write key as user, empty password) by C
// concurrent clients. Because it speaks only Segment's API it can be pointed
// at Omni or at any peer that accepts Segment batches.
package segload

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options says where to send and how much.
type Options struct {
	URL     string // base URL, e.g. http://127.0.0.1:8090
	Path    string // default /v1/batch
	Key     string // write key
	Events  int
	Batch   int // events per request (default 100)
	Clients int // concurrent clients (default 8)
	Label   string
}

// Result is one run, in the JSON shape the side-by-side harness records.
type Result struct {
	Label        string  `json:"label"`
	URL          string  `json:"url"`
	EventsAcked  int64   `json:"events_acked"`
	ReqsOK       int64   `json:"reqs_ok"`
	ReqsFailed   int64   `json:"reqs_failed"`
	ElapsedS     float64 `json:"elapsed_s"`
	AckedPerS    float64 `json:"acked_events_per_s"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	RunID        string  `json:"run_id"`
	StartUnixMs  int64   `json:"start_unix_ms"`
	EndUnixMs    int64   `json:"end_unix_ms"`
	FirstError   string  `json:"first_error,omitempty"`
	EventsWanted int     `json:"-"`
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Bodies builds the request bodies of one run: total events in batches of
// per, 5,000 distinct users, every messageId new (so a peer's dedupe never
// drops anything).
func Bodies(total, per int) (bodies [][]byte, runID string) {
	nb := (total + per - 1) / per
	bodies = make([][]byte, nb)
	runID = uuid()[:8]
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	n := 0
	for i := range nb {
		evs := make([]map[string]any, 0, per)
		for j := 0; j < per && n < total; j++ {
			evs = append(evs, map[string]any{
				"type":        "track",
				"event":       "Bench Event",
				"messageId":   uuid(),
				"userId":      fmt.Sprintf("user-%s-%d", runID, n%5000),
				"anonymousId": fmt.Sprintf("anon-%s-%d", runID, n%5000),
				"timestamp":   ts,
				"sentAt":      ts,
				"properties": map[string]any{
					"seq": n, "plan": "pro", "price": 19.99, "currency": "USD",
					"path": "/pricing", "run": runID,
				},
				"context": map[string]any{
					"library":   map[string]any{"name": "bench-loadgen", "version": "1.0"},
					"userAgent": "Mozilla/5.0 (X11; Linux x86_64) bench",
					"ip":        "127.0.0.1",
				},
			})
			n++
		}
		b, _ := json.Marshal(map[string]any{"batch": evs, "sentAt": ts})
		bodies[i] = b
	}
	return bodies, runID
}

// Run builds the bodies, then times posting them all. A request that does
// not answer 200 counts as failed (its events are not acked); the first
// failure is kept for the report.
func Run(ctx context.Context, o Options) Result {
	if o.Path == "" {
		o.Path = "/v1/batch"
	}
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.Clients <= 0 {
		o.Clients = 8
	}
	bodies, runID := Bodies(o.Events, o.Batch)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(o.Key+":"))
	tr := &http.Transport{MaxIdleConnsPerHost: o.Clients * 2, MaxConnsPerHost: o.Clients * 2, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 120 * time.Second}
	url := strings.TrimRight(o.URL, "/") + o.Path

	var next int64 = -1
	var okEvents, okReqs, failReqs int64
	lat := make([][]time.Duration, o.Clients)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(atomic.AddInt64(&next, 1))
				if i >= len(bodies) {
					return
				}
				req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", auth)
				t0 := time.Now()
				resp, err := client.Do(req)
				var code int
				var rb []byte
				if err == nil {
					rb, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				lat[w] = append(lat[w], time.Since(t0))
				if err == nil && code == 200 {
					atomic.AddInt64(&okReqs, 1)
					atomic.AddInt64(&okEvents, int64(min(o.Batch, o.Events-i*o.Batch)))
				} else {
					atomic.AddInt64(&failReqs, 1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("code=%d err=%v body=%.200s", code, err, rb))
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		idx := min(max(int(p*float64(len(all))+0.5)-1, 0), len(all)-1)
		return float64(all[idx].Microseconds()) / 1000
	}
	r := Result{Label: o.Label, URL: url, EventsAcked: okEvents, ReqsOK: okReqs, ReqsFailed: failReqs,
		ElapsedS: el.Seconds(), AckedPerS: float64(okEvents) / el.Seconds(),
		P50ms: pct(0.50), P99ms: pct(0.99), MaxMs: pct(1.0), RunID: runID,
		StartUnixMs: start.UnixMilli(), EndUnixMs: start.Add(el).UnixMilli(), EventsWanted: o.Events}
	if e, ok := firstErr.Load().(string); ok {
		r.FirstError = e
	}
	return r
}

// Stub answers 200 "OK" to everything but GET /features (404): a trivial
// endpoint to check the generator is not the limit, and the transformer
// stub rudder-server asks at start.
func Stub() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/features" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("OK"))
	})
}
