package messaging_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/core/outbox"
	"github.com/omni/omni/plugins/sdk"
)

// The website chat is a channel for conversation replies only: the gate
// addresses it to the conversation and queues it on the inbox's OUTBOX
// subject (no connector), which the connector host leaves alone.
func TestChatChannelCarriesConversationRepliesOnly(t *testing.T) {
	e := start(t, envOptions{})
	e.agent = e.Staff(t, "agent@omni-shop.dev", "agent")
	ann := e.customer(t, "ann")

	code, r := e.send(t, e.agent, map[string]any{"profile": ann, "channel": "chat", "kind": "marketing", "body": "Sale!"})
	if code != 422 || !strings.Contains(r.Reason, "conversation replies only") {
		t.Fatalf("marketing on chat: %d %+v", code, r)
	}
	code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "chat", "kind": "transactional", "body": "Receipt"})
	if code != 422 || !strings.Contains(r.Reason, "not transactional") {
		t.Fatalf("transactional on chat: %d %+v", code, r)
	}
	code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "chat", "kind": "conversation", "body": "Hi"})
	if code != 422 || !strings.Contains(r.Reason, "needs the conversation") {
		t.Fatalf("chat without a conversation: %d %+v", code, r)
	}

	// A consumer of the webchat subject, made before the send (the stream
	// keeps messages by interest).
	ctx := context.Background()
	probe, err := e.Bus.JS.CreateOrUpdateConsumer(ctx, bus.StreamOutbox, jetstream.ConsumerConfig{
		Durable: "test-webchat", FilterSubject: outbox.Subject(outbox.Webchat), AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	code, r = e.send(t, e.agent, map[string]any{"profile": ann, "channel": "chat", "kind": "conversation",
		"conversation": "conv0000000001a", "body": "Hello"})
	if code != 202 || r.Channel != "chat" {
		t.Fatalf("chat reply: %d %+v", code, r)
	}
	if row := e.row(t, r.ID); row.Status != "queued" || row.To != "conv0000000001a" {
		t.Fatalf("ledger row = %+v", row)
	}
	batch, err := probe.Fetch(1, jetstream.FetchMaxWait(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got *sdk.OutboundMessage
	var seq uint64
	for msg := range batch.Messages() {
		got = &sdk.OutboundMessage{}
		if err := json.Unmarshal(msg.Data(), got); err != nil {
			t.Fatal(err)
		}
		meta, _ := msg.Metadata()
		seq = meta.Sequence.Stream
		_ = msg.Ack()
	}
	if got == nil || got.ID != r.ID || got.Channel != "chat" || got.ConversationID != "conv0000000001a" || got.To["conversation"] != "conv0000000001a" {
		t.Fatalf("queued chat message = %+v", got)
	}
	// The connector host has seen it and acknowledged it without trying a
	// connector: the ledger row is not failed as an unknown connector.
	host, err := e.Bus.JS.Consumer(ctx, bus.StreamOutbox, connectors.OutboxConsumer)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := host.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.AckFloor.Stream >= seq {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connector host never acknowledged the chat message (ack floor %d < %d)", info.AckFloor.Stream, seq)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var failed int
	_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE type='message.failed' AND json_extract(properties, '$.message_id') = {:id}").
		Bind(dbx.Params{"id": r.ID}).Row(&failed)
	if row := e.row(t, r.ID); row.Status != "queued" || failed != 0 {
		t.Fatalf("after the connector host saw it: ledger %+v, %d message.failed", row, failed)
	}
}
