package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/deadletter"
	"github.com/omni/omni/core/store"
	"github.com/omni/omni/plugins/sdk"
)

func timeNowUTC() time.Time { return time.Now().UTC() }

// redriveAfter is how old an unpublished queued row must be before the
// loop publishes it: younger ones are still being published by Send.
const redriveAfter = 30 * time.Second

// loop sends scheduled messages that are due and publishes queued rows a
// crash or a bus outage left unpublished. Both are rows in the ledger, so
// nothing is lost across restarts: the first round runs at start.
func (m *Module) loop() {
	defer close(m.done)
	first := true
	t := time.NewTicker(m.opts.Tick)
	defer t.Stop()
	for {
		m.redrive(first)
		m.fireDue()
		first = false
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

type pendingRow struct {
	ID        string `db:"id"`
	Profile   string `db:"profile"`
	Kind      string `db:"kind"`
	Channel   string `db:"channel"`
	Connector string `db:"connector"`
	Outbound  string `db:"outbound"`
}

func (m *Module) rows(where string, p dbx.Params) []pendingRow {
	var rows []pendingRow
	if err := m.app.DB().NewQuery("SELECT id, profile, kind, channel, connector, outbound FROM " + Collection + " WHERE " + where + " ORDER BY id LIMIT 500").
		Bind(p).All(&rows); err != nil {
		m.log.Error("messaging: reading pending messages", "error", err)
	}
	return rows
}

// redrive publishes queued rows not yet on the bus (all of them at start;
// later only those older than redriveAfter). The OUTBOX dedupes by id.
func (m *Module) redrive(all bool) {
	cutoff := m.opts.Now().UTC().Add(-redriveAfter)
	if all {
		cutoff = m.opts.Now().UTC().Add(time.Hour)
	}
	for _, r := range m.rows("status='queued' AND enqueued=0 AND queued_at < {:cut}", dbx.Params{"cut": store.FormatTime(cutoff)}) {
		var out sdk.OutboundMessage
		if err := json.Unmarshal([]byte(r.Outbound), &out); err != nil || out.ID == "" {
			m.settle(r.ID, StatusFailed, "failed_at", "the staged message could not be read: "+fmt.Sprint(err))
			continue
		}
		m.publish(context.Background(), r.ID, r.Connector, &out)
	}
}

// fireDue re-checks scheduled messages whose time has come against the
// gate (consent or the cap may have changed while they waited) and sends
// or suppresses them.
func (m *Module) fireDue() {
	now := m.opts.Now().UTC()
	for _, r := range m.rows("status='scheduled' AND send_at <= {:now}", dbx.Params{"now": store.FormatTime(now)}) {
		m.fire(r, now)
	}
}

func (m *Module) fire(r pendingRow, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out sdk.OutboundMessage
	if err := json.Unmarshal([]byte(r.Outbound), &out); err != nil || out.ID == "" {
		m.settle(r.ID, StatusFailed, "failed_at", "the staged message could not be read")
		return
	}
	p, err := loadProfile(m.app, r.Profile)
	if err != nil {
		m.settle(r.ID, StatusSuppressed, "suppressed_at", "at send time: the customer no longer exists")
		return
	}
	req := Request{Profile: p.ID, Channels: []string{r.Channel}, Kind: r.Kind, WATemplate: out.Template}
	d := m.decide(p, &req, template{}, now, r.ID)
	if d.channel == "" {
		m.settle(r.ID, StatusSuppressed, "suppressed_at", "at send time: "+d.reason)
		return
	}
	out.ProfileID = p.ID
	data, _ := json.Marshal(&out)
	if _, err := m.app.DB().NewQuery("UPDATE " + Collection + " SET status='queued', queued_at={:now}, updated={:now}, reason='', connector={:c}, profile={:p}, outbound={:o} WHERE id={:id} AND status='scheduled'").
		Bind(dbx.Params{"now": store.FormatTime(now), "c": d.connector, "p": p.ID, "o": string(data), "id": r.ID}).Execute(); err != nil {
		m.log.Error("messaging: releasing a scheduled message", "message", r.ID, "error", err)
		return
	}
	m.publish(context.Background(), r.ID, d.connector, &out)
}

// settle ends a row that will not be sent.
func (m *Module) settle(id, status, atField, reason string) {
	now := store.FormatTime(m.opts.Now().UTC())
	if _, err := m.app.DB().NewQuery("UPDATE " + Collection + " SET status={:s}, " + atField + "={:now}, updated={:now}, reason={:r} WHERE id={:id}").
		Bind(dbx.Params{"s": status, "now": now, "r": truncate(reason, 2000), "id": id}).Execute(); err != nil {
		m.log.Error("messaging: settling a message", "message", id, "error", err)
	}
}

// handleRequest runs one send request from another module through the
// gate. A request that cannot be read is parked (core/deadletter); a
// refusal is recorded in the ledger like any other; a failure of Omni is
// retried.
func (m *Module) handleRequest(msg jetstream.Msg) {
	var r Request
	err := json.Unmarshal(msg.Data(), &r)
	if err == nil && r.ID == "" {
		err = errors.New("id is required")
	}
	if err == nil {
		_, err = m.Send(context.Background(), r)
		var re *RequestError
		if err != nil && !errors.As(err, &re) {
			m.log.Warn("messaging: send request failed; will retry", "request", r.ID, "error", err)
			_ = msg.NakWithDelay(5 * time.Second)
			return
		}
	}
	if err != nil {
		if perr := deadletter.Park(m.app, deadletter.Failure{Consumer: SendConsumer, EventID: deadletter.MessageID(msg),
			Subject: msg.Subject(), Data: msg.Data(), Err: fmt.Errorf("send request refused: %w", err)}); perr != nil {
			_ = msg.NakWithDelay(30 * time.Second)
			return
		}
		m.log.Error("messaging: parked a send request that cannot be read (see omni events dead)", "error", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = msg.DoubleAck(ctx)
}
