package metrics_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/metrics"
	"github.com/omni/omni/core/store"
)

// The report's daily rollup of the ledger heals itself: after the first
// report has stored the days, a status that moved on, an open stored
// later, a merge that brings a customer's reply to the send, and an
// erasure each show in the next report; a rebuild empties the rollup and
// the report counts the same again.
func TestJourneysRollupFollowsChanges(t *testing.T) {
	s, agent := startJourneys(t)
	d := jseed{t: t, db: s.PB.DB(), base: time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)}
	seedJourneyShop(d)
	// A WhatsApp message from "px" half an hour after m8 (p6's) went out:
	// another customer's, until a merge makes px p6.
	d.event("message.received", "whatsapp", "px", "whatsapp", 4*24+0.5, nil)

	const path = "/api/v1/metrics/journeys?from=2026-11-10&to=2026-11-16"
	totals := func(what string, want map[string]float64) {
		t.Helper()
		r := getReport(t, s, agent, path)
		for k, v := range want {
			wantEq(t, what+": totals."+k, r.Totals[k], v)
		}
	}
	// TestJourneysReport's figures.
	totals("first", map[string]float64{"sent": 6, "delivered": 5, "opened": 3, "clicked": 1, "replied": 1, "unsubscribed": 2})
	var stored int
	if err := s.PB.DB().NewQuery("SELECT COUNT(*) FROM " + metrics.MessagesDailyCollection).Row(&stored); err != nil || stored == 0 {
		t.Fatalf("rollup rows: %d %v", stored, err)
	}

	now := func() string { return store.FormatTime(time.Now()) }
	storedEvent := func(typ, source, profile, channel string, h float64, props string) {
		d.exec(`INSERT INTO events (id, event_id, type, source, channel, occurred_at, received_at, properties, profile, created)
			VALUES ({:id}, {:id}, {:t}, {:src}, {:c}, {:at}, {:at}, {:p}, {:prof}, {:now})`, dbx.Params{"id": store.NewRecordID(),
			"t": typ, "src": source, "c": channel, "at": d.at(h), "p": props, "prof": profile, "now": now()})
	}

	// m4 (WhatsApp, delivered) is read: the ledger moves it on as
	// core/messaging does, with updated.
	d.exec("UPDATE messages SET status = 'read', read_at = {:now}, updated = {:now} WHERE id = 'm4'", dbx.Params{"now": now()})
	totals("m4 read", map[string]float64{"opened": 4, "delivered": 5})

	// m7 (the order confirmation, Nov 13) opened, stored now.
	storedEvent("email.opened", "email", "p5", "email", 2*24+16, `{"outbound_id": "m7"}`)
	totals("m7 opened", map[string]float64{"opened": 5, "replied": 1})

	// px merged into p6: its events now p6's, then the system event.
	d.exec("UPDATE events SET profile = 'p6' WHERE profile = 'px'", nil)
	storedEvent("profile.merged", "omni", "p6", "", 7*24, `{"profile_id": "p6", "merged_profile_id": "px"}`)
	totals("merge", map[string]float64{"replied": 2})

	// p5 erased: m6 and m7 go with the events; 6 − 2 sent, m7 was
	// delivered and opened, m6 unsubscribed.
	d.exec("DELETE FROM messages WHERE profile = 'p5'", nil)
	d.exec("DELETE FROM events WHERE profile = 'p5'", nil)
	storedEvent("profile.erased", "omni", "", "", 7*24, `{"profile_id": "p5"}`)
	totals("erasure", map[string]float64{"sent": 4, "delivered": 4, "opened": 4, "clicked": 1, "replied": 2, "unsubscribed": 1})
	// Holdout groups (the lift's input) of the runs that entered on Nov 10:
	// r1 r2 r4 let through, 2 converted (100 EUR, 50 USD); r3 held out,
	// converted for 80 EUR. r4 then reaches its goal for 10 EUR.
	holdouts := func(what, want string) {
		t.Helper()
		var got []string
		if err := s.PB.DB().NewQuery("SELECT printf('%d %s %d %d %g', held, currency, runs, conversions, value) FROM " +
			metrics.HoldoutDailyCollection + " WHERE day = '2026-11-10' AND journey = 'jwin' ORDER BY held, currency").Column(&got); err != nil {
			t.Fatal(err)
		}
		wantEq(t, what, strings.Join(got, "; "), want)
	}
	holdouts("holdouts", "0  1 0 0; 0 EUR 1 1 100; 0 USD 1 1 50; 1 EUR 1 1 80")
	d.exec("UPDATE journey_runs SET goal_at = {:at}, goal_value = 10, goal_currency = 'EUR', updated = {:now} WHERE id = 'r4'",
		dbx.Params{"at": d.at(1.5), "now": now()})
	getReport(t, s, agent, path)
	holdouts("holdouts after r4's goal", "0 EUR 2 2 110; 0 USD 1 1 50; 1 EUR 1 1 80")
	before := string(mustGet(t, s, agent, path+"&compare=previous&journey=jwin"))

	// A rebuild empties the rollup; the report counts the same.
	owner := omnitest.Auth(s.Staff(t, "owner@omni-shop.dev", "owner"))
	if code, body := s.Do(t, "POST", "/api/v1/metrics/rebuild", nil, owner); code != http.StatusAccepted {
		t.Fatalf("rebuild: %d %s", code, body)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool {
		var st metrics.JobStatus
		if err := json.Unmarshal(mustGet(t, s, owner, "/api/v1/metrics/rebuild"), &st); err != nil {
			t.Fatal(err)
		}
		return !st.Running && st.FinishedAt != ""
	}, "the rebuild to finish")
	if err := s.PB.DB().NewQuery("SELECT COUNT(*) FROM " + metrics.MessagesDailyCollection).Row(&stored); err != nil || stored != 0 {
		t.Errorf("rollup rows after the rebuild: %d %v, want none", stored, err)
	}
	if after := string(mustGet(t, s, agent, path+"&compare=previous&journey=jwin")); after != before {
		t.Errorf("after the rebuild:\n%s\nwant\n%s", after, before)
	}
}

// Today is counted live: a message sent today shows at once.
func TestJourneysRollupCountsTodayLive(t *testing.T) {
	s, agent := startJourneys(t)
	// The test clock is 2026-11-20 12:00 UTC.
	d := jseed{t: t, db: s.PB.DB(), base: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)}
	d.message("t1", "", "p1", "sms", "marketing", "delivered", "", 1)
	wantEq(t, "sent", getReport(t, s, agent, "/api/v1/metrics/journeys?range=7d").Totals["sent"], 1.0)
	d.message("t2", "", "p2", "sms", "marketing", "sent", "", 2)
	r := getReport(t, s, agent, "/api/v1/metrics/journeys?range=7d")
	wantEq(t, "sent", r.Totals["sent"], 2.0)
	wantEq(t, "delivered", r.Totals["delivered"], 1.0)
	wantEq(t, "series sent", r.Series.Y["sent"], []float64{0, 0, 0, 0, 0, 0, 2})
}

func mustGet(t *testing.T, s *omnitest.Server, h http.Header, path string) []byte {
	t.Helper()
	code, body := s.Do(t, "GET", path, nil, h)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	return body
}

// A monthly chart reads the stored days summed by month: its totals and
// tables are those of a weekly chart of the same range.
func TestJourneysMonthlyChartAddsUpAsTheDays(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	s, agent := startJourneys(t)
	d := jseed{t: t, db: s.PB.DB(), base: time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)}
	seedJourneyShop(d)
	for _, extra := range []string{"", "&journey=jwin", "&channel=email"} {
		monthly := getReport(t, s, agent, "/api/v1/metrics/journeys?from=2026-09-15&bucket=month&compare=previous"+extra)
		weekly := getReport(t, s, agent, "/api/v1/metrics/journeys?from=2026-09-15&bucket=week&compare=previous"+extra)
		if monthly.Totals["sent"] == 0 {
			t.Fatalf("%s: nothing sent", extra)
		}
		wantEq(t, extra+" totals", monthly.Totals, weekly.Totals)
		wantEq(t, extra+" tables", monthly.Tables, weekly.Tables)
		var sum float64
		for _, v := range monthly.Series.Y["sent"] {
			sum += v
		}
		wantEq(t, extra+" series sent", sum, monthly.Totals["sent"])
	}
}
