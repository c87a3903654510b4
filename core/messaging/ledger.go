package messaging

import (
	"fmt"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/store"
)

// statusOf maps a status event to the ledger status it moves to.
var statusOf = map[string]string{
	events.MessageSent:      StatusSent,
	events.MessageFailed:    StatusFailed,
	events.MessageDelivered: StatusDelivered,
	events.MessageRead:      StatusRead,
}

// rankSQL orders statuses so an update never moves one backwards (a late
// "delivered" after "read", a retry's "sent" after "delivered"). A
// suppressed row never moves.
const rankSQL = `(CASE status WHEN 'queued' THEN 0 WHEN 'scheduled' THEN 0 WHEN 'sent' THEN 1 WHEN 'failed' THEN 2
	WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 ELSE 99 END)`

var rank = map[string]int{StatusSent: 1, StatusFailed: 2, StatusDelivered: 3, StatusRead: 4}

// ledgerProcessor folds delivery-status events into the ledger inside the
// events transaction, so a status is recorded exactly when its event is.
type ledgerProcessor struct{ m *Module }

func (p ledgerProcessor) ProcessBatch(tx core.App, batch []*eventstore.Stored) error {
	for _, s := range batch {
		ev := s.Event
		if ev.Type == events.EmailOpened || ev.Type == events.EmailClicked {
			if err := applyEngagement(tx, s); err != nil {
				return fmt.Errorf("messaging: ledger engagement for %s: %w", ev.ID, err)
			}
			continue
		}
		status, ok := statusOf[ev.Type]
		if !ok {
			continue
		}
		if err := applyStatus(tx, ev, status); err != nil {
			return fmt.Errorf("messaging: ledger update for %s: %w", ev.ID, err)
		}
	}
	return nil
}

// namedMessage is the ledger row an event is about. A connector's event
// names the row it sent as outbound_id (its message_id, if any, is the
// vendor's: a wamid, a Twilio sid); the host's message.sent /
// message.failed and some connectors' opens name it as message_id.
func namedMessage(ev *events.Event) string {
	if id, _ := ev.Properties["outbound_id"].(string); id != "" {
		return id
	}
	id, _ := ev.Properties["message_id"].(string)
	return id
}

// applyEngagement records an email.opened or email.clicked on the message it
// names (outbound_id, as Omni's tracking sends it, else message_id): the
// earliest open and the earliest click, a click being an open too. Only a
// message of the same customer sent before the event counts, so an id
// copied into someone else's event changes nothing.
func applyEngagement(tx core.App, s *eventstore.Stored) error {
	ev := s.Event
	id := namedMessage(ev)
	if id == "" || s.Profile == "" {
		return nil
	}
	set := "opened_at = CASE WHEN opened_at = '' OR opened_at > {:at} THEN {:at} ELSE opened_at END"
	if ev.Type == events.EmailClicked {
		set += ", clicked_at = CASE WHEN clicked_at = '' OR clicked_at > {:at} THEN {:at} ELSE clicked_at END"
	}
	_, err := tx.DB().NewQuery("UPDATE " + Collection + " SET " + set + " WHERE id={:id} AND profile={:p} AND created <= {:at}").
		Bind(dbx.Params{"id": id, "p": s.Profile, "at": store.FormatTime(ev.OccurredAt)}).Execute()
	return err
}

// applyStatus moves the message an event is about. Events about messages
// Omni did not send through the gate (no ledger row) change nothing.
func applyStatus(tx core.App, ev *events.Event, status string) error {
	str := func(k string) string { s, _ := ev.Properties[k].(string); return s }
	id := namedMessage(ev)
	provider := truncate(str("provider_message_id"), 300)
	db := tx.DB()
	if id == "" && provider != "" {
		// provider_id != '' lets SQLite use the partial index (it cannot
		// tell a bound parameter is not ''): without it, every status event
		// about a message Omni did not send scans the ledger.
		_ = db.NewQuery("SELECT id FROM " + Collection + " WHERE provider_id={:p} AND provider_id != '' LIMIT 1").Bind(dbx.Params{"p": provider}).Row(&id)
	}
	if id == "" {
		return nil
	}
	if provider != "" {
		if _, err := db.NewQuery("UPDATE " + Collection + " SET provider_id={:p} WHERE id={:id} AND provider_id=''").
			Bind(dbx.Params{"p": provider, "id": id}).Execute(); err != nil {
			return err
		}
	}
	at := store.FormatTime(ev.OccurredAt)
	set := status + "_at={:at}, status={:status}, updated={:now}"
	params := dbx.Params{"id": id, "at": at, "status": status, "rank": rank[status], "now": store.FormatTime(ev.ReceivedAt)}
	if c, _ := ev.Properties["connector"].(string); c != "" {
		set += ", connector={:connector}"
		params["connector"] = c
	}
	if status == StatusFailed {
		reason := str("error_reason")
		if reason == "" {
			reason = str("error")
		}
		set += ", reason={:reason}, error_code={:code}"
		params["reason"], params["code"] = truncate(reason, 2000), truncate(str("error_code"), 256)
	}
	if _, err := db.NewQuery("UPDATE " + Collection + " SET " + set + " WHERE id={:id} AND " + rankSQL + " < {:rank}").
		Bind(params).Execute(); err != nil {
		return err
	}
	if status == StatusFailed && ev.Properties["permanent"] == true {
		return markUndeliverable(tx, id, str("error_reason")+str("error"))
	}
	return nil
}

// markUndeliverable records the message's address as failing permanently
// (hard bounce, SMTP 5xx): later sends to it are refused at the gate.
func markUndeliverable(tx core.App, messageID, reason string) error {
	var row struct {
		Profile string `db:"profile"`
		Channel string `db:"channel"`
		To      string `db:"to"`
	}
	if err := tx.DB().NewQuery(`SELECT profile, channel, "to" FROM ` + Collection + ` WHERE id={:id}`).
		Bind(dbx.Params{"id": messageID}).One(&row); err != nil || row.To == "" {
		return nil
	}
	if strings.TrimSpace(reason) == "" {
		reason = "permanent delivery failure"
	}
	now := store.FormatTime(timeNowUTC())
	_, err := tx.DB().NewQuery(`INSERT INTO ` + SuppressionsCollection + ` (id, channel, address, profile, reason, message, created)
		VALUES ({:id}, {:c}, {:a}, {:p}, {:r}, {:m}, {:now}) ON CONFLICT(channel, address) DO NOTHING`).
		Bind(dbx.Params{"id": store.NewRecordID(), "c": row.Channel, "a": row.To, "p": row.Profile,
			"r": truncate(reason, 2000), "m": messageID, "now": now}).Execute()
	return err
}
