package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/deadletter"
	"github.com/omni/omni/core/eventstore"
)

// poisonModule registers a processor that fails every batch holding an
// event whose properties say poison=true, while poisoned is set: the
// stand-in for any event a module cannot process (a deleted profile, JSON
// SQLite rejects, a bug).
type poisonModule struct{ poisoned atomic.Bool }

func (p *poisonModule) Name() string { return "poison" }
func (p *poisonModule) Init(s *app.Setup) error {
	s.Processor(p)
	return nil
}
func (p *poisonModule) Start(context.Context, *core.ServeEvent) error { return nil }
func (p *poisonModule) Stop(context.Context)                          {}
func (p *poisonModule) ProcessBatch(_ core.App, batch []*eventstore.Stored) error {
	for _, s := range batch {
		if s.Event.Properties["poison"] == true && p.poisoned.Load() {
			return errors.New("cannot process poisoned event " + s.Event.ID)
		}
	}
	return nil
}

type health struct {
	Status     string   `json:"status"`
	Reasons    []string `json:"reasons"`
	DeadEvents int      `json:"dead_events"`
}

func getHealth(t *testing.T, s *omnitest.Server) (int, health) {
	t.Helper()
	code, body := s.Do(t, "GET", "/api/v1/health", nil, nil)
	var h health
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("health: %v: %s", err, body)
	}
	return code, h
}

func TestPoisonEventIsParkedAndTheRestFlows(t *testing.T) {
	poison := &poisonModule{}
	poison.poisoned.Store(true)
	s := omnitest.Start(t, omnitest.Options{Modules: func(*app.Omni) []app.Module { return []app.Module{poison} }})
	owner := s.Staff(t, "owner@example.com", "owner")
	agent := s.Staff(t, "agent@example.com", "agent")

	// One batch: the poisoned event sits between two good ones.
	code, body := s.Track(t, "/v1/batch", map[string]any{"batch": []map[string]any{
		{"type": "track", "event": "Good One", "userId": "u1", "messageId": "m-good-1"},
		{"type": "track", "event": "Bad", "userId": "u2", "messageId": "m-bad", "properties": map[string]any{"poison": true}},
		{"type": "track", "event": "Good Two", "userId": "u3", "messageId": "m-good-2"},
	}})
	if code != 200 {
		t.Fatalf("batch: %d %s", code, body)
	}
	s.WaitEvents(t, 2)
	omnitest.Eventually(t, 30*time.Second, func() bool { n, _ := deadletter.Count(s.PB); return n == 1 }, "the poisoned event parked")

	// Later events keep flowing: the consumer did not wedge.
	if code, body := s.Track(t, "/v1/track", map[string]any{"event": "After", "userId": "u4", "messageId": "m-after"}); code != 200 {
		t.Fatalf("track: %d %s", code, body)
	}
	s.WaitEvents(t, 3)

	dead, err := deadletter.List(s.PB, "", 10)
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead = %+v, %v", dead, err)
	}
	d := dead[0]
	if d.Consumer != eventstore.ConsumerName || d.Type != "track" || d.Attempts < 3 || d.FirstFailed == "" || d.LastFailed == "" {
		t.Fatalf("dead row = %+v", d)
	}
	if want := "cannot process poisoned event"; !strings.Contains(d.Error, want) {
		t.Fatalf("error %q does not say %q", d.Error, want)
	}
	var stored int
	_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE name = 'Bad'").Row(&stored)
	if stored != 0 {
		t.Fatalf("the poisoned event was stored %d times though its processor failed", stored)
	}

	// Health: degraded, still 200, with the reason.
	code, h := getHealth(t, s)
	if code != 200 || h.Status != "degraded" || h.DeadEvents != 1 || len(h.Reasons) == 0 {
		t.Fatalf("health = %d %+v", code, h)
	}

	// The API: owners only.
	if code, _ := s.Do(t, "GET", "/api/v1/events/dead", nil, nil); code != 401 {
		t.Fatalf("guest list: %d", code)
	}
	if code, _ := s.Do(t, "GET", "/api/v1/events/dead", nil, omnitest.Auth(agent)); code != 403 {
		t.Fatalf("agent list: %d", code)
	}
	code, body = s.Do(t, "GET", "/api/v1/events/dead", nil, omnitest.Auth(owner))
	var list struct {
		Count int                `json:"count"`
		Items []deadletter.Entry `json:"items"`
	}
	if err := json.Unmarshal(body, &list); code != 200 || err != nil || list.Count != 1 || list.Items[0].ID != d.ID {
		t.Fatalf("owner list: %d %s", code, body)
	}
	code, body = s.Do(t, "POST", "/api/v1/events/dead/retry", map[string]any{"ids": []string{"nosuchid"}}, omnitest.Auth(owner))
	omnitest.WantFieldError(t, code, body, 400, "ids")
	code, body = s.Do(t, "POST", "/api/v1/events/dead/retry", `{"ids": "all"}`, omnitest.Auth(owner))
	omnitest.WantFieldError(t, code, body, 400, "ids")

	// A retry while the cause persists fails again and counts the attempt.
	code, body = s.Do(t, "POST", "/api/v1/events/dead/retry", map[string]any{"ids": []string{d.ID}}, omnitest.Auth(owner))
	if code != 200 || !strings.Contains(string(body), `"requested":1`) {
		t.Fatalf("retry: %d %s", code, body)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool {
		e, err := deadletter.Get(s.PB, d.ID)
		return err == nil && !e.RetryRequested && e.Attempts > d.Attempts
	}, "the failed retry recorded")

	// Once the cause is fixed, a retry stores it and clears the row.
	poison.poisoned.Store(false)
	code, body = s.Do(t, "POST", "/api/v1/events/dead/retry", nil, omnitest.Auth(owner))
	if code != 200 || !strings.Contains(string(body), `"requested":1`) {
		t.Fatalf("retry all: %d %s", code, body)
	}
	s.WaitEvents(t, 4)
	omnitest.Eventually(t, 30*time.Second, func() bool { n, _ := deadletter.Count(s.PB); return n == 0 }, "dead row cleared")
	if code, h := getHealth(t, s); code != 200 || h.Status != "ok" {
		t.Fatalf("health after the retry = %d %+v", code, h)
	}
}

func TestUndecodableMessageIsParkedNotDropped(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	ctx := context.Background()
	if _, err := s.Bus.Publish(ctx, busMsg("omni.events.test.track", "not-json-1", []byte(`{"id": "x", "type": `))); err != nil {
		t.Fatal(err)
	}
	if code, body := s.Track(t, "/v1/track", map[string]any{"event": "After", "userId": "u4"}); code != 200 {
		t.Fatalf("track: %d %s", code, body)
	}
	s.WaitEvents(t, 1)
	omnitest.Eventually(t, 30*time.Second, func() bool { n, _ := deadletter.Count(s.PB); return n == 1 }, "undecodable message parked")
	dead, _ := deadletter.List(s.PB, "", 1)
	if dead[0].EventID != "not-json-1" || dead[0].Data != `{"id": "x", "type": ` || !strings.Contains(dead[0].Error, "decode") {
		t.Fatalf("dead = %+v", dead[0])
	}
}

// A database that refuses every write must not park healthy events: the
// consumer keeps them unacknowledged and stops at shutdown without
// waiting out its retry pauses.
func TestFailingDatabaseParksNothingAndStopIsPrompt(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{})
	// Make every write to events and events_dead fail, as a full disk would.
	for _, table := range []string{"events", deadletter.Collection} {
		if _, err := s.PB.DB().NewQuery(`CREATE TRIGGER fail_` + table + ` BEFORE INSERT ON ` + table +
			` BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END`).Execute(); err != nil {
			t.Fatal(err)
		}
	}
	if code, body := s.Track(t, "/v1/track", map[string]any{"event": "Kept", "userId": "u1"}); code != 200 {
		t.Fatalf("track: %d %s", code, body)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool {
		_, ack, err := s.Events.Lag(context.Background())
		return err == nil && ack == 1
	}, "the event delivered and held")
	time.Sleep(500 * time.Millisecond) // several retry rounds
	var n int
	_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM " + deadletter.Collection).Row(&n)
	if n != 0 {
		t.Fatalf("%d events parked while the database refused all writes", n)
	}
	stopWithin(t, s.Events, 15*time.Second, "Stop kept waiting on a retry loop")
}

func busMsg(subject, id string, data []byte) bus.Msg {
	return bus.Msg{Subject: subject, ID: id, Data: data}
}
