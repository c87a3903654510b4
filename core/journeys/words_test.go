package journeys

import (
	"testing"

	"github.com/omni/omni/core/journeys/graph"
)

// TestWords: triggers, steps and runs in the words the list and the
// customer's page show.
func TestWords(t *testing.T) {
	names := func(id string) string { return map[string]string{"seg1": "VIPs"}[id] }
	for _, c := range []struct {
		trigger graph.Trigger
		want    string
	}{
		{graph.Trigger{Event: "checkout.started", Where: &graph.Where{And: []*graph.Where{
			{Property: "total", Op: "gte", Value: 50.0}, {Property: "currency", Op: "eq", Value: "EUR"}}}},
			"when checkout.started happens with (total ≥ 50 and currency = EUR)"},
		{graph.Trigger{Segment: "seg1"}, "when a customer enters segment VIPs"},
		{graph.Trigger{Segment: "seg2", On: "exit"}, "when a customer leaves segment seg2"},
		{graph.Trigger{Date: &graph.DateTrigger{Property: "birthday", Yearly: true}}, "every year on their birthday at 09:00"},
		{graph.Trigger{Date: &graph.DateTrigger{Property: "last_order_at", Offset: "90d", At: "10:00"}}, "90 days after their last order, at 10:00"},
		{graph.Trigger{Date: &graph.DateTrigger{Property: "renewal_at", Offset: "-7d"}}, "7 days before their renewal, at 09:00"},
		{graph.Trigger{Manual: true}, "enrolled by hand or through the API"},
		{graph.Trigger{}, "no trigger yet"},
	} {
		if got := TriggerSummary(&graph.Graph{Trigger: c.trigger}, names); got != c.want {
			t.Errorf("%+v: %q, want %q", c.trigger, got, c.want)
		}
	}

	for _, c := range []struct {
		run  Run
		want string
	}{
		{Run{Status: RunWaiting, WaitEvent: "order.placed", DueAt: "2026-11-30 14:05:00.000Z"}, "waiting for order.placed until 2026-11-30T14:05:00Z"},
		{Run{Status: RunWaiting, DueAt: "2026-11-30 14:05:00.000Z"}, "waiting until 2026-11-30T14:05:00Z"},
		{Run{Status: RunActive, DueAt: "2026-11-30 14:05:00.000Z"}, "due at 2026-11-30T14:05:00Z"},
		{Run{Status: RunCompleted, ExitReason: "end"}, "completed"},
		{Run{Status: RunExited, ExitReason: "goal"}, "exited: goal"},
	} {
		if got := RunState(c.run); got != c.want {
			t.Errorf("%+v: %q, want %q", c.run, got, c.want)
		}
	}

	if got := NodeName("s1", &graph.Node{Type: graph.Send, Channels: []string{"whatsapp", "email"}}); got != "Send by whatsapp or email" {
		t.Errorf("send: %q", got)
	}
	if got := NodeName("w1", &graph.Node{Type: graph.Wait, Name: "Cool off"}); got != "Cool off" {
		t.Errorf("named: %q", got)
	}
}
