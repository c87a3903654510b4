package metrics_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/metrics"
	"github.com/omni/omni/core/store"
)

// BenchmarkFunnelReport answers the funnel and abandonment reports over a
// year of a shop with 100k customers: 150k funnel entries, 60k checkouts
// (60 % followed by an order, a third of those after a journey's message), seeded straight
// into the tables the events stream fills. Reports CPU ms (user+sys of
// the process) and wall p50/p99 per query.
//
//	go test ./core/metrics/ -run '^$' -bench FunnelReport -benchtime 200x
func BenchmarkFunnelReport(b *testing.B) {
	s := omnitest.Start(b, omnitest.Options{Modules: func(o *app.Omni) []app.Module {
		return []app.Module{messaging.New(messaging.Options{}), metrics.New(metrics.Options{})}
	}})
	tok := s.Staff(b, "owner@omni-shop.dev", "owner")
	var list struct{ Items []metrics.Funnel }
	_, body := s.Do(b, "GET", "/api/v1/metrics/funnels", nil, omnitest.Auth(tok))
	if json.Unmarshal(body, &list) != nil || len(list.Items) == 0 {
		b.Fatalf("funnels: %s", body)
	}
	fn := list.Items[0].ID
	now := time.Now().UTC()
	rnd := rand.New(rand.NewPCG(1, 2))
	channels := []string{"web", "web", "web", "pos", "whatsapp", "app", "email"}
	err := s.PB.RunInTransaction(func(tx core.App) error {
		ex := store.Executor(tx)
		ins, err := ex.Prepare("INSERT INTO metrics_funnel_entries (id, funnel, profile, entered_at, day, channel, reached, step_at, convert_secs) VALUES (?, ?, ?, ?, ?, ?, ?, '[]', ?)")
		if err != nil {
			return err
		}
		for i := range 150_000 {
			at := now.Add(-time.Duration(rnd.Int64N(int64(365 * 24 * time.Hour))))
			reached := rnd.IntN(3)
			secs := 0.0
			if reached == 2 {
				secs = float64(rnd.IntN(7 * 86400))
			}
			if _, err := ins.Exec(store.NewRecordID(), fn, fmt.Sprintf("p%06d", i%100_000), store.FormatTime(at), at.Format("2006-01-02"),
				channels[rnd.IntN(len(channels))], reached, secs); err != nil {
				return err
			}
		}
		co, err := ex.Prepare("INSERT INTO metrics_checkouts (id, key, profile, event, started_at, day, channel, order_at, order_event, order_total, order_currency, order_after, recovered_run) VALUES (?, ?, ?, '', ?, ?, ?, ?, ?, ?, 'EUR', ?, ?)")
		if err != nil {
			return err
		}
		for i := range 60_000 {
			at := now.Add(-time.Duration(rnd.Int64N(int64(365 * 24 * time.Hour))))
			orderAt, orderEv, after, run := "", "", -1.0, ""
			if rnd.IntN(10) < 6 {
				h := rnd.IntN(48)
				orderAt, orderEv, after = store.FormatTime(at.Add(time.Duration(h)*time.Hour)), store.NewRecordID(), float64(h*3600)
				if i%3 == 0 {
					run = "run"
				}
			}
			if _, err := co.Exec(store.NewRecordID(), fmt.Sprintf("test:%d", i), fmt.Sprintf("p%06d", rnd.IntN(100_000)), store.FormatTime(at), at.Format("2006-01-02"),
				channels[rnd.IntN(len(channels))], orderAt, orderEv, 40.0, after, run); err != nil {
				return err
			}
		}
		// A segment of 20k customers for the segment split.
		if _, err := ex.Exec("INSERT INTO segments (id, name) VALUES ('segbenchfunnel1', 'Bench')"); err != nil {
			return err
		}
		sm, err := ex.Prepare("INSERT INTO segment_members (id, segment, profile) VALUES (?, 'segbenchfunnel1', ?)")
		if err != nil {
			return err
		}
		for i := 0; i < 100_000; i += 5 {
			if _, err := sm.Exec(store.NewRecordID(), fmt.Sprintf("p%06d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	_, _ = s.PB.DB().NewQuery("ANALYZE").Execute()
	b.Logf("seeded in %s", time.Since(now))
	for _, q := range []string{
		"funnel=" + fn + "&range=30d&by=channel&compare=previous",
		"funnel=" + fn + "&range=12m&compare=previous",
		"funnel=" + fn + "&range=30d&by=segment:segbenchfunnel1&compare=previous",
		"funnel=abandonment&range=30d&compare=previous",
		"funnel=abandonment&range=12m&compare=previous",
	} {
		b.Run(q, func(b *testing.B) {
			var took []time.Duration
			// CPU time of the whole process per report besides wall time:
			// on a shared machine the wall time is mostly waiting for a core.
			cpu0 := cpuTime()
			for b.Loop() {
				t0 := time.Now()
				code, body := s.Do(b, "GET", "/api/v1/metrics/funnel?"+q, nil, omnitest.Auth(tok))
				took = append(took, time.Since(t0))
				if code != 200 {
					b.Fatalf("%d %s", code, body)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
