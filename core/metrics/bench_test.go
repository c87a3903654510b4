package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/metrics"
	"github.com/omni/omni/core/profiles"
)

// BenchmarkIngestWithRollups posts 100-event batches (one event in twenty an
// order of one of 10,000 customers, in two currencies) through profiles
// and metrics, with metrics.enabled on and off: the rollups' cost on
// ingest is the difference of the two events/s (or CPU per event) figures.
//
// shape=storefront is bench/metrics' mix instead: one event in ten an
// order, two checkouts, seven product page views from an email campaign
// (each a funnel step and an attribution touch).
func BenchmarkIngestWithRollups(b *testing.B) {
	for _, shape := range []string{"orders", "storefront"} {
		for _, mode := range []string{"off", "inline", "follow"} {
			b.Run(fmt.Sprintf("shape=%s/metrics=%s", shape, mode), func(b *testing.B) {
				benchIngest(b, shape, mode)
			})
		}
	}
}

// mode: off (metrics.enabled false), inline (rolled up in the events
// transaction, metrics.max_delay 0) or follow (the default follower).
func benchIngest(b *testing.B, shape, mode string) {
	on := mode != "off"
	{
		{
			s := omnitest.Start(b, omnitest.Options{
				Modules: func(*app.Omni) []app.Module {
					return []app.Module{profiles.New(profiles.Options{}), metrics.New(metrics.Options{})}
				},
				Configure: func(c *config.Config) {
					c.Metrics.Enabled = on
					if mode == "follow" {
						c.Metrics.MaxDelay = time.Minute
					}
					c.Profiles.BaseCurrency = "EUR"
					c.Profiles.ExchangeRates = "USD=0.9"
				},
			})
			var seq atomic.Int64
			client := &http.Client{}
			b.ResetTimer()
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					var buf bytes.Buffer
					buf.WriteString(`{"batch":[`)
					for i := 0; i < 100; i++ {
						n := seq.Add(1)
						if i > 0 {
							buf.WriteByte(',')
						}
						if shape == "storefront" {
							writeStorefrontEvent(&buf, n)
						} else if n%20 == 0 {
							cur := []string{"EUR", "USD"}[n%2]
							fmt.Fprintf(&buf, `{"type":"track","messageId":"o-%d","userId":"user-%d","event":"Order Completed","properties":{"order_id":"%d","total":%d.5,"currency":"%s","products":[{"sku":"S%d","quantity":1,"price":9.5}]}}`, n, n%10000, n, n%90+10, cur, n%50)
						} else {
							fmt.Fprintf(&buf, `{"type":"track","messageId":"v-%d","userId":"user-%d","event":"Product Viewed","properties":{"sku":"S%d","price":9.5}}`, n, n%10000, n%50)
						}
					}
					buf.WriteString(`]}`)
					req, _ := http.NewRequest("POST", s.URL+"/v1/batch", &buf)
					req.SetBasicAuth(s.WriteKey, "")
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
			omnitest.Eventually(b, 300*time.Second, func() bool {
				pending, ackPending, err := s.Events.Lag(context.Background())
				return err == nil && pending == 0 && ackPending == 0
			}, "all stored")
			stored := b.Elapsed()
			// The rollups follow the stored events (follow.go): the CPU
			// counts until they have taken everything too.
			omnitest.Eventually(b, 300*time.Second, func() bool {
				var queued int
				return s.PB.DB().NewQuery("SELECT COUNT(*) FROM metrics_queue").Row(&queued) == nil && queued == 0
			}, "all rolled up")
			b.StopTimer()
			cpu := cpuTime() - cpu0
			var facts int
			_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM metrics_orders").Row(&facts)
			want := int(seq.Load() / 20)
			if shape == "storefront" {
				want = int(seq.Load() / 10)
			}
			if on && facts != want {
				b.Fatalf("%d order facts, want %d", facts, want)
			}
			b.ReportMetric(float64(seq.Load())/stored.Seconds(), "events/s")
			b.ReportMetric(float64(seq.Load())/b.Elapsed().Seconds(), "rolled-up-events/s")
			// The process's CPU (client, HTTP, JetStream and the store
			// together) per event: less inflated by other load than events/s.
			b.ReportMetric(float64(cpu.Microseconds())/float64(seq.Load()), "cpu-µs/event")
		}
	}
}

// writeStorefrontEvent writes bench/metrics' ingest mix: event n of 5,000
// customers.
func writeStorefrontEvent(buf *bytes.Buffer, n int64) {
	user := n % 5000
	switch n % 10 {
	case 0:
		cur := []string{"EUR", "USD"}[n/10%2]
		fmt.Fprintf(buf, `{"type":"track","messageId":"o-%d","userId":"user-%d","event":"Order Completed","properties":{"order_id":"%d","revenue":%d,"currency":"%s","products":[{"sku":"SKU-%d","price":%d,"quantity":1}]}}`, n, user, n, 20+n%80, cur, n%200, 20+n%80)
	case 1, 2:
		fmt.Fprintf(buf, `{"type":"track","messageId":"c-%d","userId":"user-%d","event":"Checkout Started","properties":{"revenue":%d}}`, n, user, 20+n%80)
	default:
		fmt.Fprintf(buf, `{"type":"page","messageId":"v-%d","userId":"user-%d","name":"Product","properties":{"url":"https://omni-shop.dev/p/%d"},"context":{"campaign":{"source":"newsletter","medium":"email","name":"weekly"}}}`, n, user, n%200)
	}
}
