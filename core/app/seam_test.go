package app_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/profiles"
)

// notesModule is a domain module that plugs in through app.Module alone:
// its own migration (below), a durable consumer declared in Init, and a
// person-owned collection that profiles moves, exports and erases without
// knowing it.
type notesModule struct {
	cons jetstream.Consumer
	cc   jetstream.ConsumeContext

	mu   sync.Mutex
	seen []string // event ids received
}

const notesCollection = "seamtest_notes"

// A module's migration, named "<unix time>_<module>_<what>.go".
func init() {
	m.Register(func(a core.App) error {
		c := core.NewBaseCollection(notesCollection)
		c.Fields.Add(&core.TextField{Name: "person", Max: 50}, &core.TextField{Name: "text"})
		return a.Save(c)
	}, nil, "1764460000_seamtest_notes.go")
}

func (n *notesModule) Name() string { return "seamtest" }

func (n *notesModule) Init(s *app.Setup) error {
	s.PersonOwned(notesCollection, "person")
	var err error
	n.cons, err = s.Consumer(bus.StreamEvents, jetstream.ConsumerConfig{
		Durable: "seamtest", FilterSubject: "omni.events.seamtest.>", AckPolicy: jetstream.AckExplicitPolicy})
	return err
}

func (n *notesModule) Start(context.Context, *core.ServeEvent) error {
	var err error
	n.cc, err = n.cons.Consume(func(msg jetstream.Msg) {
		ev, err := events.Unmarshal(msg.Data())
		if err == nil {
			n.mu.Lock()
			n.seen = append(n.seen, ev.ID)
			n.mu.Unlock()
		}
		_ = msg.Ack()
	})
	return err
}

func (n *notesModule) Stop(context.Context) {
	if n.cc != nil {
		n.cc.Stop()
	}
}

func (n *notesModule) received(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.seen {
		if s == id {
			return true
		}
	}
	return false
}

// announcer publishes an event while the server starts, from a module that
// starts before notes: notes' consumer must already exist.
type announcer struct {
	omni            *app.Omni
	consumerExisted bool
}

func (a *announcer) Name() string            { return "announcer" }
func (a *announcer) Init(s *app.Setup) error { a.omni = s.Omni; return nil }
func (a *announcer) Stop(context.Context)    {}
func (a *announcer) Start(ctx context.Context, _ *core.ServeEvent) error {
	_, err := a.omni.Bus.JS.Consumer(ctx, bus.StreamEvents, "seamtest")
	a.consumerExisted = err == nil
	now := time.Now().UTC()
	ev := &events.Event{ID: "boot-1", Type: "track", Name: "Booted", Source: "seamtest", OccurredAt: now, ReceivedAt: now,
		Identities: events.Identities{events.AnonymousID: "boot"}}
	return ingest.Publish(ctx, a.omni.Bus, []*events.Event{ev})[0]
}

func TestAModulePlugsInThroughTheSeamAlone(t *testing.T) {
	notes := &notesModule{}
	ann := &announcer{}
	prof := profiles.New(profiles.Options{Interval: -1})
	s := omnitest.Start(t, omnitest.Options{Modules: func(*app.Omni) []app.Module {
		return []app.Module{prof, ann, notes}
	}})
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")

	// A consumer declared in Init exists before any module starts, and gets
	// what was published during start-up.
	if !ann.consumerExisted {
		t.Fatal("the module's consumer did not exist when the first module started")
	}
	omnitest.Eventually(t, 30*time.Second, func() bool { return notes.received("boot-1") }, "the start-up event received")
	if s.Health.Consumers["seamtest"] == nil {
		t.Fatal("the module's consumer is not in health")
	}

	// Person-owned rows follow a merge, are exported and are erased.
	track := func(body map[string]any) {
		t.Helper()
		if code, out := s.Track(t, "/v1/identify", body); code != 200 {
			t.Fatalf("identify: %d %s", code, out)
		}
	}
	track(map[string]any{"userId": "n-1", "traits": map[string]any{"email": "note@omni-shop.dev"}})
	track(map[string]any{"anonymousId": "n-anon", "traits": map[string]any{"phone": "+14155550123"}})
	s.WaitEvents(t, 3) // two identifies and the start-up event
	profileOf := func(kind, value string) string {
		var pid string
		_ = s.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind={:k} AND value={:v}").
			Bind(map[string]any{"k": kind, "v": value}).Row(&pid)
		return pid
	}
	older, newer := profileOf("email", "note@omni-shop.dev"), profileOf("phone", "+14155550123")
	if older == "" || newer == "" || older == newer {
		t.Fatalf("profiles %q %q", older, newer)
	}
	// The note goes on the profile that loses the merge (the newer one),
	// so following the merge means moving.
	col, err := s.PB.FindCollectionByNameOrId(notesCollection)
	if err != nil {
		t.Fatalf("the module's migration did not run: %v", err)
	}
	note := core.NewRecord(col)
	note.Set("person", newer)
	note.Set("text", "likes green")
	if err := s.PB.Save(note); err != nil {
		t.Fatal(err)
	}
	// One identify carrying both identities merges the two profiles.
	track(map[string]any{"userId": "n-1", "traits": map[string]any{"email": "note@omni-shop.dev", "phone": "+14155550123"}})
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return profileOf("email", "note@omni-shop.dev") == profileOf("phone", "+14155550123")
	}, "the two profiles to merge")
	survivor := profileOf("email", "note@omni-shop.dev")
	if survivor != older {
		t.Fatalf("the older profile %s should survive the merge, not %s", older, survivor)
	}
	got, err := s.PB.FindRecordById(notesCollection, note.Id)
	if err != nil || got.GetString("person") != survivor {
		t.Fatalf("note after the merge: %v %v (want person %s)", got, err, survivor)
	}

	// An un-merge moves back exactly the rows the merge moved; a row
	// written on the survivor since stays.
	since := core.NewRecord(col)
	since.Set("person", survivor)
	since.Set("text", "asked about sizes")
	if err := s.PB.Save(since); err != nil {
		t.Fatal(err)
	}
	var merges struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if code, body := s.Do(t, "GET", "/api/v1/profiles/"+survivor+"/merges", nil, omnitest.Auth(owner)); code != 200 || json.Unmarshal(body, &merges) != nil || len(merges.Items) != 1 {
		t.Fatalf("merges: %d %s", code, body)
	}
	if code, body := s.Do(t, "POST", "/api/v1/profiles/"+survivor+"/merges/"+merges.Items[0].ID+"/undo", nil, omnitest.Auth(owner)); code != 200 {
		t.Fatalf("un-merge: %d %s", code, body)
	}
	if got, err := s.PB.FindRecordById(notesCollection, note.Id); err != nil || got.GetString("person") != newer {
		t.Fatalf("note after the un-merge: %v %v (want person %s)", got, err, newer)
	}
	if got, err := s.PB.FindRecordById(notesCollection, since.Id); err != nil || got.GetString("person") != survivor {
		t.Fatalf("note written after the merge: %v %v (want person %s)", got, err, survivor)
	}
	survivor = newer // export and erase the person the note is about

	code, body := s.Do(t, "POST", "/api/v1/profiles/"+survivor+"/export", nil, omnitest.Auth(owner))
	var x struct {
		Records map[string][]map[string]any `json:"records"`
	}
	if code != 200 || json.Unmarshal(body, &x) != nil || len(x.Records[notesCollection]) != 1 || x.Records[notesCollection][0]["text"] != "likes green" {
		t.Fatalf("export: %d %s", code, body)
	}
	if code, body := s.Do(t, "DELETE", "/api/v1/profiles/"+survivor, nil, omnitest.Auth(owner)); code != 200 {
		t.Fatalf("erase: %d %s", code, body)
	}
	if _, err := s.PB.FindRecordById(notesCollection, note.Id); err == nil {
		t.Fatal("the note survived the erasure")
	}
}
