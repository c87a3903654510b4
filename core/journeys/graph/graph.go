// Package graph is a journey's definition: the JSON graph an owner builds
// (trigger, goal, exit rules, steps and their exits), its parsing and its
// validation with errors that name the node. It is pure: the engine, the
// backtest, the API and the recipes all read journeys through it.
//
// The format is in docs/journeys.md; a minimal graph:
//
//	{"trigger": {"event": "checkout.started", "where": {"property": "total", "op": "gt", "value": 50}},
//	 "goal": {"event": "order.placed", "within": "7d", "exit": true},
//	 "start": "w1",
//	 "nodes": {
//	   "w1": {"type": "wait_for_event", "event": "order.placed", "timeout": "1h",
//	          "next": {"happened": "end", "timed_out": "s1"}},
//	   "s1": {"type": "send", "channels": ["whatsapp", "email"], "template": "<template id>",
//	          "kind": "marketing", "next": {"sent": "end", "suppressed": "end"}},
//	   "end": {"type": "exit"}}}
package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/omni/omni/core/segmentrule"
)

// Node types.
const (
	Wait         = "wait"
	WaitForEvent = "wait_for_event"
	Branch       = "branch"
	Send         = "send"
	Split        = "split"   // A/B: weighted arms
	Holdout      = "holdout" // a share that gets nothing, for lift
	Update       = "update"  // set traits, add or remove tags
	Webhook      = "webhook"
	Notify       = "notify" // tell staff / open an inbox conversation
	Exit         = "exit"
)

// Exits of the node types (split's exits are its arms' names).
var Exits = map[string][]string{
	Wait:         {"next"},
	WaitForEvent: {"happened", "timed_out"},
	Branch:       {"yes", "no"},
	Send:         {"sent", "suppressed"},
	Holdout:      {"held_out", "continue"},
	Update:       {"next"},
	Webhook:      {"ok", "failed"},
	Notify:       {"next"},
	Exit:         {},
}

// Graph is one version of a journey.
type Graph struct {
	Trigger Trigger          `json:"trigger"`
	Goal    *Goal            `json:"goal,omitempty"`
	ExitOn  *ExitOn          `json:"exit_when,omitempty"`
	Start   string           `json:"start"`
	Nodes   map[string]*Node `json:"nodes"`
	// Layout is where the builder drew each node; the engine ignores it.
	Layout map[string]Position `json:"layout,omitempty"`
}

// Position of a node on the canvas.
type Position struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// Trigger says who enters: exactly one of an event (with a condition on
// its properties), entering or leaving a segment, a date trait relative to
// today, or manual (API or admin) enrolment only. Any journey also takes
// manual enrolments.
type Trigger struct {
	Event   string       `json:"event,omitempty"`
	Where   *Where       `json:"where,omitempty"`
	Segment string       `json:"segment,omitempty"`
	On      string       `json:"on,omitempty"` // "enter" (default) or "exit", with Segment
	Date    *DateTrigger `json:"date,omitempty"`
	Manual  bool         `json:"manual,omitempty"`
}

// DateTrigger enters customers whose date trait, moved by Offset, falls on
// today in their time zone ("birthday", yearly; "last_order_at" with
// offset "90d": 90 days after the last order), at At o'clock.
type DateTrigger struct {
	Property string `json:"property"`
	Offset   string `json:"offset,omitempty"` // "90d", "-7d"; default 0
	Yearly   bool   `json:"yearly,omitempty"` // match month and day only
	At       string `json:"at,omitempty"`     // "09:00" (default) in the customer's time zone
}

// Goal is the conversion a journey is for: an event within Within of
// entering, attributed to the run; Exit ends the run when it happens
// ("stop as soon as they buy"). Revenue is read from ValueProperty
// (default "total").
type Goal struct {
	Event         string `json:"event"`
	Where         *Where `json:"where,omitempty"`
	Within        string `json:"within"`
	Exit          bool   `json:"exit,omitempty"`
	ValueProperty string `json:"value_property,omitempty"`
}

// ExitOn ends a run early: when the customer leaves Segment, or
// unsubscribes from any channel (Unsubscribed).
type ExitOn struct {
	Segment      string `json:"segment,omitempty"`
	Unsubscribed bool   `json:"unsubscribed,omitempty"`
}

// Node is one step. Which fields apply depends on Type (see the
// constants); Next maps each exit to the node it leads to. A missing exit
// ends the run there, like an exit node.
type Node struct {
	Type string `json:"type"`
	Name string `json:"name,omitempty"` // the owner's label

	// wait
	Duration string `json:"duration,omitempty"`
	Until    *Until `json:"until,omitempty"`

	// wait_for_event (Event, Where, Match, Timeout)
	Event string `json:"event,omitempty"`
	Where *Where `json:"where,omitempty"`
	// Match lists properties that must be equal on the awaited event and
	// the event that started the run (e.g. "checkout_id": the same cart).
	Match   []string `json:"match,omitempty"`
	Timeout string   `json:"timeout,omitempty"`

	// branch: Rule is the segment rule language over the customer
	// (traits, events, consent, tags, segments); Where tests the event
	// that started the run. Both given: both must hold.
	Rule json.RawMessage `json:"rule,omitempty"`

	// send
	Channels   []string    `json:"channels,omitempty"`
	Template   string      `json:"template,omitempty"`
	Kind       string      `json:"kind,omitempty"` // marketing (default), transactional
	WATemplate *WATemplate `json:"wa_template,omitempty"`

	// split
	Arms []Arm `json:"arms,omitempty"`

	// holdout
	Percent float64 `json:"percent,omitempty"`

	// update
	Set        map[string]any `json:"set,omitempty"`
	AddTags    []string       `json:"add_tags,omitempty"`
	RemoveTags []string       `json:"remove_tags,omitempty"`

	// webhook
	URL string `json:"url,omitempty"`

	// notify: Message for staff; OpenConversation hands the customer to a
	// person (an inbox conversation with the journey's context attached).
	Message          string `json:"message,omitempty"`
	OpenConversation bool   `json:"open_conversation,omitempty"`

	Next Next `json:"next,omitempty"`
}

// Until waits until a time of day, on one of Weekdays if given, in the
// customer's time zone.
type Until struct {
	Time     string   `json:"time"`               // "09:00"
	Weekdays []string `json:"weekdays,omitempty"` // "mon", "tue", …
}

// WATemplate is a WhatsApp approved template.
type WATemplate struct {
	Name     string   `json:"name"`
	Language string   `json:"language"`
	Params   []string `json:"params,omitempty"`
}

// Arm is one side of an A/B split.
type Arm struct {
	Name   string  `json:"name"`
	Weight float64 `json:"weight"`
}

// Next maps exits to node ids. In JSON it is an object, or a string for a
// node with one exit ("next": "s2" is {"next": "s2"}).
type Next map[string]string

func (n *Next) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*n = Next{"next": s}
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("next must map each exit to a node id, such as {\"sent\": \"w2\", \"suppressed\": \"end\"}")
	}
	*n = m
	return nil
}

// Problem is one thing wrong with a graph: the node it is on ("" for the
// graph's trigger, goal or start) and the field.
type Problem struct {
	Node    string `json:"node,omitempty"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p Problem) Error() string {
	if p.Node != "" {
		return fmt.Sprintf("node %q: %s: %s", p.Node, p.Field, p.Message)
	}
	return p.Field + ": " + p.Message
}

// Problems is every problem found, in a stable order.
type Problems []Problem

func (ps Problems) Error() string {
	if len(ps) == 0 {
		return "no problems"
	}
	if len(ps) == 1 {
		return ps[0].Error()
	}
	return fmt.Sprintf("%s (and %d more)", ps[0].Error(), len(ps)-1)
}

// Parse decodes a graph without judging it (see Validate).
func Parse(raw []byte) (*Graph, error) {
	var g Graph
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, Problems{{Field: "graph", Message: "is not a journey graph: " + strings.TrimPrefix(err.Error(), "json: ")}}
	}
	if g.Nodes == nil {
		g.Nodes = map[string]*Node{}
	}
	return &g, nil
}

var (
	nodeIDRE    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	eventTypeRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$`)
	clockRE     = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	weekdays    = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
		"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}
	channels = map[string]bool{"email": true, "sms": true, "whatsapp": true}
)

// MaxNodes bounds a graph's size.
const MaxNodes = 200

// Validate checks the whole graph and returns every problem found (nil if
// none). It checks shape only: that templates and segments exist is for the
// caller, which knows the database.
func (g *Graph) Validate() Problems {
	var ps Problems
	add := func(node, field, format string, args ...any) {
		ps = append(ps, Problem{Node: node, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	g.checkTrigger(add)
	if gl := g.Goal; gl != nil {
		if !eventTypeRE.MatchString(gl.Event) {
			add("", "goal.event", "must be an event type such as order.placed")
		}
		if _, err := ParseDuration(gl.Within); err != nil {
			add("", "goal.within", "%v", err)
		}
		if err := gl.Where.check("goal.where"); err != nil {
			add("", "goal.where", "%v", err)
		}
	}
	if e := g.ExitOn; e != nil && e.Segment == "" && !e.Unsubscribed {
		add("", "exit_when", "names no rule: set segment or unsubscribed, or leave it out")
	}
	if len(g.Nodes) == 0 {
		add("", "nodes", "a journey needs at least one step")
		return ps
	}
	if len(g.Nodes) > MaxNodes {
		add("", "nodes", "has %d steps; a journey has at most %d", len(g.Nodes), MaxNodes)
		return ps
	}
	if g.Start == "" {
		add("", "start", "is required: the id of the first step")
	} else if g.Nodes[g.Start] == nil {
		add("", "start", "names no step: %q", g.Start)
	}
	for _, id := range sortedKeys(g.Nodes) {
		n := g.Nodes[id]
		if !nodeIDRE.MatchString(id) {
			add(id, "id", "must be 1–64 letters, digits, _ or -")
		}
		if n == nil {
			add(id, "type", "the step is empty")
			continue
		}
		g.checkNode(id, n, add)
	}
	if len(ps) == 0 {
		g.checkLoops(add)
		for _, id := range g.Unreachable() {
			add(id, "id", "no step leads here: connect it or delete it")
		}
	}
	return ps
}

func (g *Graph) checkTrigger(add func(node, field, format string, args ...any)) {
	t := g.Trigger
	kinds := 0
	for _, b := range []bool{t.Event != "", t.Segment != "", t.Date != nil, t.Manual} {
		if b {
			kinds++
		}
	}
	if kinds != 1 {
		add("", "trigger", "must be exactly one of event, segment, date or manual")
		return
	}
	switch {
	case t.Event != "":
		if !eventTypeRE.MatchString(t.Event) {
			add("", "trigger.event", "must be an event type such as checkout.started")
		}
		if err := t.Where.check("trigger.where"); err != nil {
			add("", "trigger.where", "%v", err)
		}
	case t.Segment != "":
		if t.On != "" && t.On != "enter" && t.On != "exit" {
			add("", "trigger.on", "must be enter or exit")
		}
	case t.Date != nil:
		if !segmentrule.ValidTraitName(t.Date.Property) {
			add("", "trigger.date.property", "must be a date trait such as birthday or last_order_at")
		}
		if t.Date.Offset != "" {
			off := strings.TrimPrefix(t.Date.Offset, "-")
			if d, err := ParseDuration(off); err != nil || d%Day != 0 {
				add("", "trigger.date.offset", "must be a whole number of days such as 90d or -7d")
			}
		}
		if t.Date.At != "" && !clockRE.MatchString(t.Date.At) {
			add("", "trigger.date.at", "must be a time of day such as 09:00")
		}
	}
	if t.Where != nil && t.Event == "" {
		add("", "trigger.where", "applies to event triggers only")
	}
}

func (g *Graph) checkNode(id string, n *Node, add func(node, field, format string, args ...any)) {
	exits, known := Exits[n.Type]
	if n.Type == Split {
		known = true
		exits = nil
		total := 0.0
		seen := map[string]bool{}
		if len(n.Arms) < 2 {
			add(id, "arms", "a split needs at least two arms")
		}
		for i, a := range n.Arms {
			if !nodeIDRE.MatchString(a.Name) || seen[a.Name] {
				add(id, fmt.Sprintf("arms[%d].name", i), "must be a unique short name such as a or b")
			}
			if a.Weight <= 0 {
				add(id, fmt.Sprintf("arms[%d].weight", i), "must be more than 0")
			}
			seen[a.Name] = true
			total += a.Weight
			exits = append(exits, a.Name)
		}
	}
	if !known {
		add(id, "type", "%q is not a step type (wait, wait_for_event, branch, send, split, holdout, update, webhook, notify, exit)", n.Type)
		return
	}
	switch n.Type {
	case Wait:
		switch {
		case n.Duration != "" && n.Until != nil:
			add(id, "duration", "give a duration or until, not both")
		case n.Duration != "":
			if _, err := ParseDuration(n.Duration); err != nil {
				add(id, "duration", "%v", err)
			}
		case n.Until != nil:
			if !clockRE.MatchString(n.Until.Time) {
				add(id, "until.time", "must be a time of day such as 09:00")
			}
			for i, d := range n.Until.Weekdays {
				if _, ok := weekdays[strings.ToLower(d)]; !ok {
					add(id, fmt.Sprintf("until.weekdays[%d]", i), "%q is not a weekday (mon, tue, wed, thu, fri, sat, sun)", d)
				}
			}
		default:
			add(id, "duration", "a wait needs a duration (such as 1h or 3d) or until a time of day")
		}
	case WaitForEvent:
		if !eventTypeRE.MatchString(n.Event) {
			add(id, "event", "must be an event type such as order.placed")
		}
		if _, err := ParseDuration(n.Timeout); err != nil {
			add(id, "timeout", "%v", err)
		}
		if err := n.Where.check("where"); err != nil {
			add(id, "where", "%v", err)
		}
		for i, p := range n.Match {
			if !propertyRE.MatchString(p) {
				add(id, fmt.Sprintf("match[%d]", i), "%q is not a property name", p)
			}
		}
		if len(n.Match) > 0 && g.Trigger.Event == "" {
			add(id, "match", "needs an event trigger: it compares with the event that started the run")
		}
	case Branch:
		if len(n.Rule) == 0 && n.Where == nil {
			add(id, "rule", "a branch needs a rule on the customer or a where on the trigger event")
		}
		if len(n.Rule) > 0 {
			if _, err := segmentrule.ParseRule(n.Rule); err != nil {
				add(id, "rule", "%v", err)
			}
		}
		if err := n.Where.check("where"); err != nil {
			add(id, "where", "%v", err)
		}
	case Send:
		if len(n.Channels) == 0 {
			add(id, "channels", "pick at least one channel: email, sms or whatsapp (several are tried in order)")
		}
		seen := map[string]bool{}
		for i, c := range n.Channels {
			if !channels[c] || seen[c] {
				add(id, fmt.Sprintf("channels[%d]", i), "%q: each channel once, of email, sms or whatsapp", c)
			}
			seen[c] = true
		}
		if n.Template == "" && n.WATemplate == nil {
			add(id, "template", "pick a template")
		}
		switch n.Kind {
		case "", "marketing", "transactional":
		default:
			add(id, "kind", "must be marketing or transactional")
		}
	case Holdout:
		if n.Percent <= 0 || n.Percent >= 100 {
			add(id, "percent", "must be between 0 and 100 (exclusive)")
		}
	case Update:
		if len(n.Set) == 0 && len(n.AddTags) == 0 && len(n.RemoveTags) == 0 {
			add(id, "set", "an update needs a trait to set or a tag to add or remove")
		}
		for k := range n.Set {
			if !segmentrule.ValidTraitName(k) {
				add(id, "set."+k, "is not a trait name")
			}
		}
	case Webhook:
		if !strings.HasPrefix(n.URL, "https://") && !strings.HasPrefix(n.URL, "http://") {
			add(id, "url", "must be an http(s) URL")
		}
	case Notify:
		if strings.TrimSpace(n.Message) == "" {
			add(id, "message", "tell staff what to do")
		}
	}
	allowed := map[string]bool{}
	for _, e := range exits {
		allowed[e] = true
	}
	for _, e := range sortedKeys(n.Next) {
		to := n.Next[e]
		switch {
		case !allowed[e] && len(exits) == 0:
			add(id, "next", "an exit step leads nowhere")
		case !allowed[e]:
			add(id, "next."+e, "%q is not an exit of a %s step (%s)", e, n.Type, strings.Join(exits, ", "))
		case to != "" && g.Nodes[to] == nil:
			add(id, "next."+e, "leads to %q, which is not a step", to)
		}
	}
}

// checkLoops refuses a cycle with no wait in it: a run would spin.
func (g *Graph) checkLoops(add func(node, field, format string, args ...any)) {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var visit func(id string) bool
	visit = func(id string) bool {
		n := g.Nodes[id]
		if n == nil || n.Type == Wait || n.Type == WaitForEvent {
			return false
		}
		switch state[id] {
		case onPath:
			add(id, "next", "is part of a loop with no wait in it")
			return true
		case done:
			return false
		}
		state[id] = onPath
		for _, e := range sortedKeys(n.Next) {
			if visit(n.Next[e]) {
				return true
			}
		}
		state[id] = done
		return false
	}
	for _, id := range sortedKeys(g.Nodes) {
		if visit(id) {
			return
		}
	}
}

// Unreachable lists steps no path from the start reaches.
func (g *Graph) Unreachable() []string {
	seen := map[string]bool{}
	var walk func(id string)
	walk = func(id string) {
		if seen[id] || g.Nodes[id] == nil {
			return
		}
		seen[id] = true
		for _, to := range g.Nodes[id].Next {
			walk(to)
		}
	}
	walk(g.Start)
	var out []string
	for _, id := range sortedKeys(g.Nodes) {
		if !seen[id] {
			out = append(out, id)
		}
	}
	return out
}

// Weekday reads a weekday name ("mon").
func Weekday(s string) (time.Weekday, bool) {
	d, ok := weekdays[strings.ToLower(s)]
	return d, ok
}

// NextUntil is the first time at or after from that is u's time of day (on
// one of its weekdays) in loc.
func NextUntil(u *Until, from time.Time, loc *time.Location) time.Time {
	var hh, mm int
	fmt.Sscanf(u.Time, "%d:%d", &hh, &mm)
	t := from.In(loc)
	for i := 0; i < 8; i++ {
		d := t.AddDate(0, 0, i)
		at := time.Date(d.Year(), d.Month(), d.Day(), hh, mm, 0, 0, loc)
		if at.Before(from) {
			continue
		}
		if len(u.Weekdays) == 0 {
			return at
		}
		for _, w := range u.Weekdays {
			if wd, ok := Weekday(w); ok && wd == at.Weekday() {
				return at
			}
		}
	}
	return from
}
