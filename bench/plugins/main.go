// Command plugins measures webhook throughput through one connector plugin
// (the example connector, a real subprocess) against the same events sent
// straight to /api/v1/batch, in one run on one Omni, and prints the ratio.
//
//	go run ./bench/plugins -duration 10s -concurrency 16
//
// The program is its own plugin executable: Omni starts it again as
// `plugins plugin run example`, exactly as the omni binary does.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/cli"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/plugins/builtin"
	"github.com/omni/omni/plugins/example"
)

const secret = "bench-secret"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "plugin" {
		os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr, builtin.Extension(connectors.Options{})))
	}
	duration := flag.Duration("duration", 10*time.Second, "length of each phase")
	conc := flag.Int("concurrency", 16, "concurrent HTTP clients")
	flag.Parse()
	if err := run(*duration, *conc); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, conc int) error {
	dir, err := os.MkdirTemp("", "omni-bench-plugins-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.DataDir = dir
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	o := app.New(cfg, log)
	mod := connectors.New(connectors.Options{})
	o.Use(mod)
	if err := o.Open(); err != nil {
		return err
	}
	// Enable the example connector before serving.
	rec, err := connectors.EnsureRecord(o.PB, connectors.Installed{Name: "example", Kind: "builtin"})
	if err != nil {
		return err
	}
	defer os.Remove(cfg.SecretKeyPath())
	sealer, err := connectors.LoadKey("", cfg.SecretKeyPath())
	if err != nil {
		return err
	}
	d, _ := example.New().Describe(context.Background())
	if err := connectors.ApplyConfig(rec, sealer, d.Config, map[string]string{"webhook_secret": secret}); err != nil {
		return err
	}
	rec.Set("enabled", true)
	if err := connectors.SaveSettings(o.PB, rec); err != nil {
		return err
	}
	src, err := ingest.CreateSource(o.PB, "bench", ingest.KindBrowser)
	if err != nil {
		return err
	}
	key := src.WriteKey

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	go func() { _ = o.Serve(ln, ready) }()
	<-ready
	defer o.Shutdown()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc * 2}}

	// Wait for the plugin.
	for start := time.Now(); ; {
		resp, err := client.Post(base+"/webhooks/example", "application/json", bytes.NewReader([]byte("{}")))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				break
			}
		}
		if time.Since(start) > 30*time.Second {
			return fmt.Errorf("connector did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}

	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"))
	at := time.Now().UTC().Format(time.RFC3339Nano)
	directReq := func(n int64) *http.Request {
		body := fmt.Sprintf(`{"batch":[{"type":"track","event":"order.placed","messageId":"direct-%d","timestamp":%q,"properties":{"email":"bench@omni-shop.dev","total":12.5},"context":{"traits":{"email":"bench@omni-shop.dev"}},"userId":"u-%d"}]}`, n, at, n%1000)
		r, _ := http.NewRequest("POST", base+"/api/v1/batch", bytes.NewReader([]byte(body)))
		r.Header.Set("Authorization", auth)
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	pluginReq := func(n int64) *http.Request {
		body := []byte(fmt.Sprintf(`{"id":"wh-%d","type":"order.placed","email":"bench@omni-shop.dev","customer_id":"u-%d","occurred_at":%q,"properties":{"total":12.5}}`, n, n%1000, at))
		r, _ := http.NewRequest("POST", base+"/webhooks/example", bytes.NewReader(body))
		r.Header.Set(example.SignatureHeader, example.Sign(secret, body))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	// A B B A order so warm-up and background storing weigh on both paths.
	d1 := phase(client, conc, duration, directReq)
	p1 := phase(client, conc, duration, pluginReq)
	p2 := phase(client, conc, duration, pluginReq)
	d2 := phase(client, conc, duration, directReq)
	direct, viaPlugin := merge(d1, d2), merge(p1, p2)
	fmt.Printf("concurrency %d, 2 x %s per path (order A B B A), 1 event per request; p50/p99 = worse of the two runs\n", conc, duration)
	fmt.Printf("direct  /api/v1/batch      %8.0f events/s  p50 %6.2f ms  p99 %6.2f ms  errors %d\n", direct.rate, ms(direct.p50), ms(direct.p99), direct.errors)
	fmt.Printf("plugin  /webhooks/example  %8.0f events/s  p50 %6.2f ms  p99 %6.2f ms  errors %d\n", viaPlugin.rate, ms(viaPlugin.p50), ms(viaPlugin.p99), viaPlugin.errors)
	fmt.Printf("ratio plugin/direct: %.0f%% (target >= 50%%)\n", 100*viaPlugin.rate/direct.rate)
	return nil
}

func merge(a, b result) result {
	return result{rate: (a.rate + b.rate) / 2, p50: max(a.p50, b.p50), p99: max(a.p99, b.p99), errors: a.errors + b.errors}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type result struct {
	rate     float64
	p50, p99 time.Duration
	errors   int64
}

func phase(client *http.Client, conc int, duration time.Duration, mk func(n int64) *http.Request) result {
	var (
		seq, okN, errN atomic.Int64
		mu             sync.Mutex
		lat            []time.Duration
		wg             sync.WaitGroup
	)
	deadline := time.Now().Add(duration)
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) {
				req := mk(seq.Add(1))
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errN.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errN.Add(1)
					continue
				}
				okN.Add(1)
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r := result{rate: float64(okN.Load()) / elapsed.Seconds(), errors: errN.Load()}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)/2]
		r.p99 = lat[len(lat)*99/100]
	}
	return r
}
