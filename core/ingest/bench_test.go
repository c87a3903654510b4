package ingest_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/omni/omni/core/app/omnitest"
)

// BenchmarkIngestBatch posts 100-event batches over loopback and waits until
// all are stored; reports events/s end to end.
func BenchmarkIngestBatch(b *testing.B) {
	s := omnitest.Start(b, omnitest.Options{})
	var seq atomic.Int64
	client := &http.Client{}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var buf bytes.Buffer
			buf.WriteString(`{"batch":[`)
			for i := 0; i < 100; i++ {
				n := seq.Add(1)
				if i > 0 {
					buf.WriteByte(',')
				}
				fmt.Fprintf(&buf, `{"type":"track","messageId":"bb-%d","userId":"user-%d","event":"Product Viewed","properties":{"sku":"S%d","price":9.5}}`, n, n%1000, n%50)
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
	s.WaitEvents(b, int(seq.Load()))
	b.StopTimer()
	b.ReportMetric(float64(seq.Load())/b.Elapsed().Seconds(), "events/s")
}
