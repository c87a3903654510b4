package profiles

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/segmentrule"
)

// A profile reads, for segment rules, what SQLite's json_extract reads of
// the row write stores for it: random computed traits, custom traits and
// consent, each read checked against the stored JSON decoded.
// (segmentrule's TestEvalAnswersAsTheCompiledSQL checks the rules against
// SQLite on such values.)
func TestProfileValuesAreTheStoredRowsJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 9))
	f := func(x float64) *float64 { return &x }
	pick := func(vs ...any) any { return vs[rng.IntN(len(vs))] }
	paths := []segmentrule.Read{{Source: "column", Path: "email"}, {Source: "column", Path: "name"}, {Source: "consent", Path: "email"}, {Source: "consent", Path: "sms"}}
	for _, name := range []string{"first_seen", "last_seen", "orders_count", "lifetime_value", "lifetime_value.USD", "lifetime_value.EUR",
		"orders_by_currency", "orders_by_currency.USD", "average_order_value.USD", "lifetime_value_base", "average_order_value_base",
		"base_currency", "last_order_at", "channels", "preferred_channel", "last_two_way_at", "lifecycle_stage", "engagement_level",
		"buying_stage", "lifetime_value.USD.x", "orders_count.x"} {
		paths = append(paths, segmentrule.Read{Source: "computed", Path: name})
	}
	for _, name := range []string{"plan", "score", "a.b", "a", "list", "missing"} {
		paths = append(paths, segmentrule.Read{Source: "traits", Path: name})
	}
	decided := 0
	for i := range 300 {
		c := &Computed{OrdersCount: rng.IntN(3), LifecycleStage: pick("", "loyal", "new").(string), EngagementLevel: pick("", "active").(string),
			LastSeen: pick("", "2026-11-20T10:00:00.000Z").(string), BuyingStage: pick("", "browsing").(string), Channels: pick([]string(nil), []string{"web", "email"}).([]string)}
		if rng.IntN(2) == 0 {
			c.LifetimeValue = map[string]float64{"USD": float64(rng.IntN(50000)) / 100}
			c.OrdersByCurrency = map[string]int{"USD": 1 + rng.IntN(4)}
			c.LifetimeValueBase = f(12.5)
		}
		p := &profile{id: fmt.Sprint(i), email: pick("", "a@b-shop.dev").(string), name: "Ada", comp: c,
			traits: map[string]any{}, consent: map[string]ConsentEntry{}, ownTraits: true, ownConsent: true, ownComputed: true}
		for _, k := range []string{"plan", "score", "a", "list"} {
			if rng.IntN(3) > 0 {
				p.traits[k] = pick("pro", 3.0, true, nil, map[string]any{"b": "x"}, []any{"vip", 2.0})
			}
		}
		if rng.IntN(2) == 0 {
			p.consent["email"] = ConsentEntry{Status: pick("subscribed", "unsubscribed").(string), Source: "shopify"}
		}
		c.derive(time.Now(), Currency{})
		traits, _ := json.Marshal(p.traits)
		consent, _ := json.Marshal(p.consent)
		docs := map[string]any{}
		for k, raw := range map[string]string{"traits": string(traits), "computed": string(c.appendJSON(nil)), "consent": string(consent)} {
			var v any
			if err := json.Unmarshal([]byte(raw), &v); err != nil {
				t.Fatal(err)
			}
			docs[k] = v
		}
		for _, r := range paths {
			got, ok := p.Value(r)
			if !ok {
				t.Errorf("%s %s: not read", r.Source, r.Path)
				continue
			}
			var want any
			switch r.Source {
			case "column":
				want = map[string]string{"email": p.email, "name": p.name}[r.Path]
			case "consent":
				want = jsonPath(docs["consent"], r.Path+".status")
			default:
				want = jsonPath(docs[r.Source], r.Path)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("profile %d, %s %s: read %#v, stored JSON holds %#v", i, r.Source, r.Path, got, want)
			}
			decided++
		}
	}
	// A profile whose stored JSON is not this process's encoding is not read.
	p := &profile{comp: &Computed{}, traits: map[string]any{}, ownTraits: true, ownConsent: true}
	if _, ok := p.Value(segmentrule.Read{Source: "computed", Path: "orders_count"}); ok {
		t.Error("a profile with computed traits as some other version stored them was read")
	}
	if decided == 0 {
		t.Fatal("nothing compared")
	}
}

// A row read back with SQL is read for rules only when its JSON is what
// this version writes: a computed object without orders_count (which
// Computed would read as 0, SQL as absent) is not.
func TestRowsReadBackAreReadForRulesOnlyAsThisVersionWritesThem(t *testing.T) {
	m := New(Options{})
	m.segs.state = newStateReads([]segmentrule.Read{{Source: "computed", Path: "orders_count"}})
	b := &batch{m: m}
	c := &Computed{OrdersCount: 2, LifecycleStage: "new"}
	for _, tc := range []struct {
		computed, traits, consent string
		own                       bool
	}{
		{string(c.appendJSON(nil)), `{"plan":"pro"}`, `{}`, true},
		{`{"lifecycle_stage":"new","engagement_level":""}`, `{"plan":"pro"}`, `{}`, false},
		{string(c.appendJSON(nil)), `{"plan": "pro"}`, `{}`, false},
		{string(c.appendJSON(nil)), `{"plan":"pro"}`, `{"email":{"status":"subscribed"}}`, true},
		{string(c.appendJSON(nil)), `{"plan":"pro"}`, `{"email":{"source":"x","status":"subscribed"}}`, false},
	} {
		r := &profileRow{ID: "p", Computed: tc.computed, Traits: tc.traits, Consent: tc.consent}
		p, err := r.decode()
		if err != nil {
			t.Fatal(err)
		}
		b.checkOwn(p, r)
		if p.exact() != tc.own {
			t.Errorf("%+v: own %v, want %v", tc, p.exact(), tc.own)
		}
	}
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// When the scheduled pass moves a member out of a time-based segment, the
// answer a cached profile kept from before is no longer its membership: an
// event that brings the answer back must enter it again, not be taken for
// no change.
func TestThePassEndsTheAnswersCachedProfilesKept(t *testing.T) {
	clk := &testClock{t: time.Now().UTC().Add(-10 * 24 * time.Hour).Truncate(time.Millisecond)}
	m := New(Options{Interval: -1, Now: clk.Now})
	s := omnitest.Start(t, omnitest.Options{Modules: func(*app.Omni) []app.Module { return []app.Module{m} }})
	col, err := s.PB.FindCollectionByNameOrId("segments")
	if err != nil {
		t.Fatal(err)
	}
	rec := core.NewRecord(col)
	rec.Set("name", "Trial this month")
	rec.Set("rule", `{"trait":"trial_started","op":"within_days","value":30}`)
	if err := s.PB.Save(rec); err != nil {
		t.Fatal(err)
	}
	n := 0
	identify := func(trial time.Time) {
		t.Helper()
		n++
		ev := &events.Event{ID: fmt.Sprintf("trial-%d", n), Type: events.Identify, Source: "shopify", OccurredAt: clk.Now(), ReceivedAt: clk.Now(),
			Identities: events.Identities{events.Email: "trial@b-shop.dev"},
			Properties: map[string]any{"traits": map[string]any{"trial_started": trial.UTC().Format("2006-01-02T15:04:05.000Z")}}}
		for _, err := range ingest.Publish(context.Background(), s.Bus, []*events.Event{ev}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		// Waited for by id: the pass's segment.exited event is stored
		// meanwhile too, so a count of events would not say which.
		s.WaitEvent(t, ev.ID)
	}
	member := func() bool {
		var k int
		_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM segment_members WHERE segment={:s}").Bind(dbx.Params{"s": rec.Id}).Row(&k)
		return k == 1
	}
	identify(clk.Now().Add(-25 * 24 * time.Hour))
	if !member() {
		t.Fatal("a trial started 25 days ago is not in the segment")
	}
	clk.Advance(10 * 24 * time.Hour)
	_, byID := m.segs.snapshot()
	if _, err := m.reevaluateSegment(m.app, byID[rec.Id], clk.Now(), false); err != nil {
		t.Fatal(err)
	}
	if member() {
		t.Fatal("the pass left a trial started 35 days ago in the segment")
	}
	identify(clk.Now().Add(-2 * 24 * time.Hour)) // the cached profile's old answer was "in"
	if !member() {
		t.Error("a trial started 2 days ago is not in the segment after the pass took it out")
	}
}

// Memberships Go decided are written without reading them first: a
// profile enters a segment it was not in, stays (same entry, no event) in
// one it was already in, leaves one it was in with the event naming that
// entry, and leaving a segment it is not in is nothing.
func TestDecidedMembershipsChangeOnlyWhatWasNotSo(t *testing.T) {
	m := New(Options{Interval: -1})
	s := omnitest.Start(t, omnitest.Options{Modules: func(*app.Omni) []app.Module { return []app.Module{m} }})
	col, err := s.PB.FindCollectionByNameOrId("segments")
	if err != nil {
		t.Fatal(err)
	}
	var segIDs []string
	for i, rule := range []string{`{"trait":"orders_count","op":"gte","value":1}`, `{"trait":"orders_count","op":"gte","value":3}`} {
		rec := core.NewRecord(col)
		rec.Set("name", fmt.Sprintf("decided %d", i))
		rec.Set("rule", rule)
		if err := s.PB.Save(rec); err != nil {
			t.Fatal(err)
		}
		segIDs = append(segIDs, rec.Id)
	}
	_, byID := m.segs.snapshot()
	live := []*segment{byID[segIDs[0]], byID[segIDs[1]]}
	p := &profile{id: "decidedprofile1"}
	const enteredBefore = "2026-11-01 10:00:00.000Z"
	if _, err := s.PB.DB().NewQuery("INSERT INTO segment_members (id, segment, profile, entered_at) VALUES ('decidedmember01', {:s}, {:p}, {:at})").
		Bind(dbx.Params{"s": segIDs[0], "p": p.id, "at": enteredBefore}).Execute(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	write := func(a, b segmentrule.Truth) []*events.Event {
		t.Helper()
		p.answers = []segmentrule.Truth{a, b}
		var out []*events.Event
		if err := s.PB.RunInTransaction(func(tx core.App) error {
			out, err = m.writeDecided(tx, []*profile{p}, live, []int{0, 1}, map[string]*profile{p.id: p},
				map[string]string{live[0].id: live[0].name, live[1].id: live[1].name}, now, false)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	members := func() map[string]string {
		var rows []struct {
			Segment   string `db:"segment"`
			EnteredAt string `db:"entered_at"`
		}
		if err := s.PB.DB().NewQuery("SELECT segment, entered_at FROM segment_members WHERE profile={:p}").Bind(dbx.Params{"p": p.id}).All(&rows); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, r := range rows {
			out[r.Segment] = r.EnteredAt
		}
		return out
	}
	summary := func(evs []*events.Event) []string {
		var out []string
		for _, ev := range evs {
			out = append(out, ev.Type+" "+ev.Properties["segment_id"].(string))
		}
		return out
	}

	evs := write(segmentrule.True, segmentrule.True)
	if got, want := summary(evs), []string{events.SegmentEntered + " " + segIDs[1]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("entering both: events %v, want %v", got, want)
	}
	got := members()
	if len(got) != 2 || got[segIDs[0]] != enteredBefore {
		t.Fatalf("after entering both: memberships %v, want the first kept as entered at %s and the second new", got, enteredBefore)
	}
	enteredSecond := got[segIDs[1]]

	evs = write(segmentrule.False, segmentrule.Null)
	if got, want := summary(evs), []string{events.SegmentExited + " " + segIDs[0], events.SegmentExited + " " + segIDs[1]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("leaving both: events %v, want %v", got, want)
	}
	for i, at := range []string{enteredBefore, enteredSecond} {
		entered, err := time.Parse(dbTime, at)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("seg:%s:%s:exited:%d", segIDs[i], p.id, entered.UnixNano()); evs[i].ID != want {
			t.Errorf("exit %d: id %s, want %s (the entry it ends)", i, evs[i].ID, want)
		}
	}
	if got := members(); len(got) != 0 {
		t.Fatalf("after leaving both: memberships %v", got)
	}

	if evs := write(segmentrule.False, segmentrule.False); len(evs) != 0 {
		t.Fatalf("leaving segments it is not in: events %v", summary(evs))
	}
}
