package profiles_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/segmentrule"
)

// The events path leaves a segment alone for a customer when Go decides its
// rule gives the same answer before and after the batch; what it keeps must
// still be the membership SQL gives. Random batches of orders, identifies
// with a plan, consent changes, page views at old and recent times and staff
// tags go to 40 customers in rounds, some after the cache was dropped (rows
// read back with SQL), some decoded from the cached rows and the answers
// they carry, some after the clock moved and the scheduled pass ran or a
// rule was edited;
// after each round every segment's members are exactly the profiles its rule
// selects.
func TestSegmentMembersStayWhatTheRulesSelect(t *testing.T) {
	e := start(t, profiles.Options{})
	// The segment events the batches emit are stored too, later: a count
	// of events would not say when a round's batch is in.
	rules := map[string]string{
		"big":       `{"trait":"lifetime_value.USD","op":"gte","value":100}`,
		"loyal":     `{"trait":"orders_count","op":"gte","value":2}`,
		"plan":      `{"trait":"plan","op":"in","value":["pro","team"]}`,
		"emailable": `{"consent":"email","status":"subscribed"}`,
		"recent":    `{"trait":"last_seen","op":"within_days","value":30}`,
		"lapsed":    `{"and":[{"trait":"orders_count","op":"gte","value":1},{"not":{"event":"order.placed","op":"gte","count":1,"within_days":7}}]}`,
		"domain":    `{"trait":"email","op":"contains","value":"@b-shop.dev"}`,
		"vip":       `{"or":[{"trait":"tags","op":"contains","value":"vip"},{"trait":"lifetime_value.USD","op":"gte","value":300}]}`,
		"no-plan":   `{"not":{"trait":"plan","op":"exists"}}`,
		"buyer":     `{"event":"order.placed","op":"gte","count":1}`,
		"talked":    `{"and":[{"event":"message.received","op":"gte","count":2,"within_days":30},{"consent":"email","status":"subscribed"}]}`,
	}
	ids := map[string]string{}
	parsed := map[string]*segmentrule.Rule{}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range rules {
			if !yield(k) {
				return
			}
		}
	}) {
		ids[name] = e.createSegment(t, name, rules[name])
		r, err := segmentrule.ParseRule([]byte(rules[name]))
		if err != nil {
			t.Fatal(err)
		}
		parsed[ids[name]] = r
	}
	lookup := func(id string) (*segmentrule.Rule, bool) { r, ok := parsed[id]; return r, ok }
	// Each segment has had members and non-members, or its check says little.
	seenIn, seenOut := map[string]bool{}, map[string]bool{}
	check := func(round int) {
		t.Helper()
		if err := e.mod.CatchUp(e.PB); err != nil { // the rules below read the rows
			t.Fatal(err)
		}
		now := e.clock.Now()
		for name, id := range ids {
			c := segmentrule.NewCompiler(now, lookup)
			where, err := c.Compile(parsed[id], "")
			if err != nil {
				t.Fatal(err)
			}
			var want, got []string
			if err := e.PB.DB().NewQuery("SELECT p.id FROM profiles p WHERE p.merged_into = '' AND COALESCE(" + where + ", 0) ORDER BY p.id").
				Bind(c.Params).Column(&want); err != nil {
				t.Fatal(err)
			}
			if err := e.PB.DB().NewQuery("SELECT profile FROM segment_members WHERE segment={:s} ORDER BY profile").
				Bind(dbx.Params{"s": id}).Column(&got); err != nil {
				t.Fatal(err)
			}
			var all int
			_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM profiles WHERE merged_into = ''").Row(&all)
			seenIn[name] = seenIn[name] || len(want) > 0
			seenOut[name] = seenOut[name] || len(want) < all
			if !slices.Equal(got, want) {
				t.Errorf("round %d, segment %s: members %v, the rule selects %v", round, name, got, want)
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 5))
	const customers = 40
	email := func(c int) string { return fmt.Sprintf("c%d@%s-shop.dev", c, []string{"a", "b"}[c%2]) }
	for round := range 8 {
		switch round {
		case 1, 4, 7:
			// The next batches decode their profiles from the cached rows,
			// with the answers the last batch left on them.
			if n := profiles.RowAnswersKeptForTest(e.mod); n == 0 {
				t.Fatalf("round %d: no cached row carries segment answers", round)
			}
			profiles.ForgetDecodedForTest(e.mod)
		case 3:
			profiles.ForgetCacheForTest(e.mod) // the next batches read the rows back with SQL
		case 5:
			e.clock.Advance(20 * 24 * time.Hour)
			if err := e.mod.Reevaluate(t.Context()); err != nil {
				t.Fatal(err)
			}
			check(round)
			// The pass changed memberships: the answers the rows carry
			// from before it no longer are theirs.
			profiles.ForgetDecodedForTest(e.mod)
		case 6:
			// So does a rule edited: its answers on the rows are the old
			// rule's.
			edited := `{"trait":"orders_count","op":"gte","value":3}`
			if code, body := e.Do(t, "PATCH", "/api/collections/segments/records/"+ids["loyal"], `{"rule":`+edited+`}`, auth(e.owner)); code != 200 {
				t.Fatalf("edit segment: %d %s", code, body)
			}
			r, err := segmentrule.ParseRule([]byte(edited))
			if err != nil {
				t.Fatal(err)
			}
			parsed[ids["loyal"]] = r
			check(round)
			profiles.ForgetDecodedForTest(e.mod)
		}
		now := e.clock.Now()
		var evs []*events.Event
		for c := range customers {
			ids := events.Identities{events.Email: email(c)}
			switch rng.IntN(6) {
			case 4:
				days := []int{2, 10, 45, 90}[rng.IntN(4)]
				evs = append(evs, ev(events.MessageReceived, "whatsapp", now.Add(-time.Duration(days)*24*time.Hour), ids,
					map[string]any{"text": "hi"}, "whatsapp"))
			case 0:
				evs = append(evs, ev(events.OrderPlaced, "shopify", now.Add(-time.Duration(rng.IntN(20))*24*time.Hour), ids,
					map[string]any{"total": float64(rng.IntN(15000)) / 100, "currency": "USD", "order_id": fmt.Sprintf("o-%d-%d", round, c)}, "web"))
			case 1:
				traits := map[string]any{"first_name": "C"}
				if p := []string{"pro", "team", "free", ""}[rng.IntN(4)]; p != "" {
					traits["plan"] = p
				}
				evs = append(evs, ev(events.Identify, "shopify", now, ids, map[string]any{"traits": traits}, ""))
			case 2:
				evs = append(evs, ev(events.ConsentChanged, "shopify", now, ids,
					map[string]any{"channel": "email", "status": []string{"subscribed", "unsubscribed"}[rng.IntN(2)]}, ""))
			default:
				days := []int{1, 25, 45, 200}[rng.IntN(4)]
				evs = append(evs, ev(events.PageViewed, "web", now.Add(-time.Duration(days)*24*time.Hour), ids, nil, "web"))
			}
		}
		e.publish(t, evs...)
		if round == 2 || round == 6 {
			for c := range 4 {
				pid := e.profileOf(t, events.Email, email(rng.IntN(customers)))
				if pid == "" {
					continue
				}
				method := []string{"POST", "DELETE"}[c%2]
				path := "/api/v1/profiles/" + pid + "/tags"
				var body any = map[string]string{"tag": "vip"}
				if method == "DELETE" {
					path, body = path+"/vip", nil
				}
				_, _ = e.Do(t, method, path, body, auth(e.owner))
			}
		}
		check(round)
	}
	for name := range ids {
		if !seenIn[name] || !seenOut[name] {
			t.Errorf("segment %s: members at some round %v, non-members %v", name, seenIn[name], seenOut[name])
		}
	}
	if decided := profiles.AnswersDecidedForTest(e.mod); decided == 0 {
		t.Error("no membership was set from Go's answer: every change had SQL evaluate the rule")
	} else {
		t.Logf("%d memberships set from Go's answers", decided)
	}
	if kept := profiles.AnswersKeptForTest(e.mod); kept == 0 {
		t.Error("no segment answer was kept from Go: every change went to SQL")
	} else {
		t.Logf("%d segment answers kept from Go", kept)
	}
}
