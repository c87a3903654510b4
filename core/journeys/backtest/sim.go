package backtest

import (
	"container/heap"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/journeys/graph"
)

// Reasons an enrolment is skipped: the words the engine's enrol uses.
const (
	SkipActive  = "already in this journey"
	SkipReentry = "has been in this journey before (re-entry rule)"
)

// Reasons a simulated send is suppressed, and the hold of quiet hours.
const (
	NoConnector    = "no_connector"
	NoAddress      = "no_address"
	Undeliverable  = "undeliverable"
	Consent        = "consent"
	WhatsAppWindow = "whatsapp_window"
	FrequencyCap   = "frequency_cap"
	QuietHours     = "quiet_hours"
)

// whatsappWindow is how long after a customer's last WhatsApp message a
// free-form WhatsApp message may go (the gate's rule).
const whatsappWindow = 24 * time.Hour

// run is one simulated pass of a customer through the journey.
type run struct {
	id        string
	cust      *customer
	node      string
	entered   time.Time
	trigger   map[string]any // the triggering event's properties
	triggerID string
	goalUntil time.Time // zero: no goal
	reached   bool
	ended     bool
	// gen invalidates a timer set before the run moved on.
	gen     int
	waitFor *graph.Node // the wait_for_event step it waits at
	arms    map[string]string
	holdout string // "held_out" or "treated" once a holdout step decided
}

// customer is one customer's state in the simulation.
type customer struct {
	id          string
	active      *run
	runs        []*run // runs whose goal window may still be open
	entries     int
	lastEntered time.Time
	sends       []time.Time // simulated marketing sends, for the cap
	lastWA      time.Time   // last WhatsApp message from them
	consent     map[string]string
	loaded      bool
	info        *Customer
	seen        bool // had an event or an entry in the window
}

type timer struct {
	at    time.Time
	seq   uint64
	r     *run
	gen   int
	entry *Entry
}

type timers []*timer

func (h timers) Len() int { return len(h) }
func (h timers) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h timers) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timers) Push(x any)   { *h = append(*h, x.(*timer)) }
func (h *timers) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

type sim struct {
	in        Input
	g         *graph.Graph
	goal      time.Duration
	cooldown  time.Duration
	maxSteps  int
	customers map[string]*customer
	timers    timers
	seq       uint64
	res       *Result
	// revenue by currency and how many goal events were in each
	currencyCount map[string]int
}

// Run replays in and returns what the journey would have done.
func Run(ctx context.Context, in Input) (*Result, error) {
	if in.Graph == nil {
		return nil, fmt.Errorf("backtest: no graph")
	}
	if in.Graph.Trigger.Manual {
		return nil, ErrManual
	}
	if !in.From.Before(in.To) {
		return nil, fmt.Errorf("backtest: from must be before to")
	}
	if in.Clock == nil {
		in.Clock = time.Now
	}
	if in.ProgressEvery <= 0 {
		in.ProgressEvery = 2 * time.Second
	}
	if in.Settings == nil {
		in.Settings = &graph.Settings{}
		in.Settings.Defaults()
	}
	if in.Rules.ShopTZ == nil {
		in.Rules.ShopTZ = time.UTC
	}
	started := in.Clock()
	s := &sim{in: in, g: in.Graph, customers: map[string]*customer{}, maxSteps: 4*len(in.Graph.Nodes) + 8,
		currencyCount: map[string]int{},
		res: &Result{Nodes: map[string]*NodeResult{}, Edges: map[string]int{}, Skipped: map[string]int{}, Ended: map[string]int{},
			Arms: map[string]map[string]*Group{}, Holdout: map[string]*Group{},
			Goal:      GoalResult{RevenueByCurrency: map[string]float64{}},
			Simulated: Simulated{From: in.From.UTC(), To: in.To.UTC()}}}
	for id := range in.Graph.Nodes {
		s.node(id)
	}
	if in.Graph.Goal != nil {
		s.goal, _ = graph.ParseDuration(in.Graph.Goal.Within)
	}
	if in.Settings.Reentry == "cooldown" {
		s.cooldown, _ = graph.ParseDuration(in.Settings.Cooldown)
	}
	for i := range in.Entries {
		e := &in.Entries[i]
		if !e.At.Before(in.From) && e.At.Before(in.To) {
			s.push(&timer{at: e.At, entry: e})
		}
	}

	span := in.To.Sub(in.From)
	nextTenth, lastReport := 0.1, in.Clock()
	report := func(at time.Time, force bool) {
		if in.Progress == nil {
			return
		}
		frac := float64(at.Sub(in.From)) / float64(span)
		now := in.Clock()
		if force || frac >= nextTenth || now.Sub(lastReport) >= in.ProgressEvery {
			for nextTenth <= frac {
				nextTenth += 0.1
			}
			lastReport = now
			in.Progress(Progress{Fraction: min(max(frac, 0), 1), Events: s.res.Simulated.Events})
		}
	}

	n := 0
	if in.Events != nil {
		for ev, err := range in.Events {
			if err != nil {
				return nil, err
			}
			n++
			if n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			if !ev.At.Before(in.To) {
				break
			}
			if ev.At.Before(in.From) {
				// Before the window only a WhatsApp message matters: it
				// opens the 24-hour window for the window's first day.
				if ev.Type == "message.received" && ev.Channel == "whatsapp" && ev.Profile != "" {
					s.cust(ev.Profile).lastWA = ev.At
				}
				continue
			}
			if err := s.fire(ev.At); err != nil {
				return nil, err
			}
			if err := s.handle(ev); err != nil {
				return nil, err
			}
			s.res.Simulated.Events++
			if n%256 == 0 {
				report(ev.At, false)
			}
		}
	}
	if err := s.fire(in.To.Add(-time.Nanosecond)); err != nil {
		return nil, err
	}
	s.finish()
	report(in.To, true)
	s.res.ElapsedMS = in.Clock().Sub(started).Milliseconds()
	return s.res, nil
}

func (s *sim) push(t *timer) {
	s.seq++
	t.seq = s.seq
	heap.Push(&s.timers, t)
}

// fire runs every timer due at or before at, in time order.
func (s *sim) fire(at time.Time) error {
	for len(s.timers) > 0 && !s.timers[0].at.After(at) {
		t := heap.Pop(&s.timers).(*timer)
		if t.entry != nil {
			c := s.cust(t.entry.Profile)
			c.seen = true
			if err := s.enrol(c, t.at, nil); err != nil {
				return err
			}
			continue
		}
		r := t.r
		if r.ended || r.gen != t.gen {
			continue
		}
		exit := "next"
		if r.waitFor != nil {
			exit, r.waitFor = "timed_out", nil
		}
		if err := s.resume(r, exit, t.at); err != nil {
			return err
		}
	}
	return nil
}

func (s *sim) node(id string) *NodeResult {
	nr := s.res.Nodes[id]
	if nr == nil {
		nr = &NodeResult{Exits: map[string]int{}, Ended: map[string]int{}, Suppressed: map[string]int{},
			WouldSend: map[string]int{}, Held: map[string]int{}}
		s.res.Nodes[id] = nr
	}
	return nr
}

func (s *sim) cust(id string) *customer {
	c := s.customers[id]
	if c == nil {
		c = &customer{id: id}
		s.customers[id] = c
	}
	return c
}

// info loads what the gate reads of the customer, once.
func (s *sim) info(c *customer) (*Customer, error) {
	if !c.loaded {
		cu, err := s.in.Lookups.Customer(c.id)
		if err != nil {
			return nil, fmt.Errorf("backtest: customer %s: %w", c.id, err)
		}
		if cu == nil {
			cu = &Customer{}
		}
		c.info, c.loaded = cu, true
	}
	return c.info, nil
}

// handle applies one event: state it changes (consent, the WhatsApp
// window), then goals, exit rules, awaited events and the trigger, in
// that order, so a purchase during a wait exits by the goal first.
func (s *sim) handle(ev Event) error {
	if ev.Profile == "" {
		return nil
	}
	c := s.cust(ev.Profile)
	c.seen = true
	switch ev.Type {
	case "consent.changed":
		ch, st := consentChange(ev)
		if (ch == "email" || ch == "sms" || ch == "whatsapp") && (st == "subscribed" || st == "unsubscribed") {
			if c.consent == nil {
				c.consent = map[string]string{}
			}
			c.consent[ch] = st
		}
	case "message.received":
		if ev.Channel == "whatsapp" {
			c.lastWA = ev.At
		}
	}
	g := s.g
	if g.Goal != nil && ev.Type == g.Goal.Event && g.Goal.Where.Match(ev.Props) {
		s.reachGoal(c, ev)
	}
	if r := c.active; r != nil && g.ExitOn != nil {
		switch {
		case g.ExitOn.Segment != "" && ev.Type == "segment.exited" && ev.Props["segment_id"] == g.ExitOn.Segment:
			s.end(r, "left_segment", ev.At)
		case g.ExitOn.Unsubscribed && ev.Type == "consent.changed" && consentStatus(ev) == "unsubscribed":
			s.end(r, "unsubscribed", ev.At)
		}
	}
	if r := c.active; r != nil && r.waitFor != nil && awaited(r, ev) {
		r.waitFor = nil
		if err := s.resume(r, "happened", ev.At); err != nil {
			return err
		}
	}
	if s.triggers(ev) {
		return s.enrol(c, ev.At, &ev)
	}
	return nil
}

// consentChange reads a consent.changed event as the profiles module does
// (trimmed, lower case).
func consentChange(ev Event) (channel, status string) {
	ch, _ := ev.Props["channel"].(string)
	return strings.ToLower(strings.TrimSpace(ch)), consentStatus(ev)
}

func consentStatus(ev Event) string {
	st, _ := ev.Props["status"].(string)
	return strings.ToLower(strings.TrimSpace(st))
}

// awaited reports whether ev is what r's wait_for_event step waits for.
func awaited(r *run, ev Event) bool {
	n := r.waitFor
	if ev.Type != n.Event || !n.Where.Match(ev.Props) {
		return false
	}
	for _, p := range n.Match {
		a, ok1 := graph.Lookup(r.trigger, p)
		b, ok2 := graph.Lookup(ev.Props, p)
		if !ok1 || !ok2 || !same(a, b) {
			return false
		}
	}
	return true
}

// same compares two property values: as numbers when both read as
// numbers ("129.00" and 129), else as text.
func same(a, b any) bool {
	if x, ok := graph.Number(a); ok {
		if y, ok := graph.Number(b); ok {
			return x == y
		}
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func (s *sim) triggers(ev Event) bool {
	t := s.g.Trigger
	switch {
	case t.Event != "":
		return ev.Type == t.Event && t.Where.Match(ev.Props)
	case t.Segment != "":
		want := "segment.entered"
		if t.On == "exit" {
			want = "segment.exited"
		}
		return ev.Type == want && ev.Props["segment_id"] == t.Segment
	}
	return false
}

// enrol starts a run unless the customer is inside already or the
// re-entry setting refuses, as the engine's enrol does.
func (s *sim) enrol(c *customer, at time.Time, ev *Event) error {
	switch {
	case c.active != nil:
		s.res.Skipped[SkipActive]++
		return nil
	case c.entries > 0 && s.in.Settings.Reentry == "once":
		s.res.Skipped[SkipReentry]++
		return nil
	case c.entries > 0 && s.in.Settings.Reentry == "cooldown" && at.Before(c.lastEntered.Add(s.cooldown)):
		s.res.Skipped[SkipReentry]++
		return nil
	}
	c.entries++
	c.lastEntered = at
	r := &run{id: fmt.Sprintf("backtest-%s-%d", c.id, c.entries), cust: c, entered: at}
	if ev != nil {
		r.trigger, r.triggerID = ev.Props, ev.ID
	}
	if s.goal > 0 {
		r.goalUntil = at.Add(s.goal)
		// Keep only runs whose goal window is still open.
		open := c.runs[:0]
		for _, o := range c.runs {
			if !o.reached && !at.After(o.goalUntil) {
				open = append(open, o)
			}
		}
		c.runs = append(open, r)
	}
	c.active = r
	s.res.Entered++
	return s.walk(r, s.g.Start, at)
}

// walk moves r into node and on through every step that does not wait.
func (s *sim) walk(r *run, node string, now time.Time) error {
	for steps := 0; ; steps++ {
		n := s.g.Nodes[node]
		if n == nil || steps > s.maxSteps {
			reason := "end"
			if n != nil {
				reason = "failed"
			}
			s.end(r, reason, now)
			return nil
		}
		r.node = node
		s.node(node).Entered++
		exit, waits, err := s.step(r, node, n, now)
		if err != nil {
			return err
		}
		if waits {
			return nil
		}
		if n.Type == graph.Exit {
			s.end(r, "end", now)
			return nil
		}
		next := s.leave(r, node, n, exit)
		if next == "" {
			s.end(r, "end", now)
			return nil
		}
		node = next
	}
}

// resume moves a waiting run on by exit.
func (s *sim) resume(r *run, exit string, now time.Time) error {
	r.gen++
	n := s.g.Nodes[r.node]
	next := s.leave(r, r.node, n, exit)
	if next == "" {
		s.end(r, "end", now)
		return nil
	}
	return s.walk(r, next, now)
}

// leave counts the exit taken and returns the step it leads to.
func (s *sim) leave(r *run, node string, n *graph.Node, exit string) string {
	s.node(node).Exits[exit]++
	s.res.Edges[node+"."+exit]++
	return n.Next[exit]
}

func (s *sim) end(r *run, reason string, now time.Time) {
	if r.ended {
		return
	}
	r.ended, r.waitFor = true, nil
	r.gen++
	if r.cust.active == r {
		r.cust.active = nil
	}
	s.res.Ended[reason]++
	if reason != "end" {
		s.node(r.node).Ended[reason]++
	}
}

// step runs one step: the exit it takes now, or waits (a timer or an
// event moves the run on).
func (s *sim) step(r *run, id string, n *graph.Node, now time.Time) (string, bool, error) {
	switch n.Type {
	case graph.Wait:
		at := now
		if n.Duration != "" {
			d, _ := graph.ParseDuration(n.Duration)
			at = now.Add(d)
		} else if n.Until != nil {
			cu, err := s.info(r.cust)
			if err != nil {
				return "", false, err
			}
			at = graph.NextUntil(n.Until, now, s.location(cu))
		}
		s.push(&timer{at: at, r: r, gen: r.gen})
		return "", true, nil
	case graph.WaitForEvent:
		d, _ := graph.ParseDuration(n.Timeout)
		r.waitFor = n
		s.push(&timer{at: now.Add(d), r: r, gen: r.gen})
		return "", true, nil
	case graph.Branch:
		ok := n.Where.Match(r.trigger)
		if ok && len(n.Rule) > 0 {
			var err error
			if ok, err = s.in.Lookups.Branch(n.Rule, r.cust.id, now); err != nil {
				return "", false, fmt.Errorf("backtest: step %s: %w", id, err)
			}
		}
		if ok {
			return "yes", false, nil
		}
		return "no", false, nil
	case graph.Send:
		exit, err := s.send(r, id, n, now)
		return exit, false, err
	case graph.Split:
		arm := graph.PickArm(n.Arms, graph.Bucket(r.id, id))
		if r.arms == nil {
			r.arms = map[string]string{}
		}
		r.arms[id] = arm
		s.group(&s.res.Arms, id, arm).Entered++
		return arm, false, nil
	case graph.Holdout:
		exit, side := "continue", "treated"
		if graph.Bucket(r.id, id) < n.Percent {
			exit, side = "held_out", "held_out"
		}
		if r.holdout == "" {
			r.holdout = side
			s.holdoutGroup(side).Entered++
		}
		return exit, false, nil
	case graph.Webhook:
		return "ok", false, nil
	case graph.Update, graph.Notify:
		return "next", false, nil
	}
	return "", false, nil // exit
}

func (s *sim) group(arms *map[string]map[string]*Group, node, arm string) *Group {
	byArm := (*arms)[node]
	if byArm == nil {
		byArm = map[string]*Group{}
		(*arms)[node] = byArm
	}
	g := byArm[arm]
	if g == nil {
		g = &Group{Revenue: map[string]float64{}}
		byArm[arm] = g
	}
	return g
}

func (s *sim) holdoutGroup(side string) *Group {
	g := s.res.Holdout[side]
	if g == nil {
		g = &Group{Revenue: map[string]float64{}}
		s.res.Holdout[side] = g
	}
	return g
}

func (s *sim) location(cu *Customer) *time.Location {
	if cu != nil && cu.Location != nil {
		return cu.Location
	}
	return s.in.Rules.ShopTZ
}

// send decides a send as the gate would at now: the first channel that
// passes, then the frequency cap (marketing); quiet hours only hold it.
func (s *sim) send(r *run, id string, n *graph.Node, now time.Time) (string, error) {
	nr := s.node(id)
	c := r.cust
	var tpl Template
	if n.Template != "" {
		tpl, _ = s.in.Lookups.Template(n.Template)
	}
	kind := n.Kind
	if kind == "" {
		kind = tpl.Kind
	}
	marketing := kind != "transactional" && kind != "conversation"
	waTemplate := n.WATemplate != nil || tpl.WATemplate
	cu, err := s.info(c)
	if err != nil {
		return "", err
	}
	chosen, reason := "", ""
	for _, ch := range n.Channels {
		if why := s.refusal(c, cu, ch, marketing, waTemplate, now); why != "" {
			reason = why
			continue
		}
		chosen = ch
		break
	}
	if chosen == "" {
		nr.Suppressed[reason]++
		return "suppressed", nil
	}
	if marketing {
		if s.capReached(c, now) {
			nr.Suppressed[FrequencyCap]++
			return "suppressed", nil
		}
		c.sends = append(c.sends, now)
		if _, quiet := config.QuietEnd(now.In(s.location(cu)), s.in.Rules.QuietFrom, s.in.Rules.QuietTo); quiet {
			nr.Held[QuietHours]++
		}
	}
	nr.WouldSend[chosen]++
	return "sent", nil
}

// refusal is why channel ch cannot carry the message now ("" if it can),
// checked in the gate's order.
func (s *sim) refusal(c *customer, cu *Customer, ch string, marketing, waTemplate bool, now time.Time) string {
	if !s.in.Rules.Connected[ch] {
		return NoConnector
	}
	var addr string
	switch ch {
	case "email":
		addr = cu.Email
	case "sms":
		addr = cu.Phone
	case "whatsapp":
		addr = cu.WhatsApp
	}
	if addr == "" {
		return NoAddress
	}
	if s.in.Rules.Undeliverable[ch+"\x00"+addr] {
		return Undeliverable
	}
	if marketing {
		st, ok := c.consent[ch]
		if !ok {
			st = cu.Consent[ch]
		}
		if st != "subscribed" {
			return Consent
		}
	}
	if ch == "whatsapp" && !waTemplate && (c.lastWA.IsZero() || now.Sub(c.lastWA) >= whatsappWindow) {
		return WhatsAppWindow
	}
	return ""
}

// capReached applies the frequency caps to this journey's simulated
// marketing sends to the customer.
func (s *sim) capReached(c *customer, now time.Time) bool {
	var longest time.Duration
	for _, cp := range s.in.Rules.Caps {
		longest = max(longest, cp.Period)
		since := now.Add(-cp.Period)
		n := 0
		for _, t := range c.sends {
			if !t.Before(since) {
				n++
			}
		}
		if n >= cp.Count {
			return true
		}
	}
	// Forget sends no cap looks back to.
	keep := c.sends[:0]
	for _, t := range c.sends {
		if !t.Before(now.Add(-longest)) {
			keep = append(keep, t)
		}
	}
	c.sends = keep
	return false
}

// reachGoal credits a goal event to the customer's newest run whose goal
// window holds it (a run is credited once).
func (s *sim) reachGoal(c *customer, ev Event) {
	var r *run
	for i := len(c.runs) - 1; i >= 0; i-- {
		o := c.runs[i]
		if !o.reached && o.triggerID != ev.ID && !ev.At.Before(o.entered) && !ev.At.After(o.goalUntil) {
			r = o
			break
		}
	}
	if r == nil {
		return
	}
	r.reached = true
	prop := "total"
	if p := s.g.Goal.ValueProperty; p != "" {
		prop = p
	}
	raw, _ := graph.Lookup(ev.Props, prop)
	value, _ := graph.Number(raw)
	cur, _ := ev.Props["currency"].(string)
	g := &s.res.Goal
	g.Reached++
	g.RevenueByCurrency[cur] += value
	s.currencyCount[cur]++
	credit := func(gr *Group) {
		gr.Reached++
		gr.Revenue[cur] += value
	}
	for node, arm := range r.arms {
		credit(s.group(&s.res.Arms, node, arm))
	}
	if r.holdout != "" {
		credit(s.holdoutGroup(r.holdout))
	}
	if s.g.Goal.Exit && !r.ended {
		s.end(r, "goal", ev.At)
	}
}

// finish counts the runs still inside and settles the goal's currency.
func (s *sim) finish() {
	for _, c := range s.customers {
		if r := c.active; r != nil {
			s.res.Active++
			s.node(r.node).Active++
		}
		if c.seen {
			s.res.Simulated.Customers++
		}
	}
	best := -1
	for cur, n := range s.currencyCount {
		if n > best || (n == best && cur < s.res.Goal.Currency) {
			best, s.res.Goal.Currency = n, cur
		}
	}
	s.res.Goal.Revenue = s.res.Goal.RevenueByCurrency[s.res.Goal.Currency]
}
