package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/plugins/sdk"
)

// OutboxConsumer is the durable consumer that delivers outbound messages.
const OutboxConsumer = "connectors-outbox"

// OutboxSubject is the subject of a connector's outbound messages.
func OutboxSubject(connector string) string { return "omni.outbox." + connector }

// Enqueue stores msg on the OUTBOX stream for connector and returns once it
// is durable. msg.ID is the dedupe id (set to a new UUID when empty); the
// same ID enqueued twice within the dedupe window is delivered once, and
// message.sent / message.failed events carry it.
func Enqueue(ctx context.Context, b *bus.Bus, connector string, msg *sdk.OutboundMessage) error {
	if !validName(connector) {
		return fmt.Errorf("connector: %q is not a valid connector name", connector)
	}
	if msg.ID == "" {
		msg.ID = uuid.NewString()
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	_, err = b.Publish(ctx, bus.Msg{Subject: OutboxSubject(connector), Data: data, ID: msg.ID})
	return err
}

// maxRetryDelay caps the backoff between send retries.
const maxRetryDelay = 5 * time.Minute

func retryDelay(attempt uint64) time.Duration {
	d := time.Second
	for n := uint64(1); n < attempt && d < maxRetryDelay; n++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

type outbox struct {
	m        *Module
	consumer jetstream.Consumer
	cc       jetstream.ConsumeContext
	sem      chan struct{}
	slotsMu  sync.Mutex
	slots    map[string]chan struct{}
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

func newOutbox(m *Module) *outbox {
	ctx, cancel := context.WithCancel(context.Background())
	return &outbox{m: m, sem: make(chan struct{}, m.opts.SendConcurrency), slots: map[string]chan struct{}{}, ctx: ctx, cancel: cancel}
}

// create makes the durable consumer before anything can publish, so the
// interest-retention stream keeps every message for it.
func (ob *outbox) create(ctx context.Context) error {
	c, err := ob.m.o.Bus.JS.CreateOrUpdateConsumer(ctx, bus.StreamOutbox, jetstream.ConsumerConfig{
		Durable:       OutboxConsumer,
		FilterSubject: bus.OutboxSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ob.m.opts.SendTimeout + 30*time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 1000,
	})
	if err != nil {
		return fmt.Errorf("outbox consumer: %w", err)
	}
	ob.consumer = c
	return nil
}

func (ob *outbox) start() error {
	cc, err := ob.consumer.Consume(func(msg jetstream.Msg) {
		// A slow or hung connector may hold only its own share of the
		// slots; its surplus waits on the stream so other connectors'
		// messages keep flowing.
		slot := ob.slot(strings.TrimPrefix(msg.Subject(), "omni.outbox."))
		select {
		case slot <- struct{}{}:
		default:
			_ = msg.NakWithDelay(time.Second)
			return
		}
		select {
		case ob.sem <- struct{}{}:
		case <-ob.ctx.Done():
			<-slot
			return // not acked: redelivered after restart
		}
		ob.wg.Add(1)
		go func() {
			defer func() { <-ob.sem; <-slot; ob.wg.Done() }()
			ob.handle(msg)
		}()
	}, jetstream.PullMaxMessages(64), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			ob.m.log.Debug("outbox consumer", "error", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("outbox consume: %w", err)
	}
	ob.cc = cc
	return nil
}

// slot returns the per-connector in-flight limiter.
func (ob *outbox) slot(name string) chan struct{} {
	ob.slotsMu.Lock()
	defer ob.slotsMu.Unlock()
	c, ok := ob.slots[name]
	if !ok {
		c = make(chan struct{}, ob.m.opts.SendsPerConnector)
		ob.slots[name] = c
	}
	return c
}

func (ob *outbox) stop() {
	if ob.cc != nil {
		ob.cc.Stop()
	}
	ob.cancel()
	ob.wg.Wait()
}

// handle delivers one message. The message is acknowledged only after its
// outcome event (message.sent or message.failed) is stored; a crash before
// that redelivers it, and the stable event ids drop the duplicate events.
func (ob *outbox) handle(msg jetstream.Msg) {
	m := ob.m
	name := strings.TrimPrefix(msg.Subject(), "omni.outbox.")
	meta, _ := msg.Metadata()
	attempt := uint64(1)
	queuedAt := time.Now()
	if meta != nil {
		attempt, queuedAt = meta.NumDelivered, meta.Timestamp
	}
	var out sdk.OutboundMessage
	if err := json.Unmarshal(msg.Data(), &out); err != nil || out.ID == "" {
		m.log.Error("outbox: dropping a message that is not an OutboundMessage", "connector", name, "error", err)
		_ = msg.Term()
		return
	}
	log := m.log.With("connector", name, "message_id", out.ID, "attempt", attempt)
	i := m.instance(name)
	if i == nil {
		if _, err := m.app.FindFirstRecordByData(Collection, "name", name); err == nil {
			// Installed before (a plugin file being replaced?): keep waiting.
			_ = msg.NakWithDelay(time.Minute)
			return
		}
		ob.finish(msg, name, &out, nil, &sdk.SendError{Kind: sdk.KindPermanent, Code: "unknown_connector", Reason: fmt.Sprintf("no connector named %q is installed", name)})
		return
	}
	conn, err := i.ready()
	if err != nil {
		// Kept on the stream until the connector is back.
		_ = msg.NakWithDelay(min(retryDelay(attempt), 30*time.Second))
		return
	}
	ctx, cancel := context.WithTimeout(ob.ctx, m.opts.SendTimeout)
	res, err := conn.Send(ctx, &out)
	timedOut := ctx.Err() == context.DeadlineExceeded
	cancel()
	if ob.ctx.Err() != nil {
		return // shutting down: redelivered after restart
	}
	if err == nil {
		ob.finish(msg, name, &out, res, nil)
		return
	}
	var te *sdk.TransportError
	if errors.As(err, &te) {
		if timedOut {
			text := fmt.Sprintf("Send timed out after %s (message %s); will retry", m.opts.SendTimeout, out.ID)
			log.Warn("outbox: send timed out", "timeout", m.opts.SendTimeout)
			i.noteError(text)
		} else {
			log.Warn("outbox: connector unreachable during send", "error", err)
		}
		_ = msg.NakWithDelay(retryDelay(attempt))
		return
	}
	se := sdk.AsSendError(err)
	se.Reason = i.red.redact(se.Reason)
	switch se.Kind {
	case sdk.KindPermanent:
		ob.finish(msg, name, &out, nil, se)
	case sdk.KindRateLimited:
		delay := max(se.RetryAfter, time.Second)
		log.Info("outbox: rate limited", "retry_after", delay)
		_ = msg.NakWithDelay(delay)
	default:
		// Deliveries also count waits while the connector was down, so
		// the limit is the message's age, not its delivery count.
		if age := time.Since(queuedAt); age > m.opts.GiveUpAfter {
			se.Reason = fmt.Sprintf("gave up after retrying for %s: %s", age.Round(time.Second), se.Reason)
			ob.finish(msg, name, &out, nil, se)
			return
		}
		log.Warn("outbox: send failed; will retry", "error", se.Reason)
		_ = msg.NakWithDelay(retryDelay(attempt))
	}
}

// finish records the outcome event and acknowledges the message.
func (ob *outbox) finish(msg jetstream.Msg, name string, out *sdk.OutboundMessage, res *sdk.SendResult, se *sdk.SendError) {
	ev := OutcomeEvent(name, out, res, se, time.Now().UTC())
	ob.m.norm.Normalize(ev)
	if err := ev.Validate(time.Now()); err != nil {
		ob.m.log.Error("outbox: outcome event invalid", "error", err)
	}
	if errs := ingest.Publish(ob.ctx, ob.m.o.Bus, []*events.Event{ev}); errs[0] != nil {
		ob.m.log.Warn("outbox: could not store outcome; will resend", "error", errs[0])
		_ = msg.NakWithDelay(time.Second)
		return
	}
	ctx, cancel := context.WithTimeout(ob.ctx, 5*time.Second)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		ob.m.log.Warn("outbox: ack failed; the message may be sent again", "error", err)
	}
}

// OutcomeEvent is the message.sent (res set) or message.failed (se set)
// event of an outbound message; its id is derived from the message id so a
// redelivery records it once.
func OutcomeEvent(connector string, out *sdk.OutboundMessage, res *sdk.SendResult, se *sdk.SendError, now time.Time) *events.Event {
	typ := events.MessageSent
	if se != nil {
		typ = events.MessageFailed
	}
	props := map[string]any{"message_id": out.ID, "connector": connector}
	if res != nil {
		props["provider_message_id"] = res.ProviderMessageID
	}
	if se != nil {
		props["error"] = se.Reason
		props["error_kind"] = string(se.Kind)
		if se.Code != "" {
			props["error_code"] = se.Code
		}
	}
	if out.ConversationID != "" {
		props["conversation_id"] = out.ConversationID
	}
	if out.ProfileID != "" {
		props["profile_id"] = out.ProfileID
	}
	if out.Template != nil {
		props["template"] = out.Template.Name
	}
	ids := events.Identities{}
	for k, v := range out.To {
		if events.KnownIdentity(k) && v != "" {
			ids[k] = v
		}
	}
	if len(ids) == 0 {
		ids[events.AnonymousID] = "outbox:" + out.ID
	}
	return &events.Event{
		ID: typ + ":" + out.ID, Type: typ, Source: connector,
		OccurredAt: now, ReceivedAt: now, Identities: ids, Properties: props,
		Context: events.Context{Channel: out.Channel, JourneyRun: out.JourneyRun},
	}
}
