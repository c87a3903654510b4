package graph

import (
	"strings"
	"testing"
	"time"
)

const issueExample = `{"trigger": {"event": "checkout.started", "where": {"property": "total", "op": "gt", "value": 50}},
 "goal": {"event": "order.placed", "within": "7d", "exit": true}, "start": "w1",
 "nodes": {"w1": {"type": "wait_for_event", "event": "order.placed", "timeout": "1h", "next": {"happened": "end", "timed_out": "s1"}},
  "s1": {"type": "send", "channels": ["whatsapp", "email"], "template": "t1", "kind": "marketing", "next": {"sent": "end", "suppressed": "end"}},
  "end": {"type": "exit"}}}`

func TestTheDocumentedGraphIsValid(t *testing.T) {
	g, err := Parse([]byte(issueExample))
	if err != nil {
		t.Fatal(err)
	}
	if ps := g.Validate(); ps != nil {
		t.Fatalf("problems: %v", ps)
	}
	if !g.Trigger.Where.Match(map[string]any{"total": "129.00"}) || g.Trigger.Where.Match(map[string]any{"total": 20.0}) {
		t.Fatal("trigger where should compare totals as numbers")
	}
}

func TestProblemsNameTheNode(t *testing.T) {
	cases := map[string]struct{ graph, node, field string }{
		"bad duration":   {`{"trigger":{"manual":true},"start":"a","nodes":{"a":{"type":"wait","duration":"5 minutes"}}}`, "a", "duration"},
		"missing target": {`{"trigger":{"manual":true},"start":"a","nodes":{"a":{"type":"wait","duration":"1h","next":"b"}}}`, "a", "next.next"},
		"wrong exit":     {`{"trigger":{"manual":true},"start":"a","nodes":{"a":{"type":"branch","rule":{"consent":"email","status":"subscribed"},"next":{"maybe":"a"}}}}`, "a", "next.maybe"},
		"bad rule":       {`{"trigger":{"manual":true},"start":"a","nodes":{"a":{"type":"branch","rule":{"trait":"x"}}}}`, "a", "rule"},
		"loop":           {`{"trigger":{"manual":true},"start":"a","nodes":{"a":{"type":"update","add_tags":["x"],"next":"b"},"b":{"type":"update","add_tags":["y"],"next":"a"}}}`, "a", "next"},
		"unreachable":    {`{"trigger":{"manual":true},"start":"a","nodes":{"a":{"type":"exit"},"b":{"type":"exit"}}}`, "b", "id"},
		"two triggers":   {`{"trigger":{"manual":true,"event":"x.y"},"start":"a","nodes":{"a":{"type":"exit"}}}`, "", "trigger"},
		"split weights":  {`{"trigger":{"manual":true},"start":"a","nodes":{"a":{"type":"split","arms":[{"name":"a","weight":1},{"name":"b","weight":0}]}}}`, "a", "arms[1].weight"},
	}
	for name, c := range cases {
		g, err := Parse([]byte(c.graph))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ps := g.Validate()
		found := false
		for _, p := range ps {
			found = found || (p.Node == c.node && p.Field == c.field)
		}
		if !found {
			t.Errorf("%s: want a problem on node %q field %q, got %v", name, c.node, c.field, ps)
		}
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"1s": time.Second, "7d": 7 * Day, "2w": 14 * Day, "3mo": 90 * Day, "1h30m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: got %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "500ms", "3y", "-1d", "1.5d", "900w"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("%q: want an error", in)
		}
	}
}

func TestUnknownFieldsAreRefused(t *testing.T) {
	_, err := Parse([]byte(`{"trigger":{"manual":true},"start":"a","nodes":{"a":{"type":"exit","tmeout":"1h"}}}`))
	if err == nil || !strings.Contains(err.Error(), "tmeout") {
		t.Fatalf("want the unknown field named, got %v", err)
	}
}

func TestNextUntil(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/London")
	from := time.Date(2026, 11, 30, 10, 0, 0, 0, loc) // a Monday
	if got := NextUntil(&Until{Time: "09:00"}, from, loc); !got.Equal(time.Date(2026, 12, 1, 9, 0, 0, 0, loc)) {
		t.Fatalf("got %v", got)
	}
	if got := NextUntil(&Until{Time: "09:00", Weekdays: []string{"fri"}}, from, loc); got.Weekday() != time.Friday {
		t.Fatalf("got %v", got)
	}
}
