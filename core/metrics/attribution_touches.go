package metrics

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/store"
)

// Touch kinds.
const (
	attrKindSent       = "sent"        // a campaign's or a journey's message
	attrKindOpened     = "opened"      // an email opened
	attrKindClicked    = "clicked"     // an email's link clicked
	attrKindRead       = "read"        // a WhatsApp or SMS message read
	attrKindVisit      = "visit"       // a web visit with a UTM campaign
	attrKindAgentReply = "agent_reply" // an agent's reply in the inbox
	attrKindNone       = "none"        // (credits) an order with no touch
)

// attrStoredTouchTypes are the event types of the touches kept in
// metrics_touches (page and screen views, the visits, are read from the
// events table). A customer's own messages are not touches: they are the
// customer acting.
var attrStoredTouchTypes = []any{events.MessageSent, events.MessageRead, events.EmailOpened, events.EmailClicked}

// attrTouchRow is a touch with the customer and event it came from.
type attrTouchRow struct {
	attrTouch
	Profile, Event string
}

// attrLedgerRow is what the send ledger (messaging's messages table) and
// the inbox say about an outbound message.
type attrLedgerRow struct {
	Kind         string `db:"kind"`
	Channel      string `db:"channel"`
	JourneyRun   string `db:"journey_run"`
	Conversation string `db:"conversation"`
	Author       string `db:"author"`
	AuthorStaff  string `db:"author_staff"`
	Journey      string `db:"journey"`
}

// attrLedger looks up an outbound message Omni sent: its kind, the
// journey that sent it and, for a conversation reply, who wrote it. The
// tables are other modules' and read by name; without them (a module
// left out), nothing is known.
func attrLedger(db dbx.Builder, id string) (attrLedgerRow, bool) {
	var r attrLedgerRow
	if id == "" {
		return r, false
	}
	err := db.NewQuery(`SELECT l.kind, l.channel, l.journey_run, l.conversation,
			COALESCE((SELECT author FROM conversation_messages WHERE id = l.id), '') AS author,
			COALESCE((SELECT author_staff FROM conversation_messages WHERE id = l.id), '') AS author_staff,
			COALESCE((SELECT journey FROM journey_runs WHERE id = l.journey_run AND l.journey_run != ''), '') AS journey
		FROM messages l WHERE l.id = {:id}`).Bind(dbx.Params{"id": id}).One(&r)
	if err != nil {
		// Without the inbox's or the journeys' tables: the ledger alone.
		err = db.NewQuery("SELECT kind, channel, journey_run, conversation FROM messages WHERE id = {:id}").Bind(dbx.Params{"id": id}).One(&r)
	}
	return r, err == nil
}

// attrJourneyOf is the journey of a run ("" when unknown).
func attrJourneyOf(db dbx.Builder, run string) string {
	var j string
	if run != "" {
		_ = db.NewQuery("SELECT journey FROM journey_runs WHERE id = {:id}").Bind(dbx.Params{"id": run}).Row(&j)
	}
	return j
}

// attrTouchOf turns a stored event into a touch, if it is one:
//   - message.sent: a marketing message or a journey's (the ledger says
//     which; a transactional message is not a touch) or an agent's reply
//     in the inbox (the reply's conversation message names the agent);
//     the bot's and automatic replies are not touches;
//   - message.read: a marketing or journey message read;
//   - email.opened, email.clicked: always (they come from email tools);
//   - page.viewed, screen.viewed with a UTM campaign: a visit.
//
// A message reported twice (the host's message.sent and the vendor's
// "sent" status) has one ref, so it is one touch.
func attrTouchOf(db dbx.Builder, record, profile string, ev *events.Event) (attrTouchRow, bool) {
	t := attrTouchRow{Profile: profile, Event: record}
	t.At, t.Channel = ev.OccurredAt.UTC(), ev.Context.Channel
	str := func(k string) string { s, _ := ev.Properties[k].(string); return strings.TrimSpace(s) }
	if profile == "" {
		return t, false
	}
	if c := ev.Context.Campaign; c != nil {
		t.Campaign = attrCampaignName(c)
	}
	// The ledger id: a connector's status names it outbound_id, the host's
	// outcome message_id.
	msgID := str("outbound_id")
	if msgID == "" && (ev.Type == events.MessageSent || ev.Type == events.MessageRead) {
		msgID = str("message_id")
	}
	switch ev.Type {
	case events.MessageSent, events.MessageRead:
		l, ok := attrLedger(db, msgID)
		run := ev.Context.JourneyRun
		if ok && l.JourneyRun != "" {
			run = l.JourneyRun
		}
		if t.Channel == "" {
			t.Channel = l.Channel
		}
		switch {
		case run != "":
			t.Journey = l.Journey
			if t.Journey == "" {
				t.Journey = attrJourneyOf(db, run)
			}
			t.Kind = attrKindSent
		case ok && l.Kind == "marketing":
			t.Kind = attrKindSent
		case ok && l.Kind == "conversation" && l.Author == "agent" && ev.Type == events.MessageSent:
			t.Kind, t.Agent = attrKindAgentReply, l.AuthorStaff
		case !ok && str("kind") == "marketing":
			t.Kind = attrKindSent
		default:
			return t, false
		}
		if ev.Type == events.MessageRead {
			if t.Kind != attrKindSent {
				return t, false
			}
			t.Kind = attrKindRead
		}
		if msgID == "" {
			msgID = "ev:" + record
		}
		t.Ref = t.Kind + ":" + profile + ":" + msgID
	case events.EmailOpened, events.EmailClicked:
		t.Kind = attrKindOpened
		if ev.Type == events.EmailClicked {
			t.Kind = attrKindClicked
		}
		if t.Channel == "" {
			t.Channel = events.ChannelEmail
		}
		if c := str("campaign_name"); c != "" && t.Campaign == "" {
			t.Campaign = c
		}
		if l, ok := attrLedger(db, msgID); ok {
			t.Journey = l.Journey
		} else if ev.Context.JourneyRun != "" {
			t.Journey = attrJourneyOf(db, ev.Context.JourneyRun)
		}
		// One open (one click) per message and person: opening a mail
		// five times is one touch.
		key := msgID
		if key == "" {
			key = str("klaviyo_message_id")
		}
		if key == "" {
			key = str("message_id")
		}
		if key == "" {
			key = "ev:" + record
		}
		t.Ref = t.Kind + ":" + profile + ":" + key
	case events.PageViewed, events.ScreenViewed:
		if t.Campaign == "" {
			return t, false
		}
		t.Kind = attrKindVisit
		if t.Channel == "" || t.Channel == events.ChannelServer {
			t.Channel = events.ChannelWeb
		}
		t.Ref = t.Kind + ":" + record
	default:
		return t, false
	}
	if t.Channel == "" {
		t.Channel = "unknown"
	}
	t.Ref = attrClip(t.Ref, 400)
	return t, true
}

// attrCampaignName names a UTM campaign: its name, else "source / medium".
func attrCampaignName(c *events.Campaign) string {
	if n := strings.TrimSpace(c.Name); n != "" {
		return n
	}
	var parts []string
	for _, s := range []string{c.Source, c.Medium} {
		if s = strings.TrimSpace(s); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " / ")
}

// attrTime is a stored date ("2006-01-02 15:04:05.000Z").
func attrTime(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05.000Z07:00", s)
	if err != nil {
		t, _ = time.Parse(time.RFC3339Nano, s)
	}
	return t.UTC()
}

// attrTouchOrVisit is a stored touch (metrics_touches) or, with Type
// set, a page view read back from the events table (Ref its record id).
type attrTouchOrVisit struct {
	Profile  string `db:"profile"`
	At       string `db:"at"`
	Kind     string `db:"kind"`
	Channel  string `db:"channel"`
	Campaign string `db:"campaign"`
	Journey  string `db:"journey"`
	Agent    string `db:"agent"`
	Ref      string `db:"ref"`
	Type     string `db:"type"`
	Context  string `db:"context"`
}

// touchesOf is the customers' touches from from to to (both included), by
// customer: the stored ones and the visits, which are read from the
// events table (the page views with a UTM campaign, turned into touches
// by attrTouchOf as they would have been on arrival). Merges move those
// events and erasures delete them, so the visits follow on their own.
// One statement for both; the customer's events are found through
// events(profile, occurred_at) ("+type" keeps SQLite off the type index,
// which would read every customer's page views of the period), and only
// page views naming a campaign are parsed.
func (w *attrTx) touchesOf(profiles []any, from, to time.Time) (map[string][]attrTouch, error) {
	out := map[string][]attrTouch{}
	if len(profiles) == 0 {
		return out, nil
	}
	p := dbx.Params{"from": store.FormatTime(from), "to": store.FormatTime(to)}
	var in strings.Builder
	in.WriteString("IN (")
	seen := make(map[any]bool, len(profiles))
	for _, v := range profiles {
		if seen[v] {
			continue // a customer with several orders in the batch
		}
		seen[v] = true
		k := "p" + strconv.Itoa(len(seen)-1)
		if len(seen) > 1 {
			in.WriteString(", ")
		}
		in.WriteString("{:" + k + "}")
		p[k] = v
	}
	in.WriteString(")")
	query := `SELECT profile, at, kind, channel, campaign, journey, agent, ref, '' AS type, '' AS context FROM ` + TouchesCollection + `
		WHERE profile ` + in.String() + ` AND at >= {:from} AND at <= {:to}
		UNION ALL
		SELECT profile, occurred_at, '', '', '', '', '', id, type, context FROM events
		WHERE profile ` + in.String() + ` AND occurred_at >= {:from} AND occurred_at <= {:to}
			AND +type IN ('` + events.PageViewed + `', '` + events.ScreenViewed + `') AND instr(context, '"campaign"') > 0`
	var rows []attrTouchOrVisit
	var err error
	if len(seen) == 1 {
		err = w.q(query, p).All(&rows) // one order at a time: prepared once
	} else {
		err = w.tx.DB().NewQuery(query).Bind(p).All(&rows)
	}
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r.Type == "" {
			out[r.Profile] = append(out[r.Profile], attrTouch{At: attrTime(r.At), Kind: r.Kind, Channel: r.Channel,
				Campaign: r.Campaign, Journey: r.Journey, Agent: r.Agent, Ref: r.Ref})
			continue
		}
		var c struct {
			Channel  string           `json:"channel"`
			Campaign *events.Campaign `json:"campaign"`
		}
		if json.Unmarshal([]byte(r.Context), &c) != nil || c.Campaign == nil {
			continue
		}
		ev := &events.Event{Type: r.Type, OccurredAt: attrTime(r.At), Context: events.Context{Channel: c.Channel, Campaign: c.Campaign}}
		if v, ok := attrTouchOf(nil, r.Ref, r.Profile, ev); ok {
			out[r.Profile] = append(out[r.Profile], v.attrTouch)
		}
	}
	return out, nil
}
