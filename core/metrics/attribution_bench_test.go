package metrics

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tests"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/store"
)

// attrBenchApp is a PocketBase app with the module's tables, the base
// currency EUR and the module wired to it (no bus: process is called
// directly, as the events transaction would).
func attrBenchApp(b *testing.B) (*tests.TestApp, *Module) {
	b.Helper()
	app, err := tests.NewTestAppWithConfig(core.BaseAppConfig{DataDir: b.TempDir(), EncryptionEnv: "x"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(app.Cleanup)
	m := New(Options{})
	m.app = app
	m.settings.kv = map[string]json.RawMessage{"currency": json.RawMessage(`{"base":"EUR"}`)}
	return app, m
}

// attrBenchBatch is 100 stored events of a shop's day: 85 page views
// without a campaign, 6 visits from a campaign, 4 email opens and 5
// orders of 20 customers out of customers.
func attrBenchBatch(rng *rand.Rand, seq *int, customers int, at time.Time) []*eventstore.Stored {
	out := make([]*eventstore.Stored, 0, 100)
	for i := 0; i < 100; i++ {
		*seq++
		p := fmt.Sprintf("p%014d", rng.IntN(customers))
		ev := &events.Event{ID: fmt.Sprintf("e%d", *seq), Source: "bench", OccurredAt: at.Add(time.Duration(i) * time.Second),
			Context: events.Context{Channel: "web"}}
		switch {
		case i < 85:
			ev.Type = events.PageViewed
		case i < 91:
			ev.Type = events.PageViewed
			ev.Context.Campaign = &events.Campaign{Source: "google", Medium: "cpc", Name: fmt.Sprintf("campaign-%d", rng.IntN(40))}
		case i < 95:
			ev.Type, ev.Context.Channel = events.EmailOpened, "email"
			ev.Properties = map[string]any{"campaign_name": fmt.Sprintf("newsletter-%d", rng.IntN(20)), "klaviyo_message_id": fmt.Sprintf("k%d", *seq)}
		default:
			ev.Type = events.OrderPlaced
			ev.Properties = map[string]any{"order_id": fmt.Sprint(*seq), "total": 20 + rng.Float64()*100, "currency": "EUR"}
		}
		out = append(out, &eventstore.Stored{RecordID: store.NewRecordID(), Event: ev, Profile: p})
	}
	return out
}

// attrBenchStore writes the batch's events rows, as the events consumer
// does before the processors run (visits are read back from them).
func attrBenchStore(tx core.App, batch []*eventstore.Stored) error {
	for _, st := range batch {
		ev := st.Event
		ctx, _ := json.Marshal(ev.Context)
		props, _ := json.Marshal(ev.Properties)
		_, err := tx.DB().NewQuery(`INSERT INTO events (id, event_id, type, source, channel, occurred_at, properties, context, profile)
			VALUES ({:id}, {:eid}, {:type}, {:source}, {:channel}, {:at}, {:props}, {:ctx}, {:profile})`).Bind(dbx.Params{
			"id": st.RecordID, "eid": ev.ID, "type": ev.Type, "source": ev.Source, "channel": ev.Context.Channel,
			"at": store.FormatTime(ev.OccurredAt), "props": string(props), "ctx": string(ctx), "profile": st.Profile}).Execute()
		if err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkAttributionProcess is the attribution part's share of storing
// a 100-event batch (one op) inside its transaction; µs/event counts the
// part's own work, not the transaction's commit (the events consumer's).
func BenchmarkAttributionProcess(b *testing.B) {
	app, m := attrBenchApp(b)
	rng := rand.New(rand.NewPCG(1, 2))
	seq := 0
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var own time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch := attrBenchBatch(rng, &seq, 5000, at.Add(time.Duration(i)*5*time.Minute))
		err := app.RunInTransaction(func(tx core.App) error {
			if err := attrBenchStore(tx, batch); err != nil {
				return err
			}
			start := time.Now()
			defer func() { own += time.Since(start) }()
			return m.attrib.process(tx, batch)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(own.Microseconds())/float64(b.N*100), "µs/event")
}

// BenchmarkAttributionReport answers the attribution report over a year
// of a shop's events (1M events, 100k customers: 50k orders, 60k campaign
// visits, 40k email opens, stored through process as the events consumer
// would), for a 12-month range compared with the year before, the last
// 30 days and today (hourly, read from the credits). -short: 100k events.
func BenchmarkAttributionReport(b *testing.B) {
	app, m := attrBenchApp(b)
	rng := rand.New(rand.NewPCG(3, 4))
	seq := 0
	batches := 10000
	if testing.Short() {
		batches = 1000
	}
	end := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	start := end.AddDate(-1, 0, 0)
	step := end.Sub(start) / time.Duration(batches)
	for i := 0; i < batches; i += 50 {
		err := app.RunInTransaction(func(tx core.App) error {
			for j := i; j < i+50 && j < batches; j++ {
				batch := attrBenchBatch(rng, &seq, 100000, start.Add(time.Duration(j)*step))
				if err := attrBenchStore(tx, batch); err != nil {
					return err
				}
				if err := m.attrib.process(tx, batch); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct{ name, from, to string }{
		{"12m_compare", "2025-12-01", "2026-11-30"},
		{"30d_compare", "2026-11-01", "2026-11-30"},
		{"today", "2026-11-29", "2026-11-29"},
	} {
		b.Run(c.name, func(b *testing.B) {
			q, err := parseQuery(httptest.NewRequest("GET", "/api/v1/metrics/attribution?compare=previous&from="+c.from+"&to="+c.to, nil), time.UTC, end)
			if err != nil {
				b.Fatal(err)
			}
			q.Params["model"] = "time_decay"
			var all []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t := time.Now()
				r, err := m.attributionReport(app, q)
				if err != nil || r.Totals["orders"] == 0 {
					b.Fatalf("report: %v, %+v", err, r)
				}
				d := time.Since(t)
				all = append(all, d)
			}
			b.ReportMetric(float64(attrP99(all).Microseconds())/1000, "p99-ms")
		})
	}
}

func attrP99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	slices.Sort(s)
	return s[int(math.Ceil(0.99*float64(len(s))))-1]
}
