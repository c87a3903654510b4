package messaging

import (
	"testing"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/profiles"
)

// Messages sent before the ledger kept opens and clicks get them from the
// events already stored, by the same rules the ledger processor follows:
// the earliest open or click of the same customer at or after the message,
// named as outbound_id or message_id.
func TestBackfillEngagementFromStoredEvents(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{Modules: func(*app.Omni) []app.Module {
		return []app.Module{profiles.New(profiles.Options{}), New(Options{})}
	}})
	db := s.PB.DB()
	exec := func(q string, p dbx.Params) {
		t.Helper()
		if _, err := db.NewQuery(q).Bind(p).Execute(); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	for _, m := range []string{"m1", "m2", "m3", "m4"} {
		exec(`INSERT INTO messages (id, profile, channel, kind, status, created) VALUES ({:id}, 'p1', 'email', 'marketing', 'delivered', '2026-11-01 10:00:00.000Z')`,
			dbx.Params{"id": m})
	}
	for i, ev := range []struct{ typ, profile, at, props string }{
		{"email.opened", "p1", "2026-11-01 12:00:00.000Z", `{"outbound_id": "m1"}`},
		{"email.opened", "p1", "2026-11-01 11:00:00.000Z", `{"outbound_id": "m1"}`}, // the earliest
		{"email.clicked", "p1", "2026-11-01 13:00:00.000Z", `{"message_id": "m1"}`},
		{"email.clicked", "p1", "2026-11-01 11:30:00.000Z", `{"outbound_id": "m2"}`}, // a click alone is an open
		{"email.opened", "p2", "2026-11-01 11:00:00.000Z", `{"outbound_id": "m3"}`},  // another customer's
		{"email.opened", "p1", "2026-11-01 09:00:00.000Z", `{"outbound_id": "m4"}`},  // before the message
		{"email.opened", "p1", "2026-11-01 11:00:00.000Z", `not json`},
	} {
		exec(`INSERT INTO events (id, event_id, type, source, channel, occurred_at, received_at, properties, profile, created)
			VALUES ({:id}, {:id}, {:t}, 'test', 'email', {:at}, {:at}, {:p}, {:prof}, {:at})`,
			dbx.Params{"id": "ev" + string(rune('a'+i)), "t": ev.typ, "at": ev.at, "p": ev.props, "prof": ev.profile})
	}
	if err := backfillEngagement(s.PB); err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		ID      string `db:"id"`
		Opened  string `db:"opened_at"`
		Clicked string `db:"clicked_at"`
	}
	if err := db.NewQuery("SELECT id, opened_at, clicked_at FROM messages ORDER BY id").All(&rows); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		"m1": {"2026-11-01 11:00:00.000Z", "2026-11-01 13:00:00.000Z"},
		"m2": {"2026-11-01 11:30:00.000Z", "2026-11-01 11:30:00.000Z"},
		"m3": {"", ""},
		"m4": {"", ""},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if got := [2]string{r.Opened, r.Clicked}; got != want[r.ID] {
			t.Errorf("%s: opened/clicked %q, want %q", r.ID, got, want[r.ID])
		}
	}
}
