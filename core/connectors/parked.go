package connectors

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/deadletter"
)

// parking is how one of the module's consumers sets messages aside in
// events_dead and re-drives them when an owner asks (the outbox's sends,
// the webhook deliveries front ends took).
type parking struct {
	m        *Module
	consumer string // its name in events_dead
	prefix   string // the subjects its messages are republished to: prefix + connector
	what     string // "outbox: … message", for the log
}

// park stores msg in events_dead and acknowledges it, so that it neither
// blocks the consumer nor disappears. An owner sees it with `omni events
// dead` and can ask for a retry (redrive). When parking fails the
// database refuses writes: the message stays on the stream and comes back.
func (p parking) park(msg jetstream.Msg, name, typ string, cause error) {
	id := deadletter.MessageID(msg)
	err := deadletter.Park(p.m.app, deadletter.Failure{Consumer: p.consumer, EventID: id, Subject: msg.Subject(), Type: typ, Data: msg.Data(), Err: cause})
	if err != nil {
		p.m.log.Error(p.what+": could not park; will try again", "connector", name, "message", id, "error", err)
		_ = msg.NakWithDelay(30 * time.Second)
		return
	}
	p.m.log.Error(p.what+": parked (see omni events dead)", "connector", name, "message", id, "error", cause)
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		p.m.log.Warn(p.what+": ack of a parked message failed; it will be parked again", "message", id, "error", err)
	}
}

// redrive answers the retries an owner asked for (by the CLI, the admin or
// the API, possibly from another process): each parked message that check
// accepts is republished to its original subject under a fresh
// Nats-Msg-Id (retryMarker: the dedupe window would drop the copy) and its
// row removed; one check refuses is not republished, only marked as a
// failed retry with the reason. Deciding before republishing means a row
// is removed only for a copy that cannot come back.
func (p parking) redrive(ctx context.Context, check func(row deadletter.Entry) error) {
	app := p.m.app
	rows, err := deadletter.Requested(app, p.consumer, 100)
	if err != nil {
		p.m.log.Error(p.what+": reading parked messages to retry", "error", err)
		return
	}
	for _, row := range rows {
		if ctx.Err() != nil {
			return
		}
		retryFailed := func(err error) {
			p.m.log.Warn(p.what+": retry of a parked message failed", "message", row.EventID, "error", err)
			if err := deadletter.RetryFailed(app, row.ID, err); err != nil {
				p.m.log.Error(p.what+": recording a failed retry", "message", row.EventID, "error", err)
			}
		}
		if !strings.HasPrefix(row.Subject, p.prefix) || !validName(strings.TrimPrefix(row.Subject, p.prefix)) {
			retryFailed(fmt.Errorf("cannot retry: subject %q is not one of %s*", row.Subject, p.prefix))
			continue
		}
		if check != nil {
			if err := check(row); err != nil {
				retryFailed(err)
				continue
			}
		}
		id := row.EventID + retryMarker + strconv.FormatInt(time.Now().UnixNano(), 10)
		pctx, cancel := context.WithTimeout(ctx, finishTimeout)
		_, err := p.m.o.Bus.Publish(pctx, bus.Msg{Subject: row.Subject, Data: []byte(row.Data), ID: id})
		cancel()
		if err != nil {
			retryFailed(fmt.Errorf("republish: %w", err))
			continue
		}
		if err := deadletter.Resolve(app, row.ID); err != nil {
			p.m.log.Error(p.what+": clearing a republished parked message", "message", row.EventID, "error", err)
		}
		p.m.log.Info(p.what+": parked message republished for a retry", "message", row.EventID, "subject", row.Subject)
	}
}
