package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/internal/testkit/metafake"
	"github.com/omni/omni/internal/testkit/smtptest"
)

// The abandoned-checkout recipe end to end through the real omni binary,
// with the built-in email and whatsapp connectors as plugin subprocesses
// sending to an in-process SMTP server and a local Meta Graph API, and
// nothing but the HTTP API and the CLI a shop owner has:
//
//   - a customer who buys within the wait gets nothing and exits by goal;
//   - one who doesn't gets the reminder on WhatsApp (consented there) or by
//     email (not), then the discount by email;
//   - an unsubscribed one is suppressed with the reason;
//   - customers of a cohort pass a 50% holdout: the held-out ones get
//     nothing and are counted (and their later order is their side's
//     conversion), the others get their emails;
//   - the results count all of it, and a backtest over the same history
//     agrees with what the live journey did, sending nothing.
func TestAbandonedCheckoutJourneyThroughTheBinary(t *testing.T) {
	testStart := time.Now()
	shop := startJourneyShop(t)

	// The owner starts from the recipe with waits of seconds and an
	// approved WhatsApp template, so WhatsApp can go outside the 24-hour window.
	const firstWait = "8s" // long enough for the buyer's order to land inside it
	journey, g := shop.recipe(t, "abandoned_checkout", map[string]any{
		"wait": firstWait, "second_wait": "2s", "whatsapp_template": "cart_reminder", "whatsapp_language": "en_US"})

	// A cohort goes through a holdout before the reminder: the owner
	// edits the draft (a branch on a trait, a 50% holdout) and publishes.
	nodes := g["nodes"].(map[string]any)
	wait := nodes["wait_order"].(map[string]any)
	wait["next"].(map[string]any)["timed_out"] = "cohort"
	nodes["cohort"] = map[string]any{"type": "branch", "name": "In the lift cohort?",
		"rule": map[string]any{"trait": "cohort", "op": "eq", "value": "lift"}, "next": map[string]any{"yes": "hold", "no": "remind"}}
	nodes["hold"] = map[string]any{"type": "holdout", "name": "Holdout", "percent": 50,
		"next": map[string]any{"held_out": "done", "continue": "remind"}}
	var draft struct {
		Problems []map[string]any `json:"problems"`
	}
	shop.ownerJSON(t, "PATCH", "/api/v1/journeys/"+journey, map[string]any{"graph": g}, 200, &draft)
	if len(draft.Problems) != 0 {
		t.Fatalf("the edited draft has problems: %v", draft.Problems)
	}
	shop.publish(t, journey, 1)

	// The customers, as the shop's backend reports them.
	custs := []*journeyCustomer{
		{key: "buyer", consent: [][2]string{{"whatsapp", "subscribed"}, {"email", "subscribed"}}},
		{key: "wa", consent: [][2]string{{"whatsapp", "subscribed"}, {"email", "subscribed"}}},
		{key: "em", consent: [][2]string{{"email", "subscribed"}}},
		{key: "un", consent: [][2]string{{"email", "subscribed"}, {"whatsapp", "unsubscribed"}, {"email", "unsubscribed"}}},
	}
	const cohortSize = 12 // both sides of a 50% holdout are non-empty but for 2 in 4096
	for i := 0; i < cohortSize; i++ {
		custs = append(custs, &journeyCustomer{key: fmt.Sprintf("lift%02d", i), cohort: true, consent: [][2]string{{"email", "subscribed"}}})
	}
	byKey := map[string]*journeyCustomer{}
	for i, c := range custs {
		byKey[c.key] = c
		shop.customer(t, c, i)
	}
	for _, c := range custs {
		shop.checkout(t, c)
	}

	// Each customer enters once; the buyer orders the same cart while the
	// run waits for it.
	for _, c := range custs {
		shop.entered(t, journey, c)
	}
	buyer := byKey["buyer"]
	omnitest.Eventually(t, 30*time.Second, func() bool {
		r := shop.run(t, journey, buyer.run)
		return r.Status == "waiting" && r.Node == "wait_order"
	}, "the buyer's run to wait for the order")
	// As the customer's page shows it.
	if r := shop.customerRuns(t, buyer.profile); len(r) != 1 || r[0].JourneyName != "Abandoned checkout" ||
		!strings.HasPrefix(r[0].State, "waiting for order.placed until ") {
		t.Fatalf("the buyer's runs while waiting: %+v", r)
	}
	shop.track(t, "track", map[string]any{"userId": "u-buyer", "messageId": "order-buyer", "event": "order.placed",
		"properties": map[string]any{"checkout_token": "tok-buyer", "order_id": "1001", "total": 80.0, "currency": "EUR"}})

	// Every run ends: the buyer by the goal, the others at the end.
	ended := map[string]runDetail{}
	for _, c := range custs {
		ended[c.key] = shop.ended(t, journey, c)
		c.heldOut = ended[c.key].Holdout
	}

	// What each customer got, by the run's history, the send ledger and
	// the fakes. Treated customers' messages reach the fakes exactly once.
	heldOut, treated := 0, 0
	for _, c := range custs {
		r := ended[c.key]
		sends := r.sends()
		ledger := shop.messages(t, c.run)
		switch {
		case c.key == "buyer":
			if r.Status != "exited" || r.ExitReason != "goal" || len(sends) != 0 || len(ledger) != 0 {
				t.Fatalf("buyer: %s/%s, sends %v, ledger %v", r.Status, r.ExitReason, sends, ledger)
			}
			if s := r.step("_goal"); s == nil || s.Exit != "reached" || s.Detail["value"] != 80.0 {
				t.Fatalf("buyer: no goal step in %+v", r.Steps)
			}
			if r := shop.customerRuns(t, c.profile); len(r) != 1 || r[0].State != "exited: goal" {
				t.Fatalf("the buyer's runs after the order: %+v", r)
			}
			// The timeline tells the story: entered, then left by the goal.
			var tl struct {
				Items []struct {
					Type       string         `json:"type"`
					Properties map[string]any `json:"properties"`
				} `json:"items"`
			}
			omnitest.Eventually(t, 30*time.Second, func() bool {
				shop.ownerJSON(t, "GET", "/api/v1/profiles/"+c.profile+"/timeline?type=journey.entered,journey.exited", nil, 200, &tl)
				return len(tl.Items) == 2
			}, "the buyer's journey events on the timeline")
			if tl.Items[0].Type != "journey.exited" || tl.Items[0].Properties["reason"] != "goal" || tl.Items[0].Properties["run"] != c.run ||
				tl.Items[1].Type != "journey.entered" || tl.Items[1].Properties["journey"] != journey {
				t.Fatalf("the buyer's timeline: %+v", tl.Items)
			}
		case c.key == "un":
			for _, node := range []string{"remind", "discount"} {
				reason, _ := sends[node].Detail["reason"].(string)
				if sends[node].Exit != "suppressed" || !strings.Contains(reason, "no marketing consent on email (unsubscribed)") {
					t.Fatalf("unsubscribed, %s: %+v", node, sends[node])
				}
			}
			if len(ledger) != 2 || ledger[0].Status != "suppressed" || ledger[1].Status != "suppressed" ||
				!strings.Contains(ledger[0].Reason, "no marketing consent on email (unsubscribed)") {
				t.Fatalf("unsubscribed ledger: %+v", ledger)
			}
		case c.heldOut:
			heldOut++
			if r.Status != "completed" || len(sends) != 0 || len(ledger) != 0 {
				t.Fatalf("%s held out: %s, sends %v, ledger %v", c.key, r.Status, sends, ledger)
			}
			if s := r.step("hold"); s == nil || s.Exit != "held_out" {
				t.Fatalf("%s held out without a held_out step: %+v", c.key, r.Steps)
			}
		default:
			if c.cohort {
				treated++
				if s := r.step("hold"); s == nil || s.Exit != "continue" {
					t.Fatalf("%s treated without a continue step: %+v", c.key, r.Steps)
				}
			}
			want := "email"
			if c.key == "wa" {
				want = "whatsapp"
			}
			if r.Status != "completed" || sends["remind"].Exit != "sent" || sends["remind"].Detail["channel"] != want ||
				sends["discount"].Exit != "sent" || sends["discount"].Detail["channel"] != "email" {
				t.Fatalf("%s: %s/%s, sends %+v", c.key, r.Status, r.ExitReason, sends)
			}
			// The step names its ledger row; the row carries the run.
			for _, node := range []string{"remind", "discount"} {
				id, _ := sends[node].Detail["message_id"].(string)
				omnitest.Eventually(t, 60*time.Second, func() bool {
					for _, m := range shop.messages(t, c.run) {
						if m.ID == id {
							return m.Status == "sent" || m.Status == "delivered" || m.Status == "read"
						}
					}
					return false
				}, "%s's %s (%s) to be sent\n%s", c.key, node, id, shop.logs)
			}
		}
	}
	if heldOut == 0 || treated == 0 || heldOut+treated != cohortSize {
		t.Fatalf("holdout sides: %d held out, %d treated of %d", heldOut, treated, cohortSize)
	}
	t.Logf("the holdout held out %d of the cohort's %d customers", heldOut, cohortSize)

	// The fakes: exactly who got a WhatsApp and an email, once each.
	wa := shop.meta.Sent()
	if len(wa) != 1 || wa[0].To != strings.TrimPrefix(byKey["wa"].phone, "+") || wa[0].Template != "cart_reminder" {
		t.Fatalf("WhatsApp messages: %+v", wa)
	}
	if params := waParams(wa[0].Body); len(params) != 2 || params[0] != "Wa" || params[1] != "https://shop.omni-shop.dev/checkouts/wa" {
		t.Fatalf("the WhatsApp template's parameters: %v in %v", params, wa[0].Body)
	}
	mails := shop.mailsTo()
	for _, c := range custs {
		want := 0
		switch {
		case c.key == "wa":
			want = 1 // the discount; the reminder went on WhatsApp
		case c.key == "em", c.cohort && !c.heldOut:
			want = 2 // the reminder, then the discount
		}
		if got := len(mails[c.email()]); got != want {
			t.Fatalf("%s got %d emails, want %d", c.key, got, want)
		}
		if want == 2 && !bytes.Contains(mails[c.email()][1].Data, []byte("COMEBACK10")) {
			t.Fatalf("%s's second email is not the discount:\n%s", c.key, mails[c.email()][1].Data)
		}
	}
	if len(mails) != 2+treated {
		t.Fatalf("emails went to %d addresses, want %d", len(mails), 2+treated)
	}

	// A held-out customer orders later: it counts as their side's
	// conversion (that is what the lift compares), without a message.
	var late *journeyCustomer
	for _, c := range custs {
		if c.heldOut {
			late = c
			break
		}
	}
	shop.track(t, "track", map[string]any{"userId": "u-" + late.key, "messageId": "order-" + late.key, "event": "order.placed",
		"properties": map[string]any{"checkout_token": "tok-" + late.key, "order_id": "1002", "total": 50.0, "currency": "EUR"}})

	// The results count it all.
	var st journeyStats
	omnitest.Eventually(t, 30*time.Second, func() bool {
		st = journeyStats{}
		shop.ownerJSON(t, "GET", "/api/v1/journeys/"+journey+"/stats", nil, 200, &st)
		return st.Holdout.HeldOut.Conversions == 1
	}, "the held-out customer's order to count")
	if st.Journey.Entered != len(custs) || st.Journey.Exited["goal"] != 1 || st.Journey.Conversions != 2 || st.Journey.Revenue != 130 {
		t.Fatalf("journey results: %+v", st.Journey)
	}
	if st.Holdout.HeldOut.Customers != heldOut || st.Holdout.Treated.Customers != treated ||
		st.Holdout.HeldOut.Revenue != 50 || st.Holdout.Treated.Conversions != 0 || st.Holdout.Verdict != "not enough data yet" {
		t.Fatalf("holdout results (%d held out, %d treated): %+v", heldOut, treated, st.Holdout)
	}
	hold, remind := st.Nodes["hold"], st.Nodes["remind"]
	if hold == nil || hold.Exits["held_out"] != heldOut || hold.Exits["continue"] != treated {
		t.Fatalf("holdout step: %+v", hold)
	}
	if remind == nil || remind.Sends["whatsapp"] != 1 || remind.Sends["email"] != 1+treated || remind.Suppressed["consent"] != 1 {
		t.Fatalf("reminder step: %+v", remind)
	}
	if wait := st.Nodes["wait_order"]; wait == nil || wait.Exits["timed_out"] != len(custs)-1 {
		t.Fatalf("wait step: %+v", wait)
	}

	// The backtest replays this same history through the published
	// version and agrees with what the live journey did. Only the holdout
	// draws differ (a simulated run has its own id), so the steps after it
	// are checked against the backtest's own draw.
	bt := shop.backtest(t, journey, map[string]any{"from": testStart.Add(-time.Hour).Format(time.RFC3339),
		"to": time.Now().Add(time.Minute).Format(time.RFC3339), "version": 1})
	cont := bt.Nodes["hold"].Exits["continue"]
	want := map[string]struct {
		entered    int
		exits      map[string]int
		wouldSend  map[string]int
		suppressed map[string]int
	}{
		"wait_order": {len(custs), map[string]int{"timed_out": len(custs) - 1}, nil, nil},
		"cohort":     {len(custs) - 1, map[string]int{"yes": cohortSize, "no": 3}, nil, nil},
		"hold":       {cohortSize, map[string]int{"held_out": cohortSize - cont, "continue": cont}, nil, nil},
		"remind": {3 + cont, map[string]int{"sent": 2 + cont, "suppressed": 1},
			map[string]int{"whatsapp": 1, "email": 1 + cont}, map[string]int{"consent": 1}},
		"discount": {3 + cont, map[string]int{"sent": 2 + cont, "suppressed": 1},
			map[string]int{"email": 2 + cont}, map[string]int{"consent": 1}},
	}
	for node, w := range want {
		n := bt.Nodes[node]
		if n == nil || n.Entered != w.entered || !sameCounts(n.Exits, w.exits) || !sameCounts(n.WouldSend, w.wouldSend) ||
			!sameCounts(n.Suppressed, w.suppressed) {
			t.Fatalf("backtest of %s: %+v, want %+v (all: %+v)", node, n, w, bt.Nodes)
		}
	}
	if bt.Entered != len(custs) || bt.Nodes["wait_order"].Ended["goal"] != 1 || bt.Goal.Reached != 2 || bt.Goal.Revenue != 130 ||
		bt.Goal.Currency != "EUR" || bt.Edges["remind.sent"] != 2+cont {
		t.Fatalf("backtest: entered %d, wait_order ended %v, goal %+v, edges %v", bt.Entered, bt.Nodes["wait_order"].Ended, bt.Goal, bt.Edges)
	}
	if len(shop.meta.Sent()) != 1 || len(shop.smtp.Mails()) != 3+2*treated { // wa 1, em 2, the treated 2 each
		t.Fatalf("the backtest sent something: %d WhatsApp messages, %d emails", len(shop.meta.Sent()), len(shop.smtp.Mails()))
	}
}

// sameCounts compares counts, an absent key being 0.
func sameCounts(got, want map[string]int) bool {
	for k, v := range got {
		if v != want[k] {
			return false
		}
	}
	for k, v := range want {
		if v != got[k] {
			return false
		}
	}
	return true
}

// kill -9 of the server while runs of the recipe wait for the order:
// after a restart the timers fire and each message goes out exactly once,
// on WhatsApp and by email, through the connectors started again.
func TestAbandonedCheckoutJourneySurvivesKillNine(t *testing.T) {
	shop := startJourneyShop(t)
	journey, _ := shop.recipe(t, "abandoned_checkout", map[string]any{
		"wait": "6s", "second_wait": "2s", "whatsapp_template": "cart_reminder"})
	shop.publish(t, journey, 1)
	wa := &journeyCustomer{key: "kwa", consent: [][2]string{{"whatsapp", "subscribed"}, {"email", "subscribed"}}}
	em := &journeyCustomer{key: "kem", consent: [][2]string{{"email", "subscribed"}}}
	for i, c := range []*journeyCustomer{wa, em} {
		shop.customer(t, c, i)
		shop.checkout(t, c)
	}
	for _, c := range []*journeyCustomer{wa, em} {
		shop.entered(t, journey, c)
		omnitest.Eventually(t, 30*time.Second, func() bool {
			r := shop.run(t, journey, c.run)
			return r.Status == "waiting" && r.Node == "wait_order"
		}, "%s's run to wait for the order", c.key)
	}
	shop.kill9(t)
	// The server is down: its database tells where the kill struck.
	var waiting, ledger int
	db := openDB(t, shop.dir)
	_ = db.QueryRow("SELECT COUNT(*) FROM journey_runs WHERE journey = ? AND status = 'waiting' AND node = 'wait_order'", journey).Scan(&waiting)
	_ = db.QueryRow("SELECT COUNT(*) FROM messages").Scan(&ledger)
	if waiting != 2 || ledger != 0 || len(shop.meta.Sent()) != 0 || len(shop.smtp.Mails()) != 0 {
		t.Fatalf("the kill came after the wait: %d runs waiting, %d ledger rows, %d WhatsApp messages, %d emails",
			waiting, ledger, len(shop.meta.Sent()), len(shop.smtp.Mails()))
	}
	db.Close()

	shop.serve(t)
	for _, c := range []*journeyCustomer{wa, em} {
		r := shop.ended(t, journey, c)
		sends := r.sends()
		var ids []string
		for _, node := range []string{"remind", "discount"} {
			if sends[node].Exit != "sent" {
				t.Fatalf("%s, %s: %+v", c.key, node, r.Steps)
			}
			ids = append(ids, sends[node].Detail["message_id"].(string))
		}
		omnitest.Eventually(t, 60*time.Second, func() bool {
			ledger := shop.messages(t, c.run)
			if len(ledger) > 2 {
				t.Fatalf("%s: %d ledger rows: %+v", c.key, len(ledger), ledger)
			}
			return len(ledger) == 2 && ledger[0].ID == ids[0] && ledger[1].ID == ids[1] &&
				ledger[0].Status == "sent" && ledger[1].Status == "sent"
		}, "%s's two messages sent\n%s", c.key, shop.logs)
		// Each step visited once: no node ran twice across the restart.
		var path []string
		for _, st := range r.Steps {
			path = append(path, st.Node)
		}
		if got := strings.Join(path, " "); got != "wait_order remind wait_again discount done" {
			t.Fatalf("%s went %s", c.key, got)
		}
	}
	mails := shop.mailsTo()
	if sent := shop.meta.Sent(); len(sent) != 1 || sent[0].To != strings.TrimPrefix(wa.phone, "+") {
		t.Fatalf("WhatsApp after the restart: %+v", sent)
	}
	if len(mails[wa.email()]) != 1 || len(mails[em.email()]) != 2 || len(mails) != 2 {
		t.Fatalf("emails after the restart: %d to %s, %d to %s, %d addresses", len(mails[wa.email()]), wa.key,
			len(mails[em.email()]), em.key, len(mails))
	}
}

// journeyShop is a running omni binary with the email and whatsapp
// connectors configured from the CLI, an owner signed in and a server
// source for the shop's backend.
type journeyShop struct {
	dir, addr string
	srv       *server
	logs      *bytes.Buffer
	owner     string // the owner's auth token
	key       string // the server source's secret key
	smtp      *smtptest.Server
	meta      *metafake.Server
}

func startJourneyShop(t *testing.T) *journeyShop {
	t.Helper()
	s := &journeyShop{dir: t.TempDir()}
	s.smtp = smtptest.Start(t, smtptest.Options{STARTTLS: true, Username: "shop@omni-shop.dev", Password: "app-password-1"})
	s.meta = metafake.Start(t, "106540352242922", "wa-token")

	// Marketing waits for no quiet hours here: the test runs at any hour.
	if err := os.WriteFile(filepath.Join(s.dir, "omni.yaml"), []byte("messaging:\n  quiet_hours: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, code := omni(t, s.dir, nil, args...)
		if code != 0 {
			t.Fatalf("omni %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	cli("connector", "configure", "email", "smtp_host="+s.smtp.Host, "smtp_port="+strconv.Itoa(s.smtp.Port),
		"smtp_security=starttls", "smtp_username=shop@omni-shop.dev", "smtp_password=app-password-1",
		"from_email=shop@omni-shop.dev", "from_name=Omni Test Shop", "tls_insecure=true")
	cli("connector", "enable", "email")
	cli("connector", "configure", "whatsapp", "phone_number_id="+s.meta.PhoneNumberID, "access_token="+s.meta.Token,
		"app_secret=wa-app-secret", "verify_token=wa-verify", "base_url="+s.meta.URL)
	cli("connector", "enable", "whatsapp")
	m := regexp.MustCompile(`secret key: (\S+)`).FindStringSubmatch(cli("source", "create", "backend", "--kind", "server"))
	if m == nil {
		t.Fatal("no secret key printed for the server source")
	}
	s.key = m[1]

	s.serve(t)

	// The first owner, as the setup page creates it on a loopback install.
	var auth struct {
		Token string `json:"token"`
	}
	s.doJSON(t, "POST", "/api/v1/setup/owner", "", map[string]any{"email": "owner@omni-shop.dev", "password": "owner-pass-1234",
		"passwordConfirm": "owner-pass-1234", "name": "Olga Owner"}, 200, &auth)
	if auth.Token == "" {
		t.Fatal("no token for the owner")
	}
	s.owner = auth.Token
	return s
}

// serve starts omni serve on the shop's data dir.
func (s *journeyShop) serve(t *testing.T) {
	t.Helper()
	s.srv = startServer(t, s.dir)
	s.addr, s.logs = s.srv.addr, s.srv.logs
}

// kill9 kills the server as a power cut would.
func (s *journeyShop) kill9(t *testing.T) {
	t.Helper()
	if err := s.srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.srv.done
	s.srv.done <- nil // for startServer's cleanup
}

// recipe creates a journey from a recipe (a draft) and returns its id and graph.
func (s *journeyShop) recipe(t *testing.T, id string, params map[string]any) (string, map[string]any) {
	t.Helper()
	var j struct {
		ID    string         `json:"id"`
		Graph map[string]any `json:"graph"`
	}
	s.ownerJSON(t, "POST", "/api/v1/journeys", map[string]any{"recipe": id, "params": params}, 201, &j)
	if j.ID == "" || j.Graph["nodes"] == nil {
		t.Fatalf("recipe %s: no journey in the answer: %+v", id, j)
	}
	return j.ID, j.Graph
}

// publish publishes the journey's draft as version want.
func (s *journeyShop) publish(t *testing.T, journey string, want int) {
	t.Helper()
	var pub struct {
		Version int    `json:"version"`
		Status  string `json:"status"`
	}
	s.ownerJSON(t, "POST", "/api/v1/journeys/"+journey+"/publish", map[string]any{"note": "test"}, 200, &pub)
	if pub.Version != want || pub.Status != "live" {
		t.Fatalf("publish: %+v", pub)
	}
}

// customer tells Omni about c as the shop's backend would: who they are
// (the i-th phone number), then their consent changes in order.
func (s *journeyShop) customer(t *testing.T, c *journeyCustomer, i int) {
	t.Helper()
	start := time.Now().Add(-time.Minute)
	c.phone = fmt.Sprintf("+447700900%03d", 100+i)
	traits := map[string]any{"email": c.email(), "phone": c.phone, "first_name": strings.ToUpper(c.key[:1]) + c.key[1:]}
	if c.cohort {
		traits["cohort"] = "lift"
	}
	s.track(t, "identify", map[string]any{"userId": "u-" + c.key, "messageId": "id-" + c.key, "traits": traits, "timestamp": start})
	for k, ch := range c.consent {
		s.track(t, "track", map[string]any{"userId": "u-" + c.key, "messageId": fmt.Sprintf("consent-%s-%d", c.key, k),
			"event": "consent.changed", "properties": map[string]any{"channel": ch[0], "status": ch[1]},
			"timestamp": start.Add(time.Duration(k+1) * time.Second)})
	}
	c.profile = s.profileOf(t, c.email())
}

// checkout starts c's checkout (cart tok-<key>).
func (s *journeyShop) checkout(t *testing.T, c *journeyCustomer) {
	t.Helper()
	s.track(t, "track", map[string]any{"userId": "u-" + c.key, "messageId": "co-" + c.key, "event": "checkout.started",
		"properties": map[string]any{"checkout_token": "tok-" + c.key, "total": 80.0, "currency": "EUR",
			"abandoned_checkout_url": "https://shop.omni-shop.dev/checkouts/" + c.key}})
}

// entered waits for c's one run of the journey.
func (s *journeyShop) entered(t *testing.T, journey string, c *journeyCustomer) {
	t.Helper()
	omnitest.Eventually(t, 60*time.Second, func() bool {
		runs := s.runs(t, journey, c.profile)
		if len(runs) > 1 {
			t.Fatalf("%s entered %d times: %+v", c.key, len(runs), runs)
		}
		if len(runs) == 1 {
			c.run = runs[0].ID
		}
		return c.run != ""
	}, "%s to enter the journey\n%s", c.key, s.logs)
}

// ended waits for c's run to end and returns it with its history.
func (s *journeyShop) ended(t *testing.T, journey string, c *journeyCustomer) runDetail {
	t.Helper()
	var r runDetail
	omnitest.Eventually(t, 90*time.Second, func() bool {
		r = s.run(t, journey, c.run)
		return r.Status == "completed" || r.Status == "exited"
	}, "%s's run to end\n%s", c.key, s.logs)
	return r
}

// mailsTo is the mail the SMTP server accepted, by recipient.
func (s *journeyShop) mailsTo() map[string][]smtptest.Mail {
	out := map[string][]smtptest.Mail{}
	for _, m := range s.smtp.Mails() {
		for _, to := range m.To {
			out[to] = append(out[to], m)
		}
	}
	return out
}

// doJSON sends body as JSON with an auth token (if any), checks the status
// and decodes the answer into out (if given).
func (s *journeyShop) doJSON(t *testing.T, method, path, token string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, "http://"+s.addr+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		// The API hides internal causes from the client; the log names them.
		t.Fatalf("%s %s: %d, want %d: %s\nserver log:\n%s", method, path, resp.StatusCode, want, raw, s.logs)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
}

func (s *journeyShop) ownerJSON(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	s.doJSON(t, method, path, s.owner, body, want, out)
}

// track sends one Segment-style call with the server source's key.
func (s *journeyShop) track(t *testing.T, call string, msg map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(msg)
	req, _ := http.NewRequest("POST", "http://"+s.addr+"/api/v1/"+call, bytes.NewReader(raw))
	req.SetBasicAuth(s.key, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %v: %d %s", call, msg, resp.StatusCode, b)
	}
}

// profileOf finds the customer with this email through the customers list.
func (s *journeyShop) profileOf(t *testing.T, email string) string {
	t.Helper()
	var id string
	omnitest.Eventually(t, 30*time.Second, func() bool {
		var list struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		s.ownerJSON(t, "GET", "/api/v1/profiles?q="+url.QueryEscape(email), nil, 200, &list)
		if len(list.Items) == 1 {
			id = list.Items[0].ID
		}
		return id != ""
	}, "the customer %s\n%s", email, s.logs)
	return id
}

type runItem struct {
	ID         string `json:"id"`
	Profile    string `json:"profile"`
	Node       string `json:"node"`
	Status     string `json:"status"`
	ExitReason string `json:"exit_reason"`
	Holdout    bool   `json:"holdout"`
}

type runStep struct {
	Node   string         `json:"node"`
	Type   string         `json:"type"`
	Exit   string         `json:"exit"`
	Detail map[string]any `json:"detail"`
}

type runDetail struct {
	runItem
	Steps []runStep `json:"steps"`
}

// sends are the run's send steps by node.
func (r runDetail) sends() map[string]runStep {
	out := map[string]runStep{}
	for _, s := range r.Steps {
		if s.Type == "send" {
			out[s.Node] = s
		}
	}
	return out
}

func (r runDetail) step(node string) *runStep {
	for i := range r.Steps {
		if r.Steps[i].Node == node {
			return &r.Steps[i]
		}
	}
	return nil
}

func (s *journeyShop) runs(t *testing.T, journey, profile string) []runItem {
	t.Helper()
	var list struct {
		Items []runItem `json:"items"`
	}
	s.ownerJSON(t, "GET", "/api/v1/journeys/"+journey+"/runs?profile="+profile, nil, 200, &list)
	return list.Items
}

func (s *journeyShop) run(t *testing.T, journey, run string) runDetail {
	t.Helper()
	var r runDetail
	s.ownerJSON(t, "GET", "/api/v1/journeys/"+journey+"/runs/"+run, nil, 200, &r)
	return r
}

type customerRun struct {
	runItem
	JourneyName string `json:"journey_name"`
	State       string `json:"state"`
}

// customerRuns are a customer's runs across journeys, as their page lists them.
func (s *journeyShop) customerRuns(t *testing.T, profile string) []customerRun {
	t.Helper()
	var list struct {
		Items []customerRun `json:"items"`
	}
	s.ownerJSON(t, "GET", "/api/v1/journeys/runs?profile="+profile, nil, 200, &list)
	return list.Items
}

// backtestResult is the part of a backtest's result line checked here.
type backtestResult struct {
	Nodes map[string]*struct {
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
}

// backtest runs a backtest and reads its stream: progress lines, then
// the result.
func (s *journeyShop) backtest(t *testing.T, journey string, body map[string]any) backtestResult {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+s.addr+"/api/v1/journeys/"+journey+"/backtest", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", s.owner)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("backtest: %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	var progress int
	dec := json.NewDecoder(resp.Body)
	for {
		var line struct {
			Progress *float64        `json:"progress"`
			Result   *backtestResult `json:"result"`
			Error    string          `json:"error"`
		}
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("backtest stream after %d progress lines: %v", progress, err)
		}
		switch {
		case line.Error != "":
			t.Fatalf("backtest failed: %s", line.Error)
		case line.Progress != nil:
			progress++
		case line.Result != nil:
			if progress == 0 {
				t.Fatal("backtest: a result without progress")
			}
			return *line.Result
		}
	}
}

type ledgerRow struct {
	ID      string `json:"id"`
	Channel string `json:"channel"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
}

// messages is the send ledger of a run, oldest first.
func (s *journeyShop) messages(t *testing.T, run string) []ledgerRow {
	t.Helper()
	var list struct {
		Items []ledgerRow `json:"items"`
	}
	s.ownerJSON(t, "GET", "/api/v1/messages?journey_run="+run, nil, 200, &list)
	for i, j := 0, len(list.Items)-1; i < j; i, j = i+1, j-1 {
		list.Items[i], list.Items[j] = list.Items[j], list.Items[i]
	}
	return list.Items
}

// journeyCustomer is one customer of the test and what became of them.
type journeyCustomer struct {
	key, phone string
	consent    [][2]string // channel, status, in order
	cohort     bool        // goes through the holdout
	profile    string
	run        string
	heldOut    bool
}

func (c *journeyCustomer) email() string { return c.key + "@omni-shop.dev" }

// journeyStats is the part of GET /api/v1/journeys/{id}/stats checked here.
type journeyStats struct {
	Journey struct {
		Entered     int            `json:"entered"`
		Exited      map[string]int `json:"exited"`
		Conversions int            `json:"conversions"`
		Revenue     float64        `json:"revenue"`
	} `json:"journey"`
	Nodes map[string]*struct {
		Exits      map[string]int `json:"exits"`
		Suppressed map[string]int `json:"suppressed"`
		Sends      map[string]int `json:"sends"`
	} `json:"nodes"`
	Holdout struct {
		HeldOut journeyGroup `json:"held_out"`
		Treated journeyGroup `json:"treated"`
		Verdict string       `json:"verdict"`
	} `json:"holdout"`
}

type journeyGroup struct {
	Customers   int     `json:"customers"`
	Conversions int     `json:"conversions"`
	Revenue     float64 `json:"revenue"`
}

// waParams are the body parameters of a WhatsApp template message as
// the connector posted it.
func waParams(body map[string]any) []string {
	var out []string
	tpl, _ := body["template"].(map[string]any)
	comps, _ := tpl["components"].([]any)
	for _, c := range comps {
		comp, _ := c.(map[string]any)
		if comp["type"] != "body" {
			continue
		}
		params, _ := comp["parameters"].([]any)
		for _, p := range params {
			pm, _ := p.(map[string]any)
			s, _ := pm["text"].(string)
			out = append(out, s)
		}
	}
	return out
}
