package ingest

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchBatch is bench/ingest's request body: 100 track calls.
func benchBatch() []byte {
	var b strings.Builder
	b.WriteString(`{"batch":[`)
	for i := 0; i < 100; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"track","messageId":"b-%d","userId":"user-%d","event":"Product Viewed","properties":{"sku":"SKU-%d","price":19.99},"context":{"ip":"127.0.0.1","page":{"url":"https://shop.example/p/%d"}}}`, i, i%10000, i%500, i%500)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkBatchCPU is the tracking API's per-event CPU without HTTP or the
// bus: decode a 100-event batch, turn each item into a validated event and
// encode it for the bus. Reports µs per event.
func BenchmarkBatchCPU(b *testing.B) {
	h := &Handler{opts: Options{MaxBatchBytes: 500 << 10, MaxEventBytes: 32 << 10}, now: time.Now}
	src := &source{id: "src1", name: "bench", kind: KindServer}
	body := benchBatch()
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	for b.Loop() {
		in, err := h.parseBatch(body)
		if err != nil {
			b.Fatal(err)
		}
		evs, rejected := h.batchEvents(in, src)
		if len(rejected) > 0 || len(evs) != 100 {
			b.Fatal(err, rejected)
		}
		for _, ev := range evs {
			if _, err := ev.Marshal(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N*100), "cpu-µs/event")
}

// processCPU is this process's user+sys CPU time: on a shared machine the
// wall time per event says more about the neighbours than about the code.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
