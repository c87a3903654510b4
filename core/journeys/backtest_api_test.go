package journeys_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	_ "github.com/omni/omni/core/connectors" // the connectors table the gate reads
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/journeys"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/profiles"
)

// The abandoned-checkout journey, email and WhatsApp.
const checkoutGraph = `{
 "trigger": {"event": "checkout.started", "where": {"property": "total", "op": "gt", "value": 50}},
 "goal": {"event": "order.placed", "within": "7d", "exit": true},
 "start": "w1",
 "nodes": {
  "w1": {"type": "wait_for_event", "event": "order.placed", "match": ["checkout_id"], "timeout": "1h",
         "next": {"happened": "end", "timed_out": "s1"}},
  "s1": {"type": "send", "channels": ["whatsapp", "email"], "template": "Cart reminder", "next": {"sent": "w2", "suppressed": "w2"}},
  "w2": {"type": "wait_for_event", "event": "order.placed", "timeout": "24h", "next": {"happened": "end", "timed_out": "s2"}},
  "s2": {"type": "send", "channels": ["email"], "template": "Ten percent", "next": {"sent": "end", "suppressed": "end"}},
  "end": {"type": "exit"}}}`

type backtestShop struct {
	s      *omnitest.Server
	owner  string
	agent  string
	day    time.Time // the first simulated day, 10 days ago
	secret string
}

func startBacktestShop(t *testing.T) *backtestShop {
	t.Helper()
	s := omnitest.Start(t, omnitest.Options{
		Configure: func(c *config.Config) { c.Messaging.Timezone = "UTC" },
		Modules: func(o *app.Omni) []app.Module {
			return []app.Module{profiles.New(profiles.Options{}), messaging.New(messaging.Options{}), journeys.New(journeys.Options{})}
		}})
	src, err := ingest.CreateSource(s.PB, "shop", ingest.KindServer)
	if err != nil {
		t.Fatal(err)
	}
	sh := &backtestShop{s: s, owner: s.Staff(t, "owner@omni-shop.dev", "owner"), agent: s.Staff(t, "agent@omni-shop.dev", "agent"),
		day: time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -10), secret: src.SecretKey}
	// Email is connected, WhatsApp is not.
	exec(t, s, `INSERT INTO connectors (id, name, kind, enabled, capabilities) VALUES ('btconnemail0001', 'mailer', 'builtin', 1, '["send:email"]')`)
	exec(t, s, `INSERT INTO templates (id, name, channel, kind, subject, body) VALUES
		('bttplcart000001', 'Cart reminder', 'email', 'marketing', 'Your cart', 'Come back'),
		('bttplcode000001', 'Ten percent', 'email', 'marketing', '10% off', 'CODE10')`)
	return sh
}

func exec(t *testing.T, s *omnitest.Server, q string) {
	t.Helper()
	if _, err := s.PB.DB().NewQuery(q).Execute(); err != nil {
		t.Fatal(err)
	}
}

// track stores events through the server source, as a shop's backend
// would send them, and waits until they are stored.
func (sh *backtestShop) track(t *testing.T, msgs ...map[string]any) {
	t.Helper()
	before := sh.s.CountEvents(t)
	req, _ := http.NewRequest("POST", "/", nil)
	req.SetBasicAuth(sh.secret, "")
	code, b := sh.s.Do(t, "POST", "/v1/batch", map[string]any{"batch": msgs}, http.Header{"Authorization": req.Header["Authorization"]})
	if code != 200 {
		t.Fatalf("batch: %d %s", code, b)
	}
	sh.s.WaitEvents(t, before+len(msgs))
}

func (sh *backtestShop) at(day, hour, minute int) string {
	return sh.day.AddDate(0, 0, day).Add(time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute).Format(time.RFC3339)
}

func (sh *backtestShop) journey(t *testing.T, id, g string) {
	t.Helper()
	exec(t, sh.s, `INSERT INTO journeys (id, name, status, version, graph, settings) VALUES ('`+id+`', 'Abandoned cart', 'draft', 0, '`+g+`', '{}')`)
}

// backtest posts a backtest and reads its NDJSON lines.
func (sh *backtestShop) backtest(t *testing.T, id string, body any, token string) (int, []map[string]json.RawMessage, []byte) {
	t.Helper()
	var h http.Header
	if token != "" {
		h = omnitest.Auth(token)
	}
	code, b := sh.s.Do(t, "POST", "/api/v1/journeys/"+id+"/backtest", body, h)
	if code != 200 {
		return code, nil, b
	}
	var lines []map[string]json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not NDJSON: %q", sc.Text())
		}
		lines = append(lines, l)
	}
	return code, lines, b
}

type apiResult struct {
	Nodes map[string]struct {
		Entered    int            `json:"entered"`
		Exits      map[string]int `json:"exits"`
		Ended      map[string]int `json:"ended"`
		Suppressed map[string]int `json:"suppressed"`
		WouldSend  map[string]int `json:"would_send"`
	} `json:"nodes"`
	Edges   map[string]int `json:"edges"`
	Entered int            `json:"entered"`
	Goal    struct {
		Reached  int     `json:"reached"`
		Revenue  float64 `json:"revenue"`
		Currency string  `json:"currency"`
	} `json:"goal"`
	Simulated struct {
		Events    int `json:"events"`
		Customers int `json:"customers"`
	} `json:"simulated"`
}

func resultOf(t *testing.T, lines []map[string]json.RawMessage, raw []byte) apiResult {
	t.Helper()
	if len(lines) < 2 {
		t.Fatalf("want progress then a result, got %s", raw)
	}
	var p struct {
		Progress float64 `json:"progress"`
	}
	if err := json.Unmarshal(mustJSON(lines[len(lines)-2]), &p); err != nil || p.Progress != 1 {
		t.Fatalf("the line before the result should be progress 1: %s", raw)
	}
	var r apiResult
	if err := json.Unmarshal(lines[len(lines)-1]["result"], &r); err != nil {
		t.Fatalf("last line is not a result: %s", raw)
	}
	return r
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestBacktestReplaysTheShopsHistory seeds three customers through the
// tracking API and checks the backtest of the draft node by node:
//   - ann orders 30 minutes after her checkout: exits at w1 by the goal (80 EUR);
//   - bob (email consent) times out at w1; s1: WhatsApp has no connector,
//     email sends; w2 times out; s2 sends;
//   - cat never consented: both sends suppressed for consent;
//   - fay consented before the window and unsubscribed after both her
//     sends: today's ledger says unsubscribed, but the replay starts from
//     her consent when the window opened, so both would have been sent.
func TestBacktestReplaysTheShopsHistory(t *testing.T) {
	sh := startBacktestShop(t)
	consent := func(user, ch string) map[string]any {
		return map[string]any{"type": "track", "event": "consent.changed", "userId": user, "timestamp": sh.at(-1, 9, 0),
			"properties": map[string]any{"channel": ch, "status": "subscribed"}}
	}
	identify := func(user string) map[string]any {
		return map[string]any{"type": "identify", "userId": user, "timestamp": sh.at(-1, 8, 0),
			"traits": map[string]any{"email": user + "@omni-shop.dev"}}
	}
	checkout := func(user, id string, total float64, day, h, m int) map[string]any {
		return map[string]any{"type": "track", "event": "Checkout Started", "userId": user, "timestamp": sh.at(day, h, m),
			"properties": map[string]any{"checkout_id": id, "total": total, "currency": "EUR"}}
	}
	order := func(user, id string, total float64, day, h, m int) map[string]any {
		return map[string]any{"type": "track", "event": "Order Completed", "userId": user, "timestamp": sh.at(day, h, m),
			"properties": map[string]any{"checkout_id": id, "total": total, "currency": "EUR"}}
	}
	sh.track(t, identify("ann"), identify("bob"), identify("cat"), identify("fay"), consent("ann", "email"), consent("bob", "email"),
		consent("fay", "email"))
	sh.track(t, checkout("ann", "c1", 80, 0, 10, 0), order("ann", "c1", 80, 0, 10, 30),
		checkout("bob", "c2", 90, 0, 11, 0), checkout("cat", "c3", 60, 1, 9, 0),
		checkout("dee", "c4", 20, 1, 9, 0), // under 50: no entry
		checkout("fay", "c5", 70, 0, 12, 0),
		map[string]any{"type": "track", "event": "consent.changed", "userId": "fay", "timestamp": sh.at(2, 9, 0),
			"properties": map[string]any{"channel": "email", "status": "unsubscribed"}})
	sh.journey(t, "btjourney000001", checkoutGraph)
	window := map[string]any{"from": sh.at(0, 0, 0), "to": sh.at(7, 0, 0)}
	var fayNow string
	omnitest.Eventually(t, 10*time.Second, func() bool {
		_ = sh.s.PB.DB().NewQuery(`SELECT json_extract(consent, '$.email.status') FROM profiles p JOIN identities i ON i.profile = p.id
			WHERE i.kind = 'user_id' AND i.value = 'fay'`).Row(&fayNow)
		return fayNow == "unsubscribed"
	}, "fay's ledger says unsubscribed today")

	code, lines, raw := sh.backtest(t, "btjourney000001", window, sh.owner)
	if code != 200 {
		t.Fatalf("backtest: %d %s", code, raw)
	}
	r := resultOf(t, lines, raw)
	type node struct {
		Entered                             int
		Exits, Ended, Suppressed, WouldSend map[string]int
	}
	want := map[string]node{
		"w1":  {4, map[string]int{"timed_out": 3}, map[string]int{"goal": 1}, nil, nil},
		"s1":  {3, map[string]int{"sent": 2, "suppressed": 1}, nil, map[string]int{"consent": 1}, map[string]int{"email": 2}},
		"w2":  {3, map[string]int{"timed_out": 3}, nil, nil, nil},
		"s2":  {3, map[string]int{"sent": 2, "suppressed": 1}, nil, map[string]int{"consent": 1}, map[string]int{"email": 2}},
		"end": {3, nil, nil, nil, nil},
	}
	empty := func(m map[string]int) map[string]int {
		if len(m) == 0 {
			return nil
		}
		return m
	}
	for id, w := range want {
		n := r.Nodes[id]
		got := node{n.Entered, empty(n.Exits), empty(n.Ended), empty(n.Suppressed), empty(n.WouldSend)}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("node %s: got %+v, want %+v", id, got, w)
		}
	}
	if r.Entered != 4 || r.Goal.Reached != 1 || r.Goal.Revenue != 80 || r.Goal.Currency != "EUR" || r.Edges["s1.sent"] != 2 {
		t.Errorf("result: %s", lines[len(lines)-1]["result"])
	}
	// Nothing was sent or written: no ledger row, no run.
	var n int
	_ = sh.s.PB.DB().NewQuery("SELECT (SELECT COUNT(*) FROM messages) + (SELECT COUNT(*) FROM journey_runs) + (SELECT COUNT(*) FROM journey_steps)").Row(&n)
	if n != 0 {
		t.Fatalf("a backtest wrote %d rows", n)
	}

	// A branch asks today's profiles (segment rule language, "now" = the
	// simulated moment): only bob's email has "bob" in it.
	sh.journey(t, "btjourneybr0001", `{"trigger": {"event": "checkout.started"}, "start": "b",
	 "nodes": {"b": {"type": "branch", "rule": {"and": [{"trait": "email", "op": "contains", "value": "bob"},
	   {"event": "checkout.started", "op": "gte", "count": 1, "within_days": 30}]}, "next": {"yes": "u", "no": "e"}},
	  "u": {"type": "update", "add_tags": ["bob"]}, "e": {"type": "exit"}}}`)
	code, lines, raw = sh.backtest(t, "btjourneybr0001", window, sh.owner)
	if code != 200 {
		t.Fatalf("branch journey: %d %s", code, raw)
	}
	if br := resultOf(t, lines, raw); br.Entered != 5 || br.Edges["b.yes"] != 1 || br.Edges["b.no"] != 4 {
		t.Fatalf("branch: %s", lines[len(lines)-1]["result"])
	}

	// A published version is replayed when asked: version 1 only lets
	// checkouts over 85 in (bob).
	v1 := bytes.Replace([]byte(checkoutGraph), []byte(`"value": 50`), []byte(`"value": 85`), 1)
	if _, err := sh.s.PB.DB().NewQuery("INSERT INTO journey_versions (id, journey, version, graph, settings) VALUES ('btversion000001', 'btjourney000001', 1, {:g}, '{}')").
		Bind(dbx.Params{"g": string(v1)}).Execute(); err != nil {
		t.Fatal(err)
	}
	window["version"] = 1
	code, lines, raw = sh.backtest(t, "btjourney000001", window, sh.owner)
	if code != 200 || resultOf(t, lines, raw).Entered != 1 {
		t.Fatalf("version 1: %d %s", code, raw)
	}
}

func TestBacktestRefusesBadInputNamingTheField(t *testing.T) {
	sh := startBacktestShop(t)
	sh.journey(t, "btjourney000001", checkoutGraph)
	sh.journey(t, "btjourneyman001", `{"trigger": {"manual": true}, "start": "e", "nodes": {"e": {"type": "exit"}}}`)
	sh.journey(t, "btjourneytpl001", `{"trigger": {"event": "checkout.started"}, "start": "s", "nodes": {"s": {"type": "send", "channels": ["email"], "template": "Nope"}}}`)
	sh.journey(t, "btjourneybad001", `{"trigger": {"event": "checkout.started"}, "start": "w", "nodes": {"w": {"type": "wait", "duration": "soon"}}}`)
	cases := []struct {
		name, journey string
		body          any
		field         string
	}{
		{"from after to", "btjourney000001", map[string]any{"from": sh.at(5, 0, 0), "to": sh.at(1, 0, 0)}, "from"},
		{"over 366 days", "btjourney000001", map[string]any{"from": "2024-01-01", "to": sh.at(1, 0, 0)}, "from"},
		{"not a date", "btjourney000001", map[string]any{"to": "yesterday"}, "to"},
		{"unknown version", "btjourney000001", map[string]any{"version": 7}, "version"},
		{"not a version", "btjourney000001", map[string]any{"version": "latest"}, "version"},
		{"unknown field", "btjourney000001", map[string]any{"form": "2026-01-01"}, "body"},
		{"manual journey", "btjourneyman001", nil, "trigger"},
		{"missing template", "btjourneytpl001", nil, "graph"},
		{"invalid draft", "btjourneybad001", nil, "graph"},
	}
	for _, c := range cases {
		code, _, raw := sh.backtest(t, c.journey, c.body, sh.owner)
		// PocketBase's error shape; data.problems (the graph's) is a list
		// beside the field, so read data loosely.
		var e struct {
			Status  int                        `json:"status"`
			Message string                     `json:"message"`
			Data    map[string]json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &e); err != nil || code != 400 || e.Status != 400 || e.Data[c.field] == nil ||
			!strings.HasPrefix(e.Message, c.field+": ") {
			t.Errorf("%s: want 400 naming %s, got %d %s", c.name, c.field, code, raw)
		}
		if c.field == "graph" && e.Data["problems"] == nil {
			t.Errorf("%s: want data.problems: %s", c.name, raw)
		}
	}
	if code, _, raw := sh.backtest(t, "btjourneyman001", nil, sh.owner); !bytes.Contains(raw, []byte("a manual journey cannot be backtested")) {
		t.Errorf("manual: %d %s", code, raw)
	}
	if code, _, raw := sh.backtest(t, "nosuchjourney01", nil, sh.owner); code != 404 {
		t.Errorf("unknown journey: %d %s", code, raw)
	}
}

func TestBacktestIsForOwners(t *testing.T) {
	sh := startBacktestShop(t)
	sh.journey(t, "btjourney000001", checkoutGraph)
	for _, c := range []struct {
		token string
		want  int
	}{{"", 401}, {sh.agent, 403}, {sh.owner, 200}} {
		if code, _, raw := sh.backtest(t, "btjourney000001", nil, c.token); code != c.want {
			t.Errorf("token %q: %d, want %d: %s", c.token, code, c.want, raw)
		}
	}
}
