// Command ingest load-tests a real `omni serve` over loopback: N clients
// post Segment batches, and it reports events/s end to end (acknowledged
// and stored in SQLite), p50/p99 acknowledgement latency, idle RSS and cold
// start time. In the same run it measures the floor: raw JetStream publish
// of the same payloads and a batched SQLite insert of the same rows.
//
//	go build -o /tmp/omni . && go run ./bench/ingest -bin /tmp/omni
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/logging"
)

func main() {
	bin := flag.String("bin", "./omni", "omni binary to test")
	total := flag.Int("events", 100000, "events to send")
	batch := flag.Int("batch", 100, "events per request")
	clients := flag.Int("clients", 8, "concurrent clients")
	rate := flag.Int("rate", 0, "also measure ack latency at this offered load (events/s), below saturation")
	half := flag.Bool("half", false, "also measure ack latency at half the acknowledged rate just measured")
	strict := flag.Bool("strict", false, "run the server with durability: strict (fsync before ack)")
	noFloor := flag.Bool("no-floor", false, "skip the in-process floor measurement")
	flag.Parse()

	dir, err := os.MkdirTemp("", "omni-bench-")
	must(err)
	defer os.RemoveAll(dir)
	defer os.Remove(dir + ".key") // the connector secrets key omni writes beside a data dir

	key := createSource(*bin, dir)
	addr := freeAddr()
	start := time.Now()
	cmd := exec.Command(*bin, "serve", "--http", addr, "--data-dir", dir)
	cmd.Env = append(os.Environ(), "OMNI_LOG_LEVEL=warn")
	if *strict {
		cmd.Env = append(cmd.Env, "OMNI_DURABILITY=strict")
	}
	cmd.Stderr = os.Stderr
	must(cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	waitHealthy(addr)
	coldStart := time.Since(start)
	time.Sleep(time.Second)
	idleRSS := rssKB(cmd.Process.Pid)

	bodies := makeBodies(*total, *batch)
	lat := make([]time.Duration, 0, len(bodies))
	var mu sync.Mutex
	work := make(chan []byte)
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients}}
	cpu0 := cpuTicks(cmd.Process.Pid)
	t0 := time.Now()
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range work {
				req, _ := http.NewRequest("POST", "http://"+addr+"/v1/batch", bytes.NewReader(body))
				req.SetBasicAuth(key, "")
				s := time.Now()
				resp, err := client.Do(req)
				must(err)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					panic(fmt.Sprintf("status %d", resp.StatusCode))
				}
				d := time.Since(s)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	for _, b := range bodies {
		work <- b
	}
	close(work)
	wg.Wait()
	ackDone := time.Since(t0)
	ackCPU := cpuTicks(cmd.Process.Pid) - cpu0
	waitDrained(addr)
	storedDone := time.Since(t0)
	storedCPU := cpuTicks(cmd.Process.Pid) - cpu0
	loadRSS := rssKB(cmd.Process.Pid)

	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	mode := "normal"
	if *strict {
		mode = "strict"
	}
	fmt.Printf("omni serve (durability %s), %d events in batches of %d, %d clients over loopback\n", mode, *total, *batch, *clients)
	fmt.Printf("  cold start to healthy:   %v\n", coldStart.Round(time.Millisecond))
	fmt.Printf("  idle RSS:                %d MB (after load: %d MB)\n", idleRSS/1024, loadRSS/1024)
	acked := float64(*total) / ackDone.Seconds()
	fmt.Printf("  acknowledged:            %.0f events/s\n", acked)
	// Server CPU (user+sys) while the load ran, over the events acked:
	// it includes the consumers storing in the background, as a peer's
	// figure includes its own background work.
	fmt.Printf("  server CPU while acking: %.1f µs per event\n", float64(ackCPU)*1e6/clockTicks/float64(*total))
	fmt.Printf("  stored in SQLite:        %.0f events/s (end to end)\n", float64(*total)/storedDone.Seconds())
	// Everything the server spent from the first request to the last
	// event stored: no machine with this many cores stores end to end
	// faster than cores ÷ that, however the work is scheduled.
	perStored := float64(storedCPU) / clockTicks / float64(*total)
	fmt.Printf("  server CPU per stored event: %.1f µs (acknowledging and storing); ceiling on %d cores: %.0f events/s\n",
		perStored*1e6, runtime.NumCPU(), float64(runtime.NumCPU())/perStored)
	fmt.Printf("  ack latency per request: p50 %v  p99 %v\n", pct(lat, 50), pct(lat, 99))

	if *half {
		*rate = int(acked / 2)
	}
	if *rate > 0 {
		p50, p99, got := paced(client, addr, key, *rate, *batch, 10*time.Second)
		fmt.Printf("  at an offered %d events/s: ack latency p50 %v  p99 %v (%.0f events/s sent)\n", *rate, p50, p99, got)
	}
	if *noFloor {
		return
	}

	floorBus, floorDB := floor(*total, *clients, *batch)
	fmt.Printf("floor, same payloads, in process\n")
	fmt.Printf("  JetStream publish:       %.0f events/s (%d publishers, %d events each call)\n", floorBus, *clients, *batch)
	fmt.Printf("  SQLite batched insert:   %.0f events/s\n", floorDB)
	fmt.Printf("  end to end / min(floor): %.2f\n", (float64(*total)/storedDone.Seconds())/min(floorBus, floorDB))
}

// paced sends batches at a fixed offered rate for d and returns the ack
// latency percentiles: latency below saturation, not queueing behind it.
func paced(client *http.Client, addr, key string, rate, per int, d time.Duration) (time.Duration, time.Duration, float64) {
	bodies := makeBodiesFrom(1<<30, rate*int(d.Seconds())+per, per)
	interval := time.Duration(float64(time.Second) * float64(per) / float64(rate))
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sent := 0
	for i := 0; time.Since(start) < d && i < len(bodies); i++ {
		<-tick.C
		wg.Add(1)
		sent += per
		go func(body []byte) {
			defer wg.Done()
			req, _ := http.NewRequest("POST", "http://"+addr+"/v1/batch", bytes.NewReader(body))
			req.SetBasicAuth(key, "")
			s := time.Now()
			resp, err := client.Do(req)
			must(err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			lat = append(lat, time.Since(s))
			mu.Unlock()
		}(bodies[i])
	}
	wg.Wait()
	elapsed := time.Since(start)
	waitDrained(addr)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return pct(lat, 50), pct(lat, 99), float64(sent) / elapsed.Seconds()
}

func makeBodies(total, per int) [][]byte { return makeBodiesFrom(0, total, per) }

func makeBodiesFrom(first, total, per int) [][]byte {
	var out [][]byte
	for start := first; start < first+total; start += per {
		var b strings.Builder
		b.WriteString(`{"batch":[`)
		for i := start; i < start+per && i < first+total; i++ {
			if i > start {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"type":"track","messageId":"b-%d","userId":"user-%d","event":"Product Viewed","properties":{"sku":"SKU-%d","price":19.99},"context":{"ip":"127.0.0.1","page":{"url":"https://shop.example/p/%d"}}}`, i, i%10000, i%500, i%500)
		}
		b.WriteString(`]}`)
		out = append(out, []byte(b.String()))
	}
	return out
}

func sampleEvents(total int) []*events.Event {
	now := time.Now().UTC()
	evs := make([]*events.Event, total)
	for i := range evs {
		evs[i] = &events.Event{ID: fmt.Sprintf("f-%d", i), Type: "track", Name: "Product Viewed", Source: "bench", OccurredAt: now, ReceivedAt: now,
			Identities: events.Identities{"user_id": fmt.Sprintf("user-%d", i%10000)},
			Properties: map[string]any{"sku": fmt.Sprintf("SKU-%d", i%500), "price": 19.99},
			Context:    events.Context{Channel: "server", IP: "127.0.0.1", Page: &events.Page{URL: fmt.Sprintf("https://shop.example/p/%d", i%500)}}}
	}
	return evs
}

// floor measures the two stages Omni chains, each alone, in this process.
// The JetStream floor publishes as the load does: clients publishers at
// once, batch events per call (one publisher at a time left the floor
// below what Omni acknowledged through HTTP).
func floor(total, clients, batch int) (busRate, dbRate float64) {
	dir, err := os.MkdirTemp("", "omni-floor-")
	must(err)
	defer os.RemoveAll(dir)
	evs := sampleEvents(total)

	cfg := config.Default()
	ctx := context.Background()
	b, err := bus.Open(ctx, bus.Options{StoreDir: filepath.Join(dir, "nats"), MaxStore: 2 << 30, MaxMemory: 64 << 20, DedupeWindow: 2 * time.Minute, MaxAge: time.Hour})
	must(err)
	_, err = eventstore.EnsureConsumer(ctx, b, 0) // interest retention needs a consumer
	must(err)
	msgs := make([]bus.Msg, len(evs))
	for i, ev := range evs {
		data, _ := ev.Marshal()
		msgs[i] = bus.Msg{Subject: ev.Subject(), Data: data, ID: ev.ID}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range max(clients, 1) {
		wg.Go(func() {
			for {
				i := int(next.Add(int64(batch))) - batch
				if i >= len(msgs) {
					return
				}
				for _, err := range b.PublishAll(ctx, msgs[i:min(i+batch, len(msgs))]) {
					must(err)
				}
			}
		})
	}
	wg.Wait()
	busRate = float64(total) / time.Since(t0).Seconds()
	b.Close()

	cfg.DataDir = filepath.Join(dir, "db")
	o := app.New(cfg, logging.New(io.Discard, "error", "text"))
	must(o.Open())
	t0 = time.Now()
	for i := 0; i < len(evs); i += 1000 {
		_, err := eventstore.WriteBatch(o.PB, evs[i:min(i+1000, len(evs))])
		must(err)
	}
	dbRate = float64(total) / time.Since(t0).Seconds()
	_ = o.PB.ResetBootstrapState()
	return busRate, dbRate
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[(len(d)-1)*p/100].Round(10 * time.Microsecond)
}

func createSource(bin, dir string) string {
	out, err := exec.Command(bin, "source", "create", "bench", "--data-dir", dir).CombinedOutput()
	if err != nil {
		panic(fmt.Sprintf("source create: %v %s", err, out))
	}
	m := regexp.MustCompile(`write key: (\S+)`).FindSubmatch(out)
	return string(m[1])
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer ln.Close()
	return ln.Addr().String()
}

func waitHealthy(addr string) {
	for i := 0; i < 2000; i++ {
		if resp, err := http.Get("http://" + addr + "/api/v1/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	panic("omni did not become healthy")
}

// waitDrained waits until the events consumer has stored everything.
func waitDrained(addr string) {
	for {
		resp, err := http.Get("http://" + addr + "/api/v1/health")
		must(err)
		var h struct {
			Bus struct {
				Consumers map[string]struct {
					Pending    uint64 `json:"pending"`
					AckPending int    `json:"ack_pending"`
				} `json:"consumers"`
			} `json:"bus"`
		}
		must(json.NewDecoder(resp.Body).Decode(&h))
		resp.Body.Close()
		c := h.Bus.Consumers[eventstore.ConsumerName]
		if c.Pending == 0 && c.AckPending == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+)`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	var kb int
	fmt.Sscan(string(m[1]), &kb)
	return kb
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times (100 on
// every Linux this runs on).
const clockTicks = 100

// cpuTicks is the user+sys CPU time of pid in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may
	// contain spaces: utime and stime are the 12th and 13th of them.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	var u, s int64
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &s)
	return u + s
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
