package profiles_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
)

func (e *env) createSegment(t *testing.T, name string, rule string) string {
	t.Helper()
	code, body := e.Do(t, "POST", "/api/collections/segments/records", `{"name":"`+name+`","rule":`+rule+`}`, auth(e.owner))
	if code != 200 {
		t.Fatalf("create segment %s: %d %s", name, code, body)
	}
	var r struct{ ID string }
	_ = json.Unmarshal(body, &r)
	return r.ID
}

func (e *env) segEvents(t *testing.T, typ, seg string) int {
	return e.count(t, "SELECT COUNT(*) FROM events WHERE type={:t} AND json_extract(properties,'$.segment_id')={:s}", map[string]any{"t": typ, "s": seg})
}

func (e *env) members(t *testing.T, seg string) int {
	return e.count(t, "SELECT COUNT(*) FROM segment_members WHERE segment={:s}", map[string]any{"s": seg})
}

// settle makes sure everything published so far is stored: a sentinel
// event published after it is stored only after earlier ones.
func (e *env) settle(t *testing.T) {
	t.Helper()
	e.publish(t, ev("track", "sentinel", e.clock.Now(), events.Identities{events.AnonymousID: "sentinel"}, nil, ""))
}

func TestSegmentsFollowEventsAndTime(t *testing.T) {
	e := start(t, profiles.Options{})
	// Validation: REST saves are checked and errors name the path.
	code, body := e.Do(t, "POST", "/api/collections/segments/records",
		`{"name":"bad","rule":{"and":[{"trait":"orders_count","op":"bigger","value":1}]}}`, auth(e.owner))
	if code != 400 || !strings.Contains(string(body), `and[0].op: unknown operator \"bigger\"`) {
		t.Fatalf("invalid rule: %d %s", code, body)
	}
	code, body = e.Do(t, "POST", "/api/collections/segments/records", `{"name":"x","rule":{"consent":"fax","status":"subscribed"}}`, auth(e.owner))
	if code != 400 || !strings.Contains(string(body), "consent: must be a channel") {
		t.Fatalf("invalid consent rule: %d %s", code, body)
	}
	if code, _ := e.Do(t, "POST", "/api/collections/segments/records", `{"name":"agent","rule":{"trait":"x","op":"exists"}}`, auth(e.agent)); code == 200 {
		t.Fatal("an agent created a segment")
	}

	recent := e.createSegment(t, "Recent buyers", `{"event":"order.placed","op":"gte","count":1,"within_days":30}`)
	loyal := e.createSegment(t, "Loyal", `{"trait":"lifecycle_stage","op":"eq","value":"loyal"}`)
	emailable := e.createSegment(t, "Loyal and emailable", `{"and":[{"segment":"`+loyal+`"},{"consent":"email","status":"subscribed"}]}`)
	// A cycle is rejected.
	code, body = e.Do(t, "PATCH", "/api/collections/segments/records/"+loyal, `{"rule":{"segment":"`+emailable+`"}}`, auth(e.owner))
	if code != 400 || !strings.Contains(string(body), "refers back to itself") {
		t.Fatalf("cycle: %d %s", code, body)
	}

	now := e.clock.Now()
	ids := events.Identities{events.Email: "vip@omni-shop.dev"}
	e.publish(t, ev(events.OrderPlaced, "shopify", now, ids, map[string]any{"total": 20}, "web"))
	pid := e.profileOf(t, events.Email, "vip@omni-shop.dev")
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.segEvents(t, events.SegmentEntered, recent) == 1 }, "segment.entered (recent)")
	if e.members(t, loyal) != 0 {
		t.Fatal("one order made the profile loyal")
	}
	e.publish(t, ev(events.OrderPlaced, "square", now.Add(time.Minute), ids, map[string]any{"total": 30}, "pos"),
		ev(events.ConsentChanged, "shopify", now.Add(time.Minute), ids, map[string]any{"channel": "email", "status": "subscribed"}, ""))
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return e.segEvents(t, events.SegmentEntered, loyal) == 1 && e.segEvents(t, events.SegmentEntered, emailable) == 1
	}, "segment.entered (loyal, emailable)")

	// Unsubscribing leaves the nested segment only.
	e.publish(t, ev(events.ConsentChanged, "klaviyo", now.Add(2*time.Minute), ids, map[string]any{"channel": "email", "status": "unsubscribed"}, ""))
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.segEvents(t, events.SegmentExited, emailable) == 1 }, "segment.exited (emailable)")

	// Time passes: 31 days later the order window is over.
	e.clock.Advance(31 * 24 * time.Hour)
	if err := e.mod.Reevaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.segEvents(t, events.SegmentExited, recent) == 1 }, "segment.exited (recent)")
	if e.members(t, loyal) != 1 {
		t.Fatal("loyalty should last 12 months")
	}
	// A year later the profile is no longer loyal (traits due → re-evaluated).
	e.clock.Advance(365 * 24 * time.Hour)
	if err := e.mod.Reevaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.segEvents(t, events.SegmentExited, loyal) == 1 }, "segment.exited (loyal)")
	d := e.detail(t, pid)
	if d.Computed.LifecycleStage != profiles.StagePostPurchase || d.Computed.EngagementLevel != profiles.EngagementDormant {
		t.Errorf("after a year: stage=%q engagement=%q", d.Computed.LifecycleStage, d.Computed.EngagementLevel)
	}
	// Nothing more happens on further passes; every change was emitted once.
	if err := e.mod.Reevaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.settle(t)
	for seg, want := range map[string][2]int{recent: {1, 1}, loyal: {1, 1}, emailable: {1, 1}} {
		if in, out := e.segEvents(t, events.SegmentEntered, seg), e.segEvents(t, events.SegmentExited, seg); in != want[0] || out != want[1] {
			t.Errorf("segment %s: entered %d exited %d, want %v", seg, in, out, want)
		}
	}
	// Segment events are on the profile's timeline and did not touch traits.
	if n := e.count(t, "SELECT COUNT(*) FROM events WHERE type LIKE 'segment.%' AND profile={:p}", map[string]any{"p": pid}); n != 6 {
		t.Errorf("segment events on the timeline = %d, want 6", n)
	}
	// Re-entering later emits a new, distinct entered event.
	e.publish(t, ev(events.OrderPlaced, "shopify", e.clock.Now(), ids, map[string]any{"total": 5}, "web"))
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.segEvents(t, events.SegmentEntered, recent) == 2 }, "second segment.entered")

	// Previews and counts.
	var pv struct {
		Count  int                `json:"count"`
		Sample []profiles.Summary `json:"sample"`
	}
	e.get(t, "/api/v1/segments/"+recent+"/preview", &pv)
	if pv.Count != 1 || len(pv.Sample) != 1 || pv.Sample[0].ID != pid {
		t.Errorf("preview = %+v", pv)
	}
	code, body = e.Do(t, "POST", "/api/v1/segments/preview", `{"rule":{"trait":"orders_count","op":"gte","value":3}}`, auth(e.owner))
	if code != 200 || json.Unmarshal(body, &pv) != nil || pv.Count != 1 {
		t.Errorf("preview rule: %d %s", code, body)
	}
	code, body = e.Do(t, "POST", "/api/v1/segments/preview", `{"rule":{"or":[]}}`, auth(e.owner))
	if code != 400 || !strings.Contains(string(body), "or: must be a non-empty array") {
		t.Errorf("preview bad rule: %d %s", code, body)
	}
	var counts struct {
		Items []struct {
			Day   string `json:"day"`
			Count int    `json:"count"`
		} `json:"items"`
	}
	e.get(t, "/api/v1/segments/"+loyal+"/counts?days=3650", &counts)
	if len(counts.Items) != 2 || counts.Items[1].Count != 0 || counts.Items[0].Count != 1 {
		t.Errorf("daily counts = %+v", counts.Items)
	}
	var list struct {
		Items []struct {
			ID        string `json:"id"`
			Members   int    `json:"members"`
			TimeBased bool   `json:"time_based"`
		} `json:"items"`
	}
	e.get(t, "/api/v1/segments", &list)
	if len(list.Items) != 3 {
		t.Errorf("segments list = %+v", list.Items)
	}
	var res struct {
		TotalItems int `json:"totalItems"`
	}
	e.get(t, "/api/v1/profiles?segment="+recent, &res)
	if res.TotalItems != 1 {
		t.Errorf("search by segment = %d", res.TotalItems)
	}
}

// TestSegmentRulesSurviveUnreadableTraits: a profile whose traits were
// stored nested 1,500 deep (before the ingest bounds; written here with
// SQL) made every trait rule fail with "malformed JSON". Its traits now
// read as absent and the other profiles are still matched.
func TestSegmentRulesSurviveUnreadableTraits(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	e.publish(t,
		ev(events.Identify, "test", now, events.Identities{events.Email: "plan@omni-shop.dev"}, map[string]any{"traits": map[string]any{"plan": "pro"}}, "web"),
		ev(events.Identify, "test", now, events.Identities{events.Email: "deep@omni-shop.dev"}, map[string]any{"traits": map[string]any{"plan": "pro"}}, "web"))
	deepID := e.profileOf(t, events.Email, "deep@omni-shop.dev")
	deep := `{"plan":"pro","x":` + strings.Repeat(`{"a":`, 1500) + "1" + strings.Repeat("}", 1500) + `}`
	if _, err := e.PB.DB().NewQuery("UPDATE profiles SET traits={:t} WHERE id={:id}").Bind(map[string]any{"t": deep, "id": deepID}).Execute(); err != nil {
		t.Fatal(err)
	}
	for _, rule := range []string{
		`{"rule":{"trait":"plan","op":"eq","value":"pro"}}`,
		`{"rule":{"trait":"plan","op":"contains","value":"pro"}}`,
		`{"rule":{"or":[{"trait":"plan","op":"exists"},{"trait":"email","op":"eq","value":"nobody@omni-shop.dev"}]}}`,
	} {
		code, body := e.Do(t, "POST", "/api/v1/segments/preview", rule, auth(e.owner))
		var pv struct {
			Count int `json:"count"`
		}
		if code != 200 || json.Unmarshal(body, &pv) != nil || pv.Count != 1 {
			t.Errorf("%s: %d %s (want 200 and the one readable profile)", rule, code, body)
		}
	}
}

// TestSegmentsOfProfilesReadBackFromTheTable: a profile the resolution
// cache no longer holds is read back with what its segments read of it as
// stored, so its events change only the memberships whose reads they
// change; an edit of the profile row at /_/ moves its memberships at once.
func TestSegmentsOfProfilesReadBackFromTheTable(t *testing.T) {
	e := start(t, profiles.Options{})
	// Segment events are stored too, after their batch: a count-based wait
	// could end on one of those before the event just published.
	vip := e.createSegment(t, "VIP", `{"trait":"vip","op":"eq","value":true}`)
	buyers := e.createSegment(t, "Buyers", `{"trait":"orders_count","op":"gte","value":1}`)
	browsers := e.createSegment(t, "Browsers", `{"event":"page.viewed","op":"gte","count":2,"within_days":30}`)
	now := e.clock.Now()
	ids := events.Identities{events.Email: "read-back@omni-shop.dev"}
	e.publish(t, ev(events.Identify, "test", now, ids, map[string]any{"traits": map[string]any{"vip": false}}, "web"),
		ev(events.OrderPlaced, "shopify", now, ids, map[string]any{"total": 20}, "web"))
	pid := e.profileOf(t, events.Email, "read-back@omni-shop.dev")
	if e.members(t, buyers) != 1 || e.members(t, vip) != 0 {
		t.Fatalf("after the order: buyers %d, vip %d members", e.members(t, buyers), e.members(t, vip))
	}

	profiles.ForgetCacheForTest(e.mod)
	e.publish(t, ev(events.Identify, "test", now.Add(time.Minute), ids, map[string]any{"traits": map[string]any{"vip": true}}, "web"))
	if e.members(t, vip) != 1 {
		t.Fatal("a trait change of a profile read back from the table did not enter its segment")
	}
	for i := range 2 {
		profiles.ForgetCacheForTest(e.mod)
		e.publish(t, ev(events.PageViewed, "web", now.Add(time.Duration(2+i)*time.Minute), ids, nil, "web"))
	}
	if e.members(t, browsers) != 1 {
		t.Fatal("the second page view of a profile read back from the table did not enter the event segment")
	}

	// An owner's fix at /_/: the memberships follow the saved row.
	rec, err := e.PB.FindRecordById("profiles", pid)
	if err != nil {
		t.Fatal(err)
	}
	rec.Set("traits", map[string]any{"vip": false})
	if err := e.PB.Save(rec); err != nil {
		t.Fatal(err)
	}
	if e.members(t, vip) != 0 {
		t.Fatal("the edited profile is still in the VIP segment")
	}
	profiles.ForgetCacheForTest(e.mod)
	e.publish(t, ev(events.PageViewed, "web", now.Add(5*time.Minute), ids, nil, "web"))
	e.settle(t)
	want := map[string][2]int{vip: {1, 1}, buyers: {1, 0}, browsers: {1, 0}}
	for seg, w := range want {
		if in, out := e.segEvents(t, events.SegmentEntered, seg), e.segEvents(t, events.SegmentExited, seg); in != w[0] || out != w[1] {
			t.Errorf("segment %s: entered %d exited %d, want %v", seg, in, out, w)
		}
	}
	if e.members(t, vip) != 0 || e.members(t, buyers) != 1 || e.members(t, browsers) != 1 {
		t.Errorf("members: vip %d, buyers %d, browsers %d; want 0, 1, 1", e.members(t, vip), e.members(t, buyers), e.members(t, browsers))
	}
}
