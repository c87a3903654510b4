package journeys

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/journeys/graph"
	"github.com/omni/omni/core/relay"
)

// goals records ev as the conversion of the customer's runs whose goal it
// is, inside their goal window, once per run; a goal with exit ends the
// run. Held-out runs convert the same way: that is what lift compares.
func (t *trigTx) goals(ev *events.Event, profile string) error {
	at := ev.OccurredAt
	for _, r := range t.open[profile] {
		if r.GoalAt != "" || r.GoalUntil == "" {
			continue
		}
		c, err := t.m.live.version(t.tx, r.Journey, r.Version)
		if err != nil {
			t.m.logger().Warn("journeys: run's version cannot be read", "run", r.ID, "error", err)
			continue
		}
		g := c.Graph.Goal
		if g == nil || g.Event != ev.Type || !g.Where.Match(ev.Properties) {
			continue
		}
		if at.Before(parseT(r.EnteredAt)) || at.After(parseT(r.GoalUntil)) {
			continue
		}
		value, currency := goalValue(g, ev.Properties)
		res, err := t.tx.DB().NewQuery("UPDATE " + RunsCollection + ` SET goal_at = {:at}, goal_event = {:ev}, goal_value = {:v},
			goal_currency = {:cur}, updated = {:now} WHERE id = {:id} AND goal_at = ''`).Bind(dbx.Params{
			"id": r.ID, "at": fmtT(at), "ev": ev.ID, "v": value, "cur": currency, "now": fmtT(t.now),
		}).Execute()
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			continue // counted already
		}
		r.GoalAt = fmtT(at)
		if err := recordStep(t.tx, Step{Run: r.ID, Journey: r.Journey, Version: r.Version, Profile: r.Profile,
			Node: "_goal", Type: "goal", Exit: "reached", At: t.now,
			Detail: map[string]any{"event_id": ev.ID, "value": value, "currency": currency}}); err != nil {
			return err
		}
		if g.Exit && (r.Status == RunActive || r.Status == RunWaiting) {
			if err := t.end(c, *r, "goal", map[string]any{"event_id": ev.ID}); err != nil {
				return err
			}
		}
	}
	return nil
}

// goalValue reads the revenue of a goal event: value_property (default
// total) and currency.
func goalValue(g *graph.Goal, props map[string]any) (float64, string) {
	prop := g.ValueProperty
	if prop == "" {
		prop = "total"
	}
	var value float64
	if v, ok := graph.Lookup(props, prop); ok {
		value, _ = graph.Number(v)
	}
	cur, _ := props["currency"].(string)
	return value, strings.ToUpper(strings.TrimSpace(cur))
}

// runContext reads a run's stored context (empty when unreadable).
func runContext(raw string) RunContext {
	var rc RunContext
	_ = json.Unmarshal([]byte(raw), &rc)
	return rc
}

// journeyEvent is a journey.entered / journey.exited event for the
// customer's timeline and for other modules. Its id is stable per run, so
// a publish repeated after a crash is dropped as a duplicate.
func journeyEvent(typ string, c *compiled, run, profile string, props map[string]any, at time.Time) *events.Event {
	p := map[string]any{"profile_id": profile, "journey": c.ID, "journey_name": c.Name, "run": run, "version": c.Version}
	for k, v := range props {
		p[k] = v
	}
	return &events.Event{ID: typ + ":" + run, Type: typ, Source: "omni", OccurredAt: at, ReceivedAt: at,
		Identities: events.Identities{}, Properties: p}
}

// stageJourneyEvents stages evs through the relay in tx, each with its
// customer's strongest identity.
func stageJourneyEvents(tx core.App, evs []*events.Event) error {
	return relay.StageForProfiles(tx, evs)
}
