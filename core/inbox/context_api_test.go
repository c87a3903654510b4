package inbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/inbox"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/store"
	"github.com/omni/omni/internal/testkit/vendorfixtures"
)

// fixture parses one of a vendor's real sample payloads.
func fixture(t *testing.T, vendor, name string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(vendorfixtures.Read(t, vendor, name), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// shopifyLines maps a Shopify payload's line items as the connector does
// (plugins/shopify lineItems: title, variant_title, quantity, price).
func shopifyLines(t *testing.T, v any) []any {
	t.Helper()
	var out []any
	for _, it := range v.([]any) {
		li := it.(map[string]any)
		var price float64
		fmt.Sscan(li["price"].(string), &price)
		out = append(out, map[string]any{"title": li["title"], "variant_title": li["variant_title"], "quantity": li["quantity"], "price": price})
	}
	return out
}

func publish(t *testing.T, s *omnitest.Server, evs ...*events.Event) {
	t.Helper()
	for _, err := range ingest.Publish(context.Background(), s.Bus, evs) {
		if err != nil {
			t.Fatal(err)
		}
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		var n int
		_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE event_id = {:id}").Bind(dbx.Params{"id": evs[len(evs)-1].ID}).Row(&n)
		return n == 1
	}, "event %s stored", evs[len(evs)-1].ID)
}

// Beside the chat: the customer's Shopify orders with their lines and the
// status a refund gave them, the checkout no order completed with its
// recovery link, a Square sale in the shop, and their conversations on
// every channel; a merged id answers for the survivor.
func TestCustomerContextShowsOrdersCheckoutAndConversations(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{})
	order := fixture(t, "shopify", "order.json")
	checkout := fixture(t, "shopify", "abandoned_checkout.json")
	refund := fixture(t, "shopify", "refund.json")
	sq := fixture(t, "square", "payment_created.json")
	payment := sq["data"].(map[string]any)["object"].(map[string]any)["payment"].(map[string]any)
	// Shopify's samples use example.com, which the blocklist keeps from
	// matching anyone; a real customer has a real domain.
	email := strings.Replace(order["email"].(string), "example.com", "omni-shop.dev", 1)
	ids := events.Identities{events.Email: email}
	now := time.Now().UTC()
	ev := func(id, typ, source string, at time.Time, props map[string]any) *events.Event {
		return &events.Event{ID: id, Type: typ, Source: source, OccurredAt: at, ReceivedAt: now, Identities: ids, Properties: props}
	}
	orderID := fmt.Sprintf("%.0f", order["id"].(float64))
	var orderTotal float64
	fmt.Sscan(order["total_price"].(string), &orderTotal)
	var checkoutTotal float64
	fmt.Sscan(checkout["total_price"].(string), &checkoutTotal)
	// The order's own checkout (completed by the order) and a later one
	// they left: only the later one is open.
	publish(t, s,
		ev("shopify:checkout:done", events.CheckoutStarted, "shopify", now.Add(-50*time.Hour), map[string]any{
			"checkout_token": order["checkout_token"], "currency": order["currency"], "total": orderTotal, "completed": false,
			"abandoned_checkout_url": "https://checkout.local/done/recover", "line_items": shopifyLines(t, order["line_items"])}),
		ev("shopify:order:"+orderID, events.OrderPlaced, "shopify", now.Add(-48*time.Hour), map[string]any{
			"order_id": orderID, "order_name": order["name"], "currency": order["currency"], "total": orderTotal,
			"financial_status": "paid", "checkout_token": order["checkout_token"], "line_items": shopifyLines(t, order["line_items"])}),
		ev("shopify:refund:1", events.OrderRefunded, "shopify", now.Add(-24*time.Hour), map[string]any{
			"refund_id": fmt.Sprintf("%.0f", refund["id"].(float64)), "order_id": fmt.Sprintf("%.0f", refund["order_id"].(float64)),
			"total": 209.0, "currency": "USD"}),
		ev("square:order:"+payment["order_id"].(string), events.OrderPlaced, "square", now.Add(-12*time.Hour), map[string]any{
			"order_id": payment["order_id"], "currency": payment["total_money"].(map[string]any)["currency"],
			"total": payment["total_money"].(map[string]any)["amount"].(float64) / 100, "state": "COMPLETED",
			"line_items": []any{map[string]any{"name": "Cold brew", "variation_name": "Large", "quantity": "2", "price": 4.5}}}),
		ev("shopify:checkout:"+checkout["token"].(string)+":started", events.CheckoutStarted, "shopify", now.Add(-2*time.Hour), map[string]any{
			"checkout_token": checkout["token"], "currency": checkout["currency"], "total": checkoutTotal, "completed": false,
			"abandoned_checkout_url": checkout["abandoned_checkout_url"], "line_items": shopifyLines(t, checkout["line_items"])}),
	)
	receive(t, s, "email:ctx-1", "email", ids, map[string]any{"text": "Where is my refund?", "subject": "Refund",
		"conversation_key": "<ctx1@mail.omni-shop.dev>"})
	receive(t, s, "wamid.ctx-1", "whatsapp", events.Identities{events.Email: email, events.WhatsAppID: "16136120707"},
		map[string]any{"text": "Hello again"})
	convs := conversationsOf(t, s, events.Email, email)
	if len(convs) != 2 {
		t.Fatalf("conversations = %d, want 2", len(convs))
	}
	profile := convs[0].Profile

	agent := s.Staff(t, "agent@omni-shop.dev", "agent")
	code, body := s.Do(t, "GET", "/api/v1/inbox/customers/"+profile, nil, omnitest.Auth(agent))
	if code != http.StatusOK {
		t.Fatalf("context: %d %s", code, body)
	}
	var got inbox.CustomerContext
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Profile.ID != profile || got.Profile.Email != email || len(got.Profile.Identities) < 2 {
		t.Fatalf("profile = %+v", got.Profile)
	}
	if len(got.Orders) != 2 {
		t.Fatalf("orders = %+v", got.Orders)
	}
	sale, shop := got.Orders[0], got.Orders[1] // newest first
	if shop.OrderID != orderID || shop.Number != "#1001" || shop.Total != orderTotal || shop.Currency != "USD" ||
		shop.Status != "partially_refunded" || shop.Refunded != 209 || shop.Source != "shopify" {
		t.Fatalf("shopify order = %+v", shop)
	}
	if len(shop.Lines) != 3 || shop.Lines[0].Title != "IPod Nano - 8gb – green" || shop.Lines[0].Quantity != 1 || shop.Lines[0].Price != 199 {
		t.Fatalf("shopify lines = %+v", shop.Lines)
	}
	if sale.Source != "square" || sale.Status != "completed" || len(sale.Lines) != 1 || sale.Lines[0].Title != "Cold brew – Large" || sale.Lines[0].Quantity != 2 {
		t.Fatalf("square sale = %+v", sale)
	}
	oc := got.OpenCheckout
	if oc == nil || oc.URL != checkout["abandoned_checkout_url"] || oc.Total != checkoutTotal || len(oc.Lines) != 2 {
		t.Fatalf("open checkout = %+v", oc)
	}
	if len(got.Conversations) != 2 || got.Conversations[0].Channel != "whatsapp" || got.Conversations[1].LastMessage != "Where is my refund?" {
		t.Fatalf("conversations = %+v", got.Conversations)
	}
	if got.MarketingPausedUntil != "" {
		t.Fatalf("paused until %q with no pause", got.MarketingPausedUntil)
	}

	// An order for the open checkout closes it.
	publish(t, s, ev("shopify:order:2", events.OrderPlaced, "shopify", now.Add(-time.Hour), map[string]any{
		"order_id": "2", "currency": "USD", "total": checkoutTotal, "checkout_token": checkout["token"]}))
	_, body = s.Do(t, "GET", "/api/v1/inbox/customers/"+profile, nil, omnitest.Auth(agent))
	got = inbox.CustomerContext{}
	_ = json.Unmarshal(body, &got)
	if got.OpenCheckout != nil || len(got.Orders) != 3 || got.Orders[0].Status != "placed" {
		t.Fatalf("after the order: checkout %+v, orders %+v", got.OpenCheckout, got.Orders)
	}

	// Guests get nothing; an unknown customer is a 404.
	if code, body := s.Do(t, "GET", "/api/v1/inbox/customers/"+profile, nil, nil); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Fatalf("guest: %d %s", code, body)
	}
	code, body = s.Do(t, "GET", "/api/v1/inbox/customers/nosuchcustomer", nil, omnitest.Auth(agent))
	omnitest.WantError(t, code, body, http.StatusNotFound)
}

// marketing_paused_until is messaging's pause while it lasts, and empty
// once staff resume marketing.
func TestCustomerContextShowsTheMarketingPause(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{})
	receive(t, s, "wamid.pause-1", "whatsapp", events.Identities{events.WhatsAppID: "447700900555"}, map[string]any{"text": "Hi"})
	profile := conversationsOf(t, s, events.WhatsAppID, "447700900555")[0].Profile
	agent := s.Staff(t, "agent@omni-shop.dev", "agent")
	read := func() string {
		code, body := s.Do(t, "GET", "/api/v1/inbox/customers/"+profile, nil, omnitest.Auth(agent))
		if code != http.StatusOK {
			t.Fatalf("context: %d %s", code, body)
		}
		var got inbox.CustomerContext
		_ = json.Unmarshal(body, &got)
		return got.MarketingPausedUntil
	}
	// Pause through the messaging API where it exists; else write the
	// row messaging keeps.
	until := time.Now().UTC().Add(72 * time.Hour).Truncate(time.Second)
	code, _ := s.Do(t, "POST", "/api/v1/profiles/"+profile+"/marketing-pause", map[string]any{"until": until.Format(time.RFC3339)}, omnitest.Auth(agent))
	if code == http.StatusNotFound {
		if _, err := s.PB.DB().NewQuery(`CREATE TABLE IF NOT EXISTS marketing_pauses (id TEXT PRIMARY KEY, profile TEXT, until TEXT)`).Execute(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PB.DB().NewQuery("INSERT INTO marketing_pauses (id, profile, until) VALUES ({:id}, {:p}, {:u})").
			Bind(dbx.Params{"id": store.NewRecordID(), "p": profile, "u": store.FormatTime(until)}).Execute(); err != nil {
			t.Fatal(err)
		}
	}
	if got := read(); got != until.Format(time.RFC3339) {
		t.Fatalf("marketing_paused_until = %q, want %q", got, until.Format(time.RFC3339))
	}
	if code == http.StatusNotFound {
		return // no messaging pause API to resume with
	}
	// Resumed: no pause.
	if code, body := s.Do(t, "DELETE", "/api/v1/profiles/"+profile+"/marketing-pause", nil, omnitest.Auth(agent)); code >= 300 {
		t.Fatalf("resume: %d %s", code, body)
	}
	if got := read(); got != "" {
		t.Fatalf("after resuming, marketing_paused_until = %q", got)
	}
}
