// Package backtest replays a shop's stored history through a journey graph
// in simulated time, without sending or writing anything: who would have
// entered, which exit each step would have taken, which sends the gate
// would have refused and why, and what goals were reached.
//
// It is pure: events come from an iterator (in time order) and what the
// simulation needs to know about a customer, a branch rule or a template
// comes from Lookups, so the journeys module feeds it from SQLite and the
// tests from tables written by hand. Decisions follow the engine and the
// messaging gate: splits and holdouts use graph.Bucket on a simulated run
// id, sends pass the gate's rules in its order (connector, address,
// undeliverable, consent, WhatsApp window, then the frequency cap; quiet
// hours hold a send, they do not stop it).
package backtest

import (
	"encoding/json"
	"errors"
	"iter"
	"time"

	"github.com/omni/omni/core/journeys/graph"
)

// Event is one stored event, as much of it as the simulation reads.
type Event struct {
	ID      string
	Type    string
	Profile string
	Channel string
	At      time.Time
	Props   map[string]any
}

// Customer is what the gate and the waits read of a customer. Consent is
// each channel's status at the start of the window ("subscribed",
// "unsubscribed" or "" for never asked); changes inside the window come
// from the replayed consent.changed events.
type Customer struct {
	Email    string
	Phone    string
	WhatsApp string         // the wa_id, else the phone without "+"
	Location *time.Location // nil: the shop's time zone
	Consent  map[string]string
}

// Template is what the gate reads of a send's template.
type Template struct {
	Kind       string // marketing, transactional or conversation ("" counts as marketing)
	WATemplate bool   // carries a WhatsApp approved template (no 24-hour window needed)
}

// Lookups answer what events alone do not say.
type Lookups interface {
	// Customer is a customer as the gate sees them (nil, nil: unknown).
	Customer(profile string) (*Customer, error)
	// Branch evaluates a branch step's segment rule for a customer at a
	// simulated moment.
	Branch(rule json.RawMessage, profile string, at time.Time) (bool, error)
	// Template reads a template by id or name (false: there is none).
	Template(ref string) (Template, bool)
}

// Cap is a frequency cap: at most Count marketing sends in Period.
type Cap struct {
	Count  int
	Period time.Duration
}

// Rules are the messaging gate's settings the simulation applies.
type Rules struct {
	Caps []Cap
	// QuietFrom and QuietTo are minutes after midnight in the customer's
	// zone; QuietFrom < 0 means no quiet hours.
	QuietFrom, QuietTo int
	ShopTZ             *time.Location
	// Connected lists the channels an enabled connector sends.
	Connected map[string]bool
	// Undeliverable holds "channel\x00address" pairs that failed for good.
	Undeliverable map[string]bool
}

// Entry is a customer entering at a moment not carried by an event (a
// date trigger).
type Entry struct {
	Profile string
	At      time.Time
}

// Input is one backtest.
type Input struct {
	Graph    *graph.Graph
	Settings *graph.Settings
	From, To time.Time
	// Events are the stored events in time order, from From minus 24
	// hours (a WhatsApp message just before the window opens the 24-hour
	// window) up to To. Only events of the types Types lists matter.
	Events iter.Seq2[Event, error]
	// Entries enrol customers at given moments (date triggers); any order.
	Entries []Entry
	Lookups Lookups
	Rules   Rules
	// Progress is told how far the simulation got at least every 10% of
	// the simulated window and every ProgressEvery of wall time.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Clock is the wall clock for progress and elapsed time (default
	// time.Now).
	Clock func() time.Time
}

// Progress is the share of the simulated window replayed so far.
type Progress struct {
	Fraction float64 `json:"progress"`
	Events   int     `json:"events"`
}

// Result is what the journey would have done. Its JSON is the backtest
// API's "result".
type Result struct {
	Nodes map[string]*NodeResult `json:"nodes"`
	// Edges counts each exit taken, keyed "<node>.<exit>".
	Edges map[string]int `json:"edges"`
	// Entered counts runs started; Skipped the enrolments the re-entry
	// settings refused, by reason.
	Entered int            `json:"entered"`
	Skipped map[string]int `json:"skipped"`
	// Ended counts runs by how they ended (end, goal, left_segment,
	// unsubscribed, failed); Active those still inside at the window's end.
	Ended     map[string]int               `json:"ended"`
	Active    int                          `json:"active"`
	Goal      GoalResult                   `json:"goal"`
	Arms      map[string]map[string]*Group `json:"arms"`
	Holdout   map[string]*Group            `json:"holdout"`
	Simulated Simulated                    `json:"simulated"`
	ElapsedMS int64                        `json:"elapsed_ms"`
}

// NodeResult is one step's counts.
type NodeResult struct {
	Entered int            `json:"entered"`
	Active  int            `json:"active"`
	Exits   map[string]int `json:"exits"`
	// Ended counts runs that ended while at the step, by reason (goal,
	// left_segment, unsubscribed).
	Ended      map[string]int `json:"ended"`
	Suppressed map[string]int `json:"suppressed"`
	WouldSend  map[string]int `json:"would_send"`
	// Held counts sends the gate would have held before sending them
	// (quiet_hours); they are in WouldSend too.
	Held map[string]int `json:"held"`
}

// GoalResult counts the runs that reached the goal within its window.
type GoalResult struct {
	Reached int     `json:"reached"`
	Revenue float64 `json:"revenue"`
	// Currency is the currency of Revenue: the one most goal events were
	// in; RevenueByCurrency has every currency's sum.
	Currency          string             `json:"currency"`
	RevenueByCurrency map[string]float64 `json:"revenue_by_currency"`
}

// Group is the runs of one A/B arm, or of the held-out or treated side of
// holdouts, and their goals.
type Group struct {
	Entered int                `json:"entered"`
	Reached int                `json:"reached"`
	Revenue map[string]float64 `json:"revenue"`
}

// Simulated describes the replay: the window, the events replayed in it
// and the customers they (or date entries) were about.
type Simulated struct {
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Events    int       `json:"events"`
	Customers int       `json:"customers"`
}

// Errors of the input.
var (
	ErrManual = errors.New("a manual journey cannot be backtested: it has no trigger to replay")
)

// Types lists the event types a graph reads (trigger, awaited events,
// goal, consent, segments, WhatsApp messages): the only ones worth
// reading from the store.
func Types(g *graph.Graph) []string {
	seen := map[string]bool{}
	var out []string
	add := func(t string) {
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	add(g.Trigger.Event)
	if g.Trigger.Segment != "" {
		add("segment.entered")
		add("segment.exited")
	}
	if g.Goal != nil {
		add(g.Goal.Event)
	}
	if g.ExitOn != nil {
		if g.ExitOn.Segment != "" {
			add("segment.exited")
		}
		if g.ExitOn.Unsubscribed {
			add("consent.changed")
		}
	}
	for _, n := range g.Nodes {
		if n == nil {
			continue
		}
		switch n.Type {
		case graph.WaitForEvent:
			add(n.Event)
		case graph.Send:
			add("consent.changed")
			for _, c := range n.Channels {
				if c == "whatsapp" {
					add("message.received")
				}
			}
		}
	}
	return out
}
