package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/webhooks"
)

// WebhooksConsumer is the durable consumer of the deliveries front ends
// took (core/webhooks); WebhooksDeadConsumer names the ones parked in
// events_dead.
const (
	WebhooksConsumer     = webhooks.ConsumerName
	WebhooksDeadConsumer = "webhooks"
)

// relayedAttempts is how often a delivery is tried while its connector
// is not running or the bus refuses its events (backing off to
// maxRetryDelay: about two hours) before it is parked.
const relayedAttempts = 30

// relayed runs the webhooks front ends took through the writer's
// connectors, and answers the handshakes they forward.
type relayed struct {
	m        *Module
	consumer jetstream.Consumer
	cc       jetstream.ConsumeContext
	sub      *nats.Subscription
	pub      *webhooks.Publisher
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

func newRelayed(m *Module) *relayed {
	ctx, cancel := context.WithCancel(context.Background())
	return &relayed{m: m, ctx: ctx, cancel: cancel}
}

// create makes the durable consumer before any front end publishes (a
// front end waits for it: the stream keeps messages by interest).
func (r *relayed) create(s *app.Setup) error {
	c, err := s.Consumer(bus.StreamWebhooks, jetstream.ConsumerConfig{
		Durable:       WebhooksConsumer,
		FilterSubject: bus.WebhooksSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       r.m.opts.WebhookTimeout + 30*time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 64,
	})
	if err != nil {
		return fmt.Errorf("webhooks consumer: %w", err)
	}
	r.consumer = c
	return nil
}

func (r *relayed) start() error {
	cc, err := bus.Consume(r.consumer, r.deliver, 16, func(err error) { r.m.log.Debug("webhooks consumer", "error", err) })
	if err != nil {
		return fmt.Errorf("webhooks consume: %w", err)
	}
	r.cc = cc
	if !r.m.cfg.SharedBus() {
		return nil // no front end can reach this bus: no bucket, no calls
	}
	if r.pub, err = webhooks.NewPublisher(r.ctx, r.m.o.Bus); err != nil {
		return err
	}
	recs, err := r.m.app.FindAllRecords(Collection)
	if err != nil {
		return fmt.Errorf("webhooks: reading connectors for the front ends: %w", err)
	}
	r.publishStates(recs)
	r.sub, err = r.m.o.Bus.Conn.QueueSubscribe(webhooks.CallPrefix+"*", webhooks.CallQueue, r.call)
	if err != nil {
		return fmt.Errorf("webhook calls: %w", err)
	}
	return nil
}

func (r *relayed) stop() {
	if r.sub != nil {
		_ = r.sub.Drain()
	}
	if r.cc != nil {
		r.cc.Drain()
		<-r.cc.Closed()
	}
	r.cancel()
	r.wg.Wait()
}

// publishStates tells the front ends which of the connectors' records
// are installed here and enabled (at start and after every sync, with the
// records it read; only changes reach the bus).
func (r *relayed) publishStates(recs []*core.Record) {
	if r.pub == nil {
		return
	}
	var states []webhooks.ConnectorState
	for _, rec := range recs {
		name := rec.GetString("name")
		if r.m.instance(name) == nil {
			continue // not installed on this machine
		}
		states = append(states, webhooks.ConnectorState{Name: name, Enabled: rec.GetBool("enabled")})
	}
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	if err := r.pub.Set(ctx, states); err != nil {
		r.m.log.Warn("webhooks: connectors not copied to the front ends", "error", err)
	}
}

// call answers a handshake a front end forwarded with the connector's
// own answer.
func (r *relayed) call(msg *nats.Msg) {
	name := strings.TrimPrefix(msg.Subject, webhooks.CallPrefix)
	var d webhooks.Delivery
	var rep webhooks.Reply
	if err := json.Unmarshal(msg.Data, &d); err != nil || d.Connector != name {
		rep = refused(400, "body", "not a webhook delivery", false).Reply
	} else {
		rep = r.m.handleWebhook(r.ctx, name, &d.Request).Reply
	}
	data, _ := json.Marshal(rep)
	if err := msg.Respond(data); err != nil {
		r.m.log.Warn("webhooks: could not answer a front end's call", "connector", name, "error", err)
	}
}

// deliver runs one stored delivery through its connector: acknowledged
// once its events are stored; tried again later while the connector is
// not running or the bus refuses the events; parked (with the
// connector's reason) when the connector refuses it.
func (r *relayed) deliver(msg jetstream.Msg) {
	r.wg.Add(1)
	defer r.wg.Done()
	var d webhooks.Delivery
	if err := json.Unmarshal(msg.Data(), &d); err != nil || d.Connector == "" {
		r.park(msg, "", fmt.Errorf("not a webhook delivery: %v", err))
		return
	}
	out := r.m.handleWebhook(r.ctx, d.Connector, &d.Request)
	if out.ok() {
		ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
		defer cancel()
		if err := msg.DoubleAck(ctx); err != nil {
			r.m.log.Warn("webhooks: ack failed; the delivery comes back and its events are deduplicated", "connector", d.Connector, "error", err)
		}
		return
	}
	if out.retry {
		meta, _ := msg.Metadata()
		attempt := uint64(1)
		if meta != nil {
			attempt = meta.NumDelivered
		}
		if attempt < relayedAttempts {
			_ = msg.NakWithDelay(retryDelay(attempt))
			return
		}
		out.err = fmt.Sprintf("gave up after %d attempts: %s", attempt, out.err)
	}
	r.park(msg, d.Connector, errors.New(out.err))
}

// park keeps a delivery the connector refused in events_dead, under its
// connector's subject, for an owner to see and retry (parked.go).
func (r *relayed) park(msg jetstream.Msg, name string, cause error) {
	r.parking().park(msg, name, "webhook", cause)
}

// redrive republishes the parked deliveries an owner asked to retry.
func (r *relayed) redrive() { r.parking().redrive(r.ctx, nil) }

func (r *relayed) parking() parking {
	return parking{m: r.m, consumer: WebhooksDeadConsumer, prefix: webhooks.Prefix, what: "webhooks"}
}
