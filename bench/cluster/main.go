// Command cluster tests and measures Omni's multi-node topology on
// loopback (docs/operations.md#topology): a 3-node NATS JetStream cluster
// (bench/cluster/natsnode, built from the nats-server module Omni embeds),
// one writer and two front ends, all real processes of the built binary.
//
// It measures the front ends' acknowledged rate with one and with two of
// them (the writer stopped, so it does not compete for the CPU), then the
// writer's ceiling (the rate it stores the backlog they left, profiles
// resolved), then loads both front ends while one NATS node is killed
// with kill -9 and restarted and one front end is killed: every
// acknowledged event must be stored exactly once in the writer's SQLite.
//
//	go build -o /tmp/omni . && go run ./bench/cluster -bin /tmp/omni
package main

import (
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // reads the writer's database after it stopped
)

type options struct {
	bin      string // omni binary; empty builds one
	events   int    // events per measured phase
	batch    int
	clients  int
	rounds   int    // 1 vs 2 front-end rounds (medians)
	profile  string // directory for CPU profiles of the EVENTS leader (empty: none)
	replicas int    // of the streams (0: 3)
	// hooks Shopify webhooks are sent to the front ends during the
	// faults, built from order (Shopify's sample order); 0 sends none.
	hooks int
	order []byte
	log   io.Writer
}

type report struct {
	busFloor           float64   // JetStream R3 publish, events/s, same run
	oneFE, twoFE       []float64 // acknowledged events/s per round
	writerCeiling      float64   // stored events/s draining a backlog
	writerBacklog      uint64
	feCPU, writerCPU   time.Duration // per event
	natsCPU            time.Duration // per event acknowledged, the 3 nodes together
	drainNATSCPU       time.Duration // per event stored, the 3 nodes together
	eventsConsumers    int           // durable consumers acknowledging each event
	secondWriter       string        // why a second writer was refused
	acked, stored      int
	lost, dups, extras int
	retries            int64
	// Shopify webhooks through the front ends, during the faults.
	hooksAcked, hooksStored, hooksLost, hooksDups int
	hookRetries                                   int64
}

func main() {
	o := options{log: os.Stdout}
	var err error
	flag.StringVar(&o.bin, "bin", "", "omni binary (default: build one)")
	flag.IntVar(&o.events, "events", 50000, "events per measured phase")
	flag.IntVar(&o.batch, "batch", 100, "events per request")
	flag.IntVar(&o.clients, "clients", 8, "concurrent clients")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of 1 vs 2 front ends (medians reported)")
	flag.StringVar(&o.profile, "profile", "", "write 10 s CPU profiles of the NATS node leading EVENTS, under load and while the writer drains, into this directory")
	flag.IntVar(&o.replicas, "replicas", 3, "replicas of the streams (1 to compare with unreplicated streams)")
	flag.IntVar(&o.hooks, "hooks", 300, "Shopify webhooks sent to the front ends during the faults (needs ../shared/fixtures/shopify/order.json)")
	fixture := flag.String("order-fixture", "", "Shopify's sample order (default: found in shared/fixtures beside or above this directory)")
	flag.Parse()
	if o.hooks > 0 {
		if *fixture == "" {
			*fixture = findOrderFixture()
		}
		if *fixture == "" {
			fmt.Fprintln(os.Stderr, "cluster: no shared/fixtures/shopify/order.json found: sending no webhooks (-order-fixture names it)")
			o.hooks = 0
		} else if o.order, err = os.ReadFile(*fixture); err != nil {
			fmt.Fprintln(os.Stderr, "cluster:", err)
			os.Exit(2)
		}
	}
	r, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
	r.print(o.log, o)
	if r.lost > 0 || r.dups > 0 || r.hooksLost > 0 || r.hooksDups > 0 {
		os.Exit(1)
	}
}

func run(o options) (rep *report, err error) {
	if o.replicas == 0 {
		o.replicas = 3
	}
	dir, err := os.MkdirTemp("", "omni-cluster-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err == nil {
			os.RemoveAll(dir)
		} else {
			err = fmt.Errorf("%w (logs in %s)", err, dir)
		}
	}()
	began := time.Now()
	say := func(f string, a ...any) {
		fmt.Fprintf(o.log, "# %5.1fs "+f+"\n", append([]any{time.Since(began).Seconds()}, a...)...)
	}

	natsBin := filepath.Join(dir, "natsnode")
	if err := build(natsBin, "github.com/omni/omni/bench/cluster/natsnode"); err != nil {
		return nil, err
	}
	if o.bin == "" {
		o.bin = filepath.Join(dir, "omni")
		if err := build(o.bin, "github.com/omni/omni"); err != nil {
			return nil, err
		}
	}
	cluster, err := startNATS(natsBin, dir, 3)
	if err != nil {
		return nil, err
	}
	defer cluster.stop()
	say("NATS cluster of 3 ready: %s", cluster.url())
	floor, err := cluster.publishFloor(o.events, o.replicas, []byte(`{"id":"src:0123456789abcde:r0-fe1-12345","type":"track","name":"Product Viewed","source":"bench","identities":{"user_id":"user-1234"},"properties":{"sku":"SKU-123","price":19.99},"occurred_at":"2026-11-30T15:00:00Z"}`))
	if err != nil {
		return nil, fmt.Errorf("publish floor: %w", err)
	}
	say("floor: one client publishes %.0f events/s to an R%d stream", floor, o.replicas)

	node := func(name, role string) (*omni, error) {
		return newOmni(o.bin, dir, name, role, cluster.url(), o.replicas)
	}
	writer, err := node("writer", "writer")
	if err != nil {
		return nil, err
	}
	key, err := createSource(o.bin, writer.dir)
	if err != nil {
		return nil, err
	}
	var hk *hooks
	if o.hooks > 0 {
		if hk, err = newHooks(o.order); err != nil {
			return nil, err
		}
		if err := configureShopify(o.bin, writer.dir); err != nil {
			return nil, err
		}
	}
	fe1, _ := node("frontend1", "frontend")
	fe2, _ := node("frontend2", "frontend")
	for _, p := range []*omni{writer, fe1, fe2} {
		if err := p.serve(); err != nil {
			return nil, err
		}
		defer p.kill9()
	}
	say("writer %s, front ends %s and %s serving", writer.http, fe1.http, fe2.http)

	rep = &report{busFloor: floor}
	// An unsafe combination: a second writer (another data dir) on the
	// same streams must be refused.
	w2, _ := node("writer2", "writer")
	if err := w2.serve(); err == nil {
		w2.kill9()
		return nil, fmt.Errorf("a second writer started on the same bus")
	}
	rep.secondWriter = firstLine(tail(w2.log.Name()), "another writer")
	if rep.secondWriter == "" {
		return nil, fmt.Errorf("second writer failed for another reason: %s", tail(w2.log.Name()))
	}
	say("second writer refused: %s", rep.secondWriter)

	// Front-end throughput, writer stopped: the events wait on the
	// stream (its durable consumers keep them by interest).
	if err := writer.stop(); err != nil {
		return nil, err
	}
	l := newLoad(key, o.clients)
	var feCPU, natsCPU time.Duration
	var feEvents int
	for r := 0; r < o.rounds; r++ {
		for _, fes := range [][]*omni{{fe1}, {fe1, fe2}} {
			bodies, ids := batches(fmt.Sprintf("r%d-fe%d", r, len(fes)), o.events, o.batch)
			if o.profile != "" && r == 0 && len(fes) == 2 {
				go profileLeader(cluster, filepath.Join(o.profile, "nats-leader-ingest.pprof"), say)
			}
			cpu0, ncpu0 := fe1.cpu()+fe2.cpu(), cluster.cpu()
			took, err := l.run(addrs(fes), bodies, ids, o.clients, nil)
			if err != nil {
				return nil, err
			}
			feCPU += fe1.cpu() + fe2.cpu() - cpu0
			natsCPU += cluster.cpu() - ncpu0
			feEvents += o.events
			rate := float64(o.events) / took.Seconds()
			if len(fes) == 1 {
				rep.oneFE = append(rep.oneFE, rate)
			} else {
				rep.twoFE = append(rep.twoFE, rate)
			}
			say("round %d, %d front end(s): %.0f events/s acknowledged", r+1, len(fes), rate)
		}
	}
	rep.feCPU = feCPU / time.Duration(feEvents)
	rep.natsCPU = natsCPU / time.Duration(feEvents)

	// The writer's ceiling: restarted on its data dir (it takes its own
	// lease back), it stores the backlog the front ends left.
	if err := writer.serve(); err != nil {
		return nil, err
	}
	if o.profile != "" {
		go profileLeader(cluster, filepath.Join(o.profile, "nats-leader-drain.pprof"), say)
	}
	t0, cpu0, ncpu0 := time.Now(), writer.cpu(), cluster.cpu()
	// The consumers' lag counts bus messages (a request's events are one),
	// so the backlog in events is what the front ends acknowledged while
	// the writer was stopped.
	if pending, err := writer.backlog(); err != nil {
		return nil, err
	} else if pending == 0 {
		return nil, errors.New("the writer found no backlog to store")
	}
	rep.writerBacklog = uint64(feEvents)
	if err := writer.waitDrained(10 * time.Minute); err != nil {
		return nil, err
	}
	drain := time.Since(t0)
	rep.writerCeiling = float64(rep.writerBacklog) / drain.Seconds()
	if rep.writerBacklog > 0 {
		rep.writerCPU = (writer.cpu() - cpu0) / time.Duration(rep.writerBacklog)
		rep.drainNATSCPU = (cluster.cpu() - ncpu0) / time.Duration(rep.writerBacklog)
	}
	rep.eventsConsumers = cluster.consumersOf("EVENTS")
	say("writer stored a backlog of %d in %s", rep.writerBacklog, drain.Round(time.Millisecond))

	// Faults under load: kill -9 one NATS node a third of the way in and
	// restart it two seconds later; kill -9 a front end two thirds in.
	var mu sync.Mutex
	live := []*omni{fe1, fe2}
	alive := func() []string { mu.Lock(); defer mu.Unlock(); return addrs(live)() }
	bodies, ids := batches("faults", o.events, o.batch)
	var restarted sync.WaitGroup
	var restartErr error
	var victim int
	hook := func(k int) {
		switch k {
		case len(bodies) / 3:
			// The node leading EVENTS, so that a new leader must be elected.
			victim = cluster.leaderOf("EVENTS")
			say("kill -9 NATS node %d (leader of EVENTS)", victim+1)
			cluster.nodes[victim].kill9()
			restarted.Add(1)
			go func() {
				defer restarted.Done()
				time.Sleep(2 * time.Second)
				restartErr = cluster.nodes[victim].start()
				say("NATS node %d restarted", victim+1)
			}()
		case 2 * len(bodies) / 3:
			restarted.Wait() // the front end dies after the node is back
			say("kill -9 front end 2")
			mu.Lock()
			live = []*omni{fe1}
			mu.Unlock()
			fe2.kill9()
		}
	}
	// Shopify's webhooks go to the same front ends meanwhile.
	hooksDone := make(chan error, 1)
	go func() {
		if hk == nil {
			hooksDone <- nil
			return
		}
		hooksDone <- hk.run(alive, o.hooks, 5_600_000_000_000)
	}()
	if _, err := l.run(alive, bodies, ids, o.clients, hook); err != nil {
		return nil, err
	}
	if err := <-hooksDone; err != nil {
		return nil, err
	}
	restarted.Wait()
	if restartErr != nil {
		return nil, restartErr
	}
	if err := cluster.waitAcked(5 * time.Minute); err != nil {
		return nil, err
	}
	if err := writer.stop(); err != nil {
		return nil, err
	}
	rep.retries = l.retries.Load()
	if hk != nil {
		rep.hookRetries = hk.retries.Load()
	}
	return rep, rep.count(l, hk, filepath.Join(writer.dir, "data.db"))
}

// count compares what the writer stored with what the load generator got
// acknowledged: tracking events, and the orders of the Shopify webhooks.
func (r *report) count(l *load, hk *hooks, db string) error {
	conn, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	if err != nil {
		return err
	}
	defer conn.Close()
	rows, err := conn.Query("SELECT event_id FROM events")
	if err != nil {
		return err
	}
	defer rows.Close()
	stored, orders := map[string]int{}, map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(id, "src:"):
			// Tracking ids are src:<source id>:<messageId>.
			stored[id[strings.LastIndexByte(id, ':')+1:]]++
			r.stored++
		case strings.HasPrefix(id, "shopify:order:") && strings.Count(id, ":") == 2:
			orders[strings.TrimPrefix(id, "shopify:order:")]++
			r.hooksStored++
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, n := range stored {
		if n > 1 {
			r.dups += n - 1
		}
	}
	l.acked.Range(func(k, _ any) bool {
		r.acked++
		if stored[k.(string)] == 0 {
			r.lost++
		}
		return true
	})
	r.extras = len(stored) - (r.acked - r.lost)
	for _, n := range orders {
		if n > 1 {
			r.hooksDups += n - 1
		}
	}
	if hk != nil {
		hk.acked.Range(func(k, _ any) bool {
			r.hooksAcked++
			if orders[k.(string)] == 0 {
				r.hooksLost++
			}
			return true
		})
	}
	return nil
}

func (r *report) print(w io.Writer, o options) {
	one, two := median(r.oneFE), median(r.twoFE)
	fmt.Fprintf(w, "3 NATS nodes (R%d streams), 1 writer, 2 front ends on loopback; %d events per phase, batches of %d, %d clients, medians of %d\n", o.replicas, o.events, o.batch, o.clients, o.rounds)
	fmt.Fprintf(w, "  floor: JetStream publish:       %.0f events/s (one client, async, every ack awaited)\n", r.busFloor)
	fmt.Fprintf(w, "  acknowledged, 1 front end:      %.0f events/s  (rounds %s)  = %.2f x floor\n", one, rates(r.oneFE), one/r.busFloor)
	fmt.Fprintf(w, "  acknowledged, 2 front ends:     %.0f events/s  (rounds %s)  = %.2f x 1 front end, %.2f x floor\n", two, rates(r.twoFE), two/one, two/r.busFloor)
	fmt.Fprintf(w, "  CPU per acked event:            front ends %v, NATS (3 nodes, R%d) %v\n", r.feCPU, o.replicas, r.natsCPU)
	fmt.Fprintf(w, "  writer ceiling (backlog of %d): %.0f events/s stored, profiles resolved  = %.2f x 1 front end\n", r.writerBacklog, r.writerCeiling, r.writerCeiling/one)
	fmt.Fprintf(w, "  CPU per stored event:           writer %v, NATS %v (%d durable consumers on EVENTS, each ack replicated)\n", r.writerCPU, r.drainNATSCPU, r.eventsConsumers)
	fmt.Fprintf(w, "faults (kill -9 a NATS node and restart it, kill -9 a front end, under load)\n")
	fmt.Fprintf(w, "  acknowledged %d, stored %d: lost %d, duplicates %d, stored but never acknowledged %d; %d requests retried\n", r.acked, r.stored, r.lost, r.dups, r.extras, r.retries)
	if o.hooks > 0 {
		fmt.Fprintf(w, "  Shopify webhooks to the front ends meanwhile: answered %d, orders stored %d: lost %d, duplicates %d; %d deliveries sent again\n",
			r.hooksAcked, r.hooksStored, r.hooksLost, r.hooksDups, r.hookRetries)
	}
	fmt.Fprintf(w, "  second writer refused: %s\n", r.secondWriter)
}

func profileLeader(c *natsCluster, path string, say func(string, ...any)) {
	i := c.leaderOf("EVENTS")
	if err := c.profile(i, 10*time.Second, path); err != nil {
		say("profile: %v", err)
		return
	}
	say("CPU profile of NATS node %d (leader of EVENTS): %s", i+1, path)
}

func addrs(fes []*omni) func() []string {
	return func() []string {
		var a []string
		for _, f := range fes {
			a = append(a, f.http)
		}
		return a
	}
}

func build(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v %s", pkg, err, b)
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64{}, v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func rates(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%.0f", x))
	}
	return strings.Join(s, ", ")
}

// firstLine returns the first line of text containing substr.
func firstLine(text, substr string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
