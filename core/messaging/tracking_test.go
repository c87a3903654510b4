package messaging_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app/omnitest"
)

// Marketing email with an HTML part carries an open pixel and tracked
// links: loading the pixel records one email.opened on the customer,
// following a link records email.clicked and lands on the shop's page,
// the unsubscribe link stays direct, and transactional email and a shop
// that turned tracking off get none of it.
func TestEmailOpenAndClickTracking(t *testing.T) {
	e := start(t, envOptions{})
	e.owner = e.Staff(t, "owner@omni-shop.dev", "owner")
	ann := e.customer(t, "ann")
	e.enableRecorder(t)
	e.consent(t, ann, "email", "subscribed")

	html := `<html><body><p>Hi {{ customer.first_name }}</p><a href="https://shop.omni-shop.dev/sale?utm_campaign=spring&amp;a=1">Shop the sale</a>` +
		`<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>`
	code, r := e.send(t, e.owner, map[string]any{"profile": ann, "channel": "email", "kind": "marketing", "subject": "Spring", "body": "Spring sale", "html": html})
	if code != 202 {
		t.Fatalf("send: %d %+v", code, r)
	}
	e.waitStatus(t, r.ID, "sent")
	got, _ := e.vendor.message(r.ID)
	hrefs := regexp.MustCompile(`href="([^"]+)"`).FindAllStringSubmatch(got.HTML, -1)
	pixel := regexp.MustCompile(`<img src="([^"]+)" width="1" height="1"`).FindStringSubmatch(got.HTML)
	if len(hrefs) != 2 || pixel == nil || !strings.Contains(got.HTML, "<p>Hi Ann</p>") {
		t.Fatalf("html sent: %s", got.HTML)
	}
	click, unsub := hrefs[0][1], hrefs[1][1]
	if !strings.HasPrefix(click, "https://shop.omni-shop.dev/p/c/") || !strings.HasPrefix(unsub, "https://shop.omni-shop.dev/p/u/") ||
		!strings.HasPrefix(pixel[1], "https://shop.omni-shop.dev/p/o/") {
		t.Fatalf("links %q %q, pixel %q", click, unsub, pixel[1])
	}

	// The customer's mail app loads the images, twice.
	for range 2 {
		res := get(t, e.URL+path(t, pixel[1]))
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/gif" {
			t.Fatalf("pixel: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
	// A link checker's HEAD is not a click; the customer's click is.
	if res := do(t, http.MethodHead, e.URL+path(t, click)); res.StatusCode != http.StatusFound {
		t.Fatalf("HEAD click: %d", res.StatusCode)
	}
	res := get(t, e.URL+path(t, click))
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "https://shop.omni-shop.dev/sale?utm_campaign=spring&a=1" {
		t.Fatalf("click: %d → %q", res.StatusCode, res.Header.Get("Location"))
	}
	type row struct {
		Type    string `db:"type"`
		Profile string `db:"profile"`
		Msg     string `db:"msg"`
		URL     string `db:"url"`
	}
	var rows []row
	omnitest.Eventually(t, 30*time.Second, func() bool {
		rows = nil
		_ = e.PB.DB().NewQuery(`SELECT type, profile, json_extract(properties, '$.outbound_id') AS msg, COALESCE(json_extract(properties, '$.url'), '') AS url
			FROM events WHERE type IN ('email.opened', 'email.clicked') ORDER BY type DESC`).All(&rows)
		return len(rows) == 2
	}, "one open and one click stored")
	time.Sleep(300 * time.Millisecond) // a second open, were it recorded, would be stored by now too
	var n int
	_ = e.PB.DB().NewQuery(`SELECT COUNT(*) FROM events WHERE type IN ('email.opened', 'email.clicked')`).Row(&n)
	if n != 2 || rows[0] != (row{"email.opened", ann, r.ID, ""}) || rows[1] != (row{"email.clicked", ann, r.ID, "https://shop.omni-shop.dev/sale?utm_campaign=spring&a=1"}) {
		t.Fatalf("%d events: %+v", n, rows)
	}

	// A forged or damaged link is refused, and redirects nowhere.
	if res := get(t, e.URL+path(t, click)[:len(path(t, click))-4]+"AAAA"); res.StatusCode != 404 || res.Header.Get("Location") != "" {
		t.Fatalf("forged click: %d %q", res.StatusCode, res.Header.Get("Location"))
	}

	// Transactional email is not tracked.
	code, r = e.send(t, e.owner, map[string]any{"profile": ann, "channel": "email", "kind": "transactional", "subject": "Order", "body": "Thanks",
		"html": `<p>Thanks</p><a href="https://shop.omni-shop.dev/orders/1">Your order</a>`})
	if code != 202 {
		t.Fatalf("transactional: %d %+v", code, r)
	}
	e.waitStatus(t, r.ID, "sent")
	if got, _ := e.vendor.message(r.ID); got.HTML != `<p>Thanks</p><a href="https://shop.omni-shop.dev/orders/1">Your order</a>` {
		t.Fatalf("transactional html: %s", got.HTML)
	}
}

func TestEmailTrackingOff(t *testing.T) {
	e := start(t, envOptions{configure: func(c *config.Config) { c.Messaging.TrackEmail = false }})
	e.owner = e.Staff(t, "owner@omni-shop.dev", "owner")
	bo := e.customer(t, "bo")
	e.enableRecorder(t)
	e.consent(t, bo, "email", "subscribed")
	code, r := e.send(t, e.owner, map[string]any{"profile": bo, "channel": "email", "kind": "marketing", "subject": "New", "body": "New in",
		"html": `<p>New in</p><a href="https://shop.omni-shop.dev/new">See</a>`})
	if code != 202 {
		t.Fatalf("send: %d %+v", code, r)
	}
	e.waitStatus(t, r.ID, "sent")
	if got, _ := e.vendor.message(r.ID); got.HTML != `<p>New in</p><a href="https://shop.omni-shop.dev/new">See</a>` {
		t.Fatalf("html with tracking off: %s", got.HTML)
	}
	var n int
	_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM messages WHERE html LIKE {:p}").Bind(dbx.Params{"p": "%/p/o/%"}).Row(&n)
	if n != 0 {
		t.Fatalf("%d ledger rows carry a pixel", n)
	}
}

func path(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.EscapedPath()
}

func get(t *testing.T, u string) *http.Response { return do(t, http.MethodGet, u) }

func do(t *testing.T, method, u string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}
