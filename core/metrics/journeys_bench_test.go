package metrics_test

import (
	"net/http"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/metrics"
	"github.com/omni/omni/core/store"
)

// seedLedger fills a shop with a send ledger of n messages over the
// given days up to end, 40% of them sent by 5 journeys (two messages a run,
// with the run's holdout and send steps), and the events that tell what
// came of them: opens, clicks, replies and unsubscribes. Rows are made
// by SQL (a recursive CTE), as the modules would leave them.
func seedLedger(tb testing.TB, db dbx.Builder, n, days int, end time.Time) {
	tb.Helper()
	start := store.FormatTime(end.Add(-time.Duration(days) * 24 * time.Hour))
	step := float64(days) * 24 * 3600 / float64(n)
	p := dbx.Params{"n": n - 1, "start": start, "step": step}
	at := func(extra string) string {
		return "strftime('%Y-%m-%d %H:%M:%fZ', {:start}, '+' || (i * {:step}" + extra + ") || ' seconds')"
	}
	gen := "WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < {:n}) "
	stmts := []string{
		`INSERT INTO journeys (id, name, status, version, graph, settings)
			SELECT 'j' || k, 'Journey ' || k, 'live', 1, '` + winGraph + `', '{}' FROM (SELECT 0 AS k UNION SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4)`,
		`INSERT INTO journey_versions (id, journey, version, graph, settings) SELECT id || 'v1', id, 1, graph, '{}' FROM journeys`,
		gen + `INSERT INTO messages (id, profile, channel, kind, status, reason, journey_run, queued_at, sent_at, created)
			SELECT printf('m%07d', i), printf('p%06d', i % 40000),
				CASE WHEN i % 10 < 6 THEN 'email' WHEN i % 10 < 9 THEN 'whatsapp' ELSE 'sms' END,
				CASE WHEN i % 5 < 2 THEN 'marketing' WHEN i % 7 = 0 THEN 'transactional' WHEN i % 11 = 0 THEN 'conversation' ELSE 'marketing' END,
				CASE WHEN i % 20 = 0 THEN 'suppressed' WHEN i % 20 = 1 THEN 'failed' WHEN i % 20 < 8 THEN 'read' WHEN i % 20 < 15 THEN 'delivered' ELSE 'sent' END,
				CASE WHEN i % 20 = 0 THEN 'frequency cap: 3 marketing messages in 7 days' ELSE '' END,
				CASE WHEN i % 5 < 2 THEN printf('r%07d', i / 5) ELSE '' END,
				` + at("") + `, CASE WHEN i % 20 > 1 THEN ` + at(" + 3") + ` ELSE '' END, ` + at("") + ` FROM g`,
		gen + `INSERT INTO journey_runs (id, journey, version, profile, node, status, exit_reason, entered_at, ended_at, goal_until, goal_at, goal_value, goal_currency)
			SELECT printf('r%07d', i / 5), 'j' || ((i / 5) % 5), 1, printf('p%06d', i % 40000), 'end', 'completed', 'end',
				` + at("") + `, ` + at(" + 7200") + `, ` + at(" + 7 * 86400") + `,
				CASE WHEN (i / 5) % 8 = 0 THEN ` + at(" + 86400") + ` ELSE '' END, CASE WHEN (i / 5) % 8 = 0 THEN 40 ELSE 0 END, 'EUR'
			FROM g WHERE i % 5 = 0`,
		gen + `INSERT INTO journey_steps (id, run, journey, version, profile, node, type, exit, detail, at)
			SELECT printf('s%07d', i), printf('r%07d', i / 5), 'j' || ((i / 5) % 5), 1, printf('p%06d', i % 40000),
				CASE i % 5 WHEN 0 THEN 'se' WHEN 1 THEN 'sw' ELSE 'h1' END, CASE i % 5 WHEN 2 THEN 'holdout' ELSE 'send' END,
				CASE WHEN i % 5 = 2 AND (i / 5) % 10 = 0 THEN 'held_out' WHEN i % 5 = 2 THEN 'continue' WHEN i % 20 = 0 THEN 'suppressed' ELSE 'sent' END,
				CASE WHEN i % 5 < 2 THEN json_object('message_id', printf('m%07d', i)) ELSE '{}' END, ` + at("") + `
			FROM g WHERE i % 5 < 3`,
		gen + `INSERT INTO events (id, event_id, type, source, channel, occurred_at, received_at, properties, profile, created)
			SELECT printf('e%07d', i), printf('e%07d', i), CASE WHEN i % 30 = 0 THEN 'email.clicked' ELSE 'email.opened' END, 'email', 'email',
				` + at(" + 3600") + `, ` + at(" + 3600") + `, json_object('outbound_id', printf('m%07d', i)), printf('p%06d', i % 40000), ` + at(" + 3600") + `
			FROM g WHERE i % 10 < 6 AND i % 3 = 0 AND i % 20 > 1`,
		gen + `INSERT INTO events (id, event_id, type, source, channel, occurred_at, received_at, properties, profile, created)
			SELECT printf('x%07d', i), printf('x%07d', i), 'message.received', 'whatsapp', 'whatsapp',
				` + at(" + 1800") + `, ` + at(" + 1800") + `, '{}', printf('p%06d', i % 40000), ` + at(" + 1800") + `
			FROM g WHERE i % 10 >= 6 AND i % 17 = 0`,
		gen + `INSERT INTO events (id, event_id, type, source, channel, occurred_at, received_at, properties, profile, created)
			SELECT printf('u%07d', i), printf('u%07d', i), 'consent.changed', 'customer', '',
				` + at(" + 7200") + `, ` + at(" + 7200") + `, json_object('channel', 'email', 'status', 'unsubscribed', 'reason', 'unsubscribe link'),
				printf('p%06d', i % 40000), ` + at(" + 7200") + `
			FROM g WHERE i % 10 < 6 AND i % 500 = 0`,
	}
	for _, s := range stmts {
		if _, err := db.NewQuery(s).Bind(p).Execute(); err != nil {
			tb.Fatalf("seed: %v\n%s", err, s)
		}
	}
}

// BenchmarkJourneysReport: the report over a year's ledger of 200,000
// messages (550 a day, 40% from journeys). The cost grows with the
// messages in the period asked for: JM_DAYS=90 puts the same ledger in 90
// days (2,200 a day) to see it.
func BenchmarkJourneysReport(b *testing.B) {
	days := 365
	if d, err := strconv.Atoi(os.Getenv("JM_DAYS")); err == nil && d > 0 {
		days = d
	}
	s, agent := startJourneys(b)
	// The test clock is 2026-11-20 12:00 UTC; the ledger ends then.
	err := s.PB.RunInTransaction(func(tx core.App) error {
		seedLedger(b, tx.DB(), 200_000, days, time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// The first report starts counting every past day into the rollup in
	// the background (once; then each report re-counts only the days that
	// changed); the figures below are of reports after it.
	cpu0, t0 := cpuTime(), time.Now()
	if code, body := s.Do(b, "GET", "/api/v1/metrics/journeys?range=7d", nil, agent); code != http.StatusOK {
		b.Fatalf("%d %s", code, body)
	}
	b.Logf("first report: %v wall, %v CPU", time.Since(t0), cpuTime()-cpu0)
	omnitest.Eventually(b, 10*time.Minute, func() bool {
		var n int
		_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM " + metrics.MessagesStateCollection + " WHERE key = 'fill'").Row(&n)
		return n == 0
	}, "the rollup to be filled")
	b.Logf("rollup of %d days filled in the background: %v wall, %v CPU", days, time.Since(t0), cpuTime()-cpu0)
	for _, c := range []struct{ name, query string }{
		{"12m_compare", "range=12m&compare=previous"},
		{"journey_12m_compare", "range=12m&compare=previous&journey=j1"},
		{"30d", "range=30d"},
		{"90d_compare", "range=90d&compare=previous"},
		{"journey_30d", "range=30d&journey=j1&compare=previous"},
		{"whatsapp_7d", "range=7d&channel=whatsapp"},
	} {
		b.Run(c.name, func(b *testing.B) {
			// CPU time of the whole process per report besides wall time:
			// on a shared machine the wall time is mostly waiting for a core.
			cpu0 := cpuTime()
			var walls []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if code, body := s.Do(b, "GET", "/api/v1/metrics/journeys?"+c.query, nil, agent); code != http.StatusOK {
					b.Fatalf("%d %s", code, body)
				}
				walls = append(walls, time.Since(t0))
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			slices.Sort(walls)
			pct := func(p float64) float64 { return float64(walls[int(p*float64(len(walls)-1))].Microseconds()) / 1000 }
			b.ReportMetric(pct(0.5), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
