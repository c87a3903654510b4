package inbox_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/inbox"
	"github.com/omni/omni/internal/testkit/queryplan"
)

func parseDue(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.Parse("2006-01-02 15:04:05.000Z", s)
	if err != nil {
		t.Fatalf("due time %q: %v", s, err)
	}
	return d
}

// SLA targets set due times from the oldest unanswered message (the most
// specific target wins; a priority change moves the due time), a person's
// reply clears them, and each due time that passes counts one breach and
// one conversation.sla_breached event, however often the check runs.
func TestSLADueTimesAndBreaches(t *testing.T) {
	s, m := startInbox(t, inbox.Options{Tick: time.Hour}) // the test runs the check itself
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	code, raw := s.Do(t, "PUT", "/api/v1/inbox/settings/sla", map[string]any{"targets": []any{
		map[string]any{"channel": "*", "first_response": "fast"}}}, omnitest.Auth(owner))
	omnitest.WantFieldError(t, code, raw, 400, "sla.targets.0.first_response")
	code, raw = s.Do(t, "PUT", "/api/v1/inbox/settings/sla", map[string]any{"targets": []any{
		map[string]any{"channel": "*", "first_response": "1h", "next_response": "4h"},
		map[string]any{"channel": "whatsapp", "priority": "urgent", "first_response": "15m", "next_response": "30m"},
	}}, omnitest.Auth(owner))
	if code != 200 {
		t.Fatalf("sla setting: %d %s", code, raw)
	}

	wa := events.Identities{events.WhatsAppID: "447700900301"}
	receive(t, s, "wamid.s1", "whatsapp", wa, map[string]any{"text": "Hello?"})
	c := conversationsOf(t, s, events.WhatsAppID, "447700900301")[0]
	waiting := parseDue(t, c.WaitingSince)
	if due := parseDue(t, c.FirstResponseDue); !due.Equal(waiting.Add(time.Hour)) {
		t.Fatalf("first response due %s, want an hour after %s", due, waiting)
	}
	if err := inbox.SetPriority(m, c.ID, "urgent"); err != nil {
		t.Fatal(err)
	}
	c = convRow(t, s, c.ID)
	if due := parseDue(t, c.FirstResponseDue); !due.Equal(waiting.Add(15 * time.Minute)) {
		t.Fatalf("urgent: first response due %s, want 15m after %s", due, waiting)
	}

	// Not yet due: nothing counted. Past due: one breach, however often
	// the check runs.
	inbox.CheckSLA(m, waiting.Add(10*time.Minute))
	if c = convRow(t, s, c.ID); c.SLABreaches != 0 {
		t.Fatalf("breaches before the due time: %d", c.SLABreaches)
	}
	inbox.CheckSLA(m, waiting.Add(20*time.Minute))
	inbox.CheckSLA(m, waiting.Add(25*time.Minute))
	if c = convRow(t, s, c.ID); c.SLABreaches != 1 || c.FirstResponseDue == "" {
		t.Fatalf("after the first due time passed: %d breaches, due %q", c.SLABreaches, c.FirstResponseDue)
	}

	// The reply clears it; the customer's next message starts the next one.
	if err := inbox.Reply(m, c.ID, "", "Hi! How can I help?"); err != nil {
		t.Fatal(err)
	}
	if c = convRow(t, s, c.ID); c.FirstResponseDue != "" || c.NextResponseDue != "" {
		t.Fatalf("after the reply: due %q / %q", c.FirstResponseDue, c.NextResponseDue)
	}
	receive(t, s, "wamid.s2", "whatsapp", wa, map[string]any{"text": "My order is missing a sock"})
	c = convRow(t, s, c.ID)
	next := parseDue(t, c.NextResponseDue)
	if !next.Equal(parseDue(t, c.WaitingSince).Add(30*time.Minute)) || c.FirstResponseDue != "" {
		t.Fatalf("next response due %s (waiting since %s), first %q", next, c.WaitingSince, c.FirstResponseDue)
	}
	inbox.CheckSLA(m, next.Add(time.Minute))
	inbox.CheckSLA(m, next.Add(2*time.Minute))
	if c = convRow(t, s, c.ID); c.SLABreaches != 2 {
		t.Fatalf("after the next due time passed: %d breaches, want 2", c.SLABreaches)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		var kinds []string
		_ = s.PB.DB().NewQuery(`SELECT json_extract(properties, '$.kind') FROM events WHERE type = 'conversation.sla_breached'
			AND json_extract(properties, '$.conversation') = {:c} ORDER BY occurred_at`).Bind(dbx.Params{"c": c.ID}).Column(&kinds)
		return len(kinds) == 2 && kinds[0] == "first" && kinds[1] == "next"
	}, "two conversation.sla_breached events, first then next")

	// Resolved: no due time, no breach.
	if err := inbox.Resolve(m, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	if c = convRow(t, s, c.ID); c.FirstResponseDue != "" || c.NextResponseDue != "" {
		t.Fatalf("resolved with due times %q / %q", c.FirstResponseDue, c.NextResponseDue)
	}

	// Reopened by the customer: it waits for a first response again, and
	// the conversations API shows that due time.
	receive(t, s, "wamid.s3", "whatsapp", wa, map[string]any{"text": "Still no sock"})
	c = convRow(t, s, c.ID)
	if c.Status != inbox.StatusOpen || c.FirstResponseAt != "" || c.FirstResponseDue == "" {
		t.Fatalf("reopened: status %s, first response at %q, due %q", c.Status, c.FirstResponseAt, c.FirstResponseDue)
	}
	var got struct {
		Conversation struct {
			SLA *struct {
				Due      string `json:"due"`
				Kind     string `json:"kind"`
				Breached bool   `json:"breached"`
			} `json:"sla"`
		} `json:"conversation"`
	}
	call(t, s, omnitest.Auth(owner), "GET", "/api/v1/conversations/"+c.ID, nil, 200, &got)
	if sla := got.Conversation.SLA; sla == nil || sla.Kind != "first" || sla.Due != parseDue(t, c.FirstResponseDue).Format(time.RFC3339) {
		t.Fatalf("the API's SLA of the reopened conversation: %+v", sla)
	}
}

// The SLA check runs every second: it reads its two partial indexes, not
// every open conversation.
func TestSLACheckReadsItsIndexes(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{Tick: time.Hour})
	all := strings.Join(queryplan.Steps(t, s.PB.DB(), inbox.SLADueQuery(), dbx.Params{"now": "2026-12-01 10:00:00.000Z"}), "\n")
	for _, idx := range []string{"idx_conversations_first_due", "idx_conversations_next_due"} {
		if !strings.Contains(all, idx) {
			t.Errorf("the SLA check does not read %s:\n%s", idx, all)
		}
	}
	if strings.Contains(all, "SCAN "+inbox.ConversationsCollection) {
		t.Errorf("the SLA check scans the conversations:\n%s", all)
	}
}
