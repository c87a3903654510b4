package profiles_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
)

// golden reads the events a connector emits for its vendor's real sample
// payloads (the connector's golden files, made from /work/shared/fixtures).
func golden(t *testing.T, connector, name string) []*events.Event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "plugins", connector, "testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	var evs []*events.Event
	if err := json.Unmarshal(b, &evs); err != nil {
		var one events.Event
		if err2 := json.Unmarshal(b, &one); err2 != nil {
			t.Fatalf("%s: %v", name, err)
		}
		evs = []*events.Event{&one}
	}
	for _, ev := range evs {
		ev.Source = connector
	}
	return evs
}

type timelineItem struct {
	profiles.Shape
	Type       string          `json:"type"`
	EventID    string          `json:"event_id"`
	Properties json.RawMessage `json:"properties"`
}

func (e *env) timeline(t *testing.T, pid string) map[string]timelineItem {
	t.Helper()
	var tl struct {
		Items []timelineItem `json:"items"`
	}
	e.get(t, "/api/v1/profiles/"+pid+"/timeline?perPage=200", &tl)
	out := map[string]timelineItem{}
	for _, it := range tl.Items {
		if len(it.Properties) == 0 || string(it.Properties) == "null" {
			t.Errorf("%s: the raw event is not on the entry", it.EventID)
		}
		out[it.EventID] = it
	}
	return out
}

// Each connector's real events read, on the timeline, as the shop owner
// would say them: the same words for every client.
func TestTimelineShapesConnectorEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("hand-computed figures over seeded rows: the full run checks them, -short (the race run) skips")
	}
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	const email = "bob.norman@omni-shop.dev"
	one := func(connector, file string, typ string, at time.Duration) *events.Event {
		t.Helper()
		for _, ev := range golden(t, connector, file) {
			if ev.Type == typ {
				ev.Identities = events.Identities{events.Email: email} // all about one customer
				ev.OccurredAt = now.Add(at)
				return ev
			}
		}
		t.Fatalf("%s/%s has no %s", connector, file, typ)
		return nil
	}
	order := one("shopify", "orders_create.json", events.OrderPlaced, -5*time.Hour)
	refund := one("shopify", "refunds_create.json", events.OrderRefunded, -4*time.Hour)
	checkout := one("shopify", "checkouts_create.json", events.CheckoutStarted, -6*time.Hour)
	consent := one("shopify", "consent_topics.json", events.ConsentChanged, -3*time.Hour)
	square := one("square", "order_updated_completed.json", events.OrderPlaced, -2*time.Hour)
	inbound := one("whatsapp", "inbound_text.json", events.MessageReceived, -90*time.Minute)
	read := one("whatsapp", "status_read.json", events.MessageRead, -50*time.Minute)
	failed := one("whatsapp", "status_failed.json", events.MessageFailed, -40*time.Minute)
	failed.ID += ":other" // a report on another message
	failed.Properties["message_id"] = "wamid.other"
	image := one("whatsapp", "inbound_image.json", events.MessageReceived, -35*time.Minute)
	image.ID += ":image" // Meta's samples share one message id
	klaviyo := one("klaviyo", "system_webhook_unsubscribed.json", events.ConsentChanged, -30*time.Minute)
	// An outgoing reply as the outbox records it; WhatsApp reports on the
	// id it gave the message.
	sent := ev(events.MessageSent, "whatsapp", now.Add(-time.Hour), events.Identities{events.Email: email},
		map[string]any{"message_id": "out-1", "connector": "whatsapp", "provider_message_id": read.Properties["message_id"],
			"text": "Yes, in green and red."}, events.ChannelWhatsApp)
	page := ev(events.PageViewed, "web", now.Add(-7*time.Hour), events.Identities{events.Email: email}, map[string]any{"path": "/spring"}, events.ChannelWeb)
	page.Context.Page = &events.Page{Title: "Spring collection", URL: "https://shop.omni-shop.dev/spring?utm_source=google"}
	page.Context.Campaign = &events.Campaign{Source: "google", Medium: "cpc", Name: "spring_sale"}
	// A staff note (written by another part of the admin) passes through.
	note := ev("note", profiles.SourceStaff, now.Add(-10*time.Minute), events.Identities{events.Email: email},
		map[string]any{"text": "Prefers pickup on Fridays", "author": "Ana"}, "")
	e.publish(t, order, refund, checkout, consent, square, inbound, read, failed, image, klaviyo, sent, page, note)

	pid := e.profileOf(t, events.Email, email)
	tl := e.timeline(t, pid)

	o := tl[order.ID]
	if o.Title != "Order #1001" { // Shopify's order name, not its id 450789469
		t.Errorf("order title %q", o.Title)
	}
	if o.Amount == nil || o.Amount.Value != 598.94 || o.Amount.Currency != "USD" {
		t.Errorf("order total %+v", o.Amount)
	}
	if len(o.Lines) < 2 || o.Lines[0].Title != "IPod Nano - 8gb – green" || o.Lines[0].Quantity != 1 || o.Lines[0].Price == nil || *o.Lines[0].Price != 199 {
		t.Errorf("order lines %+v", o.Lines)
	}
	if o.Campaign != "otherexample.com / referral" {
		t.Errorf("order campaign %q", o.Campaign)
	}
	if r := tl[refund.ID]; r.Title != "Refund on order #1001" || r.Amount == nil || r.Amount.Value != 209 || r.Text != "it broke during shipping" || len(r.Lines) != 2 {
		t.Errorf("refund %+v", r.Shape)
	}
	c := tl[checkout.ID]
	if c.Title != "Started checkout" || c.Amount == nil || c.Amount.Value != 379.69 || c.Link == nil ||
		c.Link.URL != "https://checkout.local/548380009/checkouts/2a1ace52255252df566af0faaedfbfa7/recover" || c.Link.Label != "Recovery link" {
		t.Errorf("checkout %+v link %+v", c.Shape, c.Link)
	}
	if cs := tl[consent.ID]; cs.Title != "Email consent: subscribed" || cs.By != "Shopify" {
		t.Errorf("consent %+v", cs.Shape)
	}
	sq := tl[square.ID]
	if sq.Title != "Order eA3vssLHKJrv9H0IdJCM3gNqfdcZY in the shop" || sq.ChannelName != "Point of sale" || len(sq.Lines) != 2 ||
		sq.Lines[1].Title != "Item 2" || sq.Lines[1].Quantity != 2 || sq.Amount == nil || sq.Amount.Value != 5.5 {
		t.Errorf("square order %+v", sq.Shape)
	}
	if in := tl[inbound.ID]; in.Title != "WhatsApp message received" || in.Text != "Does it come in another color?" {
		t.Errorf("inbound %+v", in.Shape)
	}
	if s := tl[sent.ID]; s.Title != "WhatsApp message sent" || s.Text != "Yes, in green and red." || s.Status != "read" {
		t.Errorf("sent %+v", s.Shape)
	}
	if r := tl[read.ID]; r.Status != "read" || r.Group != "message_status" {
		t.Errorf("read receipt %+v", r.Shape)
	}
	if f := tl[failed.ID]; f.Title != "WhatsApp message not delivered" || f.Status != "failed" || f.Text != "User's number is part of an experiment" {
		t.Errorf("failed delivery %+v", f.Shape)
	}
	if im := tl[image.ID]; im.Text != "(Image) Taj Mahal" {
		t.Errorf("inbound image %+v", im.Shape)
	}
	if k := tl[klaviyo.ID]; k.Title != "Email consent: unsubscribed" || k.By != "Klaviyo" || k.Text != "Via profile page" {
		t.Errorf("klaviyo consent %+v", k.Shape)
	}
	if p := tl[page.ID]; p.Title != "Viewed Spring collection" || p.Group != "page_views" || p.Campaign != "spring_sale (google / cpc)" {
		t.Errorf("page view %+v", p.Shape)
	}
	if n := tl[note.ID]; n.Title != "Note" || n.Text != "Prefers pickup on Fridays" || n.By != "Ana" {
		t.Errorf("note %+v", n.Shape)
	}
}

// A staff consent change says who and why; a merge says why the two
// records became one.
func TestTimelineConsentAndMerge(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	const email, phone = "merge.me@omni-shop.dev", "+16135550123"
	e.publish(t, ev(events.OrderPlaced, "shopify", now.Add(-2*time.Hour), events.Identities{events.Email: email},
		map[string]any{"order_id": "5600001086", "order_name": "#1086", "total": 20.0, "currency": "EUR"}, events.ChannelWeb))
	e.publish(t, ev(events.MessageReceived, "whatsapp", now.Add(-time.Hour), events.Identities{events.Phone: phone},
		map[string]any{"text": "Hi"}, events.ChannelWhatsApp))
	e.publish(t, ev(events.CustomerUpdated, "shopify", now.Add(-30*time.Minute), events.Identities{events.Email: email, events.Phone: phone},
		map[string]any{"first_name": "Mia"}, ""))
	pid := e.profileOf(t, events.Email, email)
	if e.profileOf(t, events.Phone, phone) != pid {
		t.Fatal("the phone did not join the profile")
	}
	e.setConsent(t, e.agent, pid, map[string]any{"channel": "sms", "status": "unsubscribed", "reason": "asked by phone"})
	// profile.merged is published by the relay after the merge commits,
	// so the staff consent event can be stored before it.
	var merged, consent *timelineItem
	omnitest.Eventually(t, 30*time.Second, func() bool {
		merged, consent = nil, nil
		for _, it := range e.timeline(t, pid) {
			switch it.Type {
			case "profile.merged":
				merged = &it
			case events.ConsentChanged:
				consent = &it
			}
		}
		return merged != nil && consent != nil
	}, "the merge and the consent change on the timeline")
	if merged == nil || merged.Title != "Merged with another customer record" || merged.Text == "" {
		t.Errorf("merge entry %+v", merged)
	}
	if consent == nil || consent.Title != "SMS consent: unsubscribed" || consent.Text != "asked by phone" || consent.By == "" || consent.By == "Staff" {
		t.Errorf("consent entry %+v", consent)
	}
}
