package inbox

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/store"
)

// SLA: response-time targets per channel and priority. A customer's
// first message of a (re)opened conversation sets first_response_due; a
// customer message after a person's reply sets next_response_due (both
// counted from the oldest unanswered message); a person's reply clears
// them (post). A due time that passes while the conversation is open
// counts one breach (sla_breaches) and emits conversation.sla_breached.
// Pending (the bot has it), snoozed and resolved conversations are not
// checked; resolving clears the due times.

// EventSLABreached is the derived event of a missed due time.
const EventSLABreached = "conversation.sla_breached"

// SLATarget is one row of the setting: the most specific row for a
// conversation's channel and priority applies (channel and priority
// exact, then channel exact, then priority exact, then "*"/"*").
type SLATarget struct {
	Channel       string `json:"channel"`        // "*" or whatsapp | email | sms | chat
	Priority      string `json:"priority"`       // "*" or none | low | medium | high | urgent
	FirstResponse string `json:"first_response"` // "1h", "30m", "1d"; "" = no target
	NextResponse  string `json:"next_response"`
}

// SLASetting is the owner's setting "sla"; no targets, no SLA.
type SLASetting struct {
	Targets []SLATarget `json:"targets"`
}

func defaultSLA() any { return SLASetting{Targets: []SLATarget{}} }

func checkSLASetting(raw json.RawMessage) (any, error) {
	var s SLASetting
	if err := strictJSON(raw, &s); err != nil {
		return nil, fieldErr("sla", err.Error())
	}
	if s.Targets == nil {
		s.Targets = []SLATarget{}
	}
	if len(s.Targets) > 100 {
		return nil, fieldErr("sla.targets", "at most 100 targets")
	}
	seen := map[string]bool{}
	for i := range s.Targets {
		t := &s.Targets[i]
		f := fmt.Sprintf("sla.targets.%d.", i)
		t.Channel, t.Priority = strings.ToLower(strings.TrimSpace(t.Channel)), strings.ToLower(strings.TrimSpace(t.Priority))
		if t.Channel == "" {
			t.Channel = "*"
		}
		if t.Priority == "" {
			t.Priority = "*"
		}
		if t.Channel != "*" && !validChannel(t.Channel) {
			return nil, fieldErr(f+"channel", `must be "*" or one of `+strings.Join(Channels, ", "))
		}
		if t.Priority != "*" && !contains(Priorities, t.Priority) {
			return nil, fieldErr(f+"priority", `must be "*" or one of `+strings.Join(Priorities, ", "))
		}
		for _, d := range []struct {
			name string
			v    *string
		}{{"first_response", &t.FirstResponse}, {"next_response", &t.NextResponse}} {
			*d.v = strings.TrimSpace(*d.v)
			if *d.v == "" {
				continue
			}
			if dur, err := ParseDuration(*d.v); err != nil || dur < time.Minute {
				return nil, fieldErr(f+d.name, fmt.Sprintf("%q is not a response time of at least a minute (such as 30m, 4h, 1d)", *d.v))
			}
		}
		if t.FirstResponse == "" && t.NextResponse == "" {
			return nil, fieldErr(f+"first_response", "give a first_response or a next_response time")
		}
		key := t.Channel + "/" + t.Priority
		if seen[key] {
			return nil, fieldErr(f+"channel", fmt.Sprintf("channel %s with priority %s is listed twice", t.Channel, t.Priority))
		}
		seen[key] = true
	}
	return s, nil
}

// slaTargets is the first- and next-response time for a channel and
// priority (0 = no target).
func (m *Module) slaTargets(channel, priority string) (first, next time.Duration) {
	var s SLASetting
	if !m.setting("sla", &s) {
		return 0, 0
	}
	best := -1
	for _, t := range s.Targets {
		score := 0
		switch t.Channel {
		case channel:
			score += 2
		case "*":
		default:
			continue
		}
		switch t.Priority {
		case priority:
			score++
		case "*":
		default:
			continue
		}
		if score > best {
			best = score
			first, _ = ParseDuration(t.FirstResponse)
			next, _ = ParseDuration(t.NextResponse)
		}
	}
	return first, next
}

// slaOnCustomerMessage sets the due time a customer's message starts.
func (m *Module) slaOnCustomerMessage(tx core.App, f *Filed) error {
	if f.SurveyScore > 0 {
		return nil
	}
	c := f.Conversation
	if f.Reopened && c.FirstResponseAt != "" {
		// first_response_at is the first reply of the current opening: a
		// reopened conversation waits for its first response again (the
		// list shows a first-response due time while it is empty).
		if _, err := tx.DB().NewQuery("UPDATE " + ConversationsCollection + " SET first_response_at = '' WHERE id = {:id}").
			Bind(dbx.Params{"id": c.ID}).Execute(); err != nil {
			return err
		}
		c.FirstResponseAt = ""
	}
	firstKind := f.Opened || f.Reopened || c.FirstResponseAt == ""
	if !firstKind && (c.NextResponseDue != "" || c.FirstResponseDue != "") {
		return nil // already due: the oldest unanswered message counts
	}
	if firstKind && !f.Opened && !f.Reopened && c.FirstResponseDue != "" {
		return nil
	}
	return m.setDue(tx, c, firstKind)
}

// setDue sets c's first (or next) response due time from the oldest
// unanswered message and clears the other ("" when no target applies).
func (m *Module) setDue(tx core.App, c *Conversation, firstKind bool) error {
	waiting, err := parseTime(c.WaitingSince)
	if err != nil {
		return nil // not waiting for anyone
	}
	first, next := m.slaTargets(c.Channel, c.Priority)
	target, col, other := next, "next_response_due", "first_response_due"
	if firstKind {
		target, col, other = first, "first_response_due", "next_response_due"
	}
	due := ""
	if target > 0 {
		due = store.FormatTime(waiting.Add(target))
	}
	if due == "" && c.FirstResponseDue == "" && c.NextResponseDue == "" {
		return nil
	}
	if _, err := tx.DB().NewQuery("UPDATE " + ConversationsCollection + " SET " + col + " = {:due}, " + other + " = '' WHERE id = {:id}").
		Bind(dbx.Params{"due": due, "id": c.ID}).Execute(); err != nil {
		return err
	}
	// c stays what the row holds: the inbound path goes on with it.
	if firstKind {
		c.FirstResponseDue, c.NextResponseDue = due, ""
	} else {
		c.NextResponseDue, c.FirstResponseDue = due, ""
	}
	m.live.touch(c.ID, "")
	return nil
}

// slaRecompute sets c's due time again from the current targets: call it
// after a change of priority (or channel) inside the transaction that
// made it. The due time stays of its kind (first until a person replied).
func (m *Module) slaRecompute(tx core.App, id string) error {
	c, err := loadConversation(tx.DB(), id)
	if err != nil {
		return err
	}
	if c.Status == StatusResolved || c.WaitingSince == "" {
		return nil
	}
	return m.setDue(tx, c, c.FirstResponseAt == "" || c.FirstResponseDue != "")
}

// slaOnResolved ends c's due times.
func (m *Module) slaOnResolved(tx core.App, c *Conversation) error {
	_, err := tx.DB().NewQuery("UPDATE " + ConversationsCollection + " SET first_response_due = '', next_response_due = '' WHERE id = {:id}").
		Bind(dbx.Params{"id": c.ID}).Execute()
	return err
}

// What makes a conversation's first or next response due time one the SLA
// check has still to count (the partial indexes' conditions).
const (
	slaFirstPending = "status = 'open' AND first_response_due != '' AND first_response_due != sla_breached_due"
	slaNextPending  = "status = 'open' AND next_response_due != '' AND next_response_due != sla_breached_due"
)

// slaDueSQL reads up to 200 conversations with a due time passed ({:now})
// and not counted. Each half reads its partial index up to now (its
// conditions are the index's own, word for word, so SQLite uses it).
// INDEXED BY: without statistics the planner prefers the status index,
// which holds every open conversation.
const slaDueSQL = slaDueCols + ` INDEXED BY idx_conversations_first_due WHERE ` + slaFirstPending + ` AND first_response_due <= {:now}
		UNION ` + slaDueCols + ` INDEXED BY idx_conversations_next_due WHERE ` + slaNextPending + ` AND next_response_due <= {:now}
		LIMIT 200`

const slaDueCols = `SELECT id, profile, channel, first_response_due, next_response_due, sla_breached_due FROM ` + ConversationsCollection

// checkSLA counts each due time that passed on an open conversation once
// (sla_breached_due remembers the last one counted), stages
// conversation.sla_breached and pushes the change live.
func (m *Module) checkSLA(ctx context.Context, now time.Time) {
	nowS := store.FormatTime(now)
	for ctx.Err() == nil {
		var rows []struct {
			ID       string `db:"id"`
			Profile  string `db:"profile"`
			Channel  string `db:"channel"`
			FirstDue string `db:"first_response_due"`
			NextDue  string `db:"next_response_due"`
			Counted  string `db:"sla_breached_due"`
		}
		err := m.app.DB().NewQuery(slaDueSQL).Bind(dbx.Params{"now": nowS}).All(&rows)
		if err != nil {
			m.log.Warn("inbox: reading SLA due times", "error", err)
			return
		}
		if len(rows) == 0 {
			return
		}
		err = m.app.RunInTransaction(func(tx core.App) error {
			for _, r := range rows {
				kind, due := "first", r.FirstDue
				if due == "" || due > nowS || due == r.Counted {
					kind, due = "next", r.NextDue
				}
				res, err := tx.DB().NewQuery("UPDATE " + ConversationsCollection + ` SET sla_breaches = sla_breaches + 1,
					sla_breached_due = {:due} WHERE id = {:id} AND sla_breached_due != {:due} AND status = 'open'`).
					Bind(dbx.Params{"due": due, "id": r.ID}).Execute()
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n == 0 {
					continue
				}
				dueAt, _ := parseTime(due)
				c := &Conversation{ID: r.ID, Profile: r.Profile, Channel: r.Channel}
				ev := conversationEvent(EventSLABreached, c, dueAt, map[string]any{"kind": kind, "due": dueAt.UTC().Format(time.RFC3339)})
				ev.ID = fmt.Sprintf("%s:%s:%s:%d", EventSLABreached, r.ID, kind, dueAt.UnixMilli())
				if err := m.stage(tx, ev); err != nil {
					return err
				}
				m.live.touch(r.ID, "")
			}
			return nil
		})
		if err != nil {
			m.log.Warn("inbox: counting SLA breaches", "error", err)
			return
		}
		m.afterCommit()
		if len(rows) < 200 {
			return
		}
	}
}
