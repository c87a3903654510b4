package journeys

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	_ "github.com/omni/omni/core/connectors" // connectors table
	"github.com/omni/omni/core/journeys/backtest"
	"github.com/omni/omni/core/journeys/graph"
	"github.com/omni/omni/core/logging"
	_ "github.com/omni/omni/core/messaging" // templates, message_suppressions
	_ "github.com/omni/omni/core/profiles"  // profiles, identities
	"github.com/omni/omni/core/store"
)

const benchGraph = `{
 "trigger": {"event": "checkout.started", "where": {"property": "total", "op": "gt", "value": 50}},
 "goal": {"event": "order.placed", "within": "7d", "exit": true},
 "start": "w1",
 "nodes": {
  "w1": {"type": "wait_for_event", "event": "order.placed", "match": ["checkout_id"], "timeout": "1h",
         "next": {"happened": "end", "timed_out": "h"}},
  "h": {"type": "holdout", "percent": 10, "next": {"continue": "s1"}},
  "s1": {"type": "send", "channels": ["whatsapp", "email"], "template": "cart", "next": {"sent": "w2", "suppressed": "w2"}},
  "w2": {"type": "wait_for_event", "event": "order.placed", "timeout": "24h", "next": {"happened": "end", "timed_out": "s2"}},
  "s2": {"type": "send", "channels": ["email"], "template": "code10", "next": {"sent": "end", "suppressed": "end"}},
  "end": {"type": "exit"}}}`

// seedShop writes 90 days of a shop with customers customers and n events
// (a third of them of the types the journey reads, the rest page views)
// with prepared INSERTs, 10,000 per transaction.
func seedShop(tb testing.TB, customers, n int, from time.Time) *app.Omni {
	tb.Helper()
	cfg := config.Default()
	cfg.DataDir = tb.TempDir()
	// OMNI_BENCH_DIR keeps the seeded shop between runs (seeding is slow
	// on a busy machine); it is seeded once, when empty.
	reuse := os.Getenv("OMNI_BENCH_DIR")
	if reuse != "" {
		cfg.DataDir = reuse
	}
	o := app.New(cfg, logging.New(io.Discard, "error", "text"))
	if err := o.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = o.PB.ResetBootstrapState() })
	db := o.PB.DB()
	var have int
	_ = db.NewQuery("SELECT COUNT(*) FROM events").Row(&have)
	if reuse != "" && have >= n {
		return o
	}
	for _, q := range []string{
		`INSERT INTO connectors (id, name, enabled, capabilities) VALUES ('benchconnector1', 'all', 1, '["send:email","send:whatsapp"]')`,
		`INSERT INTO templates (id, name, channel, kind, subject, body) VALUES ('benchtemplate01', 'cart', 'email', 'marketing', 's', 'b'),
			('benchtemplate02', 'code10', 'email', 'marketing', 's', 'b')`,
	} {
		if _, err := db.NewQuery(q).Execute(); err != nil {
			tb.Fatal(err)
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, customers)
	err := o.PB.RunInTransaction(func(txApp core.App) error {
		q := txApp.DB().NewQuery(`INSERT INTO profiles (id, email, phone, traits, consent) VALUES ({:id}, {:e}, {:p}, '{}', {:c})`).Prepare()
		defer q.Close()
		for i := range ids {
			ids[i] = store.NewRecordID()
			consent := map[string]any{}
			if i%2 == 0 {
				consent["email"] = map[string]any{"status": "subscribed", "at": "2020-01-01 00:00:00.000Z"}
			}
			if i%5 == 0 {
				consent["whatsapp"] = map[string]any{"status": "subscribed", "at": "2020-01-01 00:00:00.000Z"}
			}
			c, _ := json.Marshal(consent)
			if _, err := q.Bind(dbx.Params{"id": ids[i], "e": fmt.Sprintf("c%d@omni-shop.dev", i), "p": fmt.Sprintf("+44700%06d", i), "c": string(c)}).Execute(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	span := int64(90 * graph.Day)
	for start := 0; start < n; start += 10000 {
		err := o.PB.RunInTransaction(func(txApp core.App) error {
			q := txApp.DB().NewQuery(`INSERT INTO events (id, event_id, type, name, source, channel, occurred_at, received_at, identities, properties, context, profile, created)
				VALUES ({:id}, {:eid}, {:type}, '', 'bench', {:ch}, {:at}, {:at}, '{}', {:props}, '{}', {:p}, {:at})`).Prepare()
			defer q.Close()
			for i := start; i < min(start+10000, n); i++ {
				cust := rnd.IntN(customers)
				at := from.Add(time.Duration(rnd.Int64N(span)))
				typ, ch, props := "page.viewed", "web", map[string]any{"url": "https://shop.omni-shop.dev/p/" + fmt.Sprint(i%500)}
				switch k := rnd.IntN(30); {
				case k < 5:
					typ, props = "checkout.started", map[string]any{"checkout_id": fmt.Sprintf("c%d", cust), "total": float64(20 + rnd.IntN(150)), "currency": "EUR"}
				case k < 7:
					typ, props = "order.placed", map[string]any{"checkout_id": fmt.Sprintf("c%d", cust), "total": float64(20 + rnd.IntN(150)), "currency": "EUR"}
				case k < 8:
					typ, ch, props = "message.received", "whatsapp", map[string]any{"text": "hi"}
				case k < 9 && i%7 == 0:
					typ, props = "consent.changed", map[string]any{"channel": "email", "status": "unsubscribed"}
				}
				p, _ := json.Marshal(props)
				if _, err := q.Bind(dbx.Params{"id": store.NewRecordID(), "eid": fmt.Sprintf("bench-%d", i), "type": typ, "ch": ch,
					"at": fmtT(at), "props": string(p), "p": ids[cust]}).Execute(); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return o
}

// BenchmarkBacktest1MEvents replays 90 days of a shop with 50,000 customers
// and 1,000,000 events (a third of them read by the journey) through the
// abandoned-checkout journey with a holdout, as the API does: one
// streaming query, customers loaded when first needed. Seeding is not
// timed. Run: go test ./core/journeys/ -run '^$' -bench Backtest1M -benchtime 1x
func BenchmarkBacktest1MEvents(b *testing.B) {
	from := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(90 * graph.Day)
	seeded := time.Now()
	o := seedShop(b, 50_000, 1_000_000, from)
	b.Logf("seeded 1,000,000 events for 50,000 customers in %s", time.Since(seeded).Round(time.Millisecond))
	g, err := graph.Parse([]byte(benchGraph))
	if err != nil {
		b.Fatal(err)
	}
	settings := &graph.Settings{Reentry: "every_time"}
	settings.Defaults()
	b.ResetTimer()
	for range b.N {
		rules, err := gateRules(o.PB, o.Config)
		if err != nil {
			b.Fatal(err)
		}
		l := newStoreLookups(o.PB, from, rules.ShopTZ)
		if err := l.preload(triggerType(g), from, to); err != nil {
			b.Fatal(err)
		}
		res, err := backtest.Run(context.Background(), backtest.Input{Graph: g, Settings: settings, From: from, To: to,
			Events: backtestEvents(o.PB, backtest.Types(g), from, to), Lookups: l, Rules: rules})
		l.close()
		if err != nil {
			b.Fatal(err)
		}
		if res.Entered == 0 || res.Simulated.Events == 0 {
			b.Fatalf("nothing replayed: %+v", res)
		}
		b.ReportMetric(float64(res.Simulated.Events), "events_replayed")
		b.ReportMetric(float64(res.Entered), "runs")
		b.ReportMetric(float64(res.ElapsedMS)/1000, "replay_s")
	}
}
