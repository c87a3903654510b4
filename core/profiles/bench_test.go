package profiles_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/profiles"
)

// BenchmarkIngestThroughProfiles posts 100-event batches over loopback with
// the profiles module on and waits until all are stored and resolved.
func BenchmarkIngestThroughProfiles(b *testing.B) {
	s := omnitest.Start(b, omnitest.Options{Modules: func(*app.Omni) []app.Module { return []app.Module{profiles.New(profiles.Options{})} }})
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
				fmt.Fprintf(&buf, `{"type":"track","messageId":"pb-%d","userId":"user-%d","event":"Product Viewed","properties":{"sku":"S%d","price":9.5}}`, n, n%10000, n%50)
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
	// Poll the consumer's lag (cheap), not the events table (a scan that
	// would compete with the writer being measured).
	omnitest.Eventually(b, 120*time.Second, func() bool {
		pending, ackPending, err := s.Events.Lag(context.Background())
		return err == nil && pending == 0 && ackPending == 0
	}, "all stored")
	b.StopTimer()
	var n int
	_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE profile != ''").Row(&n)
	if n != int(seq.Load()) {
		b.Fatalf("%d of %d events resolved to a profile", n, seq.Load())
	}
	b.ReportMetric(float64(seq.Load())/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkUnmerge times one un-merge (a single transaction) of a profile
// holding 2,000 events, half of them the loser's; each iteration merges
// the two again first (untimed). bench/profiles -unmerge-events times
// larger profiles.
func BenchmarkUnmerge(b *testing.B) {
	mod := profiles.New(profiles.Options{Interval: -1})
	s := omnitest.Start(b, omnitest.Options{Modules: func(*app.Omni) []app.Module { return []app.Module{mod} }})
	base := time.Now().Add(-90 * 24 * time.Hour)
	n := 0
	publish := func(evs ...*events.Event) {
		for i, err := range ingest.Publish(context.Background(), s.Bus, evs) {
			if err != nil {
				b.Fatalf("publish %s: %v", evs[i].ID, err)
			}
		}
		s.WaitEvent(b, evs[len(evs)-1].ID)
	}
	mk := func(typ string, ids events.Identities, at time.Time) *events.Event {
		n++
		return &events.Event{ID: fmt.Sprintf("bu-%d", n), Type: typ, Source: "bench", OccurredAt: at, ReceivedAt: time.Now(), Identities: ids}
	}
	var evs []*events.Event
	for i := 0; i < 2000; i++ {
		ids := events.Identities{events.Email: "bench-a@omni-shop.dev"}
		if i%2 == 1 {
			ids = events.Identities{events.Phone: "+14155550199"}
		}
		evs = append(evs, mk(events.PageViewed, ids, base.Add(time.Duration(i)*time.Minute)))
	}
	publish(evs...)
	for b.Loop() {
		b.StopTimer()
		publish(mk(events.Identify, events.Identities{events.Email: "bench-a@omni-shop.dev", events.Phone: "+14155550199"}, base))
		var m struct {
			ID       string `db:"id"`
			Survivor string `db:"survivor"`
		}
		if err := s.PB.DB().NewQuery("SELECT id, survivor FROM profile_merges WHERE undone_at = '' ORDER BY created DESC, id DESC LIMIT 1").One(&m); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := mod.Unmerge(s.PB, m.Survivor, m.ID, profiles.UnmergeBy{StaffName: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
}
