package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/webhooks"
)

// proc is one child process: a NATS node or an Omni.
type proc struct {
	name string
	args []string
	env  []string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

func (p *proc) start() error {
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the bench
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	p.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(p.cmd, p.done)
	return nil
}

// kill9 is a crash: no shutdown, no flush.
func (p *proc) kill9() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stop is a graceful shutdown (SIGTERM), waited for.
func (p *proc) stop() error {
	if p.cmd == nil || p.cmd.Process == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill9()
		return fmt.Errorf("%s did not stop within 30s", p.name)
	}
	if !p.cmd.ProcessState.Success() {
		return fmt.Errorf("%s exited with %v (log: %s)", p.name, p.cmd.ProcessState, p.log.Name())
	}
	return nil
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return p.cmd != nil
	}
}

// cpu is the user+system time the process has used so far.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// natsCluster is three nodes on loopback.
type natsCluster struct {
	nodes     []*proc
	urls      []string
	profPorts []int // net/http/pprof of each node
}

func startNATS(bin, dir string, n int) (*natsCluster, error) {
	c := &natsCluster{}
	var routes []string
	ports := make([][2]int, n)
	for i := range ports {
		ports[i] = [2]int{freePort(), freePort()}
		c.profPorts = append(c.profPorts, freePort())
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[i][1]))
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i][0]))
	}
	for i, pp := range ports {
		name := fmt.Sprintf("n%d", i+1)
		lf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return nil, err
		}
		p := &proc{name: "nats " + name, log: lf, args: []string{bin, "-name", name,
			"-port", fmt.Sprint(pp[0]), "-cluster-port", fmt.Sprint(pp[1]),
			"-routes", strings.Join(routes, ","), "-store", filepath.Join(dir, name),
			"-prof-port", fmt.Sprint(c.profPorts[i])}}
		if err := p.start(); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, p)
	}
	return c, c.waitReady(60 * time.Second)
}

// waitReady waits until the cluster has a JetStream meta leader.
func (c *natsCluster) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		js, done, err := c.jetStream()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			done()
			if err == nil {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("NATS cluster not ready within %s", limit)
}

// cpu is the user+system time the nodes used so far.
func (c *natsCluster) cpu() (d time.Duration) {
	for _, n := range c.nodes {
		d += n.cpu()
	}
	return d
}

// profile saves a CPU profile of node i over d into path.
func (c *natsCluster) profile(i int, d time.Duration, path string) error {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", c.profPorts[i], int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// jetStream connects to the cluster for one query (any node may be down
// at any moment of the bench); the caller calls done.
func (c *natsCluster) jetStream() (js jetstream.JetStream, done func(), err error) {
	nc, err := nats.Connect(c.url())
	if err != nil {
		return nil, nil, err
	}
	if js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc.Close, nil
}

// streamInfo is stream's info as the node answering knows it.
func (c *natsCluster) streamInfo(stream string) (*jetstream.StreamInfo, error) {
	js, done, err := c.jetStream()
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

// consumersOf counts the durable consumers of stream.
func (c *natsCluster) consumersOf(stream string) int {
	info, err := c.streamInfo(stream)
	if err != nil {
		return 0
	}
	return info.State.Consumers
}

// leaderOf is the index of the node leading stream (0 when unknown).
func (c *natsCluster) leaderOf(stream string) int {
	info, err := c.streamInfo(stream)
	if err != nil || info.Cluster == nil {
		return 0
	}
	var i int
	if _, err := fmt.Sscanf(info.Cluster.Leader, "n%d", &i); err != nil || i < 1 || i > len(c.nodes) {
		return 0
	}
	return i - 1
}

func (c *natsCluster) url() string { return strings.Join(c.urls, ",") }

// waitAcked waits until the writer's consumers have acknowledged
// everything on their streams, read from the streams' leaders: first the
// webhook deliveries (each acknowledged once its events are on EVENTS),
// then every event on EVENTS at that moment. The writer's health counts
// a consumer's pending messages as its own server sees the stream, which
// can lag the leader for a moment after a node restarts: with nothing
// pending there and the last delivery just acknowledged, the writer could
// be stopped before an event it had not yet been handed.
func (c *natsCluster) waitAcked(limit time.Duration) error {
	js, done, err := c.jetStream()
	if err != nil {
		return err
	}
	defer done()
	acked := func(stream, consumer string) (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return false, err
		}
		last := s.CachedInfo().State.LastSeq
		cons, err := s.Consumer(ctx, consumer)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return true, nil // no writer consumes this stream here
		} else if err != nil {
			return false, err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return false, err
		}
		return info.AckFloor.Stream >= last, nil
	}
	deadline := time.Now().Add(limit)
	var lastErr error
	for time.Now().Before(deadline) {
		hooks, err := acked(bus.StreamWebhooks, webhooks.ConsumerName)
		if err == nil && hooks {
			var evs bool
			if evs, err = acked(bus.StreamEvents, eventstore.ConsumerName); err == nil && evs {
				return nil
			}
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the writer did not acknowledge everything on its streams within %s (%v)", limit, lastErr)
}

func (c *natsCluster) stop() {
	for _, n := range c.nodes {
		_ = n.stop()
	}
}

// omni is one Omni process of the topology.
type omni struct {
	*proc
	http string
	dir  string
}

func newOmni(bin, dir, name, role, busURL string, replicas int) (*omni, error) {
	data := filepath.Join(dir, name)
	if err := os.MkdirAll(data, 0o750); err != nil {
		return nil, err
	}
	lf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	return &omni{http: addr, dir: data, proc: &proc{name: name, log: lf,
		args: []string{bin, "serve", "--http", addr, "--data-dir", data},
		env:  []string{"OMNI_ROLE=" + role, "OMNI_BUS_URL=" + busURL, "OMNI_BUS_REPLICAS=" + fmt.Sprint(replicas), "OMNI_LOG_LEVEL=warn"}}}, nil
}

// serve starts the process and waits until it answers health.
func (o *omni) serve() error {
	if err := o.start(); err != nil {
		return err
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if !o.alive() {
			return fmt.Errorf("%s exited at start: %s", o.name, tail(o.log.Name()))
		}
		if resp, err := http.Get("http://" + o.http + "/api/v1/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy within 90s: %s", o.name, tail(o.log.Name()))
}

// backlog is what the writer's events consumer has not stored yet.
func (o *omni) backlog() (uint64, error) {
	resp, err := http.Get("http://" + o.http + "/api/v1/health")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var h struct {
		Bus struct {
			Consumers map[string]struct {
				Pending    uint64 `json:"pending"`
				AckPending uint64 `json:"ack_pending"`
			} `json:"consumers"`
		} `json:"bus"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return 0, err
	}
	c, ok := h.Bus.Consumers[eventstore.ConsumerName]
	if !ok {
		return 0, fmt.Errorf("health names no %s consumer", eventstore.ConsumerName)
	}
	// Webhook deliveries the front ends took become events once the
	// writer's connector ran them.
	w := h.Bus.Consumers[webhooks.ConsumerName]
	return c.Pending + c.AckPending + w.Pending + w.AckPending, nil
}

// waitDrained waits until the writer stored everything on the streams:
// nothing pending twice in a row, as a webhook delivery acknowledged
// between two reads of health may have just published its events.
func (o *omni) waitDrained(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	zeros := 0
	for time.Now().Before(deadline) {
		if n, err := o.backlog(); err == nil && n == 0 {
			if zeros++; zeros == 2 {
				return nil
			}
		} else {
			zeros = 0
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("writer did not drain within %s", limit)
}

func createSource(bin, dataDir string) (string, error) {
	out, err := exec.Command(bin, "source", "create", "bench", "--data-dir", dataDir).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("source create: %v %s", err, out)
	}
	m := regexp.MustCompile(`write key: (\S+)`).FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("source create printed no write key: %s", out)
	}
	return string(m[1]), nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

// publishFloor is the rate one client stores n event-sized messages in an
// R3 stream of this cluster, asynchronously, waiting for every ack: the
// floor the front ends' acknowledged rate is compared with.
func (c *natsCluster) publishFloor(n, replicas int, payload []byte) (float64, error) {
	nc, err := nats.Connect(c.url())
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FLOOR", Subjects: []string{"floor.>"}, Replicas: replicas, Storage: jetstream.FileStorage}); err != nil {
		return 0, err
	}
	defer js.DeleteStream(context.Background(), "FLOOR")
	t0 := time.Now()
	futures := make([]jetstream.PubAckFuture, 0, n)
	waited := 0
	wait := func(upTo int) error { // acks in order, keeping a window in flight
		for ; waited < upTo; waited++ {
			select {
			case <-futures[waited].Ok():
			case err := <-futures[waited].Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	for i := 0; i < n; i++ {
		if err := wait(len(futures) - 4096); err != nil {
			return 0, err
		}
		m := nats.NewMsg("floor.bench.track")
		m.Data = payload
		// Its id as Omni publishes an event's: in bus.EventIDHeader, which
		// JetStream does not dedupe on.
		m.Header.Set(bus.EventIDHeader, fmt.Sprintf("floor-%d", i))
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return 0, err
		}
		futures = append(futures, f)
	}
	if err := wait(len(futures)); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}
