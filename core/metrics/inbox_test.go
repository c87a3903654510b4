package metrics_test

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/inbox"
	"github.com/omni/omni/core/journeys"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/metrics"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/store"
)

// inboxNow is the clock of the inbox report tests: 2026-11-20 12:00 UTC.
var inboxNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// startInboxMetrics runs Omni with the real inbox (its tables) and the
// metrics module on a fixed clock, in the shop zone Europe/Madrid (UTC+1
// in November, UTC+2 until 25 October).
func startInboxMetrics(t testing.TB) *omnitest.Server {
	t.Helper()
	return omnitest.Start(t, omnitest.Options{
		Configure: func(c *config.Config) { c.Messaging.Timezone = "Europe/Madrid" },
		Modules: func(o *app.Omni) []app.Module {
			return []app.Module{profiles.New(profiles.Options{}), messaging.New(messaging.Options{}), journeys.New(journeys.Options{}),
				inbox.New(inbox.Options{}), metrics.New(metrics.Options{Now: func() time.Time { return inboxNow }})}
		}})
}

// inboxSeed writes inbox rows as the inbox does (its columns, its time
// format), with times given in UTC.
type inboxSeed struct {
	t  testing.TB
	db dbx.Builder
}

func inboxAt(s string) string {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return store.FormatTime(t)
}

type inboxSeedConv struct {
	id, profile, channel, assignee, status string
	bot                                    bool
	handoff, waiting, resolved, opened     string // "" = none; opened "" = created
	created                                string
	breaches, csat                         int
	firstResponse                          string // the inbox's first agent reply of the latest opening
}

func (s inboxSeed) exec(q string, p dbx.Params) {
	s.t.Helper()
	if _, err := s.db.NewQuery(q).Bind(p).Execute(); err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
}

func (s inboxSeed) conv(c inboxSeedConv) {
	s.t.Helper()
	opened := c.opened
	if opened == "" {
		opened = c.created
	}
	conv := func(v string) string {
		if v == "" {
			return ""
		}
		return inboxAt(v)
	}
	s.exec(`INSERT INTO conversations (id, profile, channel, status, assignee, team, priority, labels,
		subject, thread, widget, address, bot, handoff_at, waiting_since, last_message_at, last_message, last_author, unread,
		snoozed_until, snooze_until_reply, first_response_due, first_response_at, next_response_due, sla_breaches, resolved_at,
		resolved_by, csat_asked_at, csat_score, journey_run, context, opened_at, created, updated)
		VALUES ({:id}, {:profile}, {:channel}, {:status}, {:assignee}, '', 'none', '[]', '', '', '', '', {:bot}, {:handoff}, {:waiting},
		{:created}, '', 'customer', 0, '', 0, '', {:frt}, '', {:breaches}, {:resolved}, '', '', {:csat}, '', '{}', {:opened}, {:created}, {:created})`,
		dbx.Params{"id": c.id, "profile": c.profile, "channel": c.channel, "status": c.status, "assignee": c.assignee, "bot": c.bot,
			"handoff": conv(c.handoff), "waiting": conv(c.waiting), "breaches": c.breaches, "resolved": conv(c.resolved),
			"csat": c.csat, "frt": conv(c.firstResponse), "opened": inboxAt(opened), "created": inboxAt(c.created)})
}

// msg adds a message: author customer (in), agent/bot (out).
func (s inboxSeed) msg(conv, author, staff, when string) {
	s.t.Helper()
	dir := "out"
	if author == "customer" {
		dir = "in"
	}
	s.exec(`INSERT INTO conversation_messages (id, conversation, profile, direction, author, author_staff, text, attachments, private,
		mentions, external_id, event, send_state, send, auto_reply, created) VALUES ({:id}, {:c}, '', {:d}, {:a}, {:s}, 'hi', '[]', 0,
		'[]', '', '', '', '{}', 0, {:at})`,
		dbx.Params{"id": store.NewRecordID(), "c": conv, "d": dir, "a": author, "s": staff, "at": inboxAt(when)})
}

func (s inboxSeed) event(typ, profile, when string, props map[string]any) {
	s.t.Helper()
	b, _ := json.Marshal(props)
	id := store.NewRecordID()
	s.exec(`INSERT INTO events (id, event_id, type, source, channel, occurred_at, received_at, identities, properties, context, profile, created)
		VALUES ({:id}, {:id}, {:t}, 'omni', '', {:at}, {:at}, '{}', {:p}, '{}', {:prof}, {:at})`,
		dbx.Params{"id": id, "t": typ, "at": inboxAt(when), "p": string(b), "prof": profile})
}

// seedInboxShop seeds the shop every inbox figure below is computed from
// by hand. Ana and Ben are agents. Times are UTC; the report's days are
// Madrid's (UTC+1), so c1 at 23:30 UTC on 31 October opened on 1 November.
//
//	conv ch  agent  opened (UTC)   first reply     FRT    resolved        resolution   CSAT  notes
//	c1  wa   Ana    10-31 23:30    23:35           300    11-01 01:30     7200         5
//	c2  wa   Ana    11-02 10:00    10:20           600    11-02 11:00,    86400        2     reopened 11-03 09:00, 1 SLA breach
//	                               (11-03 09:10            again 11-03 10:00                     (FRT is the latest opening's)
//	                               after the reopen)
//	c3  em   Ben    11-04 08:00    09:00           3600   11-04 12:00     14400        4     same customer opens c6 2 days later
//	c4  wa   —      11-05 14:00    (bot only)      —      11-05 15:00     3600         —     bot resolved
//	c5  em   Ben    11-07 10:00    10:40 (handoff  1800   11-07 12:00     7200         5     bot handed off at 10:10
//	                               10:10)
//	c6  em   Ben    11-06 08:00    08:30           1800   open, waiting since 09:00    —
//	c7  wa   Ana    11-10 20:00    20:02           120    11-19 09:00     738000       —     resolved < 3 days before now
//	previous period (22–31 October): c0 wa Ana 10-25 10:00, reply 10:10 (600), resolved 11:00 (3600);
//	c8 em Ben 10-30 10:00, reply 12:00 (7200), resolved 11-02 09:00 (255600: in this period's "resolved" series)
func seedInboxShop(t testing.TB, s *omnitest.Server) (ana, ben string) {
	t.Helper()
	db := s.PB.DB()
	s.Staff(t, "ana@omni-shop.dev", "agent")
	s.Staff(t, "ben@omni-shop.dev", "agent")
	for email, name := range map[string]string{"ana@omni-shop.dev": "Ana", "ben@omni-shop.dev": "Ben"} {
		if _, err := db.NewQuery("UPDATE staff SET name = {:n} WHERE email = {:e}").Bind(dbx.Params{"n": name, "e": email}).Execute(); err != nil {
			t.Fatal(err)
		}
	}
	_ = db.NewQuery("SELECT id FROM staff WHERE email = 'ana@omni-shop.dev'").Row(&ana)
	_ = db.NewQuery("SELECT id FROM staff WHERE email = 'ben@omni-shop.dev'").Row(&ben)
	d := inboxSeed{t: t, db: db}

	d.conv(inboxSeedConv{id: "c1", profile: "p1", channel: "whatsapp", assignee: ana, status: "resolved", created: "2026-10-31 23:30",
		resolved: "2026-11-01 01:30", csat: 5, firstResponse: "2026-10-31 23:35"})
	d.msg("c1", "customer", "", "2026-10-31 23:30")
	d.msg("c1", "agent", ana, "2026-10-31 23:35")
	d.msg("c1", "agent", ana, "2026-10-31 23:50")

	d.conv(inboxSeedConv{id: "c2", profile: "p2", channel: "whatsapp", assignee: ana, status: "resolved", created: "2026-11-02 10:00",
		opened: "2026-11-03 09:00", resolved: "2026-11-03 10:00", csat: 2, breaches: 1, firstResponse: "2026-11-03 09:10"})
	d.msg("c2", "customer", "", "2026-11-02 10:00")
	d.msg("c2", "agent", ana, "2026-11-02 10:20")
	d.msg("c2", "customer", "", "2026-11-03 09:00")
	d.msg("c2", "agent", ana, "2026-11-03 09:10")
	d.event("conversation.opened", "p2", "2026-11-02 10:00", map[string]any{"conversation": "c2", "reopened": false})
	d.event("conversation.resolved", "p2", "2026-11-02 11:00", map[string]any{"conversation": "c2", "resolved_by": ana})
	d.event("conversation.opened", "p2", "2026-11-03 09:00", map[string]any{"conversation": "c2", "reopened": true})
	d.event("conversation.resolved", "p2", "2026-11-03 10:00", map[string]any{"conversation": "c2", "resolved_by": ana})

	d.conv(inboxSeedConv{id: "c3", profile: "p3", channel: "email", assignee: ben, status: "resolved", created: "2026-11-04 08:00",
		resolved: "2026-11-04 12:00", csat: 4, firstResponse: "2026-11-04 09:00"})
	d.msg("c3", "customer", "", "2026-11-04 08:00")
	d.msg("c3", "agent", ben, "2026-11-04 09:00")

	d.conv(inboxSeedConv{id: "c4", profile: "p4", channel: "whatsapp", status: "resolved", bot: true, created: "2026-11-05 14:00",
		resolved: "2026-11-05 15:00"})
	d.msg("c4", "customer", "", "2026-11-05 14:00")
	d.msg("c4", "bot", "", "2026-11-05 14:00")

	d.conv(inboxSeedConv{id: "c5", profile: "p5", channel: "email", assignee: ben, status: "resolved", created: "2026-11-07 10:00",
		handoff: "2026-11-07 10:10", resolved: "2026-11-07 12:00", csat: 5, firstResponse: "2026-11-07 10:40"})
	d.msg("c5", "customer", "", "2026-11-07 10:00")
	d.msg("c5", "bot", "", "2026-11-07 10:00")
	d.msg("c5", "agent", ben, "2026-11-07 10:40")

	d.conv(inboxSeedConv{id: "c6", profile: "p3", channel: "email", assignee: ben, status: "open", created: "2026-11-06 08:00",
		waiting: "2026-11-06 09:00", firstResponse: "2026-11-06 08:30"})
	d.msg("c6", "customer", "", "2026-11-06 08:00")
	d.msg("c6", "agent", ben, "2026-11-06 08:30")
	d.msg("c6", "customer", "", "2026-11-06 09:00")

	d.conv(inboxSeedConv{id: "c7", profile: "p6", channel: "whatsapp", assignee: ana, status: "resolved", created: "2026-11-10 20:00",
		resolved: "2026-11-19 09:00", firstResponse: "2026-11-10 20:02"})
	d.msg("c7", "customer", "", "2026-11-10 20:00")
	d.msg("c7", "agent", ana, "2026-11-10 20:02")

	d.conv(inboxSeedConv{id: "c0", profile: "p7", channel: "whatsapp", assignee: ana, status: "resolved", created: "2026-10-25 10:00",
		resolved: "2026-10-25 11:00", firstResponse: "2026-10-25 10:10"})
	d.msg("c0", "customer", "", "2026-10-25 10:00")
	d.msg("c0", "agent", ana, "2026-10-25 10:10")
	d.conv(inboxSeedConv{id: "c8", profile: "p8", channel: "email", assignee: ben, status: "resolved", created: "2026-10-30 10:00",
		resolved: "2026-11-02 09:00", firstResponse: "2026-10-30 12:00"})
	d.msg("c8", "customer", "", "2026-10-30 10:00")
	d.msg("c8", "agent", ben, "2026-10-30 12:00")

	// NPS: each customer's latest answer in the period counts (p3 changed
	// 3 to 7). A CSAT answer is not an NPS answer.
	nps := func(p string, score int, when string) {
		d.event("survey.answered", p, when, map[string]any{"survey": "nps", "score": score, "scale": 10, "via": "link"})
	}
	nps("p1", 10, "2026-11-02 12:00")
	nps("p2", 9, "2026-11-03 12:00")
	nps("p3", 3, "2026-11-04 12:00")
	nps("p3", 7, "2026-11-08 12:00")
	nps("p4", 6, "2026-11-05 12:00")
	nps("p5", 10, "2026-11-09 12:00")
	nps("p6", 0, "2026-10-28 12:00") // previous period
	d.event("survey.answered", "p1", "2026-11-01 02:00", map[string]any{"survey": "csat", "conversation": "c1", "score": 5, "scale": 5})
	return ana, ben
}

func inboxGet(t *testing.T, s *omnitest.Server, tok, query string) metrics.Report {
	t.Helper()
	code, body := s.Do(t, http.MethodGet, "/api/v1/metrics/inbox?"+query, nil, omnitest.Auth(tok))
	if code != http.StatusOK {
		t.Fatalf("inbox report %s: %d %s", query, code, body)
	}
	var r metrics.Report
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func inboxWantTotals(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok || math.Abs(g-w) > 1e-9 {
			t.Errorf("%s %s = %v (present %v), want %v", what, k, g, ok, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s has %s = %v, not expected", what, k, g)
		}
	}
}

func inboxTable(t *testing.T, r metrics.Report, name string) metrics.Table {
	t.Helper()
	for _, tb := range r.Tables {
		if tb.Name == name {
			return tb
		}
	}
	t.Fatalf("no table %s in %+v", name, r.Tables)
	return metrics.Table{}
}

func inboxWantRows(t *testing.T, tb metrics.Table, want [][]any) {
	t.Helper()
	got, _ := json.Marshal(tb.Rows)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("table %s rows\n got %s\nwant %s", tb.Name, got, exp)
	}
}

func TestInboxReportFiguresOnASeededShop(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	s := startInboxMetrics(t)
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	ana, ben := seedInboxShop(t, s)

	r := inboxGet(t, s, owner, "from=2026-11-01&to=2026-11-10&compare=previous")
	inboxWantTotals(t, "totals", r.Totals, map[string]float64{
		"conversations": 7, // c1..c7 (c1 opened 00:30 Madrid on 1 November; c0, c8 before)
		"by_bot":        1, // c4
		"handed_off":    1, // c5
		// FRT (c2: of its latest opening, 09:00 → 09:10) sorted 120 300
		// 600 1800 1800 3600: median (600+1800)/2; p90 at rank 0.9×5 = 4.5:
		// 1800 + 0.5×(3600−1800)
		"first_response_median": 1200, "first_response_p90": 2700,
		// resolution sorted 3600 7200 7200 14400 86400 738000 (c6 open):
		// median (7200+14400)/2; p90: 86400 + 0.5×(738000−86400)
		"resolution_median": 10800, "resolution_p90": 412200,
		// judged: c1 ok, c2 reopened, c3 followed by c6, c4 ok, c5 ok
		// (c6 open, c7 resolved 1 day before now): 3/5
		"fcr_rate": 0.6,
		// CSAT 5 2 4 5: 16/4; satisfied (4–5) 3 of 4
		"csat": 4, "csat_satisfied_rate": 0.75, "csat_responses": 4,
		// NPS latest per customer 10 9 7 6 10: promoters 3, detractors 1 of 5
		"nps": 40, "nps_responses": 5,
		"sla_breaches": 1, "sla_breach_rate": 1.0 / 7,
		"waiting_now": 1, // c6
	})
	inboxWantTotals(t, "previous", r.Previous, map[string]float64{
		"conversations": 2, "by_bot": 0, "handed_off": 0,
		// FRT 600 7200: median 3900; p90 600 + 0.9×6600
		"first_response_median": 3900, "first_response_p90": 6540,
		// resolution 3600 255600: median 129600; p90 3600 + 0.9×252000
		"resolution_median": 129600, "resolution_p90": 230400,
		"fcr_rate":       1,
		"csat_responses": 0,
		"nps":            -100, "nps_responses": 1, // p6 answered 0
		"sla_breaches": 0, "sla_breach_rate": 0,
	})

	// Days of Madrid, 1..10 November.
	if len(r.Series.X) != 10 || r.Series.X[0] != time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC).Unix() {
		t.Fatalf("series x = %v", r.Series.X)
	}
	wantSeries := map[string][]float64{
		"opened":                {1, 1, 0, 1, 1, 1, 1, 0, 0, 1},                // c1 c2 · c3 c4 c6 c5 · · c7
		"resolved":              {1, 1, 1, 1, 1, 0, 1, 0, 0, 0},                // c1 c8 c2 c3 c4 · c5
		"first_response_median": {300, 600, 0, 3600, 0, 1800, 1800, 0, 0, 120}, // c4 has no agent reply
	}
	for k, w := range wantSeries {
		if g, _ := json.Marshal(r.Series.Y[k]); string(g) != inboxMustJSON(w) {
			t.Errorf("series %s = %s, want %v", k, g, w)
		}
	}
	// The previous period (22–31 October): c0 on the 25th, c8 on the 30th.
	if g := r.Series.Previous["opened"]; len(g) != 10 || g[3] != 1 || g[8] != 1 || inboxSum(g) != 2 {
		t.Errorf("previous opened = %v", g)
	}

	inboxWantRows(t, inboxTable(t, r, "by_agent"), [][]any{
		// Ana c1 c2 c7: replies 2+2+1, FRT 120 300 600, resolution 7200 86400 738000, FCR c1 ok c2 not, CSAT (5+2)/2
		{"Ana", 3, 5, 300, 86400, 0.5, 3.5, 1},
		// Ben c3 c5 c6: FRT 1800 1800 3600, resolution 7200 14400, FCR c3 not c5 ok, CSAT (4+5)/2
		{"Ben", 3, 3, 1800, 10800, 0.5, 4.5, 0},
		{"Unassigned", 1, 0, nil, 3600, 1, nil, 0},
	})
	inboxWantRows(t, inboxTable(t, r, "by_channel"), [][]any{
		// whatsapp c1 c2 c4 c7: resolution 3600 7200 86400 738000 → (7200+86400)/2; FCR c1 c4 of c1 c2 c4
		{"whatsapp", 4, 300, 46800, 2.0 / 3, 3.5},
		{"email", 3, 1800, 10800, 0.5, 4.5},
	})
	inboxWantRows(t, inboxTable(t, r, "csat_distribution"), [][]any{{1, 0, 0}, {2, 1, 0.25}, {3, 0, 0}, {4, 1, 0.25}, {5, 2, 0.5}})
	nps := inboxTable(t, r, "nps_distribution")
	inboxWantRows(t, nps, [][]any{{0, "detractor", 0, 0}, {1, "detractor", 0, 0}, {2, "detractor", 0, 0}, {3, "detractor", 0, 0},
		{4, "detractor", 0, 0}, {5, "detractor", 0, 0}, {6, "detractor", 1, 0.2}, {7, "passive", 1, 0.2}, {8, "passive", 0, 0},
		{9, "promoter", 1, 0.2}, {10, "promoter", 2, 0.4}})
	if !strings.Contains(strings.Join(r.Notes, "\n"), "1 resolved conversation(s) were resolved less than 3 days ago") {
		t.Errorf("notes do not say c7 is not judged yet: %q", r.Notes)
	}

	// Filters: Ben's conversations; WhatsApp's. An agent may read it.
	agentTok := s.Staff(t, "agent@omni-shop.dev", "agent")
	rb := inboxGet(t, s, agentTok, "from=2026-11-01&to=2026-11-10&agent="+ben)
	for k, w := range map[string]float64{"conversations": 3, "fcr_rate": 0.5, "csat": 4.5, "first_response_median": 1800, "waiting_now": 1} {
		if rb.Totals[k] != w {
			t.Errorf("agent=Ben %s = %v, want %v", k, rb.Totals[k], w)
		}
	}
	rw := inboxGet(t, s, owner, "from=2026-11-01&to=2026-11-10&channel=whatsapp")
	// c1 c2 c4 c7: breaches 1 of 4; nobody waits on WhatsApp
	for k, w := range map[string]float64{"conversations": 4, "by_bot": 1, "sla_breach_rate": 0.25, "waiting_now": 0, "fcr_rate": 2.0 / 3} {
		if rw.Totals[k] != w {
			t.Errorf("channel=whatsapp %s = %v, want %v", k, rw.Totals[k], w)
		}
	}
	_ = ana
	// 1–5 November: c3's follow-up c6 opened after the period, and still
	// counts. Judged c1 ok, c2 reopened, c3 followed, c4 ok: 2/4.
	if r5 := inboxGet(t, s, owner, "from=2026-11-01&to=2026-11-05"); r5.Totals["conversations"] != 4 || r5.Totals["fcr_rate"] != 0.5 {
		t.Errorf("1–5 November: conversations %v, fcr_rate %v; want 4, 0.5", r5.Totals["conversations"], r5.Totals["fcr_rate"])
	}

	// CSV of a table.
	code, body := s.Do(t, http.MethodGet, "/api/v1/metrics/inbox?from=2026-11-01&to=2026-11-10&format=csv&table=by_agent", nil, omnitest.Auth(owner))
	if code != http.StatusOK || !strings.HasPrefix(string(body), "Agent,Conversations,Replies,") || !strings.Contains(string(body), "\nAna,3,5,300,86400,0.5,3.5,1\n") {
		t.Errorf("csv: %d %s", code, body)
	}
}

// A conversation staff started has an agent message at its opening: its
// first response is the first agent reply after the customer's answer.
func TestInboxReportFirstResponseOfAConversationStaffStarted(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	s := startInboxMetrics(t)
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	_, ben := seedInboxShop(t, s)
	d := inboxSeed{t: t, db: s.PB.DB()}
	// 11-12 09:00 Ben writes (the inbox sets first_response_at then),
	// 10:00 the customer answers, 10:30 Ben replies: 1800 s.
	d.conv(inboxSeedConv{id: "c9", profile: "p9", channel: "sms", assignee: ben, status: "open", created: "2026-11-12 09:00",
		firstResponse: "2026-11-12 09:00"})
	d.msg("c9", "agent", ben, "2026-11-12 09:00")
	d.msg("c9", "customer", "", "2026-11-12 10:00")
	d.msg("c9", "agent", ben, "2026-11-12 10:30")
	r := inboxGet(t, s, owner, "from=2026-11-12&to=2026-11-12")
	if r.Totals["conversations"] != 1 || r.Totals["first_response_median"] != 1800 {
		t.Errorf("totals %v, want 1 conversation answered in 1800 s", r.Totals)
	}
	inboxWantRows(t, inboxTable(t, r, "by_agent"), [][]any{{"Ben", 1, 2, 1800, nil, nil, nil, 0}})
}

func TestInboxReportRefusesBadParamsAndGuests(t *testing.T) {
	s := startInboxMetrics(t)
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	code, body := s.Do(t, http.MethodGet, "/api/v1/metrics/inbox?agent=nobody", nil, omnitest.Auth(owner))
	omnitest.WantFieldError(t, code, body, http.StatusBadRequest, "agent")
	code, body = s.Do(t, http.MethodGet, "/api/v1/metrics/inbox?channel=Whats%20App", nil, omnitest.Auth(owner))
	omnitest.WantFieldError(t, code, body, http.StatusBadRequest, "channel")
	if code, _ := s.Do(t, http.MethodGet, "/api/v1/metrics/inbox", nil, nil); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Errorf("a guest got %d", code)
	}
	// An empty inbox: counts are 0, figures without data are absent.
	r := inboxGet(t, s, owner, "range=7d")
	inboxWantTotals(t, "empty", r.Totals, map[string]float64{"conversations": 0, "by_bot": 0, "handed_off": 0, "csat_responses": 0,
		"nps_responses": 0, "sla_breaches": 0, "waiting_now": 0})
}

func inboxMustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func inboxSum(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s
}

// The report's rows follow the inbox: a conversation saved later (its
// updated time moves), one deleted (an erasure) and one written with an
// older updated time than the rows already worked out.
func TestInboxReportRowsFollowTheInbox(t *testing.T) {
	s := startInboxMetrics(t)
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	seedInboxShop(t, s)
	const period = "from=2026-11-01&to=2026-11-10"
	if r := inboxGet(t, s, owner, period); r.Totals["conversations"] != 7 || r.Totals["by_bot"] != 1 {
		t.Fatalf("before: %v", r.Totals)
	}
	d := inboxSeed{t: t, db: s.PB.DB()}
	// c4 (the bot's) goes to a person who answers at 14:30: by_bot 1 → 0,
	// handed_off 1 → 2.
	d.exec(`UPDATE conversations SET bot = 0, handoff_at = {:h}, first_response_at = {:f}, updated = {:u} WHERE id = 'c4'`,
		dbx.Params{"h": inboxAt("2026-11-05 14:10"), "f": inboxAt("2026-11-05 14:30"), "u": inboxAt("2026-11-20 11:00")})
	if r := inboxGet(t, s, owner, period); r.Totals["by_bot"] != 0 || r.Totals["handed_off"] != 2 {
		t.Errorf("c4 handed off: by_bot %v handed_off %v; want 0, 2", r.Totals["by_bot"], r.Totals["handed_off"])
	}
	// c7's conversation is deleted behind the rows' back (an erasure
	// deletes the rows with it): the counts differ, the orphan goes.
	d.exec(`DELETE FROM conversations WHERE id = 'c7'`, nil)
	r := inboxGet(t, s, owner, period)
	if r.Totals["conversations"] != 6 || r.Totals["by_bot"] != 0 || r.Totals["handed_off"] != 2 {
		t.Errorf("after: conversations %v by_bot %v handed_off %v; want 6, 0, 2", r.Totals["conversations"], r.Totals["by_bot"], r.Totals["handed_off"])
	}
	var rows int
	_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM metrics_conversations WHERE id = 'c7'").Row(&rows)
	if rows != 0 {
		t.Error("the deleted conversation's row is still there")
	}
	// c10 is written with an updated time older than every row's.
	d.conv(inboxSeedConv{id: "c10", profile: "p10", channel: "sms", status: "open", created: "2026-11-08 09:00"})
	if r := inboxGet(t, s, owner, period); r.Totals["conversations"] != 7 {
		t.Errorf("with c10: conversations %v, want 7", r.Totals["conversations"])
	}
}

// The day rollup follows the rows it adds up: a conversation the customer
// opens after a report changes an earlier day's first-contact resolution
// (c1's customer comes back on WhatsApp the day after c1 was resolved),
// and its deletion changes it back. Hourly buckets (read from the rows)
// give the same totals as days (read from the rollup).
func TestInboxReportDaysFollowLaterConversations(t *testing.T) {
	s := startInboxMetrics(t)
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	seedInboxShop(t, s)
	const period = "from=2026-11-01&to=2026-11-10"
	if r := inboxGet(t, s, owner, period); r.Totals["fcr_rate"] != 0.6 {
		t.Fatalf("before: fcr_rate %v, want 0.6", r.Totals["fcr_rate"])
	}
	d := inboxSeed{t: t, db: s.PB.DB()}
	d.conv(inboxSeedConv{id: "c11", profile: "p1", channel: "whatsapp", status: "open", created: "2026-11-02 08:00"})
	r := inboxGet(t, s, owner, period)
	// judged: c1 now followed by c11, c2 reopened, c3 followed, c4 ok, c5 ok: 2/5
	if r.Totals["conversations"] != 8 || r.Totals["fcr_rate"] != 0.4 {
		t.Errorf("with c11: conversations %v fcr_rate %v; want 8, 0.4", r.Totals["conversations"], r.Totals["fcr_rate"])
	}
	// Ana: c1 c2 c7 judged c1 c2, neither at first contact now.
	if row := inboxTable(t, r, "by_agent").Rows[0]; row[0] != "Ana" || row[5] != 0.0 {
		t.Errorf("by_agent first row %v, want Ana with fcr_rate 0", row)
	}
	for _, q := range []string{"from=2026-11-02&to=2026-11-03", "from=2026-11-01&to=2026-11-03&channel=whatsapp"} {
		days, hours := inboxGet(t, s, owner, q), inboxGet(t, s, owner, q+"&bucket=hour")
		if g, w := inboxMustJSON(hours.Totals), inboxMustJSON(days.Totals); g != w || hours.Tables == nil {
			t.Errorf("%s: hourly totals %s, daily %s", q, g, w)
		}
		if g, w := inboxMustJSON(hours.Tables), inboxMustJSON(days.Tables); g != w {
			t.Errorf("%s: hourly tables %s, daily %s", q, g, w)
		}
	}
	d.exec(`DELETE FROM conversations WHERE id = 'c11'`, nil)
	if r := inboxGet(t, s, owner, period); r.Totals["conversations"] != 7 || r.Totals["fcr_rate"] != 0.6 {
		t.Errorf("c11 gone: conversations %v fcr_rate %v; want 7, 0.6", r.Totals["conversations"], r.Totals["fcr_rate"])
	}
}
