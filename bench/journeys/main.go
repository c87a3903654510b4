// Command journeys measures the journey engine through a real Omni
// in-process (embedded JetStream, the events store, profiles, the messaging
// gate and journeys), driven through the HTTP API as an owner would. It
// reports the ingest rate with 20 live journeys against the same ingest
// with none (the baseline, same run); enrolling N customers from a segment;
// step executions per second (each run takes four branch steps, then
// arrives at a wait) against a floor measured in the same run (prepared
// INSERTs of step-sized rows in one transaction); the RSS growth for N runs
// waiting on timers; and timer lateness (p50, p99, max) from the step
// history.
//
// Usage:
//
//	go run ./bench/journeys -customers 100000
//	go run ./bench/journeys -short
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/journeys"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/profiles"
)

func main() {
	n := flag.Int("customers", 100000, "customers enrolled (each gets one run)")
	ingestN := flag.Int("events", 20000, "events ingested for the trigger-cost comparison")
	wait := flag.Duration("wait", 0, "the journey's wait (default: long enough for every run to arrive first)")
	short := flag.Bool("short", false, "a seconds-long run: 5,000 customers, 5,000 events")
	flag.Parse()
	if *short {
		*n, *ingestN = 5000, 5000
	}
	if *n < 1 || *ingestN < 1 {
		fmt.Fprintln(os.Stderr, "bench: -customers and -events must be at least 1")
		os.Exit(2)
	}
	if err := run(*n, *ingestN, *wait); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type omni struct {
	o      *app.Omni
	base   string
	token  string
	client *http.Client
}

func run(n, ingestN int, wait time.Duration) error {
	dir, err := os.MkdirTemp("", "omni-bench-journeys-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.DataDir = dir
	o := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	o.Use(profiles.New(profiles.Options{}))
	o.Use(messaging.New(messaging.Options{}))
	o.Use(journeys.New(journeys.Options{}))
	if err := o.Open(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	go func() { _ = o.Serve(ln, ready) }()
	<-ready
	defer o.Shutdown()
	token, err := ownerToken(o)
	if err != nil {
		return err
	}
	x := &omni{o: o, base: "http://" + ln.Addr().String(), token: token, client: &http.Client{Timeout: 10 * time.Minute}}

	t0 := time.Now()
	if err := x.loadCustomers(n); err != nil {
		return err
	}
	segment, err := x.segment(n)
	if err != nil {
		return err
	}
	fmt.Printf("%d customers and a segment of them in %v\n", n, time.Since(t0).Round(time.Millisecond))

	// Trigger cost: the same ingest without and with 20 live journeys.
	base, err := x.ingestRate(ingestN, "base")
	if err != nil {
		return err
	}
	for i := range 20 {
		if _, err := x.journey(fmt.Sprintf("Trigger %d", i), triggerGraph(i)); err != nil {
			return err
		}
	}
	with, err := x.ingestRate(ingestN, "with")
	if err != nil {
		return err
	}
	fmt.Printf("ingest: %.0f events/s with no journey, %.0f events/s with 20 live journeys (ratio %.2f)\n", base, with, with/base)

	// Steps and timers.
	floor, err := x.insertFloor(n * 4)
	if err != nil {
		return err
	}
	if wait <= 0 {
		// Long enough that every run has arrived before the first fires
		// (at 500 arrivals/s: 2,000 steps/s), so lateness measures timers,
		// not the arrivals' backlog.
		wait = time.Duration(max(30, n/500)) * time.Second
	}
	j, err := x.journey("Bench steps", stepsGraph(wait))
	if err != nil {
		return err
	}
	runtime.GC()
	debug.FreeOSMemory()
	rss0 := rss()
	t1 := time.Now()
	var enrolled struct {
		Enrolled int `json:"enrolled"`
	}
	if err := x.call("POST", "/api/v1/journeys/"+j+"/enrol", map[string]any{"segment": segment}, &enrolled); err != nil {
		return err
	}
	enrolTook := time.Since(t1)
	if enrolled.Enrolled != n {
		return fmt.Errorf("enrolled %d of %d", enrolled.Enrolled, n)
	}
	fmt.Printf("enrol %d customers from a segment: %v (%.0f/s)\n", n, enrolTook.Round(time.Millisecond), float64(n)/enrolTook.Seconds())

	if err := x.until(j, "waiting", n, 10*time.Minute); err != nil {
		return err
	}
	stepsTook := time.Since(t1) - enrolTook
	var first, last string
	_ = o.PB.DB().NewQuery("SELECT MIN(at), MAX(at) FROM journey_steps WHERE journey={:j}").Bind(dbx.Params{"j": j}).Row(&first, &last)
	span := parse(last).Sub(parse(first))
	steps := 4 * n
	fmt.Printf("steps: %d executed in %v after enrolment (%.0f steps/s; first to last step %v: %.0f steps/s); floor: %.0f prepared inserts/s (engine at %.0f%% of it)\n",
		steps, stepsTook.Round(time.Millisecond), float64(steps)/stepsTook.Seconds(), span.Round(time.Millisecond),
		float64(steps)/span.Seconds(), floor, 100*float64(steps)/span.Seconds()/floor)
	runtime.GC()
	debug.FreeOSMemory()
	rss1 := rss()
	fmt.Printf("%d runs waiting on timers: RSS %d MiB → %d MiB (%+.1f MiB per 100k waiting runs)\n", n, rss0>>20, rss1>>20,
		float64(int64(rss1)-int64(rss0))/float64(1<<20)*100000/float64(n))

	// Timer lateness: every wait fires at arrival + wait.
	if err := x.until(j, "completed", n, wait+10*time.Minute); err != nil {
		return err
	}
	late, err := x.lateness(j, wait)
	if err != nil {
		return err
	}
	q := func(p float64) time.Duration { return late[min(len(late)-1, int(p*float64(len(late))))] }
	fmt.Printf("timer lateness over %d timers: p50 %v  p99 %v  max %v\n", len(late), q(0.5).Round(time.Millisecond),
		q(0.99).Round(time.Millisecond), late[len(late)-1].Round(time.Millisecond))
	return nil
}

// triggerGraph is one of 20 journeys whose triggers and waits the ingest
// has to check: event triggers with conditions, waits for orders.
func triggerGraph(i int) map[string]any {
	types := []string{"checkout.started", "order.placed", "product.viewed", "cart.updated"}
	return map[string]any{
		"trigger": map[string]any{"event": types[i%len(types)], "where": map[string]any{"property": "total", "op": "gt", "value": 1e9}},
		"goal":    map[string]any{"event": "order.placed", "within": "7d", "exit": true},
		"start":   "w",
		"nodes": map[string]any{
			"w":   map[string]any{"type": "wait_for_event", "event": "order.placed", "timeout": "1h", "next": map[string]any{"happened": "end", "timed_out": "end"}},
			"end": map[string]any{"type": "exit"},
		},
	}
}

// stepsGraph: four branches, then a wait, then the end.
func stepsGraph(wait time.Duration) map[string]any {
	nodes := map[string]any{"w": map[string]any{"type": "wait", "duration": wait.String(), "next": "end"}, "end": map[string]any{"type": "exit"}}
	for i := range 4 {
		next := "w"
		if i < 3 {
			next = "b" + strconv.Itoa(i+1)
		}
		nodes["b"+strconv.Itoa(i)] = map[string]any{"type": "branch",
			"rule": map[string]any{"trait": "bench", "op": "eq", "value": true}, "next": map[string]any{"yes": next, "no": next}}
	}
	return map[string]any{"trigger": map[string]any{"manual": true}, "start": "b0", "nodes": nodes}
}

// journey creates and publishes a journey and returns its id.
func (x *omni) journey(name string, graph map[string]any) (string, error) {
	var j struct {
		ID string `json:"id"`
	}
	if err := x.call("POST", "/api/v1/journeys", map[string]any{"name": name, "graph": graph, "settings": map[string]any{"reentry": "every_time"}}, &j); err != nil {
		return "", err
	}
	return j.ID, x.call("POST", "/api/v1/journeys/"+j.ID+"/publish", map[string]any{}, nil)
}

// until waits for n runs of journey j with status.
func (x *omni) until(j, status string, n int, limit time.Duration) error {
	var got int
	for start := time.Now(); time.Since(start) < limit; time.Sleep(20 * time.Millisecond) {
		if err := x.o.PB.DB().NewQuery("SELECT COUNT(*) FROM journey_runs WHERE journey={:j} AND status={:s}").
			Bind(dbx.Params{"j": j, "s": status}).Row(&got); err != nil {
			return err
		}
		if got >= n {
			return nil
		}
	}
	return fmt.Errorf("%d of %d runs %s after %v", got, n, status, limit)
}

// lateness reads, for each run, when its wait step was left against when
// it was due (arrival + wait).
func (x *omni) lateness(j string, wait time.Duration) ([]time.Duration, error) {
	rows, err := x.o.PB.DB().NewQuery("SELECT at, json_extract(detail, '$.arrived_at') FROM journey_steps WHERE journey={:j} AND node='w'").
		Bind(dbx.Params{"j": j}).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []time.Duration
	for rows.Next() {
		var at, arrived string
		if err := rows.Scan(&at, &arrived); err != nil {
			return nil, err
		}
		a, b := parse(at), parse(arrived)
		if a.IsZero() || b.IsZero() {
			return nil, fmt.Errorf("a wait step without its times: at %q arrived_at %q", at, arrived)
		}
		out = append(out, max(0, a.Sub(b.Add(wait))))
	}
	if len(out) == 0 {
		return nil, errors.New("no wait steps recorded")
	}
	slices.Sort(out)
	return out, rows.Err()
}

func parse(s string) time.Time {
	for _, layout := range []string{"2006-01-02 15:04:05.000Z", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// ingestRate publishes n page views for known customers and returns the
// rate at which they were stored.
func (x *omni) ingestRate(n int, tag string) (float64, error) {
	var before int
	_ = x.o.PB.DB().NewQuery("SELECT COUNT(*) FROM events").Row(&before)
	now := time.Now().UTC()
	evs := make([]*events.Event, 0, n)
	for i := range n {
		evs = append(evs, &events.Event{ID: fmt.Sprintf("bench-%s-%d", tag, i), Type: "page.viewed", Source: "bench",
			OccurredAt: now, ReceivedAt: now, Identities: events.Identities{events.Email: fmt.Sprintf("c%d@omni-shop.dev", i%1000)},
			Properties: map[string]any{"url": "https://omni-shop.dev/p/" + strconv.Itoa(i), "total": i}})
	}
	start := time.Now()
	for i := 0; i < len(evs); i += 1000 {
		for k, err := range ingest.Publish(context.Background(), x.o.Bus, evs[i:min(i+1000, len(evs))]) {
			if err != nil {
				return 0, fmt.Errorf("publish %d: %w", i+k, err)
			}
		}
	}
	for {
		var got int
		_ = x.o.PB.DB().NewQuery("SELECT COUNT(*) FROM events").Row(&got)
		if got-before >= n {
			return float64(n) / time.Since(start).Seconds(), nil
		}
		if time.Since(start) > 10*time.Minute {
			return 0, fmt.Errorf("%d of %d events stored", got-before, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// insertFloor is the rate of prepared INSERTs of step-sized rows in one
// transaction on this machine, now: what no engine can beat.
func (x *omni) insertFloor(n int) (float64, error) {
	db := x.o.PB.DB()
	if _, err := db.NewQuery("CREATE TEMP TABLE bench_floor (id TEXT PRIMARY KEY, run TEXT, node TEXT, exit TEXT, detail TEXT, at TEXT)").Execute(); err != nil {
		return 0, err
	}
	defer db.NewQuery("DROP TABLE bench_floor").Execute()
	start := time.Now()
	err := x.o.PB.RunInTransaction(func(tx core.App) error {
		q := tx.DB().NewQuery("INSERT INTO bench_floor VALUES ({:id}, {:run}, 'b1', 'yes', '{}', {:at})").Prepare()
		defer q.Close()
		at := time.Now().UTC().Format("2006-01-02 15:04:05.000Z")
		for i := range n {
			if _, err := q.Bind(dbx.Params{"id": fmt.Sprintf("f%014d", i), "run": fmt.Sprintf("r%014d", i/4), "at": at}).Execute(); err != nil {
				return err
			}
		}
		return nil
	})
	return float64(n) / time.Since(start).Seconds(), err
}

// loadCustomers makes n customers with the bench trait.
func (x *omni) loadCustomers(n int) error {
	now := time.Now().UTC()
	var batch []*events.Event
	flush := func() error {
		for i, err := range ingest.Publish(context.Background(), x.o.Bus, batch) {
			if err != nil {
				return fmt.Errorf("publish %s: %w", batch[i].ID, err)
			}
		}
		batch = batch[:0]
		return nil
	}
	for i := range n {
		batch = append(batch, &events.Event{ID: fmt.Sprintf("bench-id-%d", i), Type: events.Identify, Source: "bench", OccurredAt: now,
			ReceivedAt: now, Identities: events.Identities{events.Email: fmt.Sprintf("c%d@omni-shop.dev", i)},
			Properties: map[string]any{"traits": map[string]any{"first_name": fmt.Sprintf("Cus%d", i), "bench": true}}})
		if len(batch) >= 1000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		var got int
		_ = x.o.PB.DB().NewQuery("SELECT COUNT(*) FROM profiles WHERE merged_into=''").Row(&got)
		if got >= n {
			return nil
		}
		if time.Since(start) > 15*time.Minute {
			return fmt.Errorf("only %d of %d customers stored", got, n)
		}
	}
}

// segment creates a segment of the bench customers and waits for its
// members.
func (x *omni) segment(n int) (string, error) {
	var s struct {
		ID string `json:"id"`
	}
	if err := x.call("POST", "/api/collections/segments/records", map[string]any{"name": "Bench customers",
		"rule": map[string]any{"trait": "bench", "op": "eq", "value": true}}, &s); err != nil {
		return "", err
	}
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		var got int
		_ = x.o.PB.DB().NewQuery("SELECT COUNT(*) FROM segment_members WHERE segment={:s}").Bind(dbx.Params{"s": s.ID}).Row(&got)
		if got >= n {
			return s.ID, nil
		}
		if time.Since(start) > 10*time.Minute {
			return "", fmt.Errorf("segment has %d of %d members", got, n)
		}
	}
}

func (x *omni) call(method, path string, body, out any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, x.base+path, bytes.NewReader(b))
	req.Header.Set("Authorization", x.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := x.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// ownerToken makes an owner and returns an auth token for the API.
func ownerToken(o *app.Omni) (string, error) {
	col, err := o.PB.FindCollectionByNameOrId("staff")
	if err != nil {
		return "", err
	}
	r := core.NewRecord(col)
	r.SetEmail("owner@omni-shop.dev")
	r.SetPassword("password-123456")
	r.Set("role", "owner")
	r.Set("name", "Bench Owner")
	if err := o.PB.Save(r); err != nil {
		return "", err
	}
	return r.NewAuthToken()
}

// rss is the process's resident set size in bytes (Linux), or the Go
// runtime's view of memory taken from the OS elsewhere.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				return kb << 10
			}
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Sys
}
