package journeys

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/omni/omni/core/journeys/graph"
)

// Journeys in words, for lists and the customer's page: who enters, what
// a step does, where a run is.

// TriggerSummary says who enters a journey; segmentName, when given,
// names a segment by its id.
func TriggerSummary(g *graph.Graph, segmentName func(id string) string) string {
	t := g.Trigger
	switch {
	case t.Event != "":
		s := "when " + t.Event + " happens"
		if t.Where != nil {
			s += " with " + whereWords(t.Where)
		}
		return s
	case t.Segment != "":
		seg := t.Segment
		if segmentName != nil {
			if n := segmentName(seg); n != "" {
				seg = n
			}
		}
		if t.On == "exit" {
			return "when a customer leaves segment " + seg
		}
		return "when a customer enters segment " + seg
	case t.Date != nil:
		at := t.Date.At
		if at == "" {
			at = "09:00"
		}
		prop := strings.ReplaceAll(strings.TrimSuffix(t.Date.Property, "_at"), "_", " ")
		off := t.Date.Offset
		days := func(o string) string {
			if d, err := graph.ParseDuration(o); err == nil && d%graph.Day == 0 {
				if n := int(d / graph.Day); n != 1 {
					return fmt.Sprintf("%d days", n)
				}
				return "1 day"
			}
			return o
		}
		switch {
		case t.Date.Yearly && off == "":
			return fmt.Sprintf("every year on their %s at %s", prop, at)
		case off == "":
			return fmt.Sprintf("on their %s at %s", prop, at)
		case strings.HasPrefix(off, "-"):
			return fmt.Sprintf("%s before their %s, at %s", days(strings.TrimPrefix(off, "-")), prop, at)
		default:
			return fmt.Sprintf("%s after their %s, at %s", days(off), prop, at)
		}
	case t.Manual:
		return "enrolled by hand or through the API"
	}
	return "no trigger yet"
}

var opWords = map[string]string{"eq": "=", "neq": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤",
	"contains": "contains", "in": "in", "exists": "is set", "not_exists": "is not set"}

// whereWords spells out an event condition ("total > 50").
func whereWords(w *graph.Where) string {
	join := func(ws []*graph.Where, sep string) string {
		parts := make([]string, 0, len(ws))
		for _, c := range ws {
			parts = append(parts, whereWords(c))
		}
		return "(" + strings.Join(parts, sep) + ")"
	}
	switch {
	case w == nil:
		return ""
	case len(w.And) > 0:
		return join(w.And, " and ")
	case len(w.Or) > 0:
		return join(w.Or, " or ")
	case w.Not != nil:
		return "not " + whereWords(w.Not)
	case w.Op == "exists" || w.Op == "not_exists":
		return w.Property + " " + opWords[w.Op]
	}
	op := opWords[w.Op]
	if op == "" {
		op = w.Op
	}
	v, _ := json.Marshal(w.Value)
	return w.Property + " " + op + " " + strings.Trim(string(v), `"`)
}

// NodeName is a step's label, or what it does when it has none.
func NodeName(id string, n *graph.Node) string {
	if n == nil {
		return id
	}
	if n.Name != "" {
		return n.Name
	}
	switch n.Type {
	case graph.Wait:
		if n.Until != nil {
			s := "Wait until " + n.Until.Time
			if len(n.Until.Weekdays) > 0 {
				s += " on " + strings.Join(n.Until.Weekdays, ", ")
			}
			return s
		}
		return "Wait " + n.Duration
	case graph.WaitForEvent:
		return fmt.Sprintf("Wait up to %s for %s", n.Timeout, n.Event)
	case graph.Branch:
		return "Branch"
	case graph.Send:
		return "Send by " + strings.Join(n.Channels, " or ")
	case graph.Split:
		return "A/B split"
	case graph.Holdout:
		return fmt.Sprintf("Hold out %g%%", n.Percent)
	case graph.Update:
		return "Update the customer"
	case graph.Webhook:
		return "Call a webhook"
	case graph.Notify:
		return "Notify staff"
	case graph.Exit:
		return "Exit"
	}
	return id
}

// RunState is where a run is, in words: "waiting for order.placed until
// 2026-11-30T14:05:00Z", "waiting until …", "due now", "completed",
// "exited: goal".
func RunState(r Run) string {
	due := ""
	if t := parseT(r.DueAt); !t.IsZero() {
		due = t.UTC().Format(time.RFC3339)
	}
	switch r.Status {
	case RunWaiting:
		switch {
		case r.WaitEvent != "" && due != "":
			return "waiting for " + r.WaitEvent + " until " + due
		case r.WaitEvent != "":
			return "waiting for " + r.WaitEvent
		case due != "":
			return "waiting until " + due
		}
		return "waiting"
	case RunActive:
		if due != "" {
			return "due at " + due
		}
		return "due now"
	case RunCompleted:
		return "completed"
	case RunExited:
		return "exited: " + r.ExitReason
	}
	return r.Status
}
