package prefs_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/messaging/internal/msgtest"
	"github.com/omni/omni/core/profiles"
)

// path strips the public base URL: tests reach the server on its own port.
func path(link string) string {
	u, _ := url.Parse(link)
	return u.Path
}

func get(t *testing.T, e *msgtest.Env, p string) (int, string) {
	t.Helper()
	res, err := http.Get(e.URL + p)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func post(t *testing.T, e *msgtest.Env, p string, form url.Values) (*http.Response, string) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.PostForm(e.URL+p, form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func consent(t *testing.T, e *msgtest.Env, pid, ch string) profiles.ConsentEntry {
	t.Helper()
	c, err := profiles.Consent(e.PB, pid, ch)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func subscribe(t *testing.T, e *msgtest.Env, pid, ch string) {
	t.Helper()
	code, body := e.Do(t, "POST", "/api/v1/profiles/"+pid+"/consent",
		map[string]string{"channel": ch, "status": "subscribed", "reason": "signed up at the till"}, omnitest.Auth(e.Owner))
	if code != 200 {
		t.Fatalf("subscribe %s: %d %s", ch, code, body)
	}
}

func countConsentEvents(t *testing.T, e *msgtest.Env, pid string) int {
	var n int
	_ = e.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE type='consent.changed' AND source='customer' AND profile={:p}").
		Bind(map[string]any{"p": pid}).Row(&n)
	return n
}

// TestUnsubscribeLink: opening the link asks to confirm and changes
// nothing (mail scanners fetch every link); the button unsubscribes that
// channel's marketing, in the ledger with source customer; "Changed your
// mind?" resubscribes; the RFC 8058 POST answers 200 without a redirect;
// confirming again adds nothing to the ledger.
func TestUnsubscribeLink(t *testing.T) {
	e := msgtest.Start(t, profiles.New(profiles.Options{}))
	pid := e.Customer(t, events.Identities{events.Email: "ann@omni-shop.dev", events.Phone: "+14155550101"}, map[string]any{"first_name": "Ann"})
	subscribe(t, e, pid, "email")
	subscribe(t, e, pid, "sms")

	link := path(e.Mod.Signer.UnsubscribeURL(pid, "email"))
	before := countConsentEvents(t, e, pid)
	for range 2 { // the customer, and a mail scanner before them
		code, page := get(t, e, link)
		if code != 200 || !strings.Contains(page, "Unsubscribe from email?") || !strings.Contains(page, `name="action" value="unsubscribe"`) ||
			!strings.Contains(page, `lang="en"`) || !strings.Contains(page, `<a href="/p/prefs/`) {
			t.Fatalf("confirm page: %d %s", code, page)
		}
		if strings.Contains(page, "ann@omni-shop.dev") || strings.Contains(page, "Ann") {
			t.Fatal("the page shows the customer's details")
		}
	}
	if n := countConsentEvents(t, e, pid); n != before || consent(t, e, pid, "email").Status != "subscribed" {
		t.Fatalf("opening the link changed consent: %d consent events (was %d)", n, before)
	}

	res, page := post(t, e, link, url.Values{"action": {"unsubscribe"}})
	if res.StatusCode != 200 || !strings.Contains(page, "You're unsubscribed") || !strings.Contains(page, "Changed your mind?") ||
		!strings.Contains(page, `<a href="/p/prefs/`) {
		t.Fatalf("unsubscribe: %d %s", res.StatusCode, page)
	}
	c := consent(t, e, pid, "email")
	if c.Status != "unsubscribed" || c.Source != "customer" || c.Reason != "unsubscribe link" {
		t.Fatalf("ledger after the link: %+v", c)
	}
	if consent(t, e, pid, "sms").Status != "subscribed" {
		t.Fatal("an email link unsubscribed SMS too")
	}
	// Confirming again writes nothing more; opening the link now says so.
	before = countConsentEvents(t, e, pid)
	if res, _ := post(t, e, link, url.Values{"action": {"unsubscribe"}}); res.StatusCode != 200 || countConsentEvents(t, e, pid) != before {
		t.Fatalf("second confirm: %d, %d consent events (was %d)", res.StatusCode, countConsentEvents(t, e, pid), before)
	}
	if code, page := get(t, e, link); code != 200 || !strings.Contains(page, "You're unsubscribed") || countConsentEvents(t, e, pid) != before {
		t.Fatalf("link after unsubscribing: %d %s", code, page)
	}

	// Changed your mind?
	res, page = post(t, e, link, url.Values{"action": {"resubscribe"}})
	if res.StatusCode != 200 || !strings.Contains(page, "subscribed again") {
		t.Fatalf("resubscribe: %d %s", res.StatusCode, page)
	}
	if c := consent(t, e, pid, "email"); c.Status != "subscribed" || c.Source != "customer" {
		t.Fatalf("ledger after resubscribe: %+v", c)
	}

	// RFC 8058 one-click, as a mail provider sends it.
	res, body := post(t, e, path(e.Mod.Signer.UnsubscribeURL(pid, "sms")), url.Values{"List-Unsubscribe": {"One-Click"}})
	if res.StatusCode != 200 || res.Header.Get("Location") != "" {
		t.Fatalf("one-click: %d %q %s", res.StatusCode, res.Header.Get("Location"), body)
	}
	if c := consent(t, e, pid, "sms"); c.Status != "unsubscribed" || c.Source != "customer" || !strings.Contains(c.Reason, "RFC 8058") {
		t.Fatalf("ledger after one-click: %+v", c)
	}

	// The timeline shows the customer's own changes.
	var tl struct {
		Items []profiles.TimelineEvent `json:"items"`
	}
	code, raw := e.Do(t, "GET", "/api/v1/profiles/"+pid+"/timeline?type=consent.changed", nil, omnitest.Auth(e.Agent))
	if code != 200 || !strings.Contains(string(raw), `"source":"customer"`) {
		t.Fatalf("timeline: %d %s %v", code, raw, tl)
	}
}

// TestPreferenceCenter: the page lists the channels the customer can be
// reached on with their state; saving writes only the changes, each a
// consent.changed from source customer, and shows the saved state.
func TestPreferenceCenter(t *testing.T) {
	e := msgtest.Start(t, profiles.New(profiles.Options{}))
	pid := e.Customer(t, events.Identities{events.Email: "bo@omni-shop.dev", events.Phone: "+14155550102"}, nil)
	subscribe(t, e, pid, "email")
	link := path(e.Mod.Signer.PreferencesURL(pid))

	code, page := get(t, e, link)
	if code != 200 || !strings.Contains(page, `<label for="ch-email">Email</label>`) || !strings.Contains(page, `id="ch-email" name="email" checked`) ||
		!strings.Contains(page, `id="ch-sms" name="sms">`) || !strings.Contains(page, `id="ch-whatsapp" name="whatsapp">`) {
		t.Fatalf("preferences page: %d %s", code, page)
	}
	// Email off, SMS on, WhatsApp stays as it was (never asked → off, now
	// an explicit unsubscribe since the customer saw it unticked).
	res, page := post(t, e, link, url.Values{"sms": {"on"}})
	if res.StatusCode != 200 || !strings.Contains(page, "Your preferences are saved.") || !strings.Contains(page, `id="ch-sms" name="sms" checked`) ||
		strings.Contains(page, `name="email" checked`) || strings.Contains(page, "take effect in a moment") {
		t.Fatalf("save: %d %s", res.StatusCode, page)
	}
	for ch, want := range map[string]string{"email": "unsubscribed", "sms": "subscribed", "whatsapp": "unsubscribed"} {
		if c := consent(t, e, pid, ch); c.Status != want || c.Source != "customer" || c.Reason != "preference center" {
			t.Errorf("%s: %+v, want %s from customer", ch, c, want)
		}
	}
	// Saving the same choices again writes nothing.
	before := countConsentEvents(t, e, pid)
	post(t, e, link, url.Values{"sms": {"on"}})
	if n := countConsentEvents(t, e, pid); n != before {
		t.Fatalf("an unchanged save wrote %d consent events", n-before)
	}
}

// TestInvalidAndErasedLinks: forged or damaged tokens and links of erased
// customers get the same 404 page that reveals nothing.
func TestInvalidAndErasedLinks(t *testing.T) {
	e := msgtest.Start(t, profiles.New(profiles.Options{}))
	pid := e.Customer(t, events.Identities{events.Email: "cy@omni-shop.dev"}, map[string]any{"first_name": "Cy"})
	unsub, prefs := path(e.Mod.Signer.UnsubscribeURL(pid, "email")), path(e.Mod.Signer.PreferencesURL(pid))
	for _, p := range []string{unsub + "x", "/p/u/nonsense", "/p/prefs/a.b.c", prefs[:len(prefs)-3] + "AAA",
		"/p/u/" + strings.TrimPrefix(prefs, "/p/prefs/")} { // a preferences token cannot unsubscribe
		code, page := get(t, e, p)
		if code != 404 || !strings.Contains(page, "This link is not valid") {
			t.Errorf("%s: %d %s", p, code, page)
		}
	}
	if res, _ := post(t, e, unsub+"x", url.Values{"List-Unsubscribe": {"One-Click"}}); res.StatusCode != 404 {
		t.Fatalf("forged one-click: %d", res.StatusCode)
	}

	code, body := e.Do(t, "DELETE", "/api/v1/profiles/"+pid, nil, omnitest.Auth(e.Owner))
	if code != 200 && code != 204 {
		t.Fatalf("erase: %d %s", code, body)
	}
	for _, p := range []string{unsub, prefs} {
		code, page := get(t, e, p)
		if code != 404 || !strings.Contains(page, "This link is not valid") || strings.Contains(page, "Cy") {
			t.Errorf("erased %s: %d %s", p, code, page)
		}
	}
	if res, _ := post(t, e, prefs, url.Values{"email": {"on"}}); res.StatusCode != 404 {
		t.Fatalf("erased save: %d", res.StatusCode)
	}
}

// TestOneClickAsMultipart: RFC 8058 says the one-click POST SHOULD be
// multipart/form-data (urlencoded MAY): both are the one-click, answered
// 200 with no page and recorded as the mail app's unsubscribe.
func TestOneClickAsMultipart(t *testing.T) {
	e := msgtest.Start(t, profiles.New(profiles.Options{}))
	pid := e.Customer(t, events.Identities{events.Email: "cy@omni-shop.dev"}, nil)
	subscribe(t, e, pid, "email")

	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	if err := w.WriteField("List-Unsubscribe", "One-Click"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Post(e.URL+path(e.Mod.Signer.UnsubscribeURL(pid, "email")), w.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(got) != "Unsubscribed.\n" {
		t.Fatalf("multipart one-click: %d %s", res.StatusCode, got)
	}
	if c := consent(t, e, pid, "email"); c.Status != "unsubscribed" || c.Source != "customer" || !strings.Contains(c.Reason, "RFC 8058") {
		t.Fatalf("ledger after a multipart one-click: %+v", c)
	}
}
