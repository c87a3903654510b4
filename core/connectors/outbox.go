package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/deadletter"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	outboxwire "github.com/omni/omni/core/outbox"
	"github.com/omni/omni/plugins/sdk"
)

// OutboxConsumer is the durable consumer that delivers outbound messages.
const OutboxConsumer = "connectors-outbox"

// OutboxDeadConsumer is the consumer name under which the outbox parks
// messages in events_dead (core/deadletter).
const OutboxDeadConsumer = "outbox"

// OutboxSubject is the subject of a connector's outbound messages.
func OutboxSubject(connector string) string { return outboxwire.Subject(connector) }

// outboxPrefix starts every OUTBOX subject.
const outboxPrefix = outboxwire.Prefix

// retryMarker joins a parked message's id and the time of a retry in the
// Nats-Msg-Id of the republished copy: a fresh id, so JetStream's dedupe
// window does not drop the copy as a repeat of the original.
const retryMarker = "#retry"

// Enqueue stores msg on the OUTBOX stream for connector (core/outbox, where
// the wire format lives so other modules can send without this one).
func Enqueue(ctx context.Context, b *bus.Bus, connector string, msg *sdk.OutboundMessage) error {
	return outboxwire.Enqueue(ctx, b, connector, msg)
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

// drainSends is how long stop lets in-flight sends finish before it
// cancels them: a send cut short may have reached the vendor unrecorded
// and is then sent again after the restart.
const drainSends = 5 * time.Second

// finishTimeout bounds storing an outcome event and acknowledging. It is
// not tied to shutdown: an outcome is worth recording even while stopping.
const finishTimeout = 10 * time.Second

// A connector sends at most SendsPerConnector messages at a time. The
// messages delivered to it meanwhile wait in a short queue of its own and
// go as its sends finish, so a burst (a campaign) keeps every send slot
// busy; before, each message without a free slot went back to the stream
// and came again a second later. Past the queue they still go back to the
// stream: a slow or hung connector holds only its own share of the shared
// consumer's unacknowledged messages, and others' keep flowing.
const (
	// queuePerSlot is how many messages a connector may have waiting per
	// send slot at least; it may have up to a quarter of the consumer's
	// unacknowledged messages waiting (queueMax), so a gate faster than
	// the vendor keeps the connector busy while three quarters stay for
	// the other connectors.
	queuePerSlot = 4
	// queueWait is how long a message waits in a connector's queue before
	// it goes back to the stream, far inside the consumer's AckWait
	// (SendTimeout + 30 s), so no queued message is delivered twice.
	queueWait = 5 * time.Second
)

// connectorSends is one connector's sends in flight and its queue.
type connectorSends struct {
	inFlight int
	queue    []queuedSend
}

type queuedSend struct {
	msg jetstream.Msg
	at  time.Time
}

type outbox struct {
	m        *Module
	consumer jetstream.Consumer
	cc       jetstream.ConsumeContext
	sem      chan struct{}
	slotsMu  sync.Mutex
	slots    map[string]*connectorSends
	sweepEnd chan struct{} // closed at stop: expireQueued ends
	// wgMu makes "not stopping, so wg.Add" atomic with respect to stop's
	// "stopping, so wg.Wait": an Add racing a Wait is a WaitGroup misuse.
	wgMu     sync.Mutex
	stopping bool
	wg       sync.WaitGroup
	// ctx is cancelled when stop gives up waiting for in-flight sends.
	ctx    context.Context
	cancel context.CancelFunc
}

func newOutbox(m *Module) *outbox {
	ctx, cancel := context.WithCancel(context.Background())
	return &outbox{m: m, sem: make(chan struct{}, m.opts.SendConcurrency), slots: map[string]*connectorSends{}, ctx: ctx, cancel: cancel}
}

// create makes the durable consumer before anything can publish, so the
// interest-retention stream keeps every message for it.
func (ob *outbox) create(s *app.Setup) error {
	c, err := s.Consumer(bus.StreamOutbox, jetstream.ConsumerConfig{
		Durable:       OutboxConsumer,
		FilterSubject: bus.OutboxSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ob.m.opts.SendTimeout + 30*time.Second,
		MaxDeliver:    -1,
		MaxAckPending: ob.m.opts.MaxAckPending,
	})
	if err != nil {
		return fmt.Errorf("outbox consumer: %w", err)
	}
	ob.consumer = c
	return nil
}

func (ob *outbox) start() error {
	cc, err := bus.Consume(ob.consumer, ob.dispatch, 64, func(err error) { ob.m.log.Debug("outbox consumer", "error", err) })
	if err != nil {
		return fmt.Errorf("outbox consume: %w", err)
	}
	ob.cc = cc
	ob.sweepEnd = make(chan struct{})
	go ob.expireQueued(ob.sweepEnd)
	return nil
}

// dispatch hands one delivered message to a send goroutine. After stop has
// begun it starts nothing: the message stays unacknowledged and is
// delivered again after the restart.
func (ob *outbox) dispatch(msg jetstream.Msg) {
	if outboxwire.Internal(msg.Subject()) {
		// The website chat's replies: the inbox's own consumer delivers them.
		_ = msg.Ack()
		return
	}
	name := strings.TrimPrefix(msg.Subject(), "omni.outbox.")
	ob.slotsMu.Lock()
	cs := ob.slots[name]
	if cs == nil {
		cs = &connectorSends{}
		ob.slots[name] = cs
	}
	if cs.inFlight >= ob.m.opts.SendsPerConnector {
		if len(cs.queue) < ob.queueMax() {
			cs.queue = append(cs.queue, queuedSend{msg, time.Now()})
			ob.slotsMu.Unlock()
			return
		}
		ob.slotsMu.Unlock()
		_ = msg.NakWithDelay(time.Second)
		return
	}
	cs.inFlight++
	ob.slotsMu.Unlock()
	select {
	case ob.sem <- struct{}{}:
	case <-ob.ctx.Done():
		ob.done(cs)
		return
	}
	ob.wgMu.Lock()
	if ob.stopping {
		ob.wgMu.Unlock()
		<-ob.sem
		ob.done(cs)
		return
	}
	ob.wg.Add(1)
	ob.wgMu.Unlock()
	go func() {
		defer func() { <-ob.sem; ob.wg.Done() }()
		for msg != nil {
			ob.handle(msg)
			msg = ob.next(cs)
		}
	}()
}

// queueMax is how many messages one connector may have waiting.
func (ob *outbox) queueMax() int {
	return max(queuePerSlot*ob.m.opts.SendsPerConnector, ob.m.opts.MaxAckPending/4)
}

// next takes the connector's oldest queued message for the slot a send
// just freed, or frees the slot (nil) when none waits or the outbox stops.
func (ob *outbox) next(cs *connectorSends) jetstream.Msg {
	ob.slotsMu.Lock()
	defer ob.slotsMu.Unlock()
	if len(cs.queue) == 0 || ob.ctx.Err() != nil || ob.isStopping() {
		cs.inFlight--
		return nil
	}
	q := cs.queue[0]
	cs.queue[0] = queuedSend{}
	cs.queue = cs.queue[1:]
	return q.msg
}

// done frees a slot that sent nothing.
func (ob *outbox) done(cs *connectorSends) {
	ob.slotsMu.Lock()
	cs.inFlight--
	ob.slotsMu.Unlock()
}

func (ob *outbox) isStopping() bool {
	ob.wgMu.Lock()
	defer ob.wgMu.Unlock()
	return ob.stopping
}

// expireQueued sends the messages queued longer than queueWait back to
// the stream (a connector whose sends hang), every second until stop.
func (ob *outbox) expireQueued(end <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-end:
			return
		case <-tick.C:
		}
		ob.requeue(func(q queuedSend) bool { return time.Since(q.at) >= queueWait })
	}
}

// requeue hands the queued messages that match back to the stream, for
// another delivery a second later.
func (ob *outbox) requeue(match func(queuedSend) bool) {
	var back []jetstream.Msg
	ob.slotsMu.Lock()
	for _, cs := range ob.slots {
		kept := cs.queue[:0]
		for _, q := range cs.queue {
			if match(q) {
				back = append(back, q.msg)
			} else {
				kept = append(kept, q)
			}
		}
		clear(cs.queue[len(kept):])
		cs.queue = kept
	}
	ob.slotsMu.Unlock()
	for _, m := range back {
		_ = m.NakWithDelay(time.Second)
	}
}

// stop takes no new messages, lets the sends in flight finish for up to
// drainSends (their outcomes are recorded and acknowledged), then cancels
// the rest, which are delivered again after the restart.
func (ob *outbox) stop() {
	if ob.cc != nil {
		ob.cc.Stop()
	}
	ob.wgMu.Lock()
	ob.stopping = true
	ob.wgMu.Unlock()
	if ob.sweepEnd != nil {
		close(ob.sweepEnd)
		ob.sweepEnd = nil
	}
	// Queued messages were never started: back to the stream, for the
	// restart.
	ob.requeue(func(queuedSend) bool { return true })
	if n := ob.inFlight(); n > 0 {
		ob.m.log.Info("outbox: stopping; waiting for in-flight sends", "sends", n, "up_to", drainSends)
	}
	done := make(chan struct{})
	go func() { ob.wg.Wait(); close(done) }()
	t := time.NewTimer(drainSends)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		ob.m.log.Warn("outbox: cancelling sends still in flight; they are sent again after the restart", "sends", ob.inFlight())
	}
	ob.cancel()
	<-done
}

// inFlight is the number of sends running now.
func (ob *outbox) inFlight() int { return len(ob.sem) }

// handle delivers one message. The message is acknowledged only after its
// outcome event (message.sent or message.failed) is stored; a crash before
// that redelivers it, and the stable event ids drop the duplicate events.
func (ob *outbox) handle(msg jetstream.Msg) {
	m := ob.m
	name := strings.TrimPrefix(msg.Subject(), "omni.outbox.")
	meta, _ := msg.Metadata()
	attempt := uint64(1)
	if meta != nil {
		attempt = meta.NumDelivered
	}
	queuedAt := queuedAt(msg)
	var out sdk.OutboundMessage
	if err := decodeOutbound(msg.Data(), &out); err != nil {
		// No retry can make these bytes sendable: set them aside at once.
		ob.park(msg, name, err)
		return
	}
	log := m.log.With("connector", name, "message_id", out.ID, "attempt", attempt)
	i := m.instance(name)
	if i == nil {
		if _, err := m.app.FindFirstRecordByData(Collection, "name", name); err == nil {
			// Installed before (a plugin file being replaced?): keep it.
			ob.hold(msg, name, &out, queuedAt, errors.New("not loaded"))
			return
		}
		ob.finish(msg, name, &out, nil, &sdk.SendError{Kind: sdk.KindPermanent, Code: "unknown_connector", Reason: fmt.Sprintf("no connector named %q is installed", name)})
		return
	}
	conn, err := i.ready()
	if err != nil {
		i.mu.Lock()
		state := i.state
		i.mu.Unlock()
		if state == StateStarting || state == StateRestarting {
			// Back in moments: retried as any send, so a message that
			// crashes the connector is still given up as connector_failed.
			_ = msg.NakWithDelay(retryDelay(attempt))
			return
		}
		// Disabled or failed: kept aside until the connector is back,
		// holding no slot of the shared consumer meanwhile (held.go).
		ob.hold(msg, name, &out, queuedAt, err)
		return
	}
	ctx, cancel := context.WithTimeout(ob.ctx, m.opts.SendTimeout)
	res, err := conn.Send(ctx, &out)
	timedOut := ctx.Err() == context.DeadlineExceeded
	cancel()
	// Success first: a send that went through is recorded and acknowledged
	// even while stopping, or the restart would send it again.
	if err == nil {
		ob.finish(msg, name, &out, res, nil)
		return
	}
	if ob.ctx.Err() != nil {
		_ = msg.Nak() // cut short by shutdown: delivered again after the restart
		return
	}
	var te *sdk.TransportError
	if errors.As(err, &te) {
		// A message that crashes or hangs the plugin fails like this at
		// every attempt and takes the connector down each time: it is
		// given up after GiveUpAfter like any other retryable failure.
		if age := time.Since(queuedAt); age > m.opts.GiveUpAfter {
			reason := fmt.Sprintf("gave up after retrying for %s: the connector failed during the send: %s", age.Round(time.Second), i.red.redact(te.Error()))
			if timedOut {
				reason = fmt.Sprintf("gave up after retrying for %s: the send timed out after %s at every attempt", age.Round(time.Second), m.opts.SendTimeout)
			}
			log.Error("outbox: giving up on a message that fails the connector", "age", age.Round(time.Second))
			ob.finish(msg, name, &out, nil, &sdk.SendError{Kind: sdk.KindRetryable, Code: "connector_failed", Reason: reason})
			return
		}
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

// decodeOutbound reads an OUTBOX message; an error says why it is not an
// OutboundMessage.
func decodeOutbound(data []byte, out *sdk.OutboundMessage) error {
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("not an OutboundMessage: %w", err)
	}
	if out.ID == "" {
		return errors.New("not an OutboundMessage: id is required")
	}
	return nil
}

// park sets aside a message that can never be sent (parked.go).
func (ob *outbox) park(msg jetstream.Msg, name string, cause error) {
	ob.parking().park(msg, name, "", cause)
}

// redrive re-drives the parked messages an owner asked to retry
// (parked.go). One that still does not decode as an OutboundMessage (say
// a superuser fixed its data at /_/, or did not) is not republished: its
// retry fails with the same reason.
func (ob *outbox) redrive() {
	ob.parking().redrive(ob.ctx, func(row deadletter.Entry) error {
		var out sdk.OutboundMessage
		return decodeOutbound([]byte(row.Data), &out)
	})
}

func (ob *outbox) parking() parking {
	return parking{m: ob.m, consumer: OutboxDeadConsumer, prefix: outboxPrefix, what: "outbox"}
}

// finish records the outcome event and acknowledges the message.
func (ob *outbox) finish(msg jetstream.Msg, name string, out *sdk.OutboundMessage, res *sdk.SendResult, se *sdk.SendError) {
	if out.Channel == sdk.ChannelErase {
		ob.finishErasure(msg, name, out, res, se)
		return
	}
	if err := ob.storeOutcome(name, out, res, se); err != nil {
		ob.m.log.Warn("outbox: could not store outcome; will resend", "error", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		ob.m.log.Warn("outbox: ack failed; the message may be sent again", "error", err)
	}
}

// storeOutcome stores the message.sent or message.failed event of out.
func (ob *outbox) storeOutcome(name string, out *sdk.OutboundMessage, res *sdk.SendResult, se *sdk.SendError) error {
	ev := OutcomeEvent(name, out, res, se, time.Now().UTC())
	ob.m.norm.Normalize(ev)
	if err := ev.Validate(time.Now()); err != nil {
		ob.m.log.Error("outbox: outcome event invalid", "error", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	return ingest.Publish(ctx, ob.m.o.Bus, []*events.Event{ev})[0]
}

// finishErasure logs the outcome of an erasure request and acknowledges
// it. No event is stored: it would carry the erased person's identities
// back into Omni. A refusal is also put on the connector's card.
func (ob *outbox) finishErasure(msg jetstream.Msg, name string, out *sdk.OutboundMessage, res *sdk.SendResult, se *sdk.SendError) {
	log := ob.m.log.With("connector", name, "profile_id", out.ProfileID)
	if se == nil {
		log.Info("erasure accepted by the vendor", "reference", res.ProviderMessageID)
	} else {
		log.Error("erasure could not be passed to the vendor", "error", se.Reason, "code", se.Code)
		if i := ob.m.instance(name); i != nil {
			i.noteError(fmt.Sprintf("erasure of profile %s not passed on: %s", out.ProfileID, se.Reason))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		log.Warn("outbox: ack failed; the erasure may be passed on again", "error", err)
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
	// The connector's strings are bounded, so the outcome always fits on
	// the bus and within the event bounds: an outcome that cannot be
	// stored would make the message be sent again and again.
	if res != nil {
		props["provider_message_id"] = truncate(res.ProviderMessageID, maxProviderID)
	}
	if se != nil {
		props["error"] = truncate(se.Reason, maxReason)
		props["error_kind"] = string(se.Kind)
		if se.Code != "" {
			props["error_code"] = truncate(se.Code, maxProviderID)
		}
		// The messaging contract's flag for a hard failure the connector
		// reported (SMTP 5xx, an unknown number): the gate may mark the
		// address undeliverable. A missing connector says nothing about it.
		props["permanent"] = se.Kind == sdk.KindPermanent && se.Code != "unknown_connector"
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
	// What was said, so the customer's timeline shows it (bounded like
	// the connector's strings).
	if out.Text != "" {
		props["text"] = truncate(out.Text, maxText)
	}
	if out.Subject != "" {
		props["subject"] = truncate(out.Subject, maxReason)
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

// Bounds on connector-supplied strings in outcome events.
const (
	maxReason     = 2000
	maxText       = 4000
	maxProviderID = 256
)

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// A rune cut in two becomes invalid UTF-8, which ToValidUTF8 drops.
	return strings.ToValidUTF8(s[:n], "") + "…"
}
