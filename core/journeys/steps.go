package journeys

import (
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/journeys/graph"
	"github.com/omni/omni/core/segmentrule"
	"github.com/omni/omni/core/store"
)

// The steps that decide at once or only wait; send is in steps_send.go,
// webhook in webhook.go. Each returns the exit it leaves by (with the
// detail of its journey_steps row) or that the run stays until a time.

func newStepID() string { return store.NewRecordID() }

// stableID is a deterministic 15-char [0-9a-z] id of key: the same run,
// node and visit always get the same id, so a step repeated after a crash
// is recognised downstream (the send ledger, the events store).
func stableID(key string) string {
	sum := sha256.Sum256([]byte(key))
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 15)
	for i := range b {
		b[i] = alphabet[int(sum[i])%36]
	}
	return string(b)
}

// visitKey names one visit of a run to a node: run.attempt counts the
// steps the run has moved, so it is unique per visit and unchanged when a
// rolled back step is done again.
func visitKey(run, node string, attempt int) string {
	return run + ":" + node + ":" + strconv.Itoa(attempt)
}

// stepWait waits a duration, or until a time of day (and weekday) in the
// customer's time zone.
func (b *batch) stepWait(st *runState, n *graph.Node) (outcome, error) {
	if !st.fresh {
		return leave("next", nil), nil // the timer fired
	}
	switch {
	case n.Duration != "":
		d, err := graph.ParseDuration(n.Duration)
		if err != nil {
			return outcome{}, errFatal{"wait: " + err.Error()}
		}
		return stay(b.now.Add(d)), nil
	case n.Until != nil:
		loc, err := b.customerTZ(st.Profile)
		if err != nil {
			return outcome{}, err
		}
		return stay(graph.NextUntil(n.Until, b.now, loc)), nil
	}
	return leave("next", nil), nil
}

// customerTZ is the customer's time zone (trait timezone), else the
// shop's (messaging.timezone), else UTC.
func (b *batch) customerTZ(profile string) (*time.Location, error) {
	var tz string
	err := b.tx.DB().NewQuery("SELECT COALESCE(json_extract(traits, '$.timezone'), '') FROM profiles WHERE id={:p}").
		Bind(dbx.Params{"p": profile}).Row(&tz)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if tz != "" {
		if loc, err := time.LoadLocation(tz); err == nil {
			return loc, nil
		}
	}
	if o := b.e.m.o; o != nil && o.Config != nil && o.Config.Messaging.Timezone != "" {
		if loc, err := time.LoadLocation(o.Config.Messaging.Timezone); err == nil {
			return loc, nil
		}
	}
	return time.UTC, nil
}

// stepWaitForEvent waits for an event (the triggers part resumes the run
// by "happened") or its timeout ("timed_out").
func (b *batch) stepWaitForEvent(st *runState, n *graph.Node) (outcome, error) {
	if st.ctx.Resume == "happened" {
		d := map[string]any{}
		if id, ok := st.ctx.ResumeWith["event_id"]; ok {
			d["event_id"] = id
		}
		return leave("happened", d), nil
	}
	if !st.fresh {
		return leave("timed_out", nil), nil
	}
	d, err := graph.ParseDuration(n.Timeout)
	if err != nil {
		return outcome{}, errFatal{"wait_for_event: " + err.Error()}
	}
	// What the awaited event must equal (the same cart): the triggering
	// event's values of the match properties, kept beside its properties.
	if len(n.Match) > 0 {
		m := map[string]any{}
		for _, p := range n.Match {
			m[p] = st.ctx.Properties[p]
		}
		if st.ctx.Extra == nil {
			st.ctx.Extra = map[string]any{}
		}
		st.ctx.Extra["match"] = m
	}
	o := stay(b.now.Add(d))
	o.wait = n.Event
	return o, nil
}

// stepBranch tests the customer (a segment rule) and the event that
// started the run (where); both given, both must hold.
func (b *batch) stepBranch(st *runState, n *graph.Node) (outcome, error) {
	yes := true
	if n.Where != nil {
		yes = n.Where.Match(st.ctx.Properties)
	}
	if yes && len(n.Rule) > 0 {
		var err error
		if yes, err = b.ruleHolds(st.Profile, n.Rule); err != nil {
			return outcome{}, err
		}
	}
	if yes {
		return leave("yes", nil), nil
	}
	return leave("no", nil), nil
}

// ruleHolds evaluates a segment rule on one customer (the survivor, if
// the run's profile was merged away). A rule is compiled and prepared once
// per batch (the batch's clock is its "now"), then run per customer.
func (b *batch) ruleHolds(profile string, raw json.RawMessage) (bool, error) {
	rs, ok := b.rules[string(raw)]
	if !ok {
		rule, err := segmentrule.ParseRule(raw)
		if err != nil {
			return false, errFatal{"branch rule: " + err.Error()}
		}
		c := segmentrule.NewCompiler(b.now, b.segmentRule)
		where, err := c.Compile(rule, "rule")
		if err != nil {
			return false, errFatal{"branch rule: " + err.Error()}
		}
		rs = &ruleStmt{params: c.Params,
			q: b.tx.DB().NewQuery("SELECT COUNT(*) FROM profiles p WHERE p.id = {:profile} AND COALESCE(" + where + ", 0)").Prepare()}
		b.rules[string(raw)] = rs
	}
	id, err := b.liveProfile(profile)
	if err != nil {
		return false, err
	}
	p := make(dbx.Params, len(rs.params)+1)
	for k, v := range rs.params {
		p[k] = v
	}
	p["profile"] = id
	// The rule may read values the event that brought the run here has
	// just changed; the profiles writer may hold them back.
	if err := store.SyncProfiles(b.tx, id); err != nil {
		return false, err
	}
	var n int
	err = rs.q.Bind(p).Row(&n)
	return n > 0, err
}

// ruleStmt is a branch rule prepared for one batch.
type ruleStmt struct {
	q      *dbx.Query
	params dbx.Params
}

// segmentRule resolves a {"segment": id} reference in a branch rule.
func (b *batch) segmentRule(id string) (*segmentrule.Rule, bool) {
	var raw string
	if err := b.tx.DB().NewQuery("SELECT rule FROM segments WHERE id={:id}").Bind(dbx.Params{"id": id}).Row(&raw); err != nil {
		return nil, false
	}
	r, err := segmentrule.ParseRule([]byte(raw))
	return r, err == nil
}

// liveProfile follows merged_into to the surviving profile.
func (b *batch) liveProfile(id string) (string, error) {
	if b.qMerged == nil {
		b.qMerged = b.tx.DB().NewQuery("SELECT merged_into FROM profiles WHERE id={:id}").Prepare()
	}
	for range 8 {
		var next string
		err := b.qMerged.Bind(dbx.Params{"id": id}).Row(&next)
		if errors.Is(err, sql.ErrNoRows) || err == nil && next == "" {
			return id, nil
		}
		if err != nil {
			return "", err
		}
		id = next
	}
	return id, nil
}

// stepSplit takes an A/B arm by weight; the same run always takes the same
// arm (and the backtest decides alike).
func (b *batch) stepSplit(st *runState, id string, n *graph.Node) outcome {
	arm := graph.PickArm(n.Arms, graph.Bucket(st.ID, id))
	st.Arm = arm
	if st.ctx.Arms == nil {
		st.ctx.Arms = map[string]string{}
	}
	st.ctx.Arms[id] = arm
	return leave(arm, map[string]any{"arm": arm})
}

// stepHoldout holds a share of runs out: they get nothing and are counted
// against the rest for lift.
func (b *batch) stepHoldout(st *runState, id string, n *graph.Node) outcome {
	if graph.Bucket(st.ID, id) < n.Percent {
		st.Holdout = true
		return leave("held_out", map[string]any{"held_out": true})
	}
	return leave("continue", map[string]any{"held_out": false})
}

// stepUpdate sets traits and adds or removes tags.
//
// Traits go as an identify event from "omni" through the relay, which the
// profiles module applies like any other (so segments and the search
// index follow). Tags have no event path: they are written to profile_tags
// directly, signed "Journey: <name>"; segments with tag rules see them at
// their next scheduled pass.
func (b *batch) stepUpdate(st *runState, id string, n *graph.Node) (outcome, error) {
	detail := map[string]any{}
	pid, err := b.liveProfile(st.Profile)
	if err != nil {
		return outcome{}, err
	}
	if len(n.Set) > 0 {
		ids := b.identities(pid)
		if len(ids) == 0 {
			detail["set_skipped"] = "the customer has no identity to address the change to"
		} else {
			ev := b.derived("journey-update:"+stableID(visitKey(st.ID, id, st.Attempt)), "identify", pid,
				map[string]any{"traits": maps.Clone(n.Set), "journey": st.Journey, "run": st.ID})
			st.events = append(st.events, ev)
			keys := make([]string, 0, len(n.Set))
			for k := range n.Set {
				keys = append(keys, k)
			}
			detail["set"] = keys
		}
	}
	by, byName := "journey:"+st.Journey, "Journey: "+st.j.Name
	for _, t := range n.AddTags {
		tag := segmentrule.NormalizeTag(t)
		if tag == "" {
			continue
		}
		_, err := b.tx.DB().NewQuery(`INSERT INTO profile_tags (id, profile, tag, by, by_name, created)
			SELECT {:id}, {:p}, {:t}, {:by}, {:bn}, {:c} WHERE NOT EXISTS (SELECT 1 FROM profile_tags WHERE profile={:p} AND tag={:t})`).
			Bind(dbx.Params{"id": store.NewRecordID(), "p": pid, "t": tag, "by": by, "bn": byName, "c": b.nw}).Execute()
		if err != nil {
			return outcome{}, fmt.Errorf("add tag %q: %w", tag, err)
		}
	}
	for _, t := range n.RemoveTags {
		tag := segmentrule.NormalizeTag(t)
		if _, err := b.tx.DB().NewQuery("DELETE FROM profile_tags WHERE profile={:p} AND tag={:t}").
			Bind(dbx.Params{"p": pid, "t": tag}).Execute(); err != nil {
			return outcome{}, fmt.Errorf("remove tag %q: %w", tag, err)
		}
	}
	if len(n.AddTags) > 0 {
		detail["add_tags"] = n.AddTags
	}
	if len(n.RemoveTags) > 0 {
		detail["remove_tags"] = n.RemoveTags
	}
	return leave("next", detail), nil
}

// stepNotify hands the customer to staff: a journey.handoff event (through
// the relay) with the journey's context, for the inbox and notifications.
func (b *batch) stepNotify(st *runState, id string, n *graph.Node) outcome {
	ev := b.derived("journey:"+st.ID+":handoff:"+stableID(visitKey(st.ID, id, st.Attempt)), "journey.handoff", st.Profile,
		map[string]any{"journey": st.Journey, "journey_name": st.j.Name, "run": st.ID, "node": id, "message": n.Message,
			"open_conversation": n.OpenConversation, "context": publicContext(&st.ctx)})
	st.events = append(st.events, ev)
	return leave("next", map[string]any{"message": n.Message, "open_conversation": n.OpenConversation})
}

// publicContext is what a run carries that others may see (a webhook, a
// hand-off): the triggering event and the arms taken.
func publicContext(c *RunContext) map[string]any {
	out := map[string]any{}
	if c.Event != "" {
		out["event"] = c.Event
	}
	if c.EventID != "" {
		out["event_id"] = c.EventID
	}
	if len(c.Properties) > 0 {
		out["properties"] = c.Properties
	}
	if c.Source != "" {
		out["source"] = c.Source
	}
	if c.Segment != "" {
		out["segment"] = c.Segment
	}
	if len(c.Arms) > 0 {
		out["arms"] = c.Arms
	}
	return out
}
