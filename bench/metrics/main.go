// Command metrics measures the reports over a large shop through the real
// binary: it seeds a data dir with 1M events and 100k customers (plain SQL
// into the tables the modules own), times `omni metrics rebuild` over it,
// serves it with `omni serve` and times every report endpoint (30 days and
// 12 months, with and without the previous period) against GET
// /api/v1/health in the same run, then compares ingest with metrics.enabled
// true and false, alternating fresh servers. It prints a table and writes
// the figures as JSON.
//
//	go build -o /tmp/omni . && go run ./bench/metrics -bin /tmp/omni
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/eventstore"
)

// reports are the endpoints measured, with the parameters a page sends.
var reports = []struct{ name, params string }{
	{"sales", ""},
	{"customers", ""},
	{"funnel", ""},
	{"journeys", ""},
	{"inbox", ""},
	{"attribution", "&model=linear"},
	{"attribution", "&model=time_decay"},
}

// Result is one endpoint × range × compare.
type Result struct {
	Report  string  `json:"report"`
	Params  string  `json:"params,omitempty"`
	Range   string  `json:"range"`
	Compare bool    `json:"compare"`
	Status  int     `json:"status"`
	Bytes   int     `json:"bytes"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	// CPUms is the server's CPU time (user + system, from /proc) per
	// timed request, the floor's health check beside it included: other
	// processes on the machine inflate it far less than wall time.
	CPUms     float64 `json:"cpu_ms"`
	FloorP99  float64 `json:"floor_p99_ms"`
	OverFloor float64 `json:"p99_over_floor"`
}

// Results is the JSON written at the end.
type Results struct {
	At          time.Time  `json:"at"`
	Seed        seedCounts `json:"seed"`
	SeedSeconds float64    `json:"seed_seconds"`
	DBMB        float64    `json:"db_mb"`
	Rebuild     struct {
		Seconds      float64 `json:"seconds"`
		EventsPerSec float64 `json:"events_per_s"`
		Output       string  `json:"output"`
	} `json:"rebuild"`
	Requests  int      `json:"requests_per_endpoint"`
	Floor     Result   `json:"floor"`
	Endpoints []Result `json:"endpoints"`
	WorstP99  float64  `json:"worst_p99_ms"`
	Ingest    struct {
		Events int `json:"events_per_round"`
		// Stored end to end with metrics on (the default follower),
		// then until the rollups had taken everything too.
		On        []float64 `json:"on_events_per_s"`
		OnCurrent []float64 `json:"on_rolled_up_events_per_s"`
		// Rolled up inside the events transaction (metrics.max_delay 0).
		Inline []float64 `json:"inline_events_per_s"`
		Off    []float64 `json:"off_events_per_s"`

		OnMedian        float64 `json:"on_median"`
		OnCurrentMedian float64 `json:"on_rolled_up_median"`
		InlineMedian    float64 `json:"inline_median"`
		OffMedian       float64 `json:"off_median"`
		Ratio           float64 `json:"ratio"`
		RatioCurrent    float64 `json:"ratio_rolled_up"`
		RatioInline     float64 `json:"ratio_inline"`
	} `json:"ingest"`
}

func main() {
	bin := flag.String("bin", "./omni", "omni binary to test")
	nEvents := flag.Int("events", 1000000, "events seeded")
	nCustomers := flag.Int("customers", 100000, "customers seeded")
	nConvs := flag.Int("conversations", 3000, "inbox conversations seeded")
	nReq := flag.Int("requests", 50, "timed requests per endpoint (after 3 warm-up ones)")
	ingestN := flag.Int("ingest", 30000, "events per ingest round")
	rounds := flag.Int("rounds", 2, "ingest rounds with metrics on, and as many off (alternating); 0 skips the ingest part")
	noRebuild := flag.Bool("no-rebuild", false, "with -keep of a shop rebuilt before: skip `omni metrics rebuild` and read the reports from its rollups")
	out := flag.String("out", "metrics-bench.json", "where the JSON results go")
	keep := flag.String("keep", "", "seed into this dir and keep it (default: a temporary dir, removed); a dir seeded before is used as it is")
	quick := flag.Bool("quick", false, "a minute-long run: 100k events, 10k customers, 20 requests, one round of 10k ingest each")
	flag.Parse()
	if *quick {
		*nEvents, *nCustomers, *nConvs, *nReq, *ingestN, *rounds = 100000, 10000, 300, 20, 10000, 1
	}
	if *nEvents < 1 || *nCustomers < 1 || *nReq < 1 || *rounds < 0 {
		fmt.Fprintln(os.Stderr, "bench: -events, -customers and -requests must be at least 1, -rounds at least 0")
		os.Exit(2)
	}
	if *noRebuild && *keep == "" {
		fmt.Fprintln(os.Stderr, "bench: -no-rebuild needs -keep DIR (a shop seeded and rebuilt before)")
		os.Exit(2)
	}
	if err := run(*bin, *keep, *out, *nEvents, *nCustomers, *nConvs, *nReq, *ingestN, *rounds, *noRebuild); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(bin, keep, out string, nEvents, nCustomers, nConvs, nReq, ingestN, rounds int, noRebuild bool) error {
	var res Results
	res.At = time.Now().UTC()
	res.Requests = nReq
	dir := keep
	if dir == "" {
		d, err := os.MkdirTemp("", "omni-bench-metrics-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		defer os.Remove(d + ".key") // the connectors' secret key, beside the data dir
		dir = d
	}

	// (a) the shop: the binary migrates the data dir, the seed fills it.
	// A kept dir seeded before is reused (its counts are not known then).
	var token string
	if _, err := os.Stat(filepath.Join(dir, "data.db")); err == nil && keep != "" {
		if token, err = ownerToken(dir); err != nil {
			return fmt.Errorf("reuse %s: %w", dir, err)
		}
		fmt.Printf("reusing the shop seeded in %s\n", dir)
	} else {
		if _, err := createSource(bin, dir); err != nil {
			return err
		}
		t0 := time.Now()
		tok, counts, err := seed(dir, nEvents, nCustomers, nConvs)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		token, res.Seed, res.SeedSeconds = tok, counts, time.Since(t0).Seconds()
		fmt.Printf("seeded %d events, %d customers (%d orders, %d refunds, %d sends, %d journey runs, %d conversations) in %.1fs\n",
			counts.Events, counts.Customers, counts.Orders, counts.Refunds, counts.Messages, counts.JourneyRuns, counts.Conversations,
			res.SeedSeconds)
	}
	if fi, err := os.Stat(filepath.Join(dir, "data.db")); err == nil {
		res.DBMB = float64(fi.Size()) / (1 << 20)
		fmt.Printf("data.db: %.0f MB\n", res.DBMB)
	}

	if !noRebuild {
		t0 := time.Now()
		cmd := exec.Command(bin, "metrics", "rebuild", "--data-dir", dir)
		cmd.Env = append(os.Environ(), "OMNI_LOG_LEVEL=warn")
		o, err := cmd.CombinedOutput()
		res.Rebuild.Seconds = time.Since(t0).Seconds()
		res.Rebuild.EventsPerSec = float64(nEvents) / res.Rebuild.Seconds
		res.Rebuild.Output = lastLine(string(o))
		if err != nil {
			return fmt.Errorf("omni metrics rebuild: %v: %s", err, o)
		}
		fmt.Printf("omni metrics rebuild: %.1fs (%.0f events/s): %s\n", res.Rebuild.Seconds, res.Rebuild.EventsPerSec, res.Rebuild.Output)
	}

	// (b) every report, against the health check in the same run.
	srv, err := serve(bin, dir, nil)
	if err != nil {
		return err
	}
	measureReports(srv, token, nReq, &res)
	srv.stop()

	// (c) ingest with metrics on and off, alternating fresh servers.
	res.Ingest.Events = ingestN
	for r := range rounds { // none with -rounds 0
		for _, mode := range []string{"on", "inline", "off"} {
			stored, current, err := ingestRound(bin, ingestN, mode, r)
			if err != nil {
				return err
			}
			switch mode {
			case "on":
				res.Ingest.On = append(res.Ingest.On, stored)
				res.Ingest.OnCurrent = append(res.Ingest.OnCurrent, current)
			case "inline":
				res.Ingest.Inline = append(res.Ingest.Inline, stored)
			default:
				res.Ingest.Off = append(res.Ingest.Off, stored)
			}
		}
	}
	res.Ingest.OnMedian, res.Ingest.OffMedian = median(res.Ingest.On), median(res.Ingest.Off)
	res.Ingest.OnCurrentMedian, res.Ingest.InlineMedian = median(res.Ingest.OnCurrent), median(res.Ingest.Inline)
	if rounds > 0 {
		res.Ingest.Ratio = res.Ingest.OnMedian / res.Ingest.OffMedian
		res.Ingest.RatioCurrent = res.Ingest.OnCurrentMedian / res.Ingest.OffMedian
		res.Ingest.RatioInline = res.Ingest.InlineMedian / res.Ingest.OffMedian
		fmt.Printf("ingest, %d events a round (10%% orders), stored end to end: metrics on %.0f events/s, off %.0f events/s (medians of %d): ratio %.2f (target ≥ 0.90)\n",
			ingestN, res.Ingest.OnMedian, res.Ingest.OffMedian, rounds, res.Ingest.Ratio)
		fmt.Printf("  until the rollups had it all: %.0f events/s (%.2f); rolled up in the events transaction (metrics.max_delay 0): %.0f events/s (%.2f)\n",
			res.Ingest.OnCurrentMedian, res.Ingest.RatioCurrent, res.Ingest.InlineMedian, res.Ingest.RatioInline)
	}

	printSummary(&res)
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Println("results:", out)
	return nil
}

// seed opens the data dir in this process and writes the shop.
func seed(dir string, nEvents, nCustomers, nConvs int) (string, seedCounts, error) {
	cfg := config.Default()
	cfg.DataDir = dir
	o := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := o.Open(); err != nil {
		return "", seedCounts{}, err
	}
	defer o.PB.ResetBootstrapState()
	s := &seeder{o: o, rng: rand.New(rand.NewPCG(15, 2026)), now: time.Now().UTC(), span: 395 * 24 * time.Hour, lastOrder: map[int]order{}}
	token, err := s.staff()
	if err != nil {
		return "", s.n, err
	}
	if err := s.customers(nCustomers); err != nil {
		return "", s.n, err
	}
	if err := s.journeys(); err != nil {
		return "", s.n, err
	}
	t0 := time.Now()
	if err := s.events(nEvents, nCustomers, func(done int) {
		fmt.Printf("\rseeding events: %d/%d (%.0f/s)", done, nEvents, float64(done)/time.Since(t0).Seconds())
	}); err != nil {
		return "", s.n, err
	}
	fmt.Println()
	if err := s.conversations(nConvs, nCustomers); err != nil {
		return "", s.n, err
	}
	_, err = o.PB.DB().NewQuery("PRAGMA optimize").Execute()
	return token, s.n, err
}

// ownerToken signs in the owner a previous run seeded.
func ownerToken(dir string) (string, error) {
	cfg := config.Default()
	cfg.DataDir = dir
	o := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := o.Open(); err != nil {
		return "", err
	}
	defer o.PB.ResetBootstrapState()
	r, err := o.PB.FindAuthRecordByEmail("staff", "staff0@omni-shop.dev")
	if err != nil {
		return "", err
	}
	return r.NewAuthToken()
}

func measureReports(srv *server, token string, n int, res *Results) {
	addr := srv.addr
	client := &http.Client{Timeout: time.Minute}
	get := func(path string) (int, int, time.Duration) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Authorization", token)
		t := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, time.Since(t)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, len(b), time.Since(t)
	}
	var floorAll []time.Duration
	fmt.Printf("\n%-12s %-18s %-5s %-8s %6s %9s %9s %9s %9s %8s\n", "report", "params", "range", "compare", "status", "bytes", "p50", "p99", "cpu", "p99/floor")
	for _, rp := range reports {
		for _, rng := range []string{"30d", "12m"} {
			for _, cmp := range []bool{false, true} {
				path := "/api/v1/metrics/" + rp.name + "?range=" + rng + rp.params
				if cmp {
					path += "&compare=previous"
				}
				for range 3 {
					get(path)
				}
				var lat, floor []time.Duration
				status, size := 0, 0
				cpu0 := srv.cpu()
				for range n {
					// The floor interleaved with the report: the same
					// moment's machine, auth included.
					_, _, f := get("/api/v1/health")
					floor = append(floor, f)
					s, b, d := get(path)
					lat = append(lat, d)
					if status == 0 || s != 200 {
						status, size = s, b
					}
				}
				cpu := srv.cpu() - cpu0
				floorAll = append(floorAll, floor...)
				r := Result{Report: rp.name, Params: strings.TrimPrefix(rp.params, "&"), Range: rng, Compare: cmp, Status: status, Bytes: size,
					P50ms: ms(pct(lat, 50)), P99ms: ms(pct(lat, 99)), CPUms: ms(cpu) / float64(n), FloorP99: ms(pct(floor, 99))}
				r.OverFloor = r.P99ms / max(r.FloorP99, 0.001)
				res.Endpoints = append(res.Endpoints, r)
				if status == 200 {
					res.WorstP99 = max(res.WorstP99, r.P99ms)
				}
				flag := ""
				if status != 200 {
					flag = "  (not 200: not counted)"
				} else if r.P99ms > 300 {
					flag = "  OVER 300 ms"
				}
				fmt.Printf("%-12s %-18s %-5s %-8v %6d %9d %7.1fms %7.1fms %7.1fms %8.1fx%s\n", r.Report, r.Params, rng, cmp, status, size, r.P50ms, r.P99ms, r.CPUms, r.OverFloor, flag)
			}
		}
	}
	res.Floor = Result{Report: "health", Status: 200, P50ms: ms(pct(floorAll, 50)), P99ms: ms(pct(floorAll, 99))}
	fmt.Printf("floor GET /api/v1/health over %d requests: p50 %.1fms p99 %.1fms; worst report p99 %.1fms (target ≤ 300 ms)\n\n",
		len(floorAll), res.Floor.P50ms, res.Floor.P99ms, res.WorstP99)
}

// ingestRound stores n Segment events (page views, checkouts and 10%
// orders in two currencies) through a fresh server and returns events/s
// from the first request to the last event stored, as bench/ingest does,
// and to the last event rolled up by the metrics follower. mode: on (the
// defaults), inline (metrics.max_delay 0) or off.
func ingestRound(bin string, n int, mode string, round int) (stored, current float64, err error) {
	dir, err := os.MkdirTemp("", "omni-bench-metrics-ingest-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	defer os.Remove(dir + ".key")
	key, err := createSource(bin, dir)
	if err != nil {
		return 0, 0, err
	}
	env := []string{fmt.Sprintf("OMNI_METRICS_ENABLED=%v", mode != "off")}
	if mode == "inline" {
		env = append(env, "OMNI_METRICS_MAX_DELAY=0s")
	}
	srv, err := serve(bin, dir, env)
	if err != nil {
		return 0, 0, err
	}
	defer srv.stop()
	bodies := ingestBodies(n, 100, round)
	const clients = 8
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	work := make(chan []byte)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	t0 := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range work {
				req, _ := http.NewRequest("POST", "http://"+srv.addr+"/v1/batch", bytes.NewReader(body))
				req.SetBasicAuth(key, "")
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("POST /v1/batch: status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	for _, b := range bodies {
		work <- b
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, 0, err
	default:
	}
	if err := waitDrained(srv.addr, eventstore.ConsumerName); err != nil {
		return 0, 0, err
	}
	stored = float64(n) / time.Since(t0).Seconds()
	if mode != "on" {
		return stored, stored, nil
	}
	if err := waitDrained(srv.addr, "metrics"); err != nil {
		return 0, 0, err
	}
	return stored, float64(n) / time.Since(t0).Seconds(), nil
}

func ingestBodies(total, per, round int) [][]byte {
	var out [][]byte
	for start := 0; start < total; start += per {
		var b strings.Builder
		b.WriteString(`{"batch":[`)
		for i := start; i < start+per && i < total; i++ {
			if i > start {
				b.WriteByte(',')
			}
			user := i % 5000
			switch i % 10 {
			case 0:
				cur := "GBP"
				if i%30 == 0 {
					cur = "EUR"
				}
				fmt.Fprintf(&b, `{"type":"track","messageId":"r%d-%d","userId":"user-%d","event":"Order Completed","properties":{"order_id":"o-%d-%d","revenue":%d,"currency":"%s","products":[{"sku":"SKU-%d","price":%d,"quantity":1}]}}`,
					round, i, user, round, i, 20+i%80, cur, i%200, 20+i%80)
			case 1, 2:
				fmt.Fprintf(&b, `{"type":"track","messageId":"r%d-%d","userId":"user-%d","event":"Checkout Started","properties":{"revenue":%d}}`, round, i, user, 20+i%80)
			default:
				fmt.Fprintf(&b, `{"type":"page","messageId":"r%d-%d","userId":"user-%d","name":"Product","properties":{"url":"https://omni-shop.dev/p/%d"},"context":{"campaign":{"source":"newsletter","medium":"email","name":"weekly"}}}`,
					round, i, user, i%200)
			}
		}
		b.WriteString(`]}`)
		out = append(out, []byte(b.String()))
	}
	return out
}

type server struct {
	addr string
	cmd  *exec.Cmd
}

// cpu is the server's CPU time so far (user + system), 0 where /proc
// has no answer.
func (s *server) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces): utime and
	// stime are the 12th and 13th, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	var u, st int64
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &st)
	return time.Duration(u+st) * 10 * time.Millisecond
}

func (s *server) stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

func serve(bin, dir string, env []string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--http", addr, "--data-dir", dir)
	cmd.Env = append(append(os.Environ(), "OMNI_LOG_LEVEL=warn"), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{addr: addr, cmd: cmd}
	for range 6000 {
		if resp, err := http.Get("http://" + addr + "/api/v1/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("omni serve did not become healthy within a minute")
}

// waitDrained waits until a consumer in health (the events consumer, or
// the metrics follower) has nothing pending.
func waitDrained(addr, consumer string) error {
	for start := time.Now(); time.Since(start) < 10*time.Minute; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/api/v1/health")
		if err != nil {
			return err
		}
		var h struct {
			Bus struct {
				Consumers map[string]struct {
					Pending    uint64 `json:"pending"`
					AckPending int    `json:"ack_pending"`
				} `json:"consumers"`
			} `json:"bus"`
		}
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if c, ok := h.Bus.Consumers[consumer]; ok && c.Pending == 0 && c.AckPending == 0 {
			return nil
		}
	}
	return fmt.Errorf("consumer %s did not drain within 10 minutes", consumer)
}

func createSource(bin, dir string) (string, error) {
	out, err := exec.Command(bin, "source", "create", "bench", "--data-dir", dir).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("omni source create: %v: %s", err, out)
	}
	m := regexp.MustCompile(`write key: (\S+)`).FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("omni source create printed no write key: %s", out)
	}
	return string(m[1]), nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// printSummary prints the run in one table: each report's four cases
// (p50 / p99 wall, and CPU per request), the rebuild and the ingest ratio.
func printSummary(res *Results) {
	fmt.Printf("\nsummary (wall p50 / p99, server CPU per request; target p99 ≤ 300 ms)\n")
	fmt.Printf("%-32s %-26s %-26s %-26s %-26s\n", "report", "30d", "30d + previous", "12m", "12m + previous")
	var names []string
	cells := map[string][]string{}
	for _, r := range res.Endpoints {
		name := r.Report
		if r.Params != "" {
			name += " (" + r.Params + ")"
		}
		if cells[name] == nil {
			names = append(names, name)
			cells[name] = make([]string, 4)
		}
		i := 0
		if r.Range == "12m" {
			i = 2
		}
		if r.Compare {
			i++
		}
		c := fmt.Sprintf("%.0f / %.0f ms, %.0f cpu", r.P50ms, r.P99ms, r.CPUms)
		if r.Status != 200 {
			c = fmt.Sprintf("status %d", r.Status)
		} else if r.P99ms > 300 {
			c += " !"
		}
		cells[name][i] = c
	}
	for _, n := range names {
		c := cells[n]
		fmt.Printf("%-32s %-26s %-26s %-26s %-26s\n", n, c[0], c[1], c[2], c[3])
	}
	fmt.Printf("%-32s %.0f / %.0f ms\n", "health (floor)", res.Floor.P50ms, res.Floor.P99ms)
	fmt.Printf("%-32s %.1f s (%.0f events/s)\n", "omni metrics rebuild", res.Rebuild.Seconds, res.Rebuild.EventsPerSec)
	fmt.Printf("%-32s on %.0f / off %.0f events/s: ratio %.2f (target ≥ 0.90)\n", "ingest, metrics on / off",
		res.Ingest.OnMedian, res.Ingest.OffMedian, res.Ingest.Ratio)
	fmt.Printf("%-32s %.0f events/s: ratio %.2f\n", "  until all rolled up", res.Ingest.OnCurrentMedian, res.Ingest.RatioCurrent)
	fmt.Printf("%-32s %.0f events/s: ratio %.2f\n", "  rolled up inline (max_delay 0)", res.Ingest.InlineMedian, res.Ingest.RatioInline)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(s, "\r", "\n")), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
