package metrics_test

import (
	"fmt"
	"github.com/omni/omni/core/app/omnitest"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/metrics"
	"github.com/omni/omni/core/store"
)

// BenchmarkInboxReport answers the inbox report over 50,000 conversations
// (four messages each, one in ten reopened with its events, 5,000 NPS
// answers) spread over the 90 days before the clock, for the whole 90 days
// with the previous period beside it (90d: all 50,000 and their
// messages), for the last 30 days and for 12 months (all of them, beside
// an empty year). Reports p50/p99 in ms and the process's CPU time per
// report (what the report costs, whatever else the machine runs).
//
//	go test ./core/metrics/ -run '^$' -bench InboxReport -benchtime 50x
func BenchmarkInboxReport(b *testing.B) {
	s := startInboxMetrics(b)
	owner := s.Staff(b, "owner@omni-shop.dev", "owner")
	seedBench(b, s)
	_, _ = s.PB.DB().NewQuery("ANALYZE").Execute()
	// The first report works out every conversation's row; the figures
	// below are of reports after it (the rows kept up to date).
	cpu0, t0 := cpuTime(), time.Now()
	if code, body := s.Do(b, http.MethodGet, "/api/v1/metrics/inbox?range=7d", nil, http.Header{"Authorization": {owner}}); code != http.StatusOK {
		b.Fatalf("%d %s", code, body)
	}
	// (It starts working them out in the background.)
	omnitest.Eventually(b, 10*time.Minute, func() bool {
		var n int
		_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM conversations c LEFT JOIN " + metrics.InboxConversationsCollection +
			" r ON r.id = c.id WHERE r.id IS NULL OR r.src_updated != c.updated OR r.dirty = 1").Row(&n)
		return n == 0
	}, "the rows to be worked out")
	b.Logf("50,000 rows worked out in the background: %s wall, %s CPU", time.Since(t0).Round(time.Millisecond), (cpuTime() - cpu0).Round(time.Millisecond))

	for _, rng := range []string{"30d", "90d", "12m"} {
		b.Run(rng, func(b *testing.B) {
			var took []time.Duration
			cpu0 := cpuTime()
			for b.Loop() {
				t0 := time.Now()
				code, body := s.Do(b, http.MethodGet, "/api/v1/metrics/inbox?compare=previous&range="+rng, nil, http.Header{"Authorization": {owner}})
				took = append(took, time.Since(t0))
				if code != http.StatusOK {
					b.Fatalf("%d %s", code, body)
				}
			}
			slices.Sort(took)
			ms := func(q float64) float64 { return float64(took[int(q*float64(len(took)-1))].Microseconds()) / 1000 }
			b.ReportMetric(ms(0.5), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(took)), "cpu-ms/op")
		})
	}
}

// seedBench writes the benchmark's inbox.
func seedBench(b testing.TB, s *omnitest.Server) {
	b.Helper()
	const convs = 50000
	span := 90 * 24 * time.Hour
	err := s.PB.RunInTransaction(func(tx core.App) error {
		db := tx.DB()
		conv := db.NewQuery(`INSERT INTO conversations (id, profile, channel, status, assignee, team, priority, labels,
			subject, thread, widget, address, bot, handoff_at, waiting_since, last_message_at, last_message, last_author, unread,
			snoozed_until, snooze_until_reply, first_response_due, first_response_at, next_response_due, sla_breaches, resolved_at,
			resolved_by, csat_asked_at, csat_score, journey_run, context, opened_at, created, updated)
			VALUES ({:id}, {:p}, {:ch}, {:st}, {:a}, '', 'none', '[]', '', '', '', '', 0, '', '', {:c}, '', 'customer', 0, '', 0, '', {:fr}, '',
			{:br}, {:r}, '', '', {:csat}, '', '{}', {:o}, {:c}, {:c})`).Prepare()
		defer conv.Close()
		msg := db.NewQuery(`INSERT INTO conversation_messages (id, conversation, profile, direction, author, author_staff, text, attachments,
			private, mentions, external_id, event, send_state, send, auto_reply, created) VALUES ({:id}, {:c}, {:p}, {:d}, {:a}, {:s}, 'hi',
			'[]', 0, '[]', '', '', '', '{}', 0, {:at})`).Prepare()
		defer msg.Close()
		ev := db.NewQuery(`INSERT INTO events (id, event_id, type, source, channel, occurred_at, received_at, identities, properties, context,
			profile, created) VALUES ({:id}, {:id}, {:t}, 'omni', '', {:at}, {:at}, '{}', {:props}, '{}', {:p}, {:at})`).Prepare()
		defer ev.Close()
		channels := []string{"whatsapp", "email", "sms", "chat"}
		agents := []string{"a1", "a2", "a3", "a4", "a5", ""}
		for i := range convs {
			id := fmt.Sprintf("conv%06d", i)
			p := fmt.Sprintf("prof%05d", i%20000)
			created := inboxNow.Add(-span + time.Duration(i)*span/convs)
			reply := created.Add(time.Duration(60+i%3600) * time.Second)
			resolved := created.Add(time.Duration(1+i%48) * time.Hour)
			opened, status, res := created, "resolved", store.FormatTime(resolved)
			if i%10 == 0 { // reopened the next day, resolved again
				opened = resolved.Add(24 * time.Hour)
				res = store.FormatTime(opened.Add(time.Hour))
			}
			if resolved.After(inboxNow) || i%25 == 0 {
				status, res = "open", ""
			}
			if _, err := conv.Bind(dbx.Params{"id": id, "p": p, "ch": channels[i%4], "st": status, "a": agents[i%6], "br": i % 7 / 6,
				"r": res, "fr": store.FormatTime(reply), "csat": i % 6, "o": store.FormatTime(opened), "c": store.FormatTime(created)}).Execute(); err != nil {
				return err
			}
			for j, m := range []struct {
				dir, author, staff string
				at                 time.Time
			}{{"in", "customer", "", created}, {"out", "agent", agents[i%6], reply}, {"in", "customer", "", reply.Add(time.Minute)},
				{"out", "agent", agents[i%6], reply.Add(5 * time.Minute)}} {
				if _, err := msg.Bind(dbx.Params{"id": fmt.Sprintf("%s-%d", id, j), "c": id, "p": p, "d": m.dir, "a": m.author,
					"s": m.staff, "at": store.FormatTime(m.at)}).Execute(); err != nil {
					return err
				}
			}
			evs := []struct {
				typ   string
				at    time.Time
				props string
			}{{"conversation.opened", created, `{"conversation":"` + id + `","reopened":false}`}}
			if status == "resolved" || i%10 == 0 {
				evs = append(evs, struct {
					typ   string
					at    time.Time
					props string
				}{"conversation.resolved", resolved, `{"conversation":"` + id + `"}`})
			}
			if i%10 == 0 {
				evs = append(evs, struct {
					typ   string
					at    time.Time
					props string
				}{"conversation.opened", opened, `{"conversation":"` + id + `","reopened":true}`})
			}
			if i%10 == 5 {
				evs = append(evs, struct {
					typ   string
					at    time.Time
					props string
				}{"survey.answered", resolved, fmt.Sprintf(`{"survey":"nps","score":%d,"scale":10}`, i%11)})
			}
			for k, e := range evs {
				if _, err := ev.Bind(dbx.Params{"id": fmt.Sprintf("%s-e%d", id, k), "t": e.typ, "at": store.FormatTime(e.at),
					"props": e.props, "p": p}).Execute(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
