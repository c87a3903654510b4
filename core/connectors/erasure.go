package connectors

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
)

// ErasureConsumer is the durable consumer that passes Omni's erasures
// (profile.erased) on to the connectors that can delete at their vendor.
const ErasureConsumer = "connectors-erasure"

// erasedSubject is where the profiles module publishes its erasures (source
// omni). A vendor's own erasure request (e.g. Shopify customers/redact)
// has another source and is not forwarded: the erasure Omni makes of it is.
const erasedSubject = "omni.events.omni." + events.ProfileErased

// erasures turns each profile.erased into one OUTBOX message per enabled
// connector with the erase capability. From there the outbox delivers it
// like a send: durably, retried while the vendor or plugin is down.
type erasures struct {
	m  *Module
	cc jetstream.ConsumeContext
}

// create makes the durable consumer before anything can publish, so the
// interest-retention stream keeps every erasure for it.
func (er *erasures) create(s *app.Setup) (jetstream.Consumer, error) {
	c, err := s.Consumer(bus.StreamEvents, jetstream.ConsumerConfig{
		Durable:       ErasureConsumer,
		FilterSubject: erasedSubject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("erasure consumer: %w", err)
	}
	return c, nil
}

func (er *erasures) start(c jetstream.Consumer) error {
	cc, err := bus.Consume(c, er.handle, 0, func(err error) { er.m.log.Debug("erasure consumer", "error", err) })
	if err != nil {
		return fmt.Errorf("erasure consume: %w", err)
	}
	er.cc = cc
	return nil
}

func (er *erasures) stop() {
	if er.cc != nil {
		er.cc.Stop()
	}
}

// handle queues the erasure for every connector that can take it, then
// acknowledges. Enqueue ids are stable, so a redelivery queues nothing new.
func (er *erasures) handle(msg jetstream.Msg) {
	m := er.m
	var ev events.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil || ev.Type != events.ProfileErased {
		m.log.Error("erasure: dropping a message that is not a profile.erased event", "error", err)
		_ = msg.Term()
		return
	}
	out := ErasureMessage(&ev)
	for _, name := range m.erasers() {
		req := *out
		req.ID = "erase:" + name + ":" + out.ProfileID
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := Enqueue(ctx, m.o.Bus, name, &req)
		cancel()
		if err != nil {
			m.log.Warn("erasure: could not queue for connector; will retry", "connector", name, "profile_id", out.ProfileID, "error", err)
			_ = msg.NakWithDelay(5 * time.Second)
			return
		}
		m.log.Info("erasure queued for the vendor", "connector", name, "profile_id", out.ProfileID)
	}
	_ = msg.Ack()
}

// erasers are the enabled connectors that declare the erase capability.
func (m *Module) erasers() []string {
	recs, err := m.app.FindAllRecords(Collection)
	if err != nil {
		m.log.Warn("erasure: could not read connectors", "error", err)
		return nil
	}
	var out []string
	for _, rec := range recs {
		if rec.GetBool("enabled") && slices.Contains(capabilitiesOf(rec), sdk.CapErase) {
			out = append(out, rec.GetString("name"))
		}
	}
	return out
}

// ErasureMessage is the erasure request a connector receives for ev: the
// person's identifiers and nothing else (see sdk.ChannelErase).
func ErasureMessage(ev *events.Event) *sdk.OutboundMessage {
	pid, _ := ev.Properties["profile_id"].(string)
	to := map[string]string{}
	for k, v := range ev.Identities {
		if v != "" {
			to[k] = v
		}
	}
	var all []any
	if list, ok := ev.Properties["identities"].([]any); ok {
		for _, it := range list {
			if m, ok := it.(map[string]any); ok {
				all = append(all, map[string]any{"kind": m["kind"], "value": m["value"]})
			}
		}
	}
	return &sdk.OutboundMessage{Channel: sdk.ChannelErase, To: to, ProfileID: pid,
		Properties: map[string]any{"identities": all}}
}
