package segmentrule_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	_ "modernc.org/sqlite"

	"github.com/omni/omni/core/segmentrule"
)

// docValues reads a profile as SQLite holds it: its columns, and its
// traits, computed and consent JSON decoded as encoding/json decodes them.
type docValues struct {
	columns                   map[string]string
	traits, computed, consent any
	// noEvents: the profile has no stored events (EventCount answers 0).
	noEvents bool
	// least is a number of its stored orders no greater than their count,
	// of all time and within 30 days (EventsAtLeast answers it).
	least, least30 int
}

func (d docValues) EventCount(string, *int, time.Time) (int, bool) { return 0, d.noEvents }

func (d docValues) EventsAtLeast(typ string, withinDays *int, _ time.Time) int {
	switch {
	case typ != "order.placed":
		return 0
	case withinDays == nil:
		return d.least
	case *withinDays == 30:
		return d.least30
	}
	return 0
}

func (d docValues) Value(r segmentrule.Read) (any, bool) {
	switch r.Source {
	case "column":
		return d.columns[r.Path], true
	case "computed":
		return at(d.computed, r.Path), true
	case "traits":
		return at(d.traits, r.Path), true
	case "consent":
		return at(d.consent, r.Path+".status"), true
	}
	return nil, false
}

func at(doc any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil
		}
		doc = m[k]
	}
	return doc
}

// The evaluator answers as the compiled SQL does wherever it decides: random
// profiles (numbers, text, dates, booleans, arrays, objects, nulls, absent
// traits, unreadable traits JSON) against random rules, each answer checked
// against SQLite's over a table with the profiles table's column types.
func TestEvalAnswersAsTheCompiledSQL(t *testing.T) {
	sqlDB, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	sqlDB.SetMaxOpenConns(1)
	db := dbx.NewFromDB(sqlDB, "sqlite")
	if _, err := db.NewQuery(`CREATE TABLE profiles (id TEXT PRIMARY KEY NOT NULL, name TEXT DEFAULT '' NOT NULL,
		email TEXT DEFAULT '' NOT NULL, phone TEXT DEFAULT '' NOT NULL, traits JSON DEFAULT NULL,
		computed JSON DEFAULT NULL, consent JSON DEFAULT NULL)`).Execute(); err != nil {
		t.Fatal(err)
	}
	// Event and tag conditions compile to these; Eval leaves them Unknown,
	// but event counts for the profiles that say they have no events, and
	// what a number of orders known to be there decides for the others.
	for _, q := range []string{"CREATE TABLE events (id TEXT, profile TEXT, type TEXT, occurred_at TEXT)", "CREATE TABLE profile_tags (profile TEXT, tag TEXT)"} {
		if _, err := db.NewQuery(q).Execute(); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(7, 11))
	day := func(n int) string {
		return now.Add(time.Duration(n) * 24 * time.Hour).Format("2006-01-02T15:04:05.000Z")
	}
	scalars := []any{nil, 0.0, 1.0, -1.0, 2.5, 300.0, 299.99, 1000.0, 1e21, 9007199254740993.0, "", "loyal", "engaged", "active",
		"300", "vip", "VIP", "a vip b", "é", day(-3), day(-40), day(-400), "2026-11-20", true, false}
	composites := []any{[]any{"vip", "x"}, []any{1.0, 2.0}, []any{true}, []any{}, []any{[]any{"vip"}}, []any{map[string]any{"a": 1.0}},
		[]any{nil, "vip"}, map[string]any{"USD": 500.0, "EUR": 20.0}, map[string]any{}, map[string]any{"USD": "500"}}
	value := func() any {
		if rng.IntN(4) == 0 {
			return composites[rng.IntN(len(composites))]
		}
		return scalars[rng.IntN(len(scalars))]
	}
	names := []string{"lifetime_value.USD", "lifetime_value", "orders_count", "lifecycle_stage", "last_seen", "channels",
		"engagement_level", "plan", "score", "traits.tags", "a.b", "email", "name"}
	doc := func() map[string]any {
		out := map[string]any{}
		for _, n := range names {
			if rng.IntN(3) == 0 {
				continue
			}
			n = strings.TrimPrefix(n, "traits.")
			first, rest, nested := strings.Cut(n, ".")
			if nested {
				out[first] = map[string]any{rest: value()}
				continue
			}
			out[n] = value()
		}
		return out
	}
	type stored struct {
		id   string
		vals docValues
	}
	var profiles []stored
	for i := range 60 {
		id := fmt.Sprintf("p%d", i)
		cols := map[string]string{"name": "", "email": "", "phone": ""}
		for k := range cols {
			if s, ok := scalars[rng.IntN(len(scalars))].(string); ok {
				cols[k] = s
			}
		}
		traits, computed := doc(), doc()
		consent := map[string]any{}
		for _, ch := range []string{"email", "sms", "whatsapp"} {
			switch rng.IntN(4) {
			case 0:
				consent[ch] = map[string]any{"status": []string{"subscribed", "unsubscribed", ""}[rng.IntN(3)]}
			case 1:
				consent[ch] = map[string]any{"source": "shopify"}
			}
		}
		enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
		traitsText := enc(traits)
		if i%15 == 0 {
			traitsText = `{"plan": ` // unreadable: read as absent
		}
		if _, err := db.Insert("profiles", dbx.Params{"id": id, "name": cols["name"], "email": cols["email"], "phone": cols["phone"],
			"traits": traitsText, "computed": enc(computed), "consent": enc(consent)}).Execute(); err != nil {
			t.Fatal(err)
		}
		dv := docValues{columns: cols, computed: roundTrip(t, enc(computed)), consent: roundTrip(t, enc(consent)), noEvents: i%2 == 0}
		if !dv.noEvents {
			// Orders between 60 days ago and 3 days ahead (the count has no
			// upper bound), and messages, which no order count reads; a
			// known number at most what is there, at random.
			orders, orders30 := 0, 0
			for k := range rng.IntN(5) {
				typ := "order.placed"
				if k%3 == 2 {
					typ = "message.received"
				}
				at := now.Add(time.Duration(rng.IntN(63*24)-60*24)*time.Hour + 30*time.Minute)
				if _, err := db.Insert("events", dbx.Params{"id": fmt.Sprintf("%s-e%d", id, k), "profile": id, "type": typ,
					"occurred_at": at.UTC().Format("2006-01-02 15:04:05.000Z")}).Execute(); err != nil {
					t.Fatal(err)
				}
				if typ == "order.placed" {
					orders++
					if !at.Before(now.Add(-30 * 24 * time.Hour)) {
						orders30++
					}
				}
			}
			dv.least, dv.least30 = rng.IntN(orders+1), rng.IntN(orders30+1)
		}
		if json.Valid([]byte(traitsText)) {
			dv.traits = roundTrip(t, traitsText)
		}
		profiles = append(profiles, stored{id, dv})
	}
	ops := []string{"eq", "neq", "gt", "gte", "lt", "lte", "contains", "in", "exists", "not_exists", "within_days", "older_than_days"}
	ruleValues := []any{0.0, 1.0, 2.5, 300.0, 1000.0, "loyal", "vip", "300", "", "2026-11-20T10:00:00Z", day(-10), true, false}
	var leaf func() map[string]any
	leaf = func() map[string]any {
		switch rng.IntN(10) {
		case 0:
			return map[string]any{"consent": []string{"email", "sms", "whatsapp"}[rng.IntN(3)], "status": []string{"subscribed", "unsubscribed", "unknown"}[rng.IntN(3)]}
		case 1:
			n := map[string]any{"event": "order.placed", "op": []string{"eq", "neq", "gt", "gte", "lt", "lte"}[rng.IntN(6)], "count": float64(rng.IntN(3))}
			if rng.IntN(2) == 0 {
				n["within_days"] = 30.0
			}
			return n
		case 2:
			return map[string]any{"trait": "tags", "op": "contains", "value": "vip"}
		}
		op := ops[rng.IntN(len(ops))]
		n := map[string]any{"trait": names[rng.IntN(len(names))], "op": op}
		switch op {
		case "contains":
			n["value"] = []any{"vip", "x", 1.0, 2.0, "é"}[rng.IntN(5)]
		case "in":
			n["value"] = []any{ruleValues[rng.IntN(len(ruleValues))], ruleValues[rng.IntN(len(ruleValues))]}
		case "exists", "not_exists":
		case "within_days", "older_than_days":
			n["value"] = []any{1.0, 30.0, 365.0}[rng.IntN(3)]
		default:
			n["value"] = ruleValues[rng.IntN(len(ruleValues))]
		}
		return n
	}
	var node func(depth int) map[string]any
	node = func(depth int) map[string]any {
		if depth > 2 || rng.IntN(3) > 0 {
			return leaf()
		}
		switch rng.IntN(3) {
		case 0:
			return map[string]any{"not": node(depth + 1)}
		case 1:
			return map[string]any{"and": []any{node(depth + 1), node(depth + 1)}}
		}
		return map[string]any{"or": []any{node(depth + 1), node(depth + 1), node(depth + 1)}}
	}
	decided, checked := map[segmentrule.Truth]int{}, 0
	for range 1500 {
		raw, _ := json.Marshal(node(0))
		r, err := segmentrule.ParseRule(raw)
		if err != nil {
			continue // a generated value the rule language refuses (e.g. "" to contains)
		}
		c := segmentrule.NewCompiler(now, nil)
		expr, err := c.Compile(r, "")
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		var rows []struct {
			ID  string        `db:"id"`
			Got sql.NullInt64 `db:"got"`
		}
		if err := db.NewQuery("SELECT p.id AS id, " + expr + " AS got FROM profiles p ORDER BY p.id").Bind(c.Params).All(&rows); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		byID := map[string]segmentrule.Truth{}
		for _, row := range rows {
			switch {
			case !row.Got.Valid:
				byID[row.ID] = segmentrule.Null
			case row.Got.Int64 != 0:
				byID[row.ID] = segmentrule.True
			default:
				byID[row.ID] = segmentrule.False
			}
		}
		for _, p := range profiles {
			got := segmentrule.Eval(r, now, nil, p.vals)
			checked++
			decided[got]++
			if got != segmentrule.Unknown && got != byID[p.id] {
				t.Errorf("%s on %s (%+v): Eval %v, SQL %v", raw, p.id, p.vals, got, byID[p.id])
			}
		}
	}
	// Most answers are decided here, or the check above says little.
	if undecided := decided[segmentrule.Unknown]; undecided*2 > checked {
		t.Errorf("Eval left %d of %d answers Unknown", undecided, checked)
	}
	if decided[segmentrule.True] == 0 || decided[segmentrule.False] == 0 || decided[segmentrule.Null] == 0 {
		t.Errorf("answers not varied: %v", decided)
	}
	t.Logf("%d answers: %v (0 Unknown, 1 False, 2 True, 3 Null)", checked, decided)
}

func roundTrip(t *testing.T, s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// A segment reference is answered through lookup, and a reference that
// does not resolve, or a cycle, is Unknown.
func TestEvalFollowsSegmentReferences(t *testing.T) {
	must := func(raw string) *segmentrule.Rule {
		r, err := segmentrule.ParseRule([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return r
	}
	big := must(`{"trait":"lifetime_value.USD","op":"gte","value":300}`)
	loop := must(`{"segment":"loop"}`)
	lookup := func(id string) (*segmentrule.Rule, bool) {
		switch id {
		case "big":
			return big, true
		case "loop":
			return loop, true
		}
		return nil, false
	}
	vals := docValues{computed: map[string]any{"lifetime_value": map[string]any{"USD": 450.0}}}
	now := time.Now()
	for raw, want := range map[string]segmentrule.Truth{
		`{"segment":"big"}`:                             segmentrule.True,
		`{"not":{"segment":"big"}}`:                     segmentrule.False,
		`{"segment":"gone"}`:                            segmentrule.Unknown,
		`{"segment":"loop"}`:                            segmentrule.Unknown,
		`{"or":[{"segment":"big"},{"segment":"gone"}]}`: segmentrule.True,
	} {
		if got := segmentrule.Eval(must(raw), now, lookup, vals); got != want {
			t.Errorf("%s: %v, want %v", raw, got, want)
		}
	}
}

// EventWindows gives each event type its widest window (0: all time), and
// StateConditions the conditions Eval answers from values, segment
// references followed.
func TestEventWindowsAndStateConditions(t *testing.T) {
	must := func(raw string) *segmentrule.Rule {
		r, err := segmentrule.ParseRule([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return r
	}
	ref := must(`{"and":[{"event":"checkout.started","within_days":7},{"trait":"plan","op":"eq","value":"pro"}]}`)
	lookup := func(id string) (*segmentrule.Rule, bool) { return ref, id == "ref" }
	r := must(`{"or":[{"event":"order.placed","op":"eq","count":0,"within_days":90},{"event":"order.placed","within_days":7},
		{"event":"checkout.started","within_days":3},{"event":"message.received"},{"not":{"consent":"email","status":"subscribed"}},
		{"trait":"tags","op":"contains","value":"vip"},{"segment":"ref"},{"trait":"lifetime_value.USD","op":"gte","value":300}]}`)
	got := segmentrule.EventWindows(r, lookup)
	want := map[string]int{"order.placed": 90, "checkout.started": 7, "message.received": 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("EventWindows: %v, want %v", got, want)
	}
	var names []string
	for _, c := range segmentrule.StateConditions(r, lookup) {
		names = append(names, c.Trait+c.Consent)
	}
	if strings.Join(names, ",") != "email,plan,lifetime_value.USD" {
		t.Errorf("StateConditions: %v", names)
	}
}
