package inbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/inbox"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/journeys"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/profiles"
)

// startInbox runs Omni with profiles, messaging, journeys and the inbox.
func startInbox(t *testing.T, opts inbox.Options) (*omnitest.Server, *inbox.Module) {
	t.Helper()
	m := inbox.New(opts)
	s := omnitest.Start(t, omnitest.Options{Modules: func(o *app.Omni) []app.Module {
		return []app.Module{profiles.New(profiles.Options{}), messaging.New(messaging.Options{}), journeys.New(journeys.Options{}), m}
	}})
	return s, m
}

// receive publishes a message.received on a channel, as a connector
// would, and waits until the events consumer stored it.
func receive(t *testing.T, s *omnitest.Server, id, channel string, ids events.Identities, props map[string]any) {
	t.Helper()
	now := time.Now().UTC()
	ev := &events.Event{ID: id, Type: events.MessageReceived, Source: "test-" + channel, OccurredAt: now, ReceivedAt: now,
		Identities: ids, Properties: props, Context: events.Context{Channel: channel}}
	for _, err := range ingest.Publish(context.Background(), s.Bus, []*events.Event{ev}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		var n int
		_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE event_id = {:id}").Bind(dbx.Params{"id": id}).Row(&n)
		return n == 1
	}, "event %s stored", id)
}

// conversationsOf lists a customer's conversations (by an identity).
func conversationsOf(t *testing.T, s *omnitest.Server, kind, value string) []inbox.Conversation {
	t.Helper()
	var out []inbox.Conversation
	err := s.PB.DB().NewQuery(`SELECT c.* FROM conversations c JOIN identities i ON i.profile = c.profile
		WHERE i.kind = {:k} AND i.value = {:v} ORDER BY c.created`).Bind(dbx.Params{"k": kind, "v": value}).All(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
