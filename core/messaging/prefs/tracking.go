package prefs

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/messaging/customers"
	"github.com/omni/omni/core/messaging/links"
)

// SourceTracking is the source of the email.opened and email.clicked
// events Omni records from its own open pixel and tracked links.
const SourceTracking = "email"

// pixelGIF is a transparent 1×1 GIF.
var pixelGIF = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

// registerTracking adds the open pixel and tracked-link routes.
func (p *Pages) registerTracking(se *core.ServeEvent) {
	se.Router.GET("/p/o/{token}", p.openPixel)
	se.Router.HEAD("/p/o/{token}", p.openPixel)
	se.Router.GET("/p/c/{token}", p.trackedLink)
	se.Router.HEAD("/p/c/{token}", p.trackedLink)
}

// openPixel records the first load of an email's images as its open and
// answers with a transparent pixel whatever happens: a broken image in
// the customer's mail is worse than a lost open.
func (p *Pages) openPixel(e *core.RequestEvent) error {
	if t, err := p.signer.VerifyTracking(e.Request.PathValue("token")); err == nil && !t.Click && e.Request.Method == http.MethodGet {
		// One open per message (the event id dedupes): images reloaded or
		// opened again later do not count twice.
		p.record(e, t, events.EmailOpened, "email:open:"+t.MessageID, nil)
	}
	h := e.Response.Header()
	h.Set("Content-Type", "image/gif")
	h.Set("Cache-Control", "no-store, max-age=0")
	h.Set("Referrer-Policy", "no-referrer")
	return e.Blob(http.StatusOK, "image/gif", pixelGIF)
}

// trackedLink records the click and sends the customer on to the link's
// address. A HEAD (what link checkers and some scanners send) is answered
// without being counted.
func (p *Pages) trackedLink(e *core.RequestEvent) error {
	t, err := p.signer.VerifyTracking(e.Request.PathValue("token"))
	if err != nil || !t.Click {
		return p.notValid(e)
	}
	if e.Request.Method == http.MethodGet {
		sum := sha256.Sum256([]byte(t.Target))
		p.record(e, t, events.EmailClicked, "email:click:"+t.MessageID+":"+hex.EncodeToString(sum[:8]), map[string]any{"url": t.Target})
	}
	e.Response.Header().Set("Cache-Control", "no-store")
	e.Response.Header().Set("Referrer-Policy", "no-referrer") // the token is in the URL
	return e.Redirect(http.StatusFound, t.Target)
}

// record publishes an open or a click on the customer's profile. Nothing
// is recorded for a customer who was erased.
func (p *Pages) record(e *core.RequestEvent, t links.Tracked, typ, id string, props map[string]any) {
	c, err := customers.Load(e.App, t.ProfileID)
	if err != nil {
		return // erased, or the database is busy: the customer still gets their page
	}
	kind, value, err := customers.Identity(e.App, c.ID)
	if err != nil || kind == "" {
		return
	}
	if props == nil {
		props = map[string]any{}
	}
	props["outbound_id"] = t.MessageID
	now := p.now().UTC()
	ev := &events.Event{ID: id, Type: typ, Source: SourceTracking, OccurredAt: now, ReceivedAt: now,
		Identities: events.Identities{kind: value}, Properties: props,
		Context: events.Context{Channel: "email", UserAgent: truncateUA(e.Request.UserAgent())}}
	if err := ev.Validate(now); err != nil {
		p.omni.Log.Warn("email tracking: event", "error", err)
		return
	}
	for _, err := range ingest.Publish(e.Request.Context(), p.omni.Bus, []*events.Event{ev}) {
		if err != nil {
			p.omni.Log.Warn("email tracking: publish", "type", typ, "error", err)
		}
	}
}

// truncateUA keeps a user agent within what an event's context allows.
func truncateUA(ua string) string {
	const max = 500
	if len(ua) > max {
		return ua[:max]
	}
	return ua
}
