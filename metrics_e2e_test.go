package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/internal/testkit/vendorfixtures"
)

// The reports end to end through the real omni binary, on a small shop
// whose every figure is worked out by hand below, driven only through the
// ingest API, the WhatsApp webhook, the staff API and the CLI:
//
//   - orders in GBP and EUR (base GBP, 1 EUR = 0.85 GBP) with a refund in
//     EUR;
//   - a customer known by two identities whose profiles merge mid-period
//     (their orders count as one customer's) and are un-merged again;
//   - an erased customer, whose order leaves every figure;
//   - the 4-touch path: an email open, an agent's WhatsApp reply in the
//     inbox, a web visit with a UTM campaign, then the order, credited
//     under each attribution model; it is also the one pass through the
//     shipped funnel; the conversation ends with a CSAT of 5;
//   - then every event is delivered twice more and every report's JSON
//     stays the same, and again after `omni metrics rebuild`.
func TestMetricsThroughTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary with plugin subprocesses")
	}
	s := &metricsShop{inboxShop: startInboxShop(t)}
	// The shop's zone is UTC and its base currency GBP: days and money
	// below are exact.
	s.restartWith(t, "messaging:\n  quiet_hours: \"\"\n  timezone: UTC\nprofiles:\n  base_currency: GBP\n  exchange_rates: \"EUR=0.85\"\n")
	s.ownerJSON(t, "PUT", "/api/v1/inbox/settings/csat", map[string]any{"enabled": true, "via": "message",
		"question": "How did we do? Reply 1 (bad) to 5 (great).", "thanks": "Thank you!"}, 200, nil)

	now := time.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	day := func(ago int) string { return today.AddDate(0, 0, -ago).Add(12 * time.Hour).Format(time.RFC3339) }
	// The range: the last 30 days and tomorrow (an order placed seconds
	// from now stays in it at midnight).
	s.rangeQ = "from=" + today.AddDate(0, 0, -29).Format("2006-01-02") + "&to=" + today.AddDate(0, 0, 1).Format("2006-01-02")

	order := func(id, who, userID, at, cur string, total float64, channel string) {
		msg := map[string]any{"messageId": "order-" + id, "event": "Order Completed", "timestamp": at,
			"properties": map[string]any{"order_id": id, "total": total, "currency": cur,
				"line_items": []any{map[string]any{"sku": "MUG-" + id, "title": "Mug", "quantity": 1, "price": total}}},
			"context": map[string]any{"channel": channel}}
		if who != "" {
			msg["context"].(map[string]any)["traits"] = map[string]any{"email": who}
		}
		if userID != "" {
			msg["userId"] = userID
		} else {
			msg["anonymousId"] = "anon-" + id
		}
		s.send(t, "track", msg)
	}
	ana, ben, cara, dan, eve := "ana@omni-shop.dev", "ben@omni-shop.dev", "cara@omni-shop.dev", "dan@omni-shop.dev", "eve@omni-shop.dev"

	// Ana: two orders in GBP, 100 on the web and 50 at the till.
	order("2001", ana, "u-ana", day(20), "GBP", 100, "web")
	order("2002", ana, "u-ana", day(10), "GBP", 50, "pos")
	// Ben: 200 EUR (= 170 GBP), then 40 EUR of it refunded (= 34 GBP).
	order("2003", ben, "u-ben", day(15), "EUR", 200, "web")
	s.send(t, "track", map[string]any{"messageId": "refund-2003", "userId": "u-ben", "event": "order.refunded", "timestamp": day(12),
		"properties": map[string]any{"refund_id": "rf-1", "order_id": "2003", "total": 40, "currency": "EUR"}})
	// Cara: 30 GBP by her email, 70 GBP by a user id nobody has linked yet.
	order("2004", cara, "", day(8), "GBP", 30, "web")
	order("2005", "", "u-cara", day(6), "GBP", 70, "web")
	// Dan: 40 GBP, then he asks to be forgotten.
	order("2006", dan, "u-dan", day(5), "GBP", 40, "web")

	caraByEmail := s.profileOf(t, cara)
	danID := s.profileOf(t, dan)
	omnitest.Eventually(t, 30*time.Second, func() bool { return len(s.customerRows(t)) == 5 },
		"a metrics_customers row for each of Ana, Ben, both Caras and Dan\n%s", s.logs)

	// Cara signs in: the user id and the email are one person. Her two
	// profiles merge: one customer with 2 orders, 30 + 70 = 100 GBP.
	s.send(t, "identify", map[string]any{"messageId": "identify-cara", "userId": "u-cara", "traits": map[string]any{"email": cara}})
	var merge struct{ ID, Survivor, Loser string }
	omnitest.Eventually(t, 30*time.Second, func() bool {
		var m struct {
			Items []struct {
				ID       string `json:"id"`
				Survivor string `json:"survivor"`
				Loser    string `json:"loser"`
			} `json:"items"`
		}
		s.ownerJSON(t, "GET", "/api/v1/profiles/"+s.profileOf(t, cara)+"/merges", nil, 200, &m)
		if len(m.Items) == 1 {
			merge.ID, merge.Survivor, merge.Loser = m.Items[0].ID, m.Items[0].Survivor, m.Items[0].Loser
		}
		return merge.ID != ""
	}, "Cara's profiles to merge\n%s", s.logs)
	if merge.Survivor != caraByEmail && merge.Loser != caraByEmail {
		t.Fatalf("the merge %+v is not of Cara's email profile %s", merge, caraByEmail)
	}
	omnitest.Eventually(t, 30*time.Second, func() bool {
		rows := s.customerRows(t)
		c, ok := rows[merge.Survivor]
		_, loser := rows[merge.Loser]
		return ok && !loser && c.Orders == 2 && near(c.NetBase, 100)
	}, "one buying customer for Cara after the merge: 2 orders, 100 GBP; rows %v", fmtRows(s.customerRows(t)))

	// The owner undoes it: two customers again, one order each (30 and 70).
	s.ownerJSON(t, "POST", "/api/v1/profiles/"+merge.Survivor+"/merges/"+merge.ID+"/undo", nil, 200, nil)
	omnitest.Eventually(t, 30*time.Second, func() bool {
		rows := s.customerRows(t)
		a, b := rows[merge.Survivor], rows[merge.Loser]
		return a.Orders == 1 && b.Orders == 1 && near(a.NetBase+b.NetBase, 100) && near(math.Abs(a.NetBase-b.NetBase), 40)
	}, "Cara's two customers again after the un-merge (30 and 70 GBP); rows %v", fmtRows(s.customerRows(t)))

	// Dan is erased: his order leaves the figures.
	s.ownerJSON(t, "DELETE", "/api/v1/profiles/"+danID, nil, 200, nil)
	omnitest.Eventually(t, 30*time.Second, func() bool { _, ok := s.customerRows(t)[danID]; return !ok },
		"Dan's metrics_customers row to go with him")

	// Eve: the 4-touch path. Her email and phone are one person.
	const eveWA = "447700900301"
	s.send(t, "identify", map[string]any{"messageId": "identify-eve", "userId": "u-eve", "traits": map[string]any{"email": eve, "phone": "+" + eveWA}})
	eveID := s.profileOf(t, eve)
	// 1. She opens the newsletter two days ago.
	s.send(t, "track", map[string]any{"messageId": "open-eve", "userId": "u-eve", "event": "email.opened",
		"timestamp": now.Add(-48 * time.Hour).Format(time.RFC3339), "properties": map[string]any{"subject": "Spring sale"},
		"context": map[string]any{"channel": "email"}})
	// 2. She asks on WhatsApp; the agent answers in the inbox.
	s.waIn(t, eveWA, "Eve Evans", "Is the blue mug back?", time.Now())
	conv := s.conversationAt(t, "whatsapp", eveWA)
	eveID = s.profileOf(t, eve) // the same person, whether or not the phone joined her by a merge
	if conv.Customer.ID != eveID {
		t.Fatalf("Eve's WhatsApp conversation is of %s, want her profile %s", conv.Customer.ID, eveID)
	}
	var reply messageView
	s.doJSON(t, "POST", "/api/v1/conversations/"+conv.ID+"/messages", s.agent, map[string]any{"text": "Yes, since today!"}, 201, &reply)
	omnitest.Eventually(t, 30*time.Second, func() bool { return s.message(t, conv.ID, reply.ID).Status == "sent" },
		"the agent's reply to be sent\n%s", s.logs)
	// 3. She follows the spring campaign's link, 4. then buys: 120 GBP.
	// Each after the one before, by a second.
	visit := time.Now().UTC().Add(time.Second)
	s.send(t, "page", map[string]any{"messageId": "visit-eve", "userId": "u-eve", "name": "Blue mug", "timestamp": visit.Format(time.RFC3339Nano),
		"properties": map[string]any{"url": "https://omni-shop.dev/p/blue-mug?utm_source=newsletter&utm_medium=email&utm_campaign=spring"},
		"context":    map[string]any{"channel": "web", "campaign": map[string]any{"source": "newsletter", "medium": "email", "name": "spring"}}})
	s.send(t, "track", map[string]any{"messageId": "checkout-eve", "userId": "u-eve", "event": "checkout.started",
		"timestamp": visit.Add(time.Second).Format(time.RFC3339Nano), "properties": map[string]any{"checkout_token": "tok-eve", "total": 120}})
	order("2007", eve, "u-eve", visit.Add(2*time.Second).Format(time.RFC3339Nano), "GBP", 120, "web")
	// The agent resolves; Eve rates the conversation 5.
	s.doJSON(t, "PATCH", "/api/v1/conversations/"+conv.ID, s.agent, map[string]any{"status": "resolved"}, 200, nil)
	omnitest.Eventually(t, 30*time.Second, func() bool {
		for _, m := range s.meta.SentTo(eveWA) {
			if tx, _ := m.Body["text"].(map[string]any); tx != nil && strings.Contains(fmt.Sprint(tx["body"]), "How did we do?") {
				return true
			}
		}
		return false
	}, "the CSAT question at WhatsApp\n%s", s.logs)
	s.waIn(t, eveWA, "Eve Evans", "5", time.Now().Add(time.Second))
	omnitest.Eventually(t, 30*time.Second, func() bool { return s.conversation(t, s.agent, conv.ID).Conversation.CSATScore == 5 },
		"Eve's CSAT on the conversation\n%s", s.logs)

	// Sales over the range, in GBP:
	//   orders: Ana 100 + 50, Ben 200 EUR × 0.85 = 170, Cara 30 + 70,
	//   Eve 120 (Dan's 40 erased)          = 540 gross, 6 orders
	//   refunds: Ben 40 EUR × 0.85         = 34
	//   net: 540 − 34                      = 506; AOV 506 / 6 = 84.33
	// New or returning (each customer's first order is new): Ana's second
	// order is the only returning one, 50. Had Cara's merge stood, her 70
	// would be returning too; after the undo both her orders are firsts.
	//   new orders: 100 + 170 + 30 + 70 + 120 = 490 less Ben's refund 34
	//   = 456 (5 orders); returning 50 (1 order); share 1/6 = 0.1667
	//   new customers: Ana, Ben, Cara twice, Eve = 5
	want := map[string]float64{"gross_revenue": 540, "refunds": 34, "net_revenue": 506, "orders": 6, "aov": 84.33,
		"new_orders": 5, "returning_orders": 1, "new_revenue": 456, "returning_revenue": 50, "returning_share": 0.1667,
		"new_customers": 5}
	var sales metricsReport
	omnitest.Eventually(t, 30*time.Second, func() bool {
		sales = s.report(t, "sales", "")
		for k, v := range want {
			if !near(sales.Totals[k], v) {
				return false
			}
		}
		return true
	}, "the sales totals %v; got %v\n%s", want, func() any { return sales.Totals }(), s.logs)
	if sales.Currency != "GBP" {
		t.Fatalf("sales in %q, want the base GBP", sales.Currency)
	}

	// Buying customers: Ana 2 orders 150; Ben 1 order 170 − 34 = 136;
	// Cara's two 30 and 70; Eve 120. Dan none.
	rows := s.customerRows(t)
	if len(rows) != 5 || rows[s.profileOf(t, ana)].Orders != 2 || !near(rows[s.profileOf(t, ana)].NetBase, 150) ||
		!near(rows[s.profileOf(t, ben)].NetBase, 136) || rows[eveID].Orders != 1 || !near(rows[eveID].NetBase, 120) {
		t.Fatalf("metrics_customers: %v", fmtRows(rows))
	}

	// Attribution credits every order placed in the range, gross, in GBP
	// (540). Orders with no touch in their 7-day lookback go whole to
	// direct: Ana's, Ben's and Cara's, 100 + 50 + 170 + 30 + 70 = 420.
	// Eve's 120 has three touches before it: the email open (T1, 48 h
	// before), the agent's WhatsApp reply (T2, seconds before) and the
	// spring visit (T3, a second before). Her own WhatsApp message is no
	// touch (the customer acting).
	//   first:     email 120
	//   last:      web 120 (campaign spring)
	//   linear:    120 / 3 = 40 each; the agent 40
	//   position:  40% / 20% / 40% = 48 email, 24 whatsapp, 48 web; the agent 24
	//   time decay (half-life 7 days): weights 2^(−48/168) = 0.8203 for
	//   the email and ≈ 1 for the two touches of seconds ago (2^(−60 s/7 d)
	//   = 0.99993); email 120 × 0.8203 / 2.8203 = 34.90, whatsapp + web
	//   85.10 (web a hair more: it is newer).
	cases := []struct {
		model   string
		channel map[string]float64
		agent   float64 // agent_assisted_revenue: Alex's reply
	}{
		{"first", map[string]float64{"direct": 420, "email": 120}, 0},
		{"last", map[string]float64{"direct": 420, "web": 120}, 0},
		{"linear", map[string]float64{"direct": 420, "email": 40, "whatsapp": 40, "web": 40}, 40},
		{"position", map[string]float64{"direct": 420, "email": 48, "whatsapp": 24, "web": 48}, 24},
	}
	for _, c := range cases {
		r := s.report(t, "attribution", "&model="+c.model)
		got := credit(t, r, "channel")
		for ch, v := range c.channel {
			if !near(got[ch], v) {
				t.Errorf("%s: %s credit %v, want %v (all: %v)", c.model, ch, got[ch], v, got)
			}
		}
		if sum := sumOf(got); !near(sum, 540) || !near(r.Totals["attributed_revenue"], 540) {
			t.Errorf("%s: credit per channel sums to %v, attributed_revenue %v, want 540", c.model, sum, r.Totals["attributed_revenue"])
		}
		if a := r.Totals["agent_assisted_revenue"]; !near(a, c.agent) {
			t.Errorf("%s: agent_assisted_revenue %v, want %v", c.model, a, c.agent)
		}
		if camp := credit(t, r, "campaign"); c.model == "last" && !near(camp["spring"], 120) {
			t.Errorf("last: campaign credit %v, want spring 120", camp)
		}
	}
	td := credit(t, s.report(t, "attribution", "&model=time_decay"), "channel")
	if !near(sumOf(td), 540) || !near(td["direct"], 420) || math.Abs(td["email"]-34.90) > 0.05 ||
		math.Abs(td["whatsapp"]+td["web"]-85.10) > 0.05 || td["whatsapp"] > td["web"] {
		t.Errorf("time_decay: %v, want direct 420, email 34.90, whatsapp ≤ web summing to 85.10", td)
	}

	// The shipped funnel "Browse to buy" (any page view → checkout started
	// → order placed, 7 days): only Eve viewed a page (the spring visit),
	// then checked out and ordered: 1 entered, 1 converted.
	funnel := s.report(t, "funnel", "")
	for k, v := range map[string]float64{"entered": 1, "converted": 1, "conversion_rate": 1} {
		if !near(funnel.Totals[k], v) {
			t.Errorf("funnel %s = %v, want %v (totals %v)", k, funnel.Totals[k], v, funnel.Totals)
		}
	}

	// The inbox: Eve's one conversation, resolved, rated 5.
	inbox := s.report(t, "inbox", "")
	for k, v := range map[string]float64{"conversations": 1, "csat": 5, "csat_responses": 1, "csat_satisfied_rate": 1, "waiting_now": 0} {
		if !near(inbox.Totals[k], v) {
			t.Errorf("inbox %s = %v, want %v (totals %v)", k, inbox.Totals[k], v, inbox.Totals)
		}
	}

	// Every report as it stands; then every event twice more, as a
	// retrying sender or a re-sent webhook would.
	s.stagesCounted(t)
	before := s.allReports(t)
	if again := s.allReports(t); !equalReports(before, again) {
		t.Fatalf("the reports change with nothing sent: %s", diffReports(before, again))
	}
	for range 2 {
		s.redeliver(t)
	}
	s.drained(t)
	if after := s.allReports(t); !equalReports(before, after) {
		t.Fatalf("redelivering every event twice changed the reports: %s", diffReports(before, after))
	}

	// The rollups rebuilt from the events table say the same.
	s.stop(t)
	if out, errOut, code := omni(t, s.dir, nil, "metrics", "rebuild"); code != 0 {
		t.Fatalf("omni metrics rebuild: exit %d: %s%s", code, out, errOut)
	}
	s.serve(t)
	s.stagesCounted(t)
	if after := s.allReports(t); !equalReports(before, after) {
		t.Fatalf("omni metrics rebuild changed the reports: %s", diffReports(before, after))
	}
}

// metricsShop is the inbox shop that remembers what it sent, to send it
// all again.
type metricsShop struct {
	*inboxShop
	rangeQ string
	sent   []sentCall
}

type sentCall struct {
	path    string // /api/v1/track, … or /webhooks/whatsapp
	body    map[string]any
	webhook bool
}

// send posts one Segment call with the server source's key and keeps it.
func (s *metricsShop) send(t *testing.T, call string, msg map[string]any) {
	t.Helper()
	s.track(t, call, msg)
	s.sent = append(s.sent, sentCall{path: call, body: msg})
}

// waIn posts a customer's WhatsApp text (as waInboundAt does) and keeps it.
func (s *metricsShop) waIn(t *testing.T, waID, name, text string, at time.Time) {
	t.Helper()
	var n map[string]any
	if err := json.Unmarshal(vendorfixtures.Read(t, "whatsapp", "inbound_text_message.json"), &n); err != nil {
		t.Fatal(err)
	}
	s.waCounter++
	v := waValue(t, n)
	v["metadata"].(map[string]any)["phone_number_id"] = s.meta.PhoneNumberID
	v["contacts"] = []any{map[string]any{"profile": map[string]any{"name": name}, "wa_id": waID}}
	msg := v["messages"].([]any)[0].(map[string]any)
	msg["from"], msg["id"], msg["timestamp"] = waID, fmt.Sprintf("wamid.M%s%04d", waID, s.waCounter), strconv.FormatInt(at.Unix(), 10)
	msg["text"] = map[string]any{"body": text}
	s.waPost(t, n)
	s.sent = append(s.sent, sentCall{body: n, webhook: true})
}

// redeliver sends everything kept once more, in order.
func (s *metricsShop) redeliver(t *testing.T) {
	t.Helper()
	for _, c := range s.sent {
		if c.webhook {
			s.waPost(t, c.body)
		} else {
			s.track(t, c.path, c.body)
		}
	}
}

// drained waits until every bus consumer has nothing pending.
func (s *metricsShop) drained(t *testing.T) {
	t.Helper()
	omnitest.Eventually(t, 60*time.Second, func() bool {
		var h struct {
			Bus struct {
				Consumers map[string]struct {
					Pending    uint64 `json:"pending"`
					AckPending int    `json:"ack_pending"`
				} `json:"consumers"`
			} `json:"bus"`
		}
		resp, err := http.Get("http://" + s.addr + "/api/v1/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&h) != nil || len(h.Bus.Consumers) == 0 {
			return false
		}
		for _, c := range h.Bus.Consumers {
			if c.Pending != 0 || c.AckPending != 0 {
				return false
			}
		}
		return true
	}, "the bus consumers to drain\n%s", s.logs)
}

// stop ends omni serve as an operator would (SIGTERM) and waits.
func (s *metricsShop) stop(t *testing.T) {
	t.Helper()
	if err := s.srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-s.srv.done
	s.srv.done <- nil // for startServer's cleanup
}

// restartWith writes omni.yaml and restarts the shop on it, waiting for
// the WhatsApp connector again.
func (s *metricsShop) restartWith(t *testing.T, yaml string) {
	t.Helper()
	s.stop(t)
	if err := os.WriteFile(filepath.Join(s.dir, "omni.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s.serve(t)
	omnitest.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + s.addr + "/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1&hub.verify_token=wa-verify")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "the whatsapp connector to run again\n%s", s.logs)
}

// metricsReport is the part of a report the test reads.
type metricsReport struct {
	Currency string             `json:"currency"`
	Totals   map[string]float64 `json:"totals"`
	Tables   []struct {
		Name    string `json:"name"`
		Columns []struct {
			Key  string `json:"key"`
			Type string `json:"type"`
		} `json:"columns"`
		Rows [][]any `json:"rows"`
	} `json:"tables"`
}

func (s *metricsShop) report(t *testing.T, name, params string) metricsReport {
	t.Helper()
	var r metricsReport
	s.ownerJSON(t, "GET", "/api/v1/metrics/"+name+"?"+s.rangeQ+params, nil, 200, &r)
	return r
}

// credit sums, per value of the column keyed dim (channel, campaign), the
// first money column of the first table that has it (by_channel, …).
func credit(t *testing.T, r metricsReport, dim string) map[string]float64 {
	t.Helper()
	for _, tb := range r.Tables {
		d, m := -1, -1
		for i, c := range tb.Columns {
			if c.Key == dim && d < 0 {
				d = i
			}
			if c.Type == "money" && m < 0 {
				m = i
			}
		}
		if d < 0 || m < 0 {
			continue
		}
		out := map[string]float64{}
		for _, row := range tb.Rows {
			k, _ := row[d].(string)
			v, _ := row[m].(float64)
			out[k] += v
		}
		return out
	}
	t.Fatalf("the attribution report has no table with a %q column and a money column: %+v", dim, r.Tables)
	return nil
}

func sumOf(m map[string]float64) float64 {
	s := 0.0
	for _, v := range m {
		s += v
	}
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) < 0.005 }

type customerRow struct {
	Profile string  `json:"profile"`
	Orders  int     `json:"orders"`
	NetBase float64 `json:"net_base"`
}

// customerRows reads metrics_customers through the records API, by profile.
func (s *metricsShop) customerRows(t *testing.T) map[string]customerRow {
	t.Helper()
	var list struct {
		Items []customerRow `json:"items"`
	}
	s.ownerJSON(t, "GET", "/api/collections/metrics_customers/records?perPage=100&fields="+url.QueryEscape("profile,orders,net_base"), nil, 200, &list)
	out := map[string]customerRow{}
	for _, r := range list.Items {
		out[r.Profile] = r
	}
	return out
}

func fmtRows(rows map[string]customerRow) string {
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s: %d orders %.2f", r.Profile, r.Orders, r.NetBase))
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

// stagesCounted waits for the server's first count of the profiles by
// stage, a few seconds after it starts: until then the customers report's
// stage figures are empty, and its notes say so.
func (s *metricsShop) stagesCounted(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var r struct {
			Notes []string `json:"notes"`
		}
		s.ownerJSON(t, "GET", "/api/v1/metrics/customers?"+s.rangeQ, nil, 200, &r)
		if !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.Contains(n, "still being counted") }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the profiles were still being counted by stage 30 s after the start: %q", r.Notes)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allReports fetches every report (attribution under each model), decoded.
func (s *metricsShop) allReports(t *testing.T) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, q := range []string{"sales?compare=previous", "customers?compare=previous", "funnel", "journeys", "inbox",
		"attribution?model=first", "attribution?model=last", "attribution?model=linear", "attribution?model=position",
		"attribution?model=time_decay"} {
		path, params, _ := strings.Cut(q, "?")
		var v any
		s.ownerJSON(t, "GET", "/api/v1/metrics/"+path+"?"+s.rangeQ+"&"+params, nil, 200, &v)
		out[q] = v
	}
	return out
}

func equalReports(a, b map[string]any) bool { return diffReports(a, b) == "" }

// diffReports names every value that differs between two sets of
// reports. Numbers are the same when they agree to 1e-9 of their size: a
// sum taken in another order (after a rebuild) may differ in its last bit,
// which no one reads as a change.
func diffReports(a, b map[string]any) string {
	var out bytes.Buffer
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if d := jsonDiff(k, a[k], b[k]); d != "" {
			fmt.Fprintf(&out, "\n%s", d)
		}
	}
	if len(a) != len(b) {
		fmt.Fprintf(&out, "\n%d reports before, %d after", len(a), len(b))
	}
	return out.String()
}

func jsonDiff(at string, a, b any) string {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		if ok && math.Abs(x-y) <= 1e-9*math.Max(1, math.Max(math.Abs(x), math.Abs(y))) {
			return ""
		}
	case map[string]any:
		y, ok := b.(map[string]any)
		if ok && len(x) == len(y) {
			var out []string
			for k, v := range x {
				if d := jsonDiff(at+"."+k, v, y[k]); d != "" {
					out = append(out, d)
				}
			}
			slices.Sort(out)
			return strings.Join(out, "\n")
		}
	case []any:
		y, ok := b.([]any)
		if ok && len(x) == len(y) {
			var out []string
			for i := range x {
				if d := jsonDiff(fmt.Sprintf("%s[%d]", at, i), x[i], y[i]); d != "" {
					out = append(out, d)
				}
			}
			return strings.Join(out, "\n")
		}
	default:
		if a == b {
			return ""
		}
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return fmt.Sprintf("%s: before %s, after %s", at, ja, jb)
}
