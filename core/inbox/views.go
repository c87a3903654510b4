package inbox

import (
	"github.com/pocketbase/dbx"
)

// MessageView is a conversation message as staff and the widget see it:
// a reply carries its delivery status from the send ledger (the ledger row
// has the message's id): queued, scheduled, sent, delivered, read, failed
// or suppressed, with the reason for the last two. A reply the gate has
// not yet decided is "sending".
type MessageView struct {
	Message
	Status   string `db:"status" json:"status,omitempty"`
	Reason   string `db:"reason" json:"reason,omitempty"`
	Channel  string `db:"channel" json:"channel,omitempty"` // the channel it went on (a fallback may differ)
	StatusAt string `db:"status_at" json:"status_at,omitempty"`
}

// messageViews reads messages with their ledger status, oldest first (in
// the order written when two share a millisecond).
func messageViews(db dbx.Builder, where dbx.Expression, limit int) ([]MessageView, error) {
	q := db.Select("cm.*",
		"CASE WHEN cm.direction = 'out' THEN COALESCE(l.status, 'sending') ELSE '' END AS status",
		"COALESCE(l.reason, '') AS reason", "COALESCE(l.channel, '') AS channel",
		"COALESCE(NULLIF(l.read_at, ''), NULLIF(l.delivered_at, ''), NULLIF(l.failed_at, ''), NULLIF(l.sent_at, ''), NULLIF(l.suppressed_at, ''), l.queued_at, '') AS status_at").
		From(MessagesCollection+" cm").LeftJoin("messages l", dbx.NewExp("l.id = cm.id")).
		Where(where).OrderBy("cm.created ASC", "cm.rowid ASC")
	if limit > 0 {
		q = q.Limit(int64(limit))
	}
	var out []MessageView
	if err := q.All(&out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []MessageView{}
	}
	return out, nil
}

// conversationMessages is a conversation's whole history, oldest first.
func conversationMessages(db dbx.Builder, conversation string) ([]MessageView, error) {
	return messageViews(db, dbx.HashExp{"cm.conversation": conversation}, 0)
}
