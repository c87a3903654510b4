package profiles_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/profiles"
)

// The same customer's events arrive in parallel from several sources (HTTP
// tracking and connector publishes) and still end in one profile.
func TestConcurrentSourcesEndInOneProfile(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	const perWorker = 15
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	// Web: anonymous ids tied to the email through context.traits.
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var batch []map[string]any
			for i := 0; i < perWorker; i++ {
				batch = append(batch, map[string]any{"type": "track", "event": "Product Viewed", "anonymousId": fmt.Sprintf("anon-%d", w),
					"messageId": fmt.Sprintf("web-%d-%d", w, i), "timestamp": now.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano),
					"context": map[string]any{"traits": map[string]any{"email": "para@omni-shop.dev"}}})
			}
			for _, one := range batch {
				if code, body := e.Track(t, "/v1/batch", map[string]any{"batch": []any{one}}); code != 200 {
					errs <- fmt.Errorf("track: %d %s", code, body)
				}
			}
		}(w)
	}
	conn := []events.Identities{
		{events.Email: "para@omni-shop.dev", events.Phone: "+14155550123", events.ShopifyCustomer: "S-1"},
		{events.WhatsAppID: "14155550123", events.Phone: "+14155550123"},
		{events.Phone: "+14155550123", events.SquareCustomer: "Q-1"},
		{events.KlaviyoProfile: "K-1", events.Email: "para@omni-shop.dev"},
	}
	for c, ids := range conn {
		wg.Add(1)
		go func(c int, ids events.Identities) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				x := ev(events.OrderPlaced, fmt.Sprintf("conn%d", c), now.Add(time.Duration(i)*time.Second), ids, map[string]any{"total": 1}, "web")
				if err := ingest.Publish(context.Background(), e.Bus, []*events.Event{x})[0]; err != nil {
					errs <- err
				}
			}
		}(c, ids)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	e.WaitEvents(t, 7*perWorker)
	if n := e.count(t, "SELECT COUNT(*) FROM profiles WHERE merged_into=''", nil); n != 1 {
		t.Fatalf("live profiles = %d, want 1", n)
	}
	if n := e.count(t, "SELECT COUNT(DISTINCT profile) FROM events", nil); n != 1 {
		t.Errorf("events spread over %d profiles", n)
	}
	d := e.detail(t, e.profileOf(t, events.Email, "para@omni-shop.dev"))
	if d.Computed.OrdersCount != 4*perWorker || len(d.Identities) != 9 {
		t.Errorf("orders=%d identities=%d %+v", d.Computed.OrdersCount, len(d.Identities), d.Identities)
	}
}

func TestExportEraseAndReingest(t *testing.T) {
	e := start(t, profiles.Options{})
	now := e.clock.Now()
	ids := events.Identities{events.Email: "gone@omni-shop.dev", events.Phone: "+14155550177"}
	e.publish(t,
		ev(events.Identify, "test", now.Add(-time.Hour), ids, map[string]any{"traits": map[string]any{"name": "Gone Girl"}}, "web"),
		ev(events.OrderPlaced, "shopify", now, ids, map[string]any{"total": "12.50", "currency": "eur"}, "web"),
		ev(events.ConsentChanged, "shopify", now, ids, map[string]any{"channel": "email", "status": "subscribed", "source": "shopify"}, ""))
	e.publish(t, ev(events.PageViewed, "test", now, events.Identities{events.AnonymousID: "gone-anon"}, nil, "web"))
	e.publish(t, ev(events.Identify, "test", now, events.Identities{events.AnonymousID: "gone-anon", events.Email: "gone@omni-shop.dev"}, nil, "web"))
	pid := e.profileOf(t, events.Email, "gone@omni-shop.dev")

	// Export: owners only, everything.
	if code, _ := e.Do(t, "POST", "/api/v1/profiles/"+pid+"/export", nil, auth(e.agent)); code != 403 {
		t.Errorf("agent export: %d", code)
	}
	code, body := e.Do(t, "POST", "/api/v1/profiles/"+pid+"/export", nil, auth(e.owner))
	var x profiles.Export
	if code != 200 || json.Unmarshal(body, &x) != nil {
		t.Fatalf("export: %d %s", code, body)
	}
	own := 0
	for _, ev := range x.Events {
		if ev.Source != "omni" {
			own++
		}
	}
	if x.Profile.ID != pid || own != 5 || len(x.Profile.Identities) != 3 || x.Profile.Consent["email"].Status != "subscribed" ||
		x.Profile.Computed.LifetimeValue["EUR"] != 12.5 || x.Events[0].Type != events.Identify {
		t.Errorf("export: profile=%s events=%d identities=%d consent=%+v", x.Profile.ID, len(x.Events), len(x.Profile.Identities), x.Profile.Consent)
	}

	// Erase: owners only; profile.erased goes out on the bus.
	if code, _ := e.Do(t, "DELETE", "/api/v1/profiles/"+pid, nil, auth(e.agent)); code != 403 {
		t.Errorf("agent erase: %d", code)
	}
	erasedMsgs := make(chan *nats.Msg, 4)
	sub, err := e.Bus.Conn.ChanSubscribe("omni.events.omni.profile.erased", erasedMsgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	code, body = e.Do(t, "DELETE", "/api/v1/profiles/"+pid, nil, auth(e.owner))
	if code != 200 {
		t.Fatalf("erase: %d %s", code, body)
	}
	var er profiles.Erased
	_ = json.Unmarshal(body, &er)
	if er.Events < 5 || er.Identities != 3 {
		t.Errorf("erase result %+v", er)
	}
	select {
	case m := <-erasedMsgs:
		got, _ := events.Unmarshal(m.Data)
		if got.Properties["profile_id"] != pid || got.Identities[events.Email] != "gone@omni-shop.dev" {
			t.Errorf("profile.erased = %+v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no profile.erased event")
	}
	if code, _ := e.Do(t, "GET", "/api/v1/profiles/"+pid, nil, auth(e.owner)); code != 404 {
		t.Errorf("GET erased: %d", code)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM events WHERE profile={:p} OR identities LIKE '%gone@omni-shop.dev%'", map[string]any{"p": pid}); n != 0 {
		t.Errorf("%d events left", n)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_tombstones", nil); n != 3 {
		t.Errorf("tombstones = %d", n)
	}

	// Re-ingest: the erased email alone is dropped; with a new anonymous id
	// it is stripped; nothing brings the email back.
	order := ev(events.OrderPlaced, "shopify", now, events.Identities{events.Email: "gone@omni-shop.dev"}, map[string]any{"total": 1}, "web")
	view := ev(events.PageViewed, "test", now, events.Identities{events.Email: "gone@omni-shop.dev", events.AnonymousID: "fresh-anon"}, nil, "web")
	e.publish(t, order, view, ev("track", "sentinel", now, events.Identities{events.AnonymousID: "sentinel-1"}, nil, ""))
	if n := e.count(t, "SELECT COUNT(*) FROM events WHERE event_id={:id}", map[string]any{"id": order.ID}); n != 0 {
		t.Errorf("the event naming only the erased email was stored (%d rows)", n)
	}
	if n := e.count(t, `SELECT COUNT(*) FROM events WHERE event_id={:id} AND identities='{"anonymous_id":"fresh-anon"}' AND profile != ''`, map[string]any{"id": view.ID}); n != 1 {
		t.Errorf("the event with another identity was not stored with that one alone, on its profile (%d rows)", n)
	}
	if e.profileOf(t, events.Email, "gone@omni-shop.dev") != "" {
		t.Fatal("erased email resurrected")
	}
	if n := e.count(t, "SELECT COUNT(*) FROM events WHERE identities LIKE '%gone@omni-shop.dev%'", nil); n != 0 {
		t.Errorf("%d stored events still name the erased email", n)
	}
	if e.profileOf(t, events.AnonymousID, "fresh-anon") == "" {
		t.Error("the event's other identity was not resolved")
	}
	// Consent, even from a connector, does not lift the tombstone (a
	// tracking write key is public, so consent is easy to forge): only an
	// owner does.
	e.publish(t, ev(events.ConsentChanged, "klaviyo", now.Add(time.Minute), events.Identities{events.Email: "gone@omni-shop.dev"},
		map[string]any{"channel": "email", "status": "subscribed"}, ""),
		ev("track", "sentinel", now, events.Identities{events.AnonymousID: "sentinel-2"}, nil, ""))
	if e.profileOf(t, events.Email, "gone@omni-shop.dev") != "" {
		t.Fatal("a consent event lifted the tombstone")
	}
	if code, _ := e.Do(t, "DELETE", "/api/v1/tombstones/email/gone@omni-shop.dev", nil, auth(e.agent)); code != 403 {
		t.Errorf("agent removed a tombstone: %d", code)
	}
	if code, body := e.Do(t, "DELETE", "/api/v1/tombstones/favcolor/x", nil, auth(e.owner)); code != 400 || !strings.Contains(string(body), "kind") {
		t.Errorf("unknown kind: %d %s", code, body)
	}
	if code, body := e.Do(t, "DELETE", "/api/v1/tombstones/email/%20GONE@omni-shop.dev", nil, auth(e.owner)); code != 200 {
		t.Fatalf("owner removes the tombstone: %d %s", code, body)
	}
	if code, _ := e.Do(t, "DELETE", "/api/v1/tombstones/email/gone@omni-shop.dev", nil, auth(e.owner)); code != 404 {
		t.Errorf("second removal: %d", code)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM profile_tombstones", nil); n != 2 {
		t.Errorf("tombstones after removal = %d", n)
	}
	e.publish(t, ev(events.ConsentChanged, "klaviyo", now.Add(2*time.Minute), events.Identities{events.Email: "gone@omni-shop.dev"},
		map[string]any{"channel": "email", "status": "subscribed"}, ""))
	np := e.profileOf(t, events.Email, "gone@omni-shop.dev")
	if np == "" || np == pid {
		t.Fatalf("re-consented person has profile %q", np)
	}
	if c, _ := profiles.Consent(e.PB, np, "email"); c.Status != "subscribed" || c.Source != "klaviyo" {
		t.Errorf("consent = %+v", c)
	}
}

func TestAccessControl(t *testing.T) {
	e := start(t, profiles.Options{})
	e.publish(t, ev(events.Identify, "test", e.clock.Now(), events.Identities{events.Email: "ac@omni-shop.dev"}, nil, "web"))
	pid := e.profileOf(t, events.Email, "ac@omni-shop.dev")
	col, _ := e.PB.FindCollectionByNameOrId(core.CollectionNameSuperusers)
	su := core.NewRecord(col)
	su.SetEmail("root@omni-shop.dev")
	su.SetPassword("password-123456")
	if err := e.PB.Save(su); err != nil {
		t.Fatal(err)
	}
	suTok, _ := su.NewAuthToken()

	paths := []struct{ method, path, body string }{
		{"GET", "/api/v1/profiles", ""},
		{"GET", "/api/v1/profiles/" + pid, ""},
		{"GET", "/api/v1/profiles/" + pid + "/timeline", ""},
		{"GET", "/api/v1/segments", ""},
		{"POST", "/api/v1/segments/preview", `{"rule":{"trait":"email","op":"exists"}}`},
		{"POST", "/api/v1/profiles/" + pid + "/export", ""},
		{"DELETE", "/api/v1/tombstones/email/ac@omni-shop.dev", ""},
		{"DELETE", "/api/v1/profiles/" + pid, ""},
	}
	for _, p := range paths {
		if code, _ := e.Do(t, p.method, p.path, nilIfEmpty(p.body), nil); code != 401 {
			t.Errorf("anonymous %s %s: %d", p.method, p.path, code)
		}
	}
	for i, p := range paths {
		code, body := e.Do(t, p.method, p.path, nilIfEmpty(p.body), auth(e.agent))
		want := 200
		if i >= 4 {
			want = 403
		}
		if code != want {
			t.Errorf("agent %s %s: %d %s, want %d", p.method, p.path, code, body, want)
		}
	}
	if code, body := e.Do(t, "DELETE", "/api/v1/profiles/"+pid, nil, auth(suTok)); code != 200 {
		t.Errorf("superuser erase: %d %s", code, body)
	}
	// Our auth guard must not leak onto other /api/v1 routes.
	if code, body := e.Do(t, "GET", "/api/v1/health", nil, nil); code != 200 {
		t.Errorf("health without auth: %d %s", code, body)
	}
	if code, body := e.Track(t, "/api/v1/track", map[string]any{"event": "x", "anonymousId": "a", "messageId": "ac-1"}); code != 200 {
		t.Errorf("track under /api/v1: %d %s", code, body)
	}
	if code, _ := e.Do(t, "GET", "/api/v1/profiles/nope", nil, auth(e.agent)); code != 404 {
		t.Errorf("unknown profile: %d", code)
	}
	if code, body := e.Do(t, "GET", "/api/v1/profiles?perPage=1000", nil, auth(e.agent)); code != 400 {
		t.Errorf("bad perPage: %d %s", code, body)
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
