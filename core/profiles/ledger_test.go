package profiles_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
)

const ledgerPhone = "+447700900123"

func (e *env) mergesOf(t *testing.T, id string) []profiles.Merge {
	t.Helper()
	var out struct {
		Items []profiles.Merge `json:"items"`
	}
	e.get(t, "/api/v1/profiles/"+id+"/merges", &out)
	return out.Items
}

// TestMergeLedgerExplainsMerge: a Shopify customer and a WhatsApp chatter
// become one when a Shopify order carries the chatter's phone; the ledger
// says which identifier, on which events, joined which two profiles, in
// words (Shopify's order name, not its id), from either profile id.
func TestMergeLedgerExplainsMerge(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	first := ev(events.OrderPlaced, "shopify", now.Add(-3*time.Hour), events.Identities{events.Email: "ada@omni-shop.dev"},
		map[string]any{"order_id": "5600001085", "order_name": "#1085", "total": 10, "currency": "GBP"}, events.ChannelWeb)
	chat := ev(events.MessageReceived, "whatsapp", now.Add(-2*time.Hour),
		events.Identities{events.WhatsAppID: "447700900123", events.Phone: ledgerPhone}, map[string]any{"text": "hi"}, events.ChannelWhatsApp)
	e.publish(t, first)
	e.publish(t, chat)
	shopifyProfile, waProfile := e.profileOf(t, events.Email, "ada@omni-shop.dev"), e.profileOf(t, events.Phone, ledgerPhone)
	if shopifyProfile == "" || shopifyProfile == waProfile {
		t.Fatalf("want two profiles before the order: %q %q", shopifyProfile, waProfile)
	}
	if got := e.mergesOf(t, shopifyProfile); len(got) != 0 {
		t.Fatalf("merges before any merge: %+v", got)
	}

	order := ev(events.OrderPlaced, "shopify", now.Add(-time.Hour),
		events.Identities{events.Email: "ada@omni-shop.dev", events.Phone: ledgerPhone},
		map[string]any{"order_id": "5600001086", "order_name": "#1086", "total": 20, "currency": "GBP"}, events.ChannelWeb)
	e.publish(t, order)
	if e.profileOf(t, events.Phone, ledgerPhone) != shopifyProfile {
		t.Fatalf("the order did not merge the two profiles")
	}

	const want = "Merged because phone " + ledgerPhone + " was on Shopify order #1086 and a WhatsApp chat."
	for _, id := range []string{shopifyProfile, waProfile} { // the loser's id resolves to the survivor
		got := e.mergesOf(t, id)
		if len(got) != 1 {
			t.Fatalf("merges of %s: %+v", id, got)
		}
		mg := got[0]
		if mg.Explanation != want {
			t.Errorf("explanation = %q, want %q", mg.Explanation, want)
		}
		if mg.Survivor != shopifyProfile || mg.Loser != waProfile || mg.Kind != events.Phone || mg.Value != ledgerPhone || mg.EventID != order.ID {
			t.Errorf("row: %+v", mg)
		}
		if c := mg.Cause; c == nil || c.Source != "shopify" || c.Type != events.OrderPlaced || c.Label != "#1086" || c.EventID != order.ID {
			t.Errorf("cause: %+v", mg.Cause)
		}
		if w := mg.Earlier; w == nil || w.Source != "whatsapp" || w.Type != events.MessageReceived || w.EventID != chat.ID {
			t.Errorf("earlier: %+v", mg.Earlier)
		}
		if mg.SurvivorName != "ada@omni-shop.dev" || mg.LoserName != ledgerPhone {
			t.Errorf("names: %q, %q", mg.SurvivorName, mg.LoserName)
		}
		// What an un-merge needs: the identities the loser brought.
		if ids := mg.LoserIdentities; len(ids[events.Phone]) != 1 || ids[events.Phone][0] != ledgerPhone || ids[events.WhatsAppID][0] != "447700900123" || len(ids) != 2 {
			t.Errorf("loser identities: %v", mg.LoserIdentities)
		}
	}
	if d := e.detail(t, waProfile); len(d.Merges) != 1 || d.Merges[0].Explanation != want {
		t.Errorf("profile detail merges: %+v", d.Merges)
	}

	// Staff of any role read it; guests do not; an unknown id is a 404.
	if code, body := e.Do(t, "GET", "/api/v1/profiles/"+shopifyProfile+"/merges", nil, auth(e.agent)); code != 200 {
		t.Errorf("agent: %d %s", code, body)
	}
	code, body := e.Do(t, "GET", "/api/v1/profiles/"+shopifyProfile+"/merges", nil, nil)
	omnitest.WantError(t, code, body, 401)
	code, body = e.Do(t, "GET", "/api/v1/profiles/nope/merges", nil, auth(e.owner))
	omnitest.WantError(t, code, body, 404)
}

// TestMergeLedgerAnonymousVisitor: the usual merge of a browsing visitor
// who signs in reads in words too (visitor id, website events).
func TestMergeLedgerAnonymousVisitor(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339Nano) }
	// Known by email first (a Shopify customer), then the same person browses and signs in.
	e.publish(t, ev(events.CustomerUpdated, "shopify", now.Add(-3*time.Hour), events.Identities{events.Email: "bob@omni-shop.dev"},
		map[string]any{"first_name": "Bob"}, ""))
	code, body := e.Track(t, "/v1/batch", map[string]any{"batch": []map[string]any{
		{"type": "page", "anonymousId": "anon-led-1", "messageId": "led-p1", "name": "Home", "timestamp": ts(-2 * time.Hour)},
	}})
	if code != 200 {
		t.Fatalf("batch: %d %s", code, body)
	}
	e.WaitEvents(t, 2)
	code, body = e.Track(t, "/v1/identify", map[string]any{"anonymousId": "anon-led-1", "messageId": "led-i1", "timestamp": ts(-time.Hour),
		"traits": map[string]any{"email": "bob@omni-shop.dev"}})
	if code != 200 {
		t.Fatalf("identify: %d %s", code, body)
	}
	e.WaitEvents(t, 3)
	pid := e.profileOf(t, events.Email, "bob@omni-shop.dev")
	got := e.mergesOf(t, pid)
	if len(got) != 1 {
		t.Fatalf("merges: %+v", got)
	}
	// The identify's email found the Shopify customer; the visitor id was on the page view.
	const want = "Merged because visitor id anon-led-1 was on a test sign-in and a test page view."
	if got[0].Explanation != want {
		t.Errorf("explanation = %q, want %q", got[0].Explanation, want)
	}
}

// TestMergeLedgerOldRows: rows written before the ledger kept reasons
// still list, explained from their event when it is stored.
func TestMergeLedgerOldRows(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	order := ev(events.OrderPlaced, "shopify", now.Add(-time.Hour), events.Identities{events.Email: "old@omni-shop.dev"},
		map[string]any{"order_id": "5600001087", "order_name": "#1087"}, events.ChannelWeb)
	e.publish(t, order)
	pid := e.profileOf(t, events.Email, "old@omni-shop.dev")
	// As the code before the ledger wrote them (survivor, loser, event_id, created only).
	for i, evID := range []string{order.ID, "gone-event"} {
		if _, err := e.PB.DB().NewQuery("INSERT INTO profile_merges (id, survivor, loser, event_id, created) VALUES ({:id}, {:s}, {:l}, {:e}, {:c})").
			Bind(map[string]any{"id": "oldmerge00000" + string(rune('a'+i)), "s": pid, "l": "oldloser" + string(rune('a'+i)), "e": evID,
				"c": now.Add(time.Duration(i) * time.Second).Format("2006-01-02 15:04:05.000Z")}).Execute(); err != nil {
			t.Fatal(err)
		}
	}
	got := e.mergesOf(t, pid)
	if len(got) != 2 {
		t.Fatalf("merges: %+v", got)
	}
	if want := "Merged by Shopify order #1087 (recorded before Omni kept which identifier joined them)."; got[0].Explanation != want {
		t.Errorf("old row with its event: %q, want %q", got[0].Explanation, want)
	}
	if want := "Merged (recorded before Omni kept why)."; got[1].Explanation != want || got[1].Cause != nil || got[1].Kind != "" {
		t.Errorf("old row without its event: %+v", got[1])
	}
	raw, _ := json.Marshal(got[1])
	if want := `"loser_identities":null`; !json.Valid(raw) || !strings.Contains(string(raw), want) {
		t.Errorf("old row JSON: %s", raw)
	}
}

// TestMergeLedgerFindsTheEarlierEventInTheSameBatch: the events that put
// the identifier on the loser and the one that merges arrive together, so
// they are resolved before any of them is a row; the ledger still names
// the chat as the earlier event.
func TestMergeLedgerFindsTheEarlierEventInTheSameBatch(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	first := ev(events.OrderPlaced, "shopify", now.Add(-3*time.Hour), events.Identities{events.Email: "bea@omni-shop.dev"},
		map[string]any{"order_id": "5600001185", "order_name": "#1185", "total": 10, "currency": "GBP"}, events.ChannelWeb)
	chat := ev(events.MessageReceived, "whatsapp", now.Add(-2*time.Hour),
		events.Identities{events.WhatsAppID: "447700900124", events.Phone: "+447700900124"}, map[string]any{"text": "hi"}, events.ChannelWhatsApp)
	order := ev(events.OrderPlaced, "shopify", now.Add(-time.Hour),
		events.Identities{events.Email: "bea@omni-shop.dev", events.Phone: "+447700900124"},
		map[string]any{"order_id": "5600001186", "order_name": "#1186", "total": 20, "currency": "GBP"}, events.ChannelWeb)
	e.publish(t, first, chat, order)
	id := e.profileOf(t, events.Email, "bea@omni-shop.dev")
	got := e.mergesOf(t, id)
	if len(got) != 1 {
		t.Fatalf("merges of %s: %+v", id, got)
	}
	if w := got[0].Earlier; w == nil || w.EventID != chat.ID || w.Source != "whatsapp" {
		t.Fatalf("earlier: %+v, want the chat %s", got[0].Earlier, chat.ID)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM events WHERE profile={:p} AND source != 'omni'", map[string]any{"p": id}); n != 3 {
		t.Fatalf("events on the survivor = %d, want the 3 sent", n)
	}
}
