// Package prefs serves the customer's side of messaging, with no login:
// the one-click unsubscribe page (/p/u/{token}, also the RFC 8058
// one-click POST that mail providers send), the preference center
// (/p/prefs/{token}) where a customer turns each channel's marketing on or
// off, and marketing email's open pixel and tracked links (/p/o/, /p/c/),
// which record email.opened and email.clicked. Tokens are signed links (core/messaging/links). Every change goes
// into the consent ledger as a consent.changed event from source
// "customer", through the bus like any other consent change.
package prefs

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/security"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/messaging/customers"
	"github.com/omni/omni/core/messaging/links"
)

// SourceCustomer is the source of consent changes customers make
// themselves on these pages (tracking sources may not take the name).
const SourceCustomer = "customer"

// storeWait bounds how long a page waits for its change to be applied
// before saying it will show in a moment.
const storeWait = 10 * time.Second

// Pages serves the unsubscribe and preference pages.
type Pages struct {
	omni    *app.Omni
	signer  *links.Signer
	waiters eventstore.Waiters
	now     func() time.Time
}

// Register adds the /p/ routes (no login). The messaging module calls it
// from Start, before the events consumer starts (it listens to commits to
// show a change once applied).
func Register(se *core.ServeEvent, o *app.Omni, signer *links.Signer) *Pages {
	p := &Pages{omni: o, signer: signer, now: time.Now}
	o.Events.OnCommit(p.waiters.Committed)
	se.Router.GET("/p/u/{token}", p.unsubscribePage)
	se.Router.POST("/p/u/{token}", p.unsubscribePost)
	se.Router.GET("/p/prefs/{token}", p.preferencesPage)
	se.Router.POST("/p/prefs/{token}", p.preferencesPost)
	p.registerTracking(se)
	return p
}

// reasons recorded in the ledger, by how the customer made the change.
const (
	reasonLink      = "unsubscribe link"
	reasonOneClick  = "one-click unsubscribe from the mail app (RFC 8058)"
	reasonResub     = "resubscribed from the unsubscribe page"
	reasonPrefs     = "preference center"
	channelNotKnown = ""
)

// customer verifies the token and loads its customer; nil when the link
// is not valid or the customer is gone (erased): the caller shows the
// not-valid page, which reveals nothing.
func (p *Pages) customer(e *core.RequestEvent, wantUnsubscribe bool) (*customers.Customer, string) {
	pid, channel, err := p.signer.Verify(e.Request.PathValue("token"))
	if err != nil || (wantUnsubscribe && !validChannel(channel)) {
		return nil, channelNotKnown
	}
	c, err := customers.Load(e.App, pid)
	if err != nil {
		if !errors.Is(err, customers.ErrNotFound) {
			p.omni.Log.Error("preference page: load customer", "error", err)
		}
		return nil, channelNotKnown
	}
	return c, channel
}

func validChannel(ch string) bool {
	for _, c := range customers.Channels {
		if c == ch {
			return true
		}
	}
	return false
}

// unsubscribePage asks the customer to confirm with one button: opening
// the link changes nothing, because mail scanners (and link previews)
// fetch every link in a message and would otherwise unsubscribe people who
// never clicked. A mail app's own unsubscribe is the RFC 8058 POST, which
// needs no page. A customer already unsubscribed sees that at once.
func (p *Pages) unsubscribePage(e *core.RequestEvent) error {
	c, channel := p.customer(e, true)
	if c == nil {
		return p.notValid(e)
	}
	if c.Consent[channel] == customers.Unsubscribed {
		return p.show(e, http.StatusOK, pageData{Page: "unsubscribed", Channel: channel, Result: result{Applied: true}})
	}
	return p.show(e, http.StatusOK, pageData{Page: "confirm", Channel: channel})
}

// unsubscribePost is both the RFC 8058 one-click POST (body
// "List-Unsubscribe=One-Click", answered 200 with no redirect) and the
// pages' own buttons (action=unsubscribe|resubscribe).
func (p *Pages) unsubscribePost(e *core.RequestEvent) error {
	c, channel := p.customer(e, true)
	if c == nil {
		return p.notValid(e)
	}
	if err := parseForm(e.Request); err != nil {
		return p.notValid(e)
	}
	if e.Request.PostForm.Get("List-Unsubscribe") == "One-Click" {
		res := p.change(e, c, map[string]string{channel: customers.Unsubscribed}, reasonOneClick)
		if res.Err != "" {
			e.Response.Header().Set("Retry-After", "60")
			return e.String(http.StatusServiceUnavailable, "Could not unsubscribe right now; please try again.\n")
		}
		return e.String(http.StatusOK, "Unsubscribed.\n")
	}
	status, reason, page := customers.Unsubscribed, reasonLink, "unsubscribed"
	if e.Request.PostForm.Get("action") == "resubscribe" {
		status, reason, page = customers.Subscribed, reasonResub, "resubscribed"
	}
	res := p.change(e, c, map[string]string{channel: status}, reason)
	return p.show(e, res.status(), pageData{Page: page, Channel: channel, Result: res})
}

// maxFormMemory bounds a multipart form held in memory: the forms here
// carry a few short fields.
const maxFormMemory = 64 << 10

// parseForm reads an urlencoded or a multipart/form-data body into
// PostForm: RFC 8058 says the one-click POST SHOULD be multipart, and mail
// providers send either.
func parseForm(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return err
	}
	err := r.ParseMultipartForm(maxFormMemory)
	if r.MultipartForm != nil {
		_ = r.MultipartForm.RemoveAll()
	}
	if errors.Is(err, http.ErrNotMultipart) {
		return nil
	}
	return err
}

func (p *Pages) preferencesPage(e *core.RequestEvent) error {
	c, _ := p.customer(e, false)
	if c == nil {
		return p.notValid(e)
	}
	return p.show(e, http.StatusOK, pageData{Page: "preferences", Choices: choices(c)})
}

// preferencesPost saves the form: a checkbox per channel shown; channels
// whose state did not change are not written to the ledger.
func (p *Pages) preferencesPost(e *core.RequestEvent) error {
	c, _ := p.customer(e, false)
	if c == nil {
		return p.notValid(e)
	}
	if err := parseForm(e.Request); err != nil {
		return p.notValid(e)
	}
	want := map[string]string{}
	for _, ch := range choices(c) {
		st := customers.Unsubscribed
		if e.Request.PostForm.Get(ch.Channel) == "on" {
			st = customers.Subscribed
		}
		if st != c.Consent[ch.Channel] {
			want[ch.Channel] = st
		}
	}
	res := p.change(e, c, want, reasonPrefs)
	if res.Applied {
		if fresh, err := customers.Load(e.App, c.ID); err == nil {
			c = fresh
		}
	} else {
		for ch, st := range want { // not applied yet: show what was asked
			c.Consent[ch] = st
		}
	}
	return p.show(e, res.status(), pageData{Page: "preferences", Choices: choices(c), Result: res, Saved: res.Err == ""})
}

// choice is one channel on the preference page.
type choice struct {
	Channel string
	Label   string
	On      bool
}

var channelLabels = map[string]string{"email": "Email", "sms": "Text messages (SMS)", "whatsapp": "WhatsApp"}

// choices are the channels the customer can be reached on (all three when
// Omni knows no address, so the page is never empty).
func choices(c *customers.Customer) []choice {
	var out []choice
	for _, ch := range customers.Channels {
		reachable := (ch == "email" && c.Email != "") || (ch != "email" && c.Phone != "")
		if reachable || c.Consent[ch] != "" {
			out = append(out, choice{Channel: ch, Label: channelLabels[ch], On: c.Consent[ch] == customers.Subscribed})
		}
	}
	if len(out) == 0 {
		for _, ch := range customers.Channels {
			out = append(out, choice{Channel: ch, Label: channelLabels[ch]})
		}
	}
	return out
}

// result is what a change did, for the page.
type result struct {
	Changed []string // channels written to the ledger
	Applied bool     // the ledger shows them already
	Err     string
}

func (r result) status() int {
	if r.Err != "" {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}

// change records consent changes as consent.changed events from source
// customer and waits (bounded) until the ledger has applied them. A
// channel already in the wanted state is left alone, so reloading the page
// or a mail app's repeated one-click POST adds nothing to the ledger.
func (p *Pages) change(e *core.RequestEvent, c *customers.Customer, want map[string]string, reason string) result {
	kind, value, err := customers.Identity(e.App, c.ID)
	if err != nil || kind == "" {
		if err != nil {
			p.omni.Log.Error("preference page: identity", "error", err)
		}
		return result{Err: "Your choice could not be saved right now. Please try again later."}
	}
	now := p.now().UTC()
	var evs []*events.Event
	var res result
	for _, ch := range customers.Channels {
		st, ok := want[ch]
		if !ok || c.Consent[ch] == st {
			continue
		}
		ev := &events.Event{ID: "customer:consent:" + security.RandomString(20), Type: events.ConsentChanged,
			Source: SourceCustomer, OccurredAt: now, ReceivedAt: now, Identities: events.Identities{kind: value},
			Properties: map[string]any{"channel": ch, "status": st, "reason": reason}}
		if err := ev.Validate(now); err != nil {
			p.omni.Log.Error("preference page: event", "error", err)
			return result{Err: "Your choice could not be saved right now. Please try again later."}
		}
		evs = append(evs, ev)
		res.Changed = append(res.Changed, ch)
	}
	if len(evs) == 0 {
		res.Applied = true
		return res
	}
	done := make([]<-chan struct{}, len(evs))
	for i, ev := range evs {
		done[i] = p.waiters.Add(ev.ID)
		defer p.waiters.Drop(ev.ID)
	}
	for _, err := range ingest.Publish(e.Request.Context(), p.omni.Bus, evs) {
		if err != nil {
			p.omni.Log.Error("preference page: publish", "error", err)
			return result{Err: "Your choice could not be saved right now. Please try again in a minute."}
		}
	}
	ctx, cancel := context.WithTimeout(e.Request.Context(), storeWait)
	defer cancel()
	for _, d := range done {
		select {
		case <-d:
		case <-ctx.Done():
			return res // on the stream: it will be applied
		}
	}
	res.Applied = true
	return res
}

// channelName is how pages name a channel in a sentence.
func channelName(ch string) string {
	if ch == "sms" {
		return "text message (SMS)"
	}
	if ch == "whatsapp" {
		return "WhatsApp"
	}
	return strings.ToLower(channelLabels[ch])
}
