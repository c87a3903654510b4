package connectors

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/deadletter"
	"github.com/omni/omni/core/store"
	"github.com/omni/omni/plugins/sdk"
)

// Held messages. The outbox has one shared consumer with a bounded number
// of unacknowledged messages (Options.MaxAckPending). A message waiting on
// the stream for a connector that is disabled or not running would keep
// one of those slots for as long as it waits, so enough of them (a journey
// queued thousands for WhatsApp, then the owner disabled WhatsApp) would
// stall every connector's sends. Instead such a message is held: stored in
// outbox_held first, then acknowledged (a crash in between redelivers it
// and the unique (connector, message_id) row absorbs the repeat). When the
// connector runs again the sync loop puts its held messages back on the
// stream, oldest first; one held longer than GiveUpAfter (counted from when
// it was first queued) is recorded as message.failed.

// HeldCollection holds the messages of connectors that cannot send now.
const HeldCollection = "outbox_held"

// queuedAtHeader carries a released message's first enqueue time, so its
// age (and the give-up after GiveUpAfter) counts from then, not from the
// release.
const queuedAtHeader = "Omni-Queued-At"

// heldMarker joins a held message's id, its row and its hold count in the
// Nats-Msg-Id of the released copy: fresh, so the dedupe window does not
// drop it as a repeat of the original, yet the same for a release repeated
// after a crash between publishing and deleting the row, which JetStream
// then drops within the dedupe window.
const heldMarker = "#held-"

// releaseBatch bounds how many held messages of one connector go back on
// the stream per sync: the rest follow at the next ones.
const releaseBatch = 200

type heldRow struct {
	ID        string `db:"id"`
	MessageID string `db:"message_id"`
	Data      string `db:"data"`
	QueuedAt  string `db:"queued_at"`
	Holds     int    `db:"holds"`
}

// queuedAt is when msg was first queued: the release header of a copy put
// back on the stream, or else the time the stream stored it.
func queuedAt(msg jetstream.Msg) time.Time {
	if v := msg.Headers().Get(queuedAtHeader); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t
		}
	}
	if meta, _ := msg.Metadata(); meta != nil {
		return meta.Timestamp
	}
	return time.Now()
}

// hold stores msg in outbox_held and then acknowledges it. When the
// database refuses the write the message stays on the stream and comes
// back.
func (ob *outbox) hold(msg jetstream.Msg, name string, out *sdk.OutboundMessage, queued time.Time, why error) {
	log := ob.m.log.With("connector", name, "message_id", out.ID)
	if err := storeHeld(ob.m, name, out.ID, msg.Data(), queued); err != nil {
		log.Error("outbox: could not hold a message for a connector that is not running; will try again", "error", err)
		_ = msg.NakWithDelay(30 * time.Second)
		return
	}
	log.Debug("outbox: holding a message until the connector runs", "reason", why)
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		// Redelivered, it is held again into the same row.
		log.Warn("outbox: ack of a held message failed", "error", err)
	}
}

// storeHeld inserts the held row, or counts one more hold of a message
// already held (a redelivery after a crash, or a released copy held again
// before its row was cleared), which gives its next release a fresh id.
func storeHeld(m *Module, name, id string, data []byte, queued time.Time) error {
	q, err := types.ParseDateTime(queued.UTC())
	if err != nil {
		return err
	}
	_, err = m.app.DB().NewQuery(`INSERT INTO ` + HeldCollection + ` (id, connector, message_id, data, queued_at, holds, created)
VALUES ({:id}, {:c}, {:m}, {:d}, {:q}, 1, {:now})
ON CONFLICT(connector, message_id) DO UPDATE SET holds = holds + 1`).Bind(dbx.Params{
		"id": store.NewRecordID(), "c": name, "m": id, "d": string(data), "q": q.String(), "now": types.NowDateTime().String(),
	}).Execute()
	return err
}

// HeldCounts is the number of held messages per connector.
func (m *Module) HeldCounts() (map[string]int, error) {
	var rows []struct {
		Connector string `db:"connector"`
		N         int    `db:"n"`
	}
	err := m.app.DB().NewQuery(`SELECT connector, COUNT(*) AS n FROM ` + HeldCollection + ` GROUP BY connector`).All(&rows)
	out := map[string]int{}
	for _, r := range rows {
		out[r.Connector] = r.N
	}
	return out, err
}

// heldCount is the number of held messages of name (0 when unreadable:
// it only informs).
func (m *Module) heldCount(name string) int {
	var n int
	_ = m.app.DB().NewQuery(`SELECT COUNT(*) FROM ` + HeldCollection + ` WHERE connector = {:c}`).Bind(dbx.Params{"c": name}).Row(&n)
	return n
}

// heldNote says what a connector's held messages wait for.
func heldNote(name string, n int) string {
	if n == 1 {
		return fmt.Sprintf("1 message waiting until %s is enabled and running", name)
	}
	return fmt.Sprintf("%d messages waiting until %s is enabled and running", n, name)
}

// release runs at every sync: it gives up on messages held too long and
// puts the held messages of connectors that run again back on the stream.
func (ob *outbox) release() {
	counts, err := ob.m.HeldCounts()
	if err != nil {
		ob.m.log.Error("outbox: reading held messages", "error", err)
		return
	}
	for name := range counts {
		if ob.ctx.Err() != nil {
			return
		}
		ob.giveUpHeld(name)
		if i := ob.m.instance(name); i != nil {
			if _, err := i.ready(); err == nil {
				ob.releaseHeld(name)
			}
		}
	}
}

func (ob *outbox) heldRows(where string, params dbx.Params) ([]heldRow, error) {
	var rows []heldRow
	err := ob.m.app.DB().NewQuery(`SELECT id, message_id, data, queued_at, holds FROM ` + HeldCollection +
		` WHERE ` + where + ` ORDER BY queued_at, created LIMIT ` + strconv.Itoa(releaseBatch)).Bind(params).All(&rows)
	return rows, err
}

// deleteHeld clears a held row, unless it was held again since it was
// read (holds went up): a released copy can reach the consumer and be held
// again before this runs, and deleting the row then would lose it.
func (ob *outbox) deleteHeld(id string, holds int) error {
	_, err := ob.m.app.DB().NewQuery(`DELETE FROM ` + HeldCollection + ` WHERE id = {:id} AND holds = {:h}`).
		Bind(dbx.Params{"id": id, "h": holds}).Execute()
	return err
}

// releaseHeld republishes up to releaseBatch held messages of name, oldest
// first, and clears the rows of those the stream stored.
func (ob *outbox) releaseHeld(name string) {
	rows, err := ob.heldRows(`connector = {:c}`, dbx.Params{"c": name})
	if err != nil || len(rows) == 0 {
		if err != nil {
			ob.m.log.Error("outbox: reading held messages", "connector", name, "error", err)
		}
		return
	}
	msgs := make([]bus.Msg, len(rows))
	for k, r := range rows {
		queued, _ := types.ParseDateTime(r.QueuedAt)
		msgs[k] = bus.Msg{
			Subject: OutboxSubject(name), Data: []byte(r.Data),
			ID:     r.MessageID + heldMarker + r.ID + "-" + strconv.Itoa(r.Holds),
			Header: nats.Header{queuedAtHeader: []string{queued.Time().Format(time.RFC3339Nano)}},
		}
	}
	ctx, cancel := context.WithTimeout(ob.ctx, finishTimeout)
	errs := ob.m.o.Bus.PublishAll(ctx, msgs)
	cancel()
	released := 0
	for k, err := range errs {
		if err != nil {
			ob.m.log.Warn("outbox: could not put a held message back on the stream; will try again", "connector", name, "message_id", rows[k].MessageID, "error", err)
			continue
		}
		if err := ob.deleteHeld(rows[k].ID, rows[k].Holds); err != nil {
			// Released again at the next sync under the same id, which
			// the dedupe window drops.
			ob.m.log.Error("outbox: clearing a released held message", "connector", name, "message_id", rows[k].MessageID, "error", err)
			continue
		}
		released++
	}
	if released > 0 {
		ob.m.log.Info("outbox: connector running again; held messages put back on the stream", "connector", name, "messages", released)
	}
}

// giveUpHeld records message.failed for the messages of name held longer
// than GiveUpAfter, as a send that kept failing would be.
func (ob *outbox) giveUpHeld(name string) {
	now := ob.m.opts.Now()
	cutoff, err := types.ParseDateTime(now.Add(-ob.m.opts.GiveUpAfter).UTC())
	if err != nil {
		return
	}
	rows, err := ob.heldRows(`connector = {:c} AND queued_at < {:cut}`, dbx.Params{"c": name, "cut": cutoff.String()})
	if err != nil {
		ob.m.log.Error("outbox: reading held messages", "connector", name, "error", err)
		return
	}
	for _, r := range rows {
		var out sdk.OutboundMessage
		if err := decodeOutbound([]byte(r.Data), &out); err != nil {
			// Not held that way (only decoded messages are); set aside.
			if err := deadletter.Park(ob.m.app, deadletter.Failure{Consumer: OutboxDeadConsumer, EventID: r.MessageID, Subject: OutboxSubject(name), Data: []byte(r.Data), Err: err}); err != nil {
				continue
			}
			_ = ob.deleteHeld(r.ID, r.Holds)
			continue
		}
		queued, _ := types.ParseDateTime(r.QueuedAt)
		age := now.Sub(queued.Time()).Round(time.Second)
		se := &sdk.SendError{Kind: sdk.KindRetryable, Code: "connector_unavailable",
			Reason: fmt.Sprintf("gave up after waiting %s: the %s connector was not enabled and running", age, name)}
		if out.Channel == sdk.ChannelErase {
			ob.m.log.Error("erasure could not be passed to the vendor", "connector", name, "profile_id", out.ProfileID, "error", se.Reason)
		} else if err := ob.storeOutcome(name, &out, nil, se); err != nil {
			ob.m.log.Warn("outbox: could not store the outcome of a held message; will try again", "connector", name, "error", err)
			continue
		}
		if err := ob.deleteHeld(r.ID, r.Holds); err != nil {
			// The outcome event's stable id makes the next try a no-op.
			ob.m.log.Error("outbox: clearing a held message given up", "connector", name, "message_id", r.MessageID, "error", err)
			continue
		}
		ob.m.log.Error("outbox: gave up on a held message", "connector", name, "message_id", r.MessageID, "age", age)
	}
}
