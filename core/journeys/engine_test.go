package journeys

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/journeys/graph"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/store"
	"github.com/omni/omni/internal/testkit/smtptest"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/sdk/sdktest"
)

// The test binary doubles as the "recorder" connector subprocess: it
// sends email, SMS and WhatsApp by posting each message to the test's
// vendor, so a test sees exactly what went out.
func TestMain(m *testing.M) { sdktest.MainOrServe(m, newRecorder) }

const recorderName = "recorder"

type recorder struct {
	mu  sync.Mutex
	url string
}

func newRecorder() sdk.Connector { return &recorder{} }

func (r *recorder) Describe(context.Context) (*sdk.Description, error) {
	return &sdk.Description{Name: recorderName, Version: "1", DisplayName: "Recorder",
		Config:       []sdk.ConfigField{{Name: "api_url", Label: "API URL", Type: "url", Required: true}},
		Capabilities: []string{sdk.CapSendPrefix + "email", sdk.CapSendPrefix + "sms", sdk.CapSendPrefix + "whatsapp"}}, nil
}

func (r *recorder) Configure(_ context.Context, cfg sdk.Config, _ sdk.Host) error {
	r.mu.Lock()
	r.url = cfg["api_url"]
	r.mu.Unlock()
	return nil
}

func (r *recorder) HandleWebhook(context.Context, *sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	return &sdk.WebhookResponse{Status: http.StatusNotFound}, nil
}

func (r *recorder) Send(ctx context.Context, msg *sdk.OutboundMessage) (*sdk.SendResult, error) {
	r.mu.Lock()
	u := r.url
	r.mu.Unlock()
	b, _ := json.Marshal(msg)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, sdk.Retryable("vendor unreachable: " + err.Error())
	}
	resp.Body.Close()
	return &sdk.SendResult{ProviderMessageID: "prov-" + msg.ID}, nil
}

func (r *recorder) Backfill(context.Context, *sdk.BackfillRequest, sdk.BackfillSink) error {
	return nil
}
func (r *recorder) Health(context.Context) error { return nil }

// vendor collects what the recorder connector sent, by message id.
type vendor struct {
	mu  sync.Mutex
	got map[string][]sdk.OutboundMessage
	srv *httptest.Server
}

func newVendor(t *testing.T) *vendor {
	v := &vendor{got: map[string][]sdk.OutboundMessage{}}
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m sdk.OutboundMessage
		_ = json.NewDecoder(r.Body).Decode(&m)
		v.mu.Lock()
		v.got[m.ID] = append(v.got[m.ID], m)
		v.mu.Unlock()
	}))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *vendor) messages(id string) []sdk.OutboundMessage {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]sdk.OutboundMessage(nil), v.got[id]...)
}

type testEnv struct {
	*omnitest.Server
	m      *Module
	vendor *vendor
	owner  string
}

// startEngineEnv boots Omni with profiles, the messaging gate, the connector
// host (this binary as the recorder connector, when withConnector) and
// journeys. No quiet hours and no cap: the gate's own tests cover them.
func startEngineEnv(t *testing.T, withConnector bool) *testEnv {
	t.Helper()
	connectors.RegisterBuiltin(recorderName, newRecorder)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host := connectors.New(connectors.Options{
		Command: func(string) (*exec.Cmd, error) {
			cmd := exec.Command(self)
			cmd.Env = []string{sdktest.ServeEnv + "=1"}
			return cmd, nil
		},
		MinBackoff:   100 * time.Millisecond,
		SyncInterval: 100 * time.Millisecond,
	})
	v := newVendor(t)
	jm := New(Options{Tick: 50 * time.Millisecond})
	s := omnitest.Start(t, omnitest.Options{
		Configure: func(c *config.Config) {
			c.Connectors = map[string]map[string]any{recorderName: {"api_url": v.srv.URL}}
			c.PublicURL = "https://shop.omni-shop.dev"
			c.Messaging.QuietHours, c.Messaging.FrequencyCap, c.Messaging.Timezone = "", nil, "UTC"
		},
		Modules: func(*app.Omni) []app.Module {
			return []app.Module{profiles.New(profiles.Options{}), messaging.New(messaging.Options{Tick: 50 * time.Millisecond}), host, jm}
		},
	})
	e := &testEnv{Server: s, m: jm, vendor: v}
	e.owner = e.Staff(t, "owner@omni-shop.dev", "owner")
	if withConnector {
		rec, err := e.PB.FindFirstRecordByData(connectors.Collection, "name", recorderName)
		if err != nil {
			t.Fatal(err)
		}
		rec.Set("enabled", true)
		if err := connectors.SaveSettings(e.PB, rec); err != nil {
			t.Fatal(err)
		}
		omnitest.Eventually(t, 60*time.Second, func() bool {
			r, err := e.PB.FindFirstRecordByData(connectors.Collection, "name", recorderName)
			return err == nil && r.GetString("state") == connectors.StateRunning
		}, "recorder plugin running")
	}
	return e
}

// customer identifies a customer with an email and a phone.
func (e *testEnv) customer(t *testing.T, key string, traits map[string]any) string {
	t.Helper()
	email := key + "@omni-shop.dev"
	tr := map[string]any{"email": email, "phone": fmt.Sprintf("+4477009%05d", len(key)*131%100000), "first_name": "Ann"}
	for k, v := range traits {
		tr[k] = v
	}
	if code, body := e.Track(t, "/v1/identify", map[string]any{"userId": "u-" + key, "messageId": "id-" + key, "traits": tr}); code != 200 {
		t.Fatalf("identify: %d %s", code, body)
	}
	var id string
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return e.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind='email' AND value={:v}").Bind(dbx.Params{"v": email}).Row(&id) == nil && id != ""
	}, "profile of %s", email)
	return id
}

func (e *testEnv) consent(t *testing.T, profile, channel, status string) {
	t.Helper()
	code, body := e.Do(t, "POST", "/api/v1/profiles/"+profile+"/consent",
		map[string]any{"channel": channel, "status": status, "reason": "asked in the shop"}, omnitest.Auth(e.owner))
	if code != 200 {
		t.Fatalf("consent: %d %s", code, body)
	}
}

// emit ingests an event as a connector would.
func (e *testEnv) emit(t *testing.T, ev *events.Event) {
	t.Helper()
	now := time.Now().UTC()
	if ev.Source == "" {
		ev.Source = recorderName
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = now
	}
	ev.ReceivedAt = now
	for _, err := range ingest.Publish(context.Background(), e.Bus, []*events.Event{ev}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	omnitest.Eventually(t, 30*time.Second, func() bool {
		var p string
		_ = e.PB.DB().NewQuery("SELECT profile FROM events WHERE event_id={:id}").Bind(dbx.Params{"id": ev.ID}).Row(&p)
		return p != ""
	}, "event %s stored", ev.ID)
}

// journey publishes graph (version 1, live) and returns it as the engine
// sees it.
func (e *testEnv) journey(t *testing.T, name, graphJSON, settings string) *compiled {
	t.Helper()
	id := store.NewRecordID()
	now := fmtT(time.Now())
	if settings == "" {
		settings = "{}"
	}
	err := e.PB.RunInTransaction(func(tx core.App) error {
		if _, err := tx.DB().NewQuery("INSERT INTO " + Collection + ` (id, name, description, status, version, graph, settings, recipe,
			created_by, published_at, created, updated) VALUES ({:id}, {:n}, '', 'live', 1, {:g}, {:s}, '', '', {:now}, {:now}, {:now})`).
			Bind(dbx.Params{"id": id, "n": name, "g": graphJSON, "s": settings, "now": now}).Execute(); err != nil {
			return err
		}
		_, err := tx.DB().NewQuery("INSERT INTO " + VersionsCollection + ` (id, journey, version, graph, settings, published_by, note, created)
			VALUES ({:id}, {:j}, 1, {:g}, {:s}, '', '', {:now})`).
			Bind(dbx.Params{"id": store.NewRecordID(), "j": id, "g": graphJSON, "s": settings, "now": now}).Execute()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.live.load(e.PB); err != nil {
		t.Fatal(err)
	}
	c, ok := e.m.live.get(id)
	if !ok {
		t.Fatal("journey not live")
	}
	if ps := c.Graph.Validate(); ps != nil {
		t.Fatalf("test graph invalid: %v", ps)
	}
	return c
}

func (e *testEnv) enrol(t *testing.T, c *compiled, profile string, ctx RunContext) string {
	t.Helper()
	var id string
	err := e.PB.RunInTransaction(func(tx core.App) error {
		var err error
		id, err = enrol(tx, Enrolment{Journey: c, Profile: profile, Context: ctx, At: time.Now()})
		return err
	})
	if err != nil {
		t.Fatalf("enrol: %v", err)
	}
	e.m.kick()
	return id
}

func (e *testEnv) run(t *testing.T, id string) Run {
	t.Helper()
	var r Run
	if err := e.PB.DB().NewQuery("SELECT " + RunColumns + " FROM " + RunsCollection + " WHERE id={:id}").Bind(dbx.Params{"id": id}).One(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *testEnv) waitEnded(t *testing.T, id string) Run {
	t.Helper()
	var r Run
	omnitest.Eventually(t, 60*time.Second, func() bool {
		r = e.run(t, id)
		return r.Status == RunCompleted || r.Status == RunExited
	}, "run %s to end", id)
	return r
}

type stepRow struct {
	Node   string `db:"node"`
	Type   string `db:"type"`
	Exit   string `db:"exit"`
	Detail string `db:"detail"`
}

func (s stepRow) detail() map[string]any {
	var d map[string]any
	_ = json.Unmarshal([]byte(s.Detail), &d)
	return d
}

func (e *testEnv) steps(t *testing.T, run string) []stepRow {
	t.Helper()
	var out []stepRow
	if err := e.PB.DB().NewQuery("SELECT node, type, exit, detail FROM " + StepsCollection + " WHERE run={:r} ORDER BY at, rowid").
		Bind(dbx.Params{"r": run}).All(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// path is "node:exit" for each step row.
func path(steps []stepRow) []string {
	var p []string
	for _, s := range steps {
		p = append(p, s.Node+":"+s.Exit)
	}
	return p
}

func samePath(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// Every step that decides at once, and a wait: split and holdout take the
// same exit for the same run as graph.Bucket says, branch reads the
// customer and the triggering event, update sets a trait (through
// profiles) and a tag, notify stages journey.handoff, exit completes the
// run and stages journey.exited.
func TestEngineStepsAndExits(t *testing.T) {
	e := startEngineEnv(t, false)
	ann := e.customer(t, "ann", map[string]any{"plan": "gold"})
	c := e.journey(t, "Steps", `{"trigger": {"event": "checkout.started"}, "start": "sp", "nodes": {
		"sp": {"type": "split", "arms": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}], "next": {"a": "ho", "b": "ho"}},
		"ho": {"type": "holdout", "percent": 50, "next": {"held_out": "br", "continue": "br"}},
		"br": {"type": "branch", "rule": {"trait": "plan", "op": "eq", "value": "gold"}, "where": {"property": "total", "op": "gt", "value": 50},
		       "next": {"yes": "up", "no": "end"}},
		"up": {"type": "update", "set": {"vip": true}, "add_tags": ["journey-vip"], "next": "nt"},
		"nt": {"type": "notify", "message": "Call them", "open_conversation": true, "next": "wt"},
		"wt": {"type": "wait", "duration": "1s", "next": "end"},
		"end": {"type": "exit"}}}`, "")
	run := e.enrol(t, c, ann, RunContext{Event: "checkout.started", EventID: "ev-1", Properties: map[string]any{"total": 80.0}})
	r := e.waitEnded(t, run)
	if r.Status != RunCompleted || r.ExitReason != "end" {
		t.Fatalf("run ended %s/%s", r.Status, r.ExitReason)
	}
	arm := pickArm(c, run, "sp")
	held := bucketHeld(run, "ho", 50)
	holdExit := "continue"
	if held {
		holdExit = "held_out"
	}
	st := e.steps(t, run)
	if !samePath(path(st), "sp:"+arm, "ho:"+holdExit, "br:yes", "up:next", "nt:next", "wt:next", "end:") {
		t.Fatalf("path %v", path(st))
	}
	if r.Arm != arm || r.Holdout != held {
		t.Fatalf("run arm %q holdout %v, want %q %v", r.Arm, r.Holdout, arm, held)
	}
	if st[0].detail()["arm"] != arm || st[1].detail()["held_out"] != held || st[6].detail()["ended"] != "end" {
		t.Fatalf("details: %s %s %s", st[0].Detail, st[1].Detail, st[6].Detail)
	}
	// Arrival times are kept, and the wait waited.
	arrived, _ := time.Parse(dbTime, st[5].detail()["arrived_at"].(string))
	left := e.stepAt(t, run, "wt")
	if left.Sub(arrived) < time.Second {
		t.Fatalf("the wait took %v", left.Sub(arrived))
	}
	// The trait went through profiles; the tag is on the customer.
	omnitest.Eventually(t, 30*time.Second, func() bool {
		var vip string
		_ = e.PB.DB().NewQuery("SELECT COALESCE(json_extract(traits, '$.vip'), '') FROM profiles WHERE id={:p}").Bind(dbx.Params{"p": ann}).Row(&vip)
		return vip == "1"
	}, "trait vip set")
	var byName string
	_ = e.PB.DB().NewQuery("SELECT by_name FROM profile_tags WHERE profile={:p} AND tag='journey-vip'").Bind(dbx.Params{"p": ann}).Row(&byName)
	if byName != "Journey: Steps" {
		t.Fatalf("tag by %q", byName)
	}
	// journey.handoff and journey.exited reached the events store, on the customer.
	for _, typ := range []string{"journey.handoff", "journey.exited"} {
		omnitest.Eventually(t, 30*time.Second, func() bool {
			var props string
			_ = e.PB.DB().NewQuery("SELECT properties FROM events WHERE type={:t} AND profile={:p} AND json_extract(properties, '$.run')={:r}").
				Bind(dbx.Params{"t": typ, "p": ann, "r": run}).Row(&props)
			return props != ""
		}, "%s stored", typ)
	}

	// The branch's "no": the event's total is too low.
	bo := e.customer(t, "bo", map[string]any{"plan": "gold"})
	run2 := e.enrol(t, c, bo, RunContext{Event: "checkout.started", Properties: map[string]any{"total": 10.0}})
	e.waitEnded(t, run2)
	if p := path(e.steps(t, run2)); len(p) != 4 || p[2] != "br:no" || p[3] != "end:" {
		t.Fatalf("branch no: %v", p)
	}
}

func (e *testEnv) stepAt(t *testing.T, run, node string) time.Time {
	t.Helper()
	var at string
	_ = e.PB.DB().NewQuery("SELECT at FROM " + StepsCollection + " WHERE run={:r} AND node={:n}").Bind(dbx.Params{"r": run, "n": node}).Row(&at)
	return parseT(at)
}

func pickArm(c *compiled, run, node string) string {
	return graphPickArm(c.Graph.Nodes[node].Arms, run, node)
}

// A split is close to its weights over many runs, and the same run always
// takes the same arm.
func TestSplitAndHoldoutShares(t *testing.T) {
	arms := []graphArm{{Name: "a", Weight: 3}, {Name: "b", Weight: 1}}
	count := map[string]int{}
	held := 0
	for i := range 4000 {
		id := fmt.Sprintf("run%011d", i)
		arm := graphPickArm(arms, id, "sp")
		if arm != graphPickArm(arms, id, "sp") {
			t.Fatal("the same run took two arms")
		}
		count[arm]++
		if bucketHeld(id, "ho", 10) {
			held++
		}
	}
	if count["a"] < 2800 || count["a"] > 3200 || held < 320 || held > 480 {
		t.Fatalf("arms %v, held out %d of 4000", count, held)
	}
}

// wait_for_event: resumed by the awaited event it takes "happened" (with
// the event id); otherwise its timeout takes "timed_out".
func TestEngineWaitForEvent(t *testing.T) {
	e := startEngineEnv(t, false)
	ann, bo := e.customer(t, "ann", nil), e.customer(t, "bo", nil)
	c := e.journey(t, "Wait", `{"trigger": {"event": "checkout.started"}, "start": "w", "nodes": {
		"w": {"type": "wait_for_event", "event": "order.placed", "timeout": "2s", "match": ["checkout_id"],
		      "next": {"happened": "yes", "timed_out": "no"}},
		"yes": {"type": "exit"}, "no": {"type": "exit"}}}`, "")
	r1 := e.enrol(t, c, ann, RunContext{Event: "checkout.started", Properties: map[string]any{"checkout_id": "c1"}})
	r2 := e.enrol(t, c, bo, RunContext{Event: "checkout.started", Properties: map[string]any{"checkout_id": "c2"}})
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.run(t, r1).Status == RunWaiting }, "run waiting")
	r := e.run(t, r1)
	var ctx RunContext
	_ = json.Unmarshal([]byte(r.Context), &ctx)
	if r.WaitEvent != "order.placed" || r.DueAt == "" || fmt.Sprint(ctx.Extra["match"]) != "map[checkout_id:c1]" {
		t.Fatalf("waiting run: %+v", r)
	}
	err := e.PB.RunInTransaction(func(tx core.App) error {
		ok, err := resume(tx, r1, "happened", map[string]any{"event_id": "ord-1", "type": "order.placed"}, time.Now())
		if !ok && err == nil {
			err = fmt.Errorf("not resumed")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.m.kick()
	e.waitEnded(t, r1)
	e.waitEnded(t, r2)
	s1, s2 := e.steps(t, r1), e.steps(t, r2)
	if !samePath(path(s1), "w:happened", "yes:") || s1[0].detail()["event_id"] != "ord-1" {
		t.Fatalf("resumed: %v %s", path(s1), s1[0].Detail)
	}
	if !samePath(path(s2), "w:timed_out", "no:") {
		t.Fatalf("timed out: %v", path(s2))
	}
}

// Sends go through the gate: WhatsApp first for a customer who consented
// to it, email for one who only consented to email, and an unsubscribed
// customer's send takes "suppressed" with the gate's reason. The request
// id is the ledger row id, deterministic per run, node and visit.
func TestEngineSendThroughTheGate(t *testing.T) {
	e := startEngineEnv(t, true)
	wa, em, un := e.customer(t, "wa", nil), e.customer(t, "em", nil), e.customer(t, "un", nil)
	e.consent(t, wa, "whatsapp", "subscribed")
	e.consent(t, wa, "email", "subscribed")
	e.consent(t, em, "email", "subscribed")
	e.consent(t, un, "email", "unsubscribed")
	e.tmpl(t)
	c := e.journey(t, "Send", `{"trigger": {"manual": true}, "start": "s", "nodes": {
		"s": {"type": "send", "channels": ["whatsapp", "email"], "template": "cart", "wa_template": {"name": "cart_reminder", "language": "en"},
		      "next": {"sent": "ok", "suppressed": "no"}},
		"ok": {"type": "exit"}, "no": {"type": "exit"}}}`, "")
	runs := map[string]string{}
	for who, p := range map[string]string{"wa": wa, "em": em, "un": un} {
		runs[who] = e.enrol(t, c, p, RunContext{Source: "manual", Properties: map[string]any{"checkout_id": "c-" + who}})
	}
	for who, want := range map[string]string{"wa": "whatsapp", "em": "email"} {
		run := runs[who]
		e.waitEnded(t, run)
		st := e.steps(t, run)
		if !samePath(path(st), "s:sent", "ok:") || st[0].detail()["channel"] != want {
			t.Fatalf("%s: %v %s", who, path(st), st[0].Detail)
		}
		id := st[0].detail()["message_id"].(string)
		if id != sendID(run, "s", 0) {
			t.Fatalf("message id %s, want the deterministic %s", id, sendID(run, "s", 0))
		}
		var jr string
		_ = e.PB.DB().NewQuery("SELECT journey_run FROM messages WHERE id={:id}").Bind(dbx.Params{"id": id}).Row(&jr)
		if jr != run {
			t.Fatalf("ledger journey_run %q", jr)
		}
		omnitest.Eventually(t, 60*time.Second, func() bool { return len(e.vendor.messages(id)) == 1 }, "%s delivered", who)
		if m := e.vendor.messages(id)[0]; m.Channel != want || m.JourneyRun != run {
			t.Fatalf("%s: connector got %+v", who, m)
		}
	}
	r := e.waitEnded(t, runs["un"])
	st := e.steps(t, r.ID)
	if !samePath(path(st), "s:suppressed", "no:") {
		t.Fatalf("unsubscribed: %v", path(st))
	}
	if reason, _ := st[0].detail()["reason"].(string); !bytes.Contains([]byte(reason), []byte("no marketing consent on email (unsubscribed)")) {
		t.Fatalf("suppressed reason %q", reason)
	}
}

// tmpl creates the email template "cart".
func (e *testEnv) tmpl(t *testing.T) {
	t.Helper()
	col, err := e.PB.FindCollectionByNameOrId("templates")
	if err != nil {
		t.Fatal(err)
	}
	rec := core.NewRecord(col)
	rec.Load(map[string]any{"name": "cart", "channel": "email", "kind": "marketing",
		"subject": "{{ customer.first_name }}, your cart", "body": "Still thinking? {{ unsubscribe_url }}"})
	if err := e.PB.Save(rec); err != nil {
		t.Fatal(err)
	}
}

// Crash between the publish and the commit: the run's step fails right
// after the send request is on the bus, so its transaction rolls back and
// the run is stepped again, publishing the same id. The ledger holds one
// row and the customer gets one message.
func TestEngineSendRepublishedOnce(t *testing.T) {
	e := startEngineEnv(t, true)
	ann := e.customer(t, "ann", nil)
	e.consent(t, ann, "email", "subscribed")
	e.tmpl(t)
	var mu sync.Mutex
	published := 0
	e.m.engine.afterPublish = func(id string) error {
		mu.Lock()
		defer mu.Unlock()
		published++
		if published == 1 {
			return fmt.Errorf("crash after publishing %s", id)
		}
		return nil
	}
	c := e.journey(t, "Once", `{"trigger": {"manual": true}, "start": "s", "nodes": {
		"s": {"type": "send", "channels": ["email"], "template": "cart", "next": {"sent": "end", "suppressed": "end"}},
		"end": {"type": "exit"}}}`, "")
	run := e.enrol(t, c, ann, RunContext{Source: "manual"})
	e.waitEnded(t, run)
	mu.Lock()
	n := published
	mu.Unlock()
	id := sendID(run, "s", 0)
	var rows int
	_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM messages WHERE journey_run={:r}").Bind(dbx.Params{"r": run}).Row(&rows)
	if n != 2 || rows != 1 {
		t.Fatalf("published %d times, %d ledger rows", n, rows)
	}
	omnitest.Eventually(t, 60*time.Second, func() bool { return len(e.vendor.messages(id)) == 1 }, "delivered")
	if p := path(e.steps(t, run)); !samePath(p, "s:sent", "end:") {
		t.Fatalf("path %v", p)
	}
	if got := len(e.vendor.messages(id)); got != 1 {
		t.Fatalf("the customer got %d messages", got)
	}
}

// Conversation-aware marketing: after a bad CSAT score the send takes
// "suppressed" with reason "bad CSAT"; while the customer has an open
// conversation it is held (waiting, looked at again in 15 minutes).
func TestEngineConversationAware(t *testing.T) {
	e := startEngineEnv(t, false)
	sad, talking := e.customer(t, "sad", nil), e.customer(t, "talking", nil)
	e.emit(t, &events.Event{ID: "csat-1", Type: events.SurveyAnswered, Identities: events.Identities{"email": "sad@omni-shop.dev"},
		Properties: map[string]any{"score": 5.0, "scale": "0-10"}})
	e.emit(t, &events.Event{ID: "in-1", Type: events.MessageReceived, Identities: events.Identities{"email": "talking@omni-shop.dev"},
		Properties: map[string]any{"text": "where is my order?"}, Context: events.Context{Channel: "email"}})
	c := e.journey(t, "Aware", `{"trigger": {"manual": true}, "start": "s", "nodes": {
		"s": {"type": "send", "channels": ["email"], "template": "cart", "next": {"sent": "end", "suppressed": "end"}},
		"end": {"type": "exit"}}}`, "")
	r1 := e.enrol(t, c, sad, RunContext{Source: "manual"})
	r2 := e.enrol(t, c, talking, RunContext{Source: "manual"})
	e.waitEnded(t, r1)
	st := e.steps(t, r1)
	if !samePath(path(st), "s:suppressed", "end:") || st[0].detail()["reason"] != "bad CSAT" {
		t.Fatalf("bad CSAT: %v %s", path(st), st[0].Detail)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool { return e.run(t, r2).Status == RunWaiting }, "held")
	r := e.run(t, r2)
	var ctx RunContext
	_ = json.Unmarshal([]byte(r.Context), &ctx)
	if !ctx.Held || ctx.SendID != "" || parseT(r.DueAt).Sub(time.Now()) < 14*time.Minute {
		t.Fatalf("held run: %+v", r)
	}
	// Staff replied: no longer open.
	e.emit(t, &events.Event{ID: "res-1", Type: events.ConversationResolved, Identities: events.Identities{"email": "talking@omni-shop.dev"}})
	var open bool
	err := e.PB.RunInTransaction(func(tx core.App) error {
		b := newBatch(e.m.engine, tx, time.Now())
		defer b.close()
		var err error
		open, err = b.openConversation(talking)
		return err
	})
	if err != nil || open {
		t.Fatalf("after conversation.resolved: open %v (%v)", open, err)
	}
}

// A run whose version cannot be loaded or whose step is gone ends as
// "failed" without stopping the others in its batch; a later duplicate run
// of one journey for one customer (a merge) ends as "merged".
func TestEngineFailedAndMergedRuns(t *testing.T) {
	e := startEngineEnv(t, false)
	ann, bo := e.customer(t, "ann", nil), e.customer(t, "bo", nil)
	c := e.journey(t, "Fail", `{"trigger": {"manual": true}, "start": "w", "nodes": {
		"w": {"type": "wait", "duration": "1s", "next": "end"}, "end": {"type": "exit"}}}`, "")
	good := e.enrol(t, c, ann, RunContext{})
	cy := e.customer(t, "cy", nil)
	// bo's run at a step that is not in the graph, cy's on a version that
	// does not exist, and a later duplicate of ann's good run.
	now := fmtT(time.Now())
	ins := func(id, profile, node string, version int, entered string) {
		_, err := e.PB.DB().NewQuery("INSERT INTO " + RunsCollection + ` (id, journey, version, profile, node, status, exit_reason, context,
			due_at, wait_event, attempt, arm, holdout, trigger_event, entered_at, ended_at, goal_until, goal_at, goal_event, goal_value,
			goal_currency, created, updated) VALUES ({:id}, {:j}, {:v}, {:p}, {:node}, 'active', '', '{}', {:now}, '', 0, '', 0, '',
			{:en}, '', '', '', '', 0, '', {:now}, {:now})`).Bind(dbx.Params{"id": id, "j": c.ID, "v": version, "p": profile, "node": node,
			"now": now, "en": entered}).Execute()
		if err != nil {
			t.Fatal(err)
		}
	}
	ins("gonestep0000001", bo, "nope", 1, now)
	ins("noversion000001", cy, "w", 7, now)
	ins("duplicate000001", ann, "w", 1, fmtT(time.Now().Add(time.Minute)))
	e.m.kick()
	for id, want := range map[string]string{"gonestep0000001": "failed", "noversion000001": "failed", "duplicate000001": "merged"} {
		r := e.waitEnded(t, id)
		if r.Status != RunExited || r.ExitReason != want {
			t.Fatalf("%s: %s/%s, want exited/%s", id, r.Status, r.ExitReason, want)
		}
	}
	if r := e.waitEnded(t, good); r.Status != RunCompleted {
		t.Fatalf("the good run: %+v", r)
	}
	st := e.steps(t, "gonestep0000001")
	if len(st) != 1 || st[0].detail()["ended"] != "failed" || st[0].detail()["error"] == nil {
		t.Fatalf("failed step row: %+v", st)
	}
	if st := e.steps(t, "duplicate000001"); len(st) != 1 || st[0].detail()["kept"] != good {
		t.Fatalf("merged step row: %+v", st)
	}
}

// Webhooks are signed with the install's key, carry a delivery id that
// stays the same across retries, are retried after a failure, and take
// "failed" after five tries.
func TestEngineWebhook(t *testing.T) {
	old := webhookBackoff
	webhookBackoff = []time.Duration{200 * time.Millisecond}
	t.Cleanup(func() { webhookBackoff = old })
	e := startEngineEnv(t, false)
	ann, bo := e.customer(t, "ann", nil), e.customer(t, "bo", nil)
	var mu sync.Mutex
	calls := map[string][]string{} // run → deliveries
	var lastBody []byte
	var lastSig string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Run string `json:"run"`
		}
		raw := new(bytes.Buffer)
		_, _ = raw.ReadFrom(r.Body)
		_ = json.Unmarshal(raw.Bytes(), &body)
		mu.Lock()
		calls[body.Run] = append(calls[body.Run], r.Header.Get("X-Omni-Delivery"))
		n := len(calls[body.Run])
		lastBody, lastSig = raw.Bytes(), r.Header.Get("X-Omni-Signature")
		mu.Unlock()
		if r.URL.Query().Get("fail") == "always" || n == 1 {
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	ok := e.journey(t, "Hook", `{"trigger": {"manual": true}, "start": "h", "nodes": {
		"h": {"type": "webhook", "url": "`+srv.URL+`/hook", "next": {"ok": "end", "failed": "end"}}, "end": {"type": "exit"}}}`, "")
	bad := e.journey(t, "Hook fails", `{"trigger": {"manual": true}, "start": "h", "nodes": {
		"h": {"type": "webhook", "url": "`+srv.URL+`/hook?fail=always", "next": {"ok": "end", "failed": "end"}}, "end": {"type": "exit"}}}`, "")
	r1 := e.enrol(t, ok, ann, RunContext{Event: "checkout.started", Properties: map[string]any{"total": 12.5}})
	r2 := e.enrol(t, bad, bo, RunContext{})
	e.waitEnded(t, r1)
	e.waitEnded(t, r2)
	s1, s2 := e.steps(t, r1), e.steps(t, r2)
	if !samePath(path(s1), "h:ok", "end:") || s1[0].detail()["tries"] != 2.0 {
		t.Fatalf("ok: %v %s", path(s1), s1[0].Detail)
	}
	if !samePath(path(s2), "h:failed", "end:") || s2[0].detail()["tries"] != 5.0 || s2[0].detail()["status"] != 500.0 {
		t.Fatalf("failed: %v %s", path(s2), s2[0].Detail)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls[r1]) != 2 || calls[r1][0] != calls[r1][1] || calls[r1][0] != r1+":h:0" || len(calls[r2]) != 5 {
		t.Fatalf("deliveries %v", calls)
	}
	key, err := os.ReadFile(e.Config.DataDir + "/" + WebhookKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(e.Config.DataDir + "/" + WebhookKeyFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode())
	}
	if lastSig != "sha256="+Sign(bytes.TrimSpace(key), lastBody) {
		t.Fatalf("signature %q does not verify", lastSig)
	}
	var payload map[string]any
	_ = json.Unmarshal(lastBody, &payload)
	if payload["journey_name"] != "Hook fails" || payload["profile"] != bo || payload["node"] != "h" || payload["sent_at"] == nil {
		t.Fatalf("payload %v", payload)
	}
}

type graphArm = graph.Arm

func graphPickArm(arms []graph.Arm, run, node string) string {
	return graph.PickArm(arms, graph.Bucket(run, node))
}

func bucketHeld(run, node string, percent float64) bool { return graph.Bucket(run, node) < percent }

// benchEnv is Omni with profiles and journeys only, a live journey of
// graphJSON and one customer.
func benchEnv(b *testing.B, opts Options, graphJSON string) (*testEnv, *compiled, string) {
	b.Helper()
	jm := New(opts)
	s := omnitest.Start(b, omnitest.Options{Modules: func(*app.Omni) []app.Module {
		return []app.Module{profiles.New(profiles.Options{}), jm}
	}})
	e := &testEnv{Server: s, m: jm}
	if code, body := s.Track(b, "/v1/identify", map[string]any{"userId": "bench", "messageId": "bench-1",
		"traits": map[string]any{"email": "bench@omni-shop.dev"}}); code != 200 {
		b.Fatalf("identify: %d %s", code, body)
	}
	var profile string
	omnitest.Eventually(b, 30*time.Second, func() bool {
		return e.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind='email' AND value='bench@omni-shop.dev'").Row(&profile) == nil && profile != ""
	}, "bench profile")
	id := store.NewRecordID()
	now := fmtT(time.Now())
	for _, q := range []string{
		"INSERT INTO " + Collection + ` (id, name, description, status, version, graph, settings, recipe, created_by, published_at, created, updated)
			VALUES ({:id}, 'Bench', '', 'live', 1, {:g}, '{}', '', '', {:now}, {:now}, {:now})`,
		"INSERT INTO " + VersionsCollection + ` (id, journey, version, graph, settings, published_by, note, created)
			VALUES ({:vid}, {:id}, 1, {:g}, '{}', '', '', {:now})`,
	} {
		if _, err := e.PB.DB().NewQuery(q).Bind(dbx.Params{"id": id, "vid": store.NewRecordID(), "g": graphJSON, "now": now}).Execute(); err != nil {
			b.Fatal(err)
		}
	}
	if err := jm.live.load(e.PB); err != nil {
		b.Fatal(err)
	}
	c, _ := jm.live.get(id)
	return e, c, profile
}

// insertRuns adds n runs of c at node, with status and due times from due(i).
// Each customer has one run per journey, so the runs are spread over
// made-up profile ids (the engine reads profiles only for some steps).
func insertRuns(b *testing.B, e *testEnv, c *compiled, node, status string, n int, due func(i int) time.Time) []string {
	b.Helper()
	ids := make([]string, n)
	err := e.PB.RunInTransaction(func(tx core.App) error {
		q := tx.DB().NewQuery("INSERT INTO " + RunsCollection + ` (id, journey, version, profile, node, status, exit_reason, context,
			due_at, wait_event, attempt, arm, holdout, trigger_event, entered_at, ended_at, goal_until, goal_at, goal_event, goal_value,
			goal_currency, created, updated) VALUES ({:id}, {:j}, 1, {:p}, {:node}, {:st}, '', {:ctx}, {:due}, '', 0, '', 0, '',
			{:now}, '', '', '', '', 0, '', {:now}, {:now})`).Prepare()
		defer q.Close()
		now := fmtT(time.Now())
		for i := range ids {
			ids[i] = store.NewRecordID()
			ctx := `{"event":"checkout.started","properties":{"total":80}}`
			if status == RunWaiting {
				ctx = `{"at":"` + now + `"}`
			}
			if _, err := q.Bind(dbx.Params{"id": ids[i], "j": c.ID, "p": "p" + ids[i][1:], "node": node, "st": status,
				"ctx": ctx, "due": fmtT(due(i)), "now": now}).Execute(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return ids
}

// BenchmarkEngineSteps measures step executions per second: each op
// steps one batch (Options.Batch = 500 runs) through a branch, a split and
// a holdout to a wait (4 step executions a run: 3 step rows written and
// the wait entered), in one transaction, as the engine loop does. Report:
// the steps/s metric (take the median of -count runs).
func BenchmarkEngineSteps(b *testing.B) {
	e, c, _ := benchEnv(b, Options{Tick: time.Hour}, `{"trigger": {"event": "checkout.started"}, "start": "br", "nodes": {
		"br": {"type": "branch", "where": {"property": "total", "op": "gt", "value": 50}, "next": {"yes": "sp", "no": "sp"}},
		"sp": {"type": "split", "arms": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}], "next": {"a": "ho", "b": "ho"}},
		"ho": {"type": "holdout", "percent": 10, "next": {"held_out": "w", "continue": "w"}},
		"w": {"type": "wait", "duration": "30d", "next": "end"}, "end": {"type": "exit"}}}`)
	// The benchmark steps the batches itself.
	e.m.engine.stop(context.Background())
	const perRun = 4
	past := time.Now().Add(-time.Minute)
	b.ResetTimer()
	steps := 0
	var cpu time.Duration // the process's CPU time while stepping
	for range b.N {
		b.StopTimer()
		insertRuns(b, e, c, "br", RunActive, e.m.opts.Batch, func(int) time.Time { return past })
		c0 := cpuTime()
		b.StartTimer()
		n, err := e.m.engine.runDue()
		if err != nil || n != e.m.opts.Batch {
			b.Fatalf("stepped %d runs: %v", n, err)
		}
		b.StopTimer()
		cpu += cpuTime() - c0
		b.StartTimer()
		steps += n * perRun
	}
	b.ReportMetric(float64(steps)/b.Elapsed().Seconds(), "steps/s")
	// On a shared machine the wall-clock rate depends on the neighbours;
	// CPU time per step does not (one core's worth: 1e6 / this = steps/s).
	b.ReportMetric(float64(cpu.Microseconds())/float64(steps), "cpu-us/step")
	var waiting int
	_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM " + RunsCollection + " WHERE status='waiting' AND node='w'").Row(&waiting)
	if waiting != b.N*e.m.opts.Batch {
		b.Fatalf("%d runs reached the wait, want %d", waiting, b.N*e.m.opts.Batch)
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTimerLateness measures how late timers fire with the engine
// loop running as in production (default Tick and Batch): 10,000 runs
// wait at a wait step with due times spread over 5 seconds; a run's
// lateness is when its step row was written (the start of the batch that
// stepped it) minus its due time. Reports p50 and p99 in ms.
func BenchmarkTimerLateness(b *testing.B) {
	const n, spread = 10000, 5 * time.Second
	var late []float64
	for range b.N {
		b.StopTimer()
		// The timer leads to a long wait, so what is measured is timers
		// firing (an ending run also emits journey.exited through the
		// relay and the events pipeline).
		e, c, _ := benchEnv(b, Options{}, `{"trigger": {"manual": true}, "start": "w", "nodes": {
			"w": {"type": "wait", "duration": "1h", "next": "w2"}, "w2": {"type": "wait", "duration": "30d", "next": "end"},
			"end": {"type": "exit"}}}`)
		start := time.Now().Add(2 * time.Second) // after the insert
		dueOf := func(i int) time.Time { return start.Add(spread * time.Duration(i) / n) }
		ids := insertRuns(b, e, c, "w", RunWaiting, n, dueOf)
		due := make(map[string]time.Time, n)
		for i, id := range ids {
			due[id] = parseT(fmtT(dueOf(i)))
		}
		b.StartTimer()
		omnitest.Eventually(b, 120*time.Second, func() bool {
			var left int
			_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM " + RunsCollection + " WHERE node = 'w'").Row(&left)
			return left == 0
		}, "every timer to fire")
		b.StopTimer()
		var rows []struct {
			Run string `db:"run"`
			At  string `db:"at"`
		}
		if err := e.PB.DB().NewQuery("SELECT run, at FROM " + StepsCollection + " WHERE node='w'").All(&rows); err != nil {
			b.Fatal(err)
		}
		if len(rows) != n {
			b.Fatalf("%d timers fired, want %d", len(rows), n)
		}
		for _, r := range rows {
			late = append(late, float64(parseT(r.At).Sub(due[r.Run]))/float64(time.Millisecond))
		}
		e.Stop()
	}
	slices.Sort(late)
	b.ReportMetric(late[len(late)/2], "p50-ms")
	b.ReportMetric(late[len(late)*99/100], "p99-ms")
	b.ReportMetric(late[len(late)-1], "max-ms")
}

// The real omni binary is killed (SIGKILL) while a run waits before a
// send; after a restart the timer fires and the email goes out exactly
// once: one ledger row for the run, one mail at the SMTP server (the
// built-in email connector).
func TestEngineKill9DuringWaitSendsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("the work runs in a separately built omni (no race detector): the full run checks it")
	}
	dir := t.TempDir()
	// TEST_OMNI_BIN (set by .ci/run) is an omni built from this checkout.
	bin := os.Getenv("TEST_OMNI_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "omni")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/omni/omni").CombinedOutput(); err != nil {
			t.Fatalf("build omni: %v\n%s", err, out)
		}
	}
	cli := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--data-dir", dir)...)
		cmd.Dir, cmd.Env = dir, cleanEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("omni %v: %v\n%s", args, err, out)
		}
	}
	smtp := smtptest.Start(t, smtptest.Options{STARTTLS: true, Username: "shop@omni-shop.dev", Password: "app-password-1"})
	cli("connector", "configure", "email", "smtp_host="+smtp.Host, "smtp_port="+strconv.Itoa(smtp.Port), "smtp_security=starttls",
		"smtp_username=shop@omni-shop.dev", "smtp_password=app-password-1", "from_email=shop@omni-shop.dev", "tls_insecure=true")
	cli("connector", "enable", "email")

	srv := startBinary(t, bin, dir)
	db, err := sql.Open("sqlite", filepath.Join(dir, "data.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec1 := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// A customer, a template, a live journey (wait 3s, then an email) and
	// a run entering it now.
	now := fmtT(time.Now())
	exec1(`INSERT INTO profiles (id, email, name, traits, computed, consent, created, updated) VALUES ('custkill0000001', 'kim@omni-shop.dev', 'Kim', '{"first_name":"Kim"}', '{}', '{}', ?, ?)`, now, now)
	exec1(`INSERT INTO identities (id, kind, value, profile, created) VALUES ('identkill000001', 'email', 'kim@omni-shop.dev', 'custkill0000001', ?)`, now)
	exec1(`INSERT INTO templates (id, name, channel, kind, subject, body, created, updated) VALUES ('tmplkill0000001', 'receipt', 'email', 'transactional', 'Your receipt', 'Thanks {{ customer.first_name }}', ?, ?)`, now, now)
	g := `{"trigger": {"manual": true}, "start": "w", "nodes": {"w": {"type": "wait", "duration": "3s", "next": "s"},
		"s": {"type": "send", "channels": ["email"], "template": "receipt", "kind": "transactional", "next": {"sent": "end", "suppressed": "end"}},
		"end": {"type": "exit"}}}`
	exec1(`INSERT INTO journeys (id, name, description, status, version, graph, settings, recipe, created_by, published_at, created, updated) VALUES ('jrnykill0000001', 'Receipt', '', 'live', 1, ?, '{}', '', '', ?, ?, ?)`, g, now, now, now)
	exec1(`INSERT INTO journey_versions (id, journey, version, graph, settings, published_by, note, created) VALUES ('jverkill0000001', 'jrnykill0000001', 1, ?, '{}', '', '', ?)`, g, now)
	exec1(`INSERT INTO journey_runs (id, journey, version, profile, node, status, exit_reason, context, due_at, wait_event, attempt, arm, holdout,
		trigger_event, entered_at, ended_at, goal_until, goal_at, goal_event, goal_value, goal_currency, created, updated)
		VALUES ('runkill00000001', 'jrnykill0000001', 1, 'custkill0000001', 'w', 'active', '', '{}', ?, '', 0, '', 0, '', ?, '', '', '', '', 0, '', ?, ?)`, now, now, now, now)
	status := func() (st, node string) {
		_ = db.QueryRow("SELECT status, node FROM journey_runs WHERE id='runkill00000001'").Scan(&st, &node)
		return
	}
	omnitest.Eventually(t, 30*time.Second, func() bool { st, n := status(); return st == RunWaiting && n == "w" }, "the run waiting")
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = srv.Wait()
	if st, n := status(); st != RunWaiting || n != "w" || len(smtp.Mails()) != 0 {
		t.Fatalf("after the kill: run %s at %s, %d mails", st, n, len(smtp.Mails()))
	}

	startBinary(t, bin, dir)
	omnitest.Eventually(t, 60*time.Second, func() bool { st, _ := status(); return st == RunCompleted }, "the run to complete after the restart")
	omnitest.Eventually(t, 60*time.Second, func() bool { return len(smtp.Mails()) >= 1 }, "the mail")
	var rows int
	var exit string
	_ = db.QueryRow("SELECT COUNT(*) FROM messages WHERE journey_run='runkill00000001'").Scan(&rows)
	_ = db.QueryRow("SELECT exit FROM journey_steps WHERE run='runkill00000001' AND node='s'").Scan(&exit)
	if mails := smtp.Mails(); rows != 1 || len(mails) != 1 || exit != "sent" || len(mails[0].To) != 1 || mails[0].To[0] != "kim@omni-shop.dev" {
		t.Fatalf("%d ledger rows, %d mails, send exit %q", rows, len(mails), exit)
	}
}

// startBinary runs `omni serve` on dir until the test ends (or it is
// killed) and waits until it answers.
func startBinary(t *testing.T, bin, dir string) *exec.Cmd {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "serve", "--http", addr, "--data-dir", dir)
	cmd.Dir, cmd.Env = dir, cleanEnv()
	logs := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	omnitest.Eventually(t, 60*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/api/v1/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "omni to answer; logs:\n%s", logs)
	return cmd
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OMNI_") {
			env = append(env, kv)
		}
	}
	return env
}

// The abandoned-checkout recipe end to end, with the real API, triggers,
// engine, gate and a connector: a customer who buys during the wait gets
// nothing and exits by the goal; one who does not gets the reminder on
// WhatsApp (consented there, an approved template) or by email (consented
// only there), then the discount by email; an unsubscribed one's
// reminder is suppressed with the gate's reason.
func TestAbandonedCheckoutEndToEnd(t *testing.T) {
	e := startEngineEnv(t, true)
	code, raw := e.Do(t, "POST", "/api/v1/journeys", map[string]any{"recipe": "abandoned_checkout",
		"params": map[string]any{"wait": "2s", "second_wait": "2s", "whatsapp_template": "cart_reminder"}}, omnitest.Auth(e.owner))
	var j struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &j); code != 201 || err != nil || j.ID == "" {
		t.Fatalf("create from recipe: %d %s", code, raw)
	}
	if code, raw := e.Do(t, "POST", "/api/v1/journeys/"+j.ID+"/publish", map[string]any{}, omnitest.Auth(e.owner)); code != 200 {
		t.Fatalf("publish: %d %s", code, raw)
	}
	who := map[string]string{}
	for _, k := range []string{"buyer", "wa", "em", "un"} {
		who[k] = e.customer(t, k, nil)
	}
	e.consent(t, who["buyer"], "email", "subscribed")
	e.consent(t, who["wa"], "whatsapp", "subscribed")
	e.consent(t, who["wa"], "email", "subscribed")
	e.consent(t, who["em"], "email", "subscribed")
	e.consent(t, who["un"], "email", "unsubscribed")
	checkout := func(k string) {
		e.emit(t, &events.Event{ID: "co-" + k, Type: events.CheckoutStarted, Identities: events.Identities{"email": k + "@omni-shop.dev"},
			Properties: map[string]any{"checkout_token": "tok-" + k, "total": 80.0, "abandoned_checkout_url": "https://shop.omni-shop.dev/c/" + k}})
	}
	for _, k := range []string{"buyer", "wa", "em", "un"} {
		checkout(k)
	}
	runOf := func(k string) string {
		var id string
		omnitest.Eventually(t, 30*time.Second, func() bool {
			return e.PB.DB().NewQuery("SELECT id FROM "+RunsCollection+" WHERE journey={:j} AND profile={:p}").
				Bind(dbx.Params{"j": j.ID, "p": who[k]}).Row(&id) == nil
		}, "%s enrolled", k)
		return id
	}
	runs := map[string]string{}
	for _, k := range []string{"buyer", "wa", "em", "un"} {
		runs[k] = runOf(k)
	}
	e.emit(t, &events.Event{ID: "ord-buyer", Type: events.OrderPlaced, Identities: events.Identities{"email": "buyer@omni-shop.dev"},
		Properties: map[string]any{"checkout_token": "tok-buyer", "total": 80.0, "currency": "EUR"}})

	for k, run := range runs {
		r := e.waitEnded(t, run)
		ledger := func() (rows []struct {
			Channel string `db:"channel"`
			Status  string `db:"status"`
			Reason  string `db:"reason"`
		}) {
			_ = e.PB.DB().NewQuery("SELECT channel, status, reason FROM messages WHERE journey_run={:r} ORDER BY created").
				Bind(dbx.Params{"r": run}).All(&rows)
			return rows
		}
		sends := map[string]stepRow{}
		for _, s := range e.steps(t, run) {
			if s.Type == "send" {
				sends[s.Node] = s
			}
		}
		switch k {
		case "buyer":
			if r.ExitReason != "goal" || len(ledger()) != 0 || len(sends) != 0 {
				t.Fatalf("buyer: %s, %d ledger rows, sends %v", r.ExitReason, len(ledger()), sends)
			}
		case "wa", "em":
			want := map[string]string{"wa": "whatsapp", "em": "email"}[k]
			if r.Status != RunCompleted || sends["remind"].Exit != "sent" || sends["remind"].detail()["channel"] != want ||
				sends["discount"].Exit != "sent" || sends["discount"].detail()["channel"] != "email" {
				t.Fatalf("%s: %s/%s, sends %+v", k, r.Status, r.ExitReason, sends)
			}
			for _, node := range []string{"remind", "discount"} {
				id := sends[node].detail()["message_id"].(string)
				omnitest.Eventually(t, 60*time.Second, func() bool { return len(e.vendor.messages(id)) == 1 }, "%s %s delivered", k, node)
			}
			if m := e.vendor.messages(sends["remind"].detail()["message_id"].(string))[0]; want == "whatsapp" &&
				(m.Template == nil || m.Template.Name != "cart_reminder" || len(m.Template.Params) != 2 || m.Template.Params[1] != "https://shop.omni-shop.dev/c/wa") {
				t.Fatalf("whatsapp reminder: %+v", m.Template)
			}
		case "un":
			reason, _ := sends["remind"].detail()["reason"].(string)
			if sends["remind"].Exit != "suppressed" || !strings.Contains(reason, "no marketing consent on email (unsubscribed)") ||
				sends["discount"].Exit != "suppressed" {
				t.Fatalf("unsubscribed: %+v", sends)
			}
			if rows := ledger(); len(rows) != 2 || rows[0].Status != "suppressed" {
				t.Fatalf("unsubscribed ledger: %+v", rows)
			}
		}
	}
}

// wait until a time of day is in the customer's time zone (their timezone
// trait), else the shop's.
func TestEngineWaitUntilInTheCustomersZone(t *testing.T) {
	e := startEngineEnv(t, false)
	tokyo := e.customer(t, "tokyo", map[string]any{"timezone": "Asia/Tokyo"})
	shop := e.customer(t, "shop", nil)
	c := e.journey(t, "Morning", `{"trigger": {"manual": true}, "start": "w", "nodes": {
		"w": {"type": "wait", "until": {"time": "09:00", "weekdays": ["mon", "thu"]}, "next": "end"}, "end": {"type": "exit"}}}`, "")
	for p, zone := range map[string]string{tokyo: "Asia/Tokyo", shop: "UTC"} {
		run := e.enrol(t, c, p, RunContext{})
		omnitest.Eventually(t, 30*time.Second, func() bool { return e.run(t, run).Status == RunWaiting }, "waiting")
		r := e.run(t, run)
		var ctx RunContext
		_ = json.Unmarshal([]byte(r.Context), &ctx)
		loc, _ := time.LoadLocation(zone)
		want := graph.NextUntil(c.Graph.Nodes["w"].Until, parseT(ctx.At), loc)
		due := parseT(r.DueAt).In(loc)
		if !due.Equal(want) || due.Hour() != 9 || (due.Weekday() != time.Monday && due.Weekday() != time.Thursday) {
			t.Fatalf("%s: due %v, want %v", zone, due, want)
		}
	}
}
