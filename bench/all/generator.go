package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/omni/omni/bench/segload"
	"github.com/omni/omni/core/eventstore"
)

// generator points the Segment load generator at a fresh `omni serve` (and,
// with -compare, at the peer, alternating A B A B), and reads Omni's memory
// from /proc: idle, the peak under load, and again -settle after the load.
func (e *env) generator(ctx context.Context) {
	clients, err := e.clientCounts()
	if err != nil {
		e.tab.fail("generator", []string{"clients"}, err)
		return
	}
	events, runs, settle := e.o.Events, e.o.Runs, e.o.Settle
	if events <= 0 {
		events = map[bool]int{true: 1000, false: 100000}[e.o.Short]
	}
	if runs <= 0 {
		runs = map[bool]int{true: 1, false: 3}[e.o.Short]
	}
	if settle <= 0 {
		settle = e.pick(time.Second, time.Minute)
	}
	memFigs := []string{"idle RSS", "peak RSS under load", "RSS " + settle.String() + " after the load", "data dir bytes per stored event"}

	srv, err := startOmni(ctx, e.omni())
	if err != nil {
		e.tab.fail("generator", memFigs, err)
		return
	}
	defer srv.stop()
	time.Sleep(e.pick(time.Second, 10*time.Second)) // let start-up garbage be collected
	idle := rssMB(srv.pid())

	var peerPIDs []int
	for _, p := range strings.Split(e.o.ComparePIDs, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(p)); err == nil {
			peerPIDs = append(peerPIDs, n)
		}
	}
	peak := newPeak(srv.pid())
	var omniCPU, peerCPU time.Duration
	var omniAcked, peerAcked int64
	for _, c := range clients {
		var omniRates, peerRates []float64
		var failed string
		for r := range runs {
			if e.o.CompareURL != "" {
				c0 := cpuOf(peerPIDs...)
				res := segload.Run(ctx, segload.Options{URL: e.o.CompareURL, Key: e.o.CompareKey, Events: events, Clients: c, Label: fmt.Sprintf("peer-c%d-%d", c, r)})
				peerCPU += cpuOf(peerPIDs...) - c0
				peerAcked += res.EventsAcked
				peerRates = append(peerRates, res.AckedPerS)
				e.logRun(res)
				if res.FirstError != "" {
					failed = "peer: " + res.FirstError
				}
			}
			c0 := cpuOf(srv.pid())
			stopPeak := peak.sample()
			res := segload.Run(ctx, segload.Options{URL: "http://" + srv.addr, Key: srv.key, Events: events, Clients: c, Label: fmt.Sprintf("omni-c%d-%d", c, r)})
			omniCPU += cpuOf(srv.pid()) - c0
			omniAcked += res.EventsAcked
			omniRates = append(omniRates, res.AckedPerS)
			e.logRun(res)
			if res.FirstError != "" {
				failed = "omni: " + res.FirstError
			}
			err := srv.waitDrained(ctx, 10*time.Minute)
			stopPeak()
			if err != nil {
				failed = err.Error()
			}
		}
		fig := fmt.Sprintf("Omni acked, %d clients", c)
		if failed != "" {
			e.tab.add(Row{Bench: "generator", Figure: fig, Err: failed})
			continue
		}
		row := Row{Bench: "generator", Figure: fig, Unit: "events/s", Value: median(omniRates)}
		if len(peerRates) > 0 {
			row.Floor = median(peerRates)
			e.tab.add(Row{Bench: "generator", Figure: fmt.Sprintf("peer acked, %d clients", c), Unit: "events/s", Value: median(peerRates)})
			if c >= 32 {
				row.Target, row.Met = "≥ 1.5× the peer at 32 clients", met(row.Value >= 1.5*row.Floor)
			}
		}
		e.tab.add(row)
	}
	if omniAcked > 0 {
		row := Row{Bench: "generator", Figure: "Omni CPU per acked event", Unit: "µs", Value: float64(omniCPU.Microseconds()) / float64(omniAcked)}
		if len(peerPIDs) > 0 && peerAcked > 0 {
			row.Floor = float64(peerCPU.Microseconds()) / float64(peerAcked)
			row.Target, row.Met = "≤ the peer's", met(row.Value <= row.Floor)
		}
		e.tab.add(row)
	}

	time.Sleep(settle)
	after := rssMB(srv.pid())
	e.tab.add(Row{Bench: "memory", Figure: memFigs[0], Unit: "MB", Value: idle, Target: "≤ 60 MB", Met: met(idle <= 60)})
	e.tab.add(Row{Bench: "memory", Figure: memFigs[1], Unit: "MB", Value: peak.max(), Target: "≤ 250 MB", Met: met(peak.max() <= 250)})
	e.tab.add(Row{Bench: "memory", Figure: memFigs[2], Unit: "MB", Value: after, Target: "≤ 100 MB a minute after", Met: met(after <= 100)})
	if omniAcked > 0 {
		b := float64(dirBytes(srv.dir)) / float64(omniAcked)
		e.tab.add(Row{Bench: "memory", Figure: memFigs[3], Unit: "B", Value: b, Target: "≤ 1024 B", Met: met(b <= 1024)})
	} else {
		e.tab.add(Row{Bench: "memory", Figure: memFigs[3], Err: "nothing stored"})
	}
}

func (e *env) logRun(r segload.Result) {
	if e.o.Verbose {
		b, _ := json.Marshal(r)
		fmt.Fprintln(e.log, string(b))
	}
}

func (e *env) clientCounts() ([]int, error) {
	spec := e.o.Clients
	if spec == "" {
		spec = map[bool]string{true: "8", false: "8,32"}[e.o.Short]
	}
	var out []int
	for _, s := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-clients: %q is not a positive number", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// server is one `omni serve` on a fresh data dir.
type server struct {
	cmd  *exec.Cmd
	dir  string
	addr string
	key  string
}

func startOmni(ctx context.Context, bin string) (*server, error) {
	dir, err := os.MkdirTemp("", "omni-bench-all-data-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir}
	out, err := exec.CommandContext(ctx, bin, "source", "create", "bench", "--data-dir", dir).CombinedOutput()
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("omni source create: %v: %s", err, out)
	}
	m := regexp.MustCompile(`write key: (\S+)`).FindSubmatch(out)
	if m == nil {
		s.stop()
		return nil, fmt.Errorf("omni source create printed no write key: %s", out)
	}
	s.key = string(m[1])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.stop()
		return nil, err
	}
	s.addr = ln.Addr().String()
	ln.Close()
	s.cmd = exec.Command(bin, "serve", "--http", s.addr, "--data-dir", dir)
	s.cmd.Env = append(os.Environ(), "OMNI_LOG_LEVEL=warn")
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		s.stop()
		return nil, err
	}
	for range 600 {
		if resp, err := http.Get("http://" + s.addr + "/api/v1/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return nil, errors.New("omni serve did not become healthy in 30 s")
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	os.RemoveAll(s.dir)
	os.Remove(s.dir + ".key") // the connectors' secret key lives beside the data dir
}

// waitDrained waits until the events consumer has stored everything.
func (s *server) waitDrained(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := http.Get("http://" + s.addr + "/api/v1/health")
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
			return fmt.Errorf("health: %v", err)
		}
		c, ok := h.Bus.Consumers[eventstore.ConsumerName]
		if ok && c.Pending == 0 && c.AckPending == 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("events not stored after %v", limit)
}

// peak samples a process's RSS every 100 ms while a load runs.
type peak struct {
	pid int
	mu  sync.Mutex
	mb  float64
}

func newPeak(pid int) *peak { return &peak{pid: pid} }

func (p *peak) sample() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			p.mu.Lock()
			p.mb = max(p.mb, rssMB(p.pid))
			p.mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (p *peak) max() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mb
}

// rssMB is the process's resident set (VmRSS) in MB.
func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+)`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	kb, _ := strconv.ParseFloat(string(m[1]), 64)
	return kb / 1024
}

// cpuOf sums user+system CPU of the processes and their live children
// (a database's backends, Omni's plugin subprocesses).
func cpuOf(pids ...int) time.Duration {
	var ticks int64
	for _, pid := range withChildren(pids) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces) start at ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func withChildren(pids []int) []int {
	out := slices.Clone(pids)
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		for _, t := range tasks {
			b, _ := os.ReadFile(t)
			for _, f := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(f); err == nil && !slices.Contains(out, n) {
					out = append(out, n)
				}
			}
		}
	}
	return out
}
