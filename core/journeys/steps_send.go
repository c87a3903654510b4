package journeys

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/journeys/graph"
	"github.com/omni/omni/core/outbox"
	"github.com/omni/omni/plugins/sdk"
)

// Send timing.
const (
	// holdRecheck is how often a send held for an open conversation looks
	// again.
	holdRecheck = 15 * time.Minute
	// gateSilence is how long a send waits for its ledger row before it
	// takes "suppressed" (the gate never answered).
	gateSilence = time.Hour
	// ledgerBackoffMax bounds the wait between looks at the ledger.
	ledgerBackoffMax = 30 * time.Second
	// openConversationWindow: without an inbox, an inbound message this
	// recent with no reply or resolution since counts as an open
	// conversation.
	openConversationWindow = 24 * time.Hour
)

// sendID is a send's request id and ledger row id: deterministic per run,
// node and visit, so a send repeated after a crash is the same request,
// which the bus and the gate's ledger deduplicate.
func sendID(run, node string, attempt int) string {
	return stableID("journey-send:" + visitKey(run, node, attempt))
}

// stepSend asks the messaging gate to send, then waits for its decision in
// the send ledger. Marketing sends are conversation-aware first: held while
// the customer talks to staff, skipped after a bad satisfaction score.
func (b *batch) stepSend(st *runState, id string, n *graph.Node) (outcome, error) {
	if st.ctx.SendID != "" {
		return b.sendOutcome(st)
	}
	kind := n.Kind
	if kind == "" {
		kind = "marketing"
	}
	if kind == "marketing" {
		if s := st.j.Settings.SkipAfterBadCSAT; s != "off" {
			within, err := graph.ParseDuration(s)
			if err == nil {
				bad, err := b.badCSAT(st.Profile, b.now.Add(-within))
				if err != nil {
					return outcome{}, err
				}
				if bad {
					return leave("suppressed", map[string]any{"reason": "bad CSAT", "held": st.ctx.Held}), nil
				}
			}
		}
		if h := st.j.Settings.HoldDuringConversation; h == nil || *h {
			open, err := b.openConversation(st.Profile)
			if err != nil {
				return outcome{}, err
			}
			if open {
				st.ctx.Held = true
				return stay(b.now.Add(holdRecheck)), nil
			}
		}
	}
	sid := sendID(st.ID, id, st.Attempt)
	// The triggering event as templates see it: event.type, event.id and
	// event.properties.X as in the gate's API, and each property also at
	// the top (event.X) where it does not clash.
	ev := maps.Clone(st.ctx.Properties)
	if ev == nil {
		ev = map[string]any{}
	}
	ev["type"], ev["properties"] = st.ctx.Event, st.ctx.Properties
	if st.ctx.EventID != "" {
		ev["id"] = st.ctx.EventID
	}
	req := &outbox.SendRequest{ID: sid, Profile: st.Profile, Channels: n.Channels, Kind: kind, Template: n.Template,
		Event: ev, JourneyRun: st.ID}
	if w := n.WATemplate; w != nil {
		req.WATemplate = &sdk.Template{Name: w.Name, Language: w.Language, Params: w.Params}
	}
	// Published before this transaction commits: a crash after the publish
	// rolls the run back to this step, which publishes the same id again,
	// and the gate sends it at most once.
	ctx, cancel := context.WithTimeout(context.Background(), b.e.publishTimeout)
	defer cancel()
	if err := outbox.RequestSend(ctx, b.e.m.bus, req); err != nil {
		return outcome{}, err
	}
	if f := b.e.afterPublish; f != nil {
		if err := f(sid); err != nil {
			return outcome{}, err
		}
	}
	st.ctx.SendID, st.ctx.Tries = sid, 0
	if st.ctx.Extra == nil {
		st.ctx.Extra = map[string]any{}
	}
	st.ctx.Extra["requested_at"] = b.nw
	return stay(b.now.Add(time.Second)), nil
}

// ledger statuses that mean the gate accepted the message.
var sentStatuses = map[string]bool{"queued": true, "scheduled": true, "sent": true, "delivered": true, "read": true}

// sendOutcome reads the gate's decision: the ledger row whose id is the
// request id.
func (b *batch) sendOutcome(st *runState) (outcome, error) {
	var row struct {
		Status  string `db:"status"`
		Reason  string `db:"reason"`
		Channel string `db:"channel"`
	}
	err := b.tx.DB().NewQuery("SELECT status, reason, channel FROM messages WHERE id={:id}").
		Bind(dbx.Params{"id": st.ctx.SendID}).One(&row)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		b.e.m.log.Debug("journeys: reading the send ledger", "run", st.ID, "error", err)
	}
	detail := map[string]any{"message_id": st.ctx.SendID, "held": st.ctx.Held}
	switch {
	case err == nil && sentStatuses[row.Status]:
		detail["channel"] = row.Channel
		return leave("sent", detail), nil
	case err == nil && (row.Status == "suppressed" || row.Status == "failed"):
		detail["channel"], detail["reason"] = row.Channel, row.Reason
		return leave("suppressed", detail), nil
	}
	since := st.ctx.At
	if r, ok := st.ctx.Extra["requested_at"].(string); ok {
		since = r
	}
	if b.now.Sub(parseT(since)) >= gateSilence {
		detail["reason"] = "the messaging gate did not answer"
		return leave("suppressed", detail), nil
	}
	st.ctx.Tries++
	wait := time.Second << min(st.ctx.Tries, 5)
	return stay(b.now.Add(min(wait, ledgerBackoffMax))), nil
}

// badCSAT reports a bad satisfaction score since: a survey.answered event
// with score ≤ 2 on the 1–5 scale, or ≤ 6 when its scale property says
// 0–10 (10, "0-10", "nps").
func (b *batch) badCSAT(profile string, since time.Time) (bool, error) {
	var rows []string
	err := b.tx.DB().NewQuery("SELECT properties FROM events WHERE profile={:p} AND type='survey.answered' AND occurred_at >= {:since} " +
		"ORDER BY occurred_at DESC LIMIT 20").Bind(dbx.Params{"p": profile, "since": fmtT(since)}).Column(&rows)
	if err != nil {
		return false, err
	}
	for _, raw := range rows {
		var props map[string]any
		if json.Unmarshal([]byte(raw), &props) != nil {
			continue
		}
		score, ok := number(props["score"])
		if !ok {
			continue
		}
		limit := 2.0
		if s, _ := number(props["scale"]); s == 10 || isTenScale(props["scale"]) {
			limit = 6
		}
		if score <= limit {
			return true, nil
		}
	}
	return false, nil
}

func isTenScale(v any) bool {
	s, ok := v.(string)
	s = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "–", "-")
	return ok && (s == "0-10" || s == "nps" || s == "10")
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

// openConversation reports whether the customer is talking to staff: an
// open row in the inbox's conversations table when there is one; else an
// inbound message (not an auto-reply) in the last 24 h that no
// conversation.resolved or conversation reply has followed.
func (b *batch) openConversation(profile string) (bool, error) {
	if b.hasConversations == nil {
		var n int
		_ = b.tx.DB().NewQuery("SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='conversations'").Row(&n)
		has := n > 0
		b.hasConversations = &has
	}
	if *b.hasConversations {
		var n int
		err := b.tx.DB().NewQuery("SELECT COUNT(*) FROM conversations WHERE profile={:p} AND status IN ('open', 'pending', 'snoozed')").
			Bind(dbx.Params{"p": profile}).Row(&n)
		return n > 0, err
	}
	var last string
	err := b.tx.DB().NewQuery(`SELECT COALESCE(MAX(occurred_at), '') FROM events WHERE profile={:p} AND type='message.received'
		AND occurred_at >= {:since} AND NOT (COALESCE(json_extract(properties, '$.auto_reply'), 0) IN (1, 'true'))`).
		Bind(dbx.Params{"p": profile, "since": fmtT(b.now.Add(-openConversationWindow))}).Row(&last)
	if err != nil || last == "" {
		return false, err
	}
	var closed int
	err = b.tx.DB().NewQuery(`SELECT COUNT(*) FROM events WHERE profile={:p} AND occurred_at > {:t} AND (type='conversation.resolved'
		OR (type='message.sent' AND json_extract(properties, '$.kind') = 'conversation'))`).
		Bind(dbx.Params{"p": profile, "t": last}).Row(&closed)
	return closed == 0, err
}
