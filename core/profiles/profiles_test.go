package profiles_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/internal/testkit/vendorfixtures"
)

// fixture parses one of a vendor's real sample payloads.
func fixture(t *testing.T, vendor, name string) map[string]any {
	t.Helper()
	b := vendorfixtures.Read(t, vendor, name)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// The promise of the product: anonymous browsing, identify, a Shopify
// order, a WhatsApp message and a Square payment in the shop are one person.
func TestCrossChannelScenario(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	order := fixture(t, "shopify", "order.json")
	cust := order["customer"].(map[string]any)
	// Shopify's sample order uses a reserved example.com address, which the
	// default blocklist keeps from matching anyone (docs/profiles.md#junk-identifiers);
	// a real customer's address has a real domain.
	email := strings.Replace(order["email"].(string), "example.com", "omni-shop.dev", 1)
	phone := cust["phone"].(string) // +16136120707
	shopifyID := fmt.Sprintf("%.0f", cust["id"].(float64))
	wa := fixture(t, "whatsapp", "inbound_text_message.json")
	waMsg := wa["entry"].([]any)[0].(map[string]any)["changes"].([]any)[0].(map[string]any)["value"].(map[string]any)["messages"].([]any)[0].(map[string]any)
	sq := fixture(t, "square", "payment_created.json")
	payment := sq["data"].(map[string]any)["object"].(map[string]any)["payment"].(map[string]any)
	sqMoney := payment["total_money"].(map[string]any)

	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	// 1. Anonymous page views and 2. identify, over the Segment API.
	batch := map[string]any{"batch": []map[string]any{
		{"type": "page", "anonymousId": "anon-xc-1", "messageId": "xc-p1", "name": "Home", "timestamp": ts(-5 * time.Hour),
			"context": map[string]any{"page": map[string]any{"url": "https://shop.example/"}}},
		{"type": "page", "anonymousId": "anon-xc-1", "messageId": "xc-p2", "name": "Product", "timestamp": ts(-299 * time.Minute)},
		{"type": "identify", "anonymousId": "anon-xc-1", "messageId": "xc-i1", "timestamp": ts(-4 * time.Hour),
			"traits": map[string]any{"email": strings.ToUpper(email), "first_name": cust["first_name"], "last_name": cust["last_name"], "plan": "gold"}},
	}}
	code, body := e.Track(t, "/v1/batch", batch)
	if code != 200 {
		t.Fatalf("batch: %d %s", code, body)
	}
	e.WaitEvents(t, 3)
	anonProfile := e.profileOf(t, events.AnonymousID, "anon-xc-1")
	if anonProfile == "" || e.profileOf(t, events.Email, email) != anonProfile {
		t.Fatalf("identify did not join the anonymous profile: anon=%q email=%q", anonProfile, e.profileOf(t, events.Email, email))
	}

	// 3. Shopify order with email + phone, as the connector emits it.
	shop := ev(events.OrderPlaced, "shopify", now.Add(-3*time.Hour),
		events.Identities{events.Email: email, events.Phone: phone, events.ShopifyCustomer: shopifyID},
		map[string]any{"order_id": fmt.Sprintf("%.0f", order["id"].(float64)), "total": order["total_price"], "currency": order["currency"]}, events.ChannelWeb)
	// 4. WhatsApp message from that phone.
	waEv := ev(events.MessageReceived, "whatsapp", now.Add(-2*time.Hour),
		events.Identities{events.WhatsAppID: strings.TrimPrefix(phone, "+"), events.Phone: phone},
		map[string]any{"message_id": waMsg["id"], "text": waMsg["text"].(map[string]any)["body"]}, events.ChannelWhatsApp)
	// 5. Square payment in the shop with that phone.
	sqEv := ev(events.OrderPlaced, "square", now.Add(-1*time.Hour),
		events.Identities{events.Phone: phone, events.SquareCustomer: "SQ-CUST-1"},
		map[string]any{"order_id": payment["order_id"], "total": sqMoney["amount"].(float64) / 100, "currency": sqMoney["currency"]}, events.ChannelPOS)
	// The Shopify customer record as the connector maps it.
	custEv := ev(events.CustomerUpdated, "shopify", now.Add(-3*time.Hour+time.Minute), events.Identities{events.Email: email, events.ShopifyCustomer: shopifyID},
		map[string]any{"customer_id": shopifyID, "first_name": cust["first_name"], "last_name": cust["last_name"], "tags": cust["tags"]}, "")
	e.publish(t, shop, custEv, waEv, sqEv)

	pid := e.profileOf(t, events.Phone, phone)
	for kind, v := range map[string]string{events.AnonymousID: "anon-xc-1", events.Email: email, events.ShopifyCustomer: shopifyID,
		events.WhatsAppID: strings.TrimPrefix(phone, "+"), events.SquareCustomer: "SQ-CUST-1"} {
		if got := e.profileOf(t, kind, v); got != pid {
			t.Errorf("%s %s → %q, want %q", kind, v, got, pid)
		}
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profiles WHERE merged_into=''", nil); n != 1 {
		t.Errorf("live profiles = %d, want 1", n)
	}
	d := e.detail(t, pid)
	c := d.Computed
	if c.OrdersCount != 2 || c.LifetimeValue["USD"] != 599.94 || c.AverageOrderValue["USD"] != 299.97 {
		t.Errorf("orders=%d ltv=%v aov=%v", c.OrdersCount, c.LifetimeValue, c.AverageOrderValue)
	}
	if c.PreferredChannel != "whatsapp" || c.LifecycleStage != profiles.StageLoyal {
		t.Errorf("preferred=%q stage=%q", c.PreferredChannel, c.LifecycleStage)
	}
	if strings.Join(c.Channels, ",") != "pos,server,web,whatsapp" {
		t.Errorf("channels = %v", c.Channels)
	}
	if vendor, _ := d.Traits["shopify"].(map[string]any); vendor == nil || vendor["tags"] != "Léon, Noël" {
		t.Errorf("shopify customer traits: %v", d.Traits)
	}
	if d.Name != "Bob Norman" || d.Email != email || d.Phone != phone || d.Traits["plan"] != "gold" {
		t.Errorf("name=%q email=%q phone=%q traits=%v", d.Name, d.Email, d.Phone, d.Traits)
	}
	if c.FirstSeen != now.Add(-5*time.Hour).UTC().Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("first_seen = %s", c.FirstSeen)
	}
	var tl struct {
		Items []profiles.TimelineEvent `json:"items"`
		Next  string                   `json:"next"`
	}
	e.get(t, "/api/v1/profiles/"+pid+"/timeline", &tl)
	var types []string
	for _, it := range tl.Items {
		types = append(types, it.Source+":"+it.Type)
	}
	want := "square:order.placed,whatsapp:message.received,shopify:customer.updated,shopify:order.placed,test:identify,test:page.viewed,test:page.viewed"
	if strings.Join(types, ",") != want {
		t.Errorf("timeline = %v\nwant %s", types, want)
	}
	// Paging and filters.
	e.get(t, "/api/v1/profiles/"+pid+"/timeline?perPage=2", &tl)
	if len(tl.Items) != 2 || tl.Next == "" {
		t.Fatalf("page 1: %d items next=%q", len(tl.Items), tl.Next)
	}
	e.get(t, "/api/v1/profiles/"+pid+"/timeline?perPage=2&before="+tl.Next, &tl)
	if len(tl.Items) != 2 || tl.Items[0].Type != events.CustomerUpdated || tl.Items[1].Type != events.OrderPlaced {
		t.Errorf("page 2 = %+v", tl.Items)
	}
	e.get(t, "/api/v1/profiles/"+pid+"/timeline?channel=pos", &tl)
	if len(tl.Items) != 1 || tl.Items[0].Source != "square" {
		t.Errorf("channel filter = %+v", tl.Items)
	}
	e.get(t, "/api/v1/profiles/"+pid+"/timeline?type=page.viewed,identify", &tl)
	if len(tl.Items) != 3 {
		t.Errorf("type filter = %d items", len(tl.Items))
	}
	// Search by email, phone (any format), name prefix, identity, trait.
	for _, q := range []string{"q=" + strings.ToUpper(email), "q=%2B16136120707", "q=(613)%20612-0707", "q=bob", "q=SQ-CUST-1", "trait.plan=gold", "trait.orders_count=2"} {
		var res struct {
			TotalItems int                `json:"totalItems"`
			Items      []profiles.Summary `json:"items"`
		}
		e.get(t, "/api/v1/profiles?"+q, &res)
		if res.TotalItems != 1 || len(res.Items) != 1 || res.Items[0].ID != pid {
			t.Errorf("search %s: %+v", q, res)
		}
	}
	// Every event row carries the profile.
	if n := e.count(t, "SELECT COUNT(*) FROM events WHERE profile != {:p}", map[string]any{"p": pid}); n != 0 {
		t.Errorf("%d events not on the profile", n)
	}
}

func TestMergeTwoExistingProfiles(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	e.publish(t, ev(events.Identify, "test", now.Add(-2*time.Hour), events.Identities{events.Email: "ann@omni-shop.dev", events.AnonymousID: "a-1"},
		map[string]any{"traits": map[string]any{"name": "Ann", "tier": "silver"}}, events.ChannelWeb))
	older := e.profileOf(t, events.Email, "ann@omni-shop.dev")
	e.clock.Advance(time.Second)
	e.publish(t, ev(events.OrderPlaced, "shopify", now.Add(-time.Hour), events.Identities{events.Phone: "+14155550100", events.ShopifyCustomer: "77"},
		map[string]any{"total": "40.00", "currency": "EUR"}, events.ChannelWeb),
		ev(events.ConsentChanged, "shopify", now.Add(-time.Hour), events.Identities{events.Phone: "+14155550100"},
			map[string]any{"channel": "sms", "status": "subscribed"}, ""))
	newer := e.profileOf(t, events.Phone, "+14155550100")
	if older == "" || newer == "" || older == newer {
		t.Fatalf("setup: older=%q newer=%q", older, newer)
	}
	// A later event links them.
	e.publish(t, ev(events.MessageReceived, "whatsapp", now, events.Identities{events.Email: "ann@omni-shop.dev", events.Phone: "+14155550100"}, nil, events.ChannelWhatsApp))

	if got := e.profileOf(t, events.ShopifyCustomer, "77"); got != older {
		t.Fatalf("survivor = %q, want the older %q", got, older)
	}
	d := e.detail(t, newer) // old id resolves
	if d.ID != older || d.RequestedID != newer {
		t.Fatalf("GET loser: id=%q requested=%q", d.ID, d.RequestedID)
	}
	if len(d.MergedFrom) != 1 || d.MergedFrom[0] != newer || len(d.Merges) != 1 || d.Merges[0].Loser != newer {
		t.Errorf("merge history: from=%v merges=%+v", d.MergedFrom, d.Merges)
	}
	if d.Computed.OrdersCount != 1 || d.Computed.LifetimeValue["EUR"] != 40 || d.Traits["tier"] != "silver" || d.Name != "Ann" {
		t.Errorf("traits after merge: %+v %+v", d.Computed, d.Traits)
	}
	if d.Consent["sms"].Status != "subscribed" || d.Consent["sms"].Source != "shopify" {
		t.Errorf("consent after merge: %+v", d.Consent)
	}
	if c, err := profiles.Consent(e.PB, newer, "sms"); err != nil || c.Status != "subscribed" {
		t.Errorf("Consent(loser) = %+v, %v", c, err)
	}
	if profiles.CanContact(e.PB, older, "email") {
		t.Error("CanContact(email) without consent")
	}
	var tl struct {
		Items []profiles.TimelineEvent `json:"items"`
	}
	e.get(t, "/api/v1/profiles/"+newer+"/timeline?type=identify,order.placed,consent.changed,message.received", &tl)
	if len(tl.Items) != 4 {
		t.Errorf("timeline across merge has %d events, want 4", len(tl.Items))
	}
	// profile.merged is published for other modules and lands on the survivor.
	omnitest.Eventually(t, 30*time.Second, func() bool {
		return e.count(t, "SELECT COUNT(*) FROM events WHERE type='profile.merged' AND profile={:p}", map[string]any{"p": older}) == 1
	}, "profile.merged stored on the survivor")
}

func TestGuardRailDistinctShopifyIDsNeverMerge(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	e.publish(t, ev(events.OrderPlaced, "shopify", now.Add(-time.Hour), events.Identities{events.ShopifyCustomer: "1", events.Email: "shared@omni-shop.dev"}, map[string]any{"total": 10}, "web"))
	e.publish(t, ev(events.CustomerUpdated, "shopify", now.Add(-time.Minute), events.Identities{events.ShopifyCustomer: "2", events.Phone: "+14155550111"}, nil, "web"))
	p1, p2 := e.profileOf(t, events.ShopifyCustomer, "1"), e.profileOf(t, events.ShopifyCustomer, "2")
	// An event naming both customers' identities must not join them.
	e.publish(t, ev(events.MessageReceived, "whatsapp", now, events.Identities{events.Email: "shared@omni-shop.dev", events.Phone: "+14155550111"}, nil, "whatsapp"))
	// And an event with a third shopify id plus the shared email gets its own profile.
	e.publish(t, ev(events.OrderPlaced, "shopify", now, events.Identities{events.ShopifyCustomer: "3", events.Email: "shared@omni-shop.dev"}, map[string]any{"total": 5}, "web"))
	p3 := e.profileOf(t, events.ShopifyCustomer, "3")
	if p1 == "" || p2 == "" || p3 == "" || p1 == p2 || p3 == p1 || p3 == p2 {
		t.Fatalf("profiles merged across shopify ids: %q %q %q", p1, p2, p3)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profiles WHERE merged_into=''", nil); n != 3 {
		t.Errorf("live profiles = %d, want 3", n)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_conflicts WHERE reason='distinct_shopify_customer_id' AND status='open'", nil); n < 2 {
		t.Errorf("conflicts recorded = %d, want ≥2", n)
	}
	d := e.detail(t, p1)
	if len(d.Conflicts) == 0 || d.Conflicts[0].Kind != events.ShopifyCustomer {
		t.Errorf("conflicts on profile: %+v", d.Conflicts)
	}
}

func TestGuardRailSharedPhoneIsCapped(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	var evs []*events.Event
	for i := 0; i < 50; i++ {
		evs = append(evs, ev(events.Identify, "test", now.Add(-time.Hour), events.Identities{events.Email: fmt.Sprintf("c%02d@omni-shop.dev", i)}, nil, "web"))
	}
	e.publish(t, evs...)
	evs = nil
	for i := 0; i < 50; i++ {
		evs = append(evs, ev(events.OrderPlaced, "square", now, events.Identities{events.Email: fmt.Sprintf("c%02d@omni-shop.dev", i), events.Phone: "+14155550999"}, map[string]any{"total": 1}, "pos"))
	}
	e.publish(t, evs...)
	live := e.count(t, "SELECT COUNT(*) FROM profiles WHERE merged_into=''", nil)
	maxEmails := e.count(t, "SELECT MAX(n) FROM (SELECT COUNT(*) n FROM identities WHERE kind='email' GROUP BY profile)", nil)
	if maxEmails > 5 || live < 45 {
		t.Fatalf("shared phone collapsed profiles: live=%d max emails on one profile=%d", live, maxEmails)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_conflicts WHERE reason='identity_cap'", nil); n == 0 {
		t.Error("no identity_cap conflict recorded")
	}
	if n := e.count(t, "SELECT COUNT(*) FROM events WHERE profile=''", nil); n != 0 {
		t.Errorf("%d events without a profile", n)
	}
}
