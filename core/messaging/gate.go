package messaging

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/messaging/customers"
	"github.com/omni/omni/core/messaging/render"
	"github.com/omni/omni/core/outbox"
	"github.com/omni/omni/core/store"
	"github.com/omni/omni/plugins/sdk"
)

// Request is one message to send (the API body and the bus request share it).
type Request = outbox.SendRequest

// Kinds of message.
const (
	KindMarketing     = "marketing"
	KindTransactional = "transactional"
	KindConversation  = "conversation"
)

// Ledger statuses. A status only moves forward (rank); suppressed is final.
const (
	StatusQueued     = "queued"
	StatusScheduled  = "scheduled"
	StatusSent       = "sent"
	StatusDelivered  = "delivered"
	StatusRead       = "read"
	StatusFailed     = "failed"
	StatusSuppressed = "suppressed"
)

// Channels the gate knows how to address. chat is the website chat
// widget: replies in a conversation only, addressed to the conversation
// and delivered by the inbox (outbox.Webchat), not by a connector.
var channels = map[string]string{"email": "email", "sms": "phone", "whatsapp": "wa_id", "chat": "conversation"}

// whatsappWindow is how long after a customer's last WhatsApp message a
// free-form reply may be sent; after it only approved templates.
const whatsappWindow = 24 * time.Hour

// Result is the gate's decision on one request.
type Result struct {
	ID      string `json:"id"`
	Status  string `json:"status"` // queued, scheduled or suppressed
	Channel string `json:"channel,omitempty"`
	// Reason says why it was not sent (suppressed) or when it goes out.
	Reason string    `json:"reason,omitempty"`
	SendAt string    `json:"send_at,omitempty"`
	Tried  []Attempt `json:"attempts,omitempty"`
	// HTTPStatus is what the API answers: 202, 409 (refused by a rule) or
	// 422 (nothing can send it: no connector, no address).
	HTTPStatus int `json:"-"`
}

// Attempt is one channel the gate considered and why it was skipped.
type Attempt struct {
	Channel string `json:"channel"`
	Outcome string `json:"outcome"` // "chosen" or "skipped"
	Reason  string `json:"reason,omitempty"`
	// unfixable is a refusal no rule decided (no connector, no address).
	unfixable bool
}

// RequestError is a request the gate cannot read; Field names the culprit.
type RequestError struct{ Field, Message string }

func (e *RequestError) Error() string { return e.Field + ": " + e.Message }

func badField(field, msg string) error { return &RequestError{Field: field, Message: msg} }

// validate checks the shape of a request before anything is looked up.
func validate(r *Request) error {
	r.Profile = strings.TrimSpace(r.Profile)
	r.Kind = strings.ToLower(strings.TrimSpace(r.Kind))
	switch {
	case r.Profile == "":
		return badField("profile", "is required: the customer's profile id")
	case len(r.Channels) == 0:
		return badField("channel", `is required: "email", "sms", "whatsapp" or a list to try in order`)
	// Without a kind, the template's applies (loadTemplate).
	case (r.Kind != "" || r.Template == "") && r.Kind != KindMarketing && r.Kind != KindTransactional && r.Kind != KindConversation:
		return badField("kind", "must be marketing, transactional or conversation")
	case r.Template == "" && strings.TrimSpace(r.Body) == "" && r.WATemplate == nil:
		return badField("body", "is required unless a template is given")
	case r.Template != "" && r.Body != "":
		return badField("template", "give a template or a body, not both")
	case len(r.Body) > 100000 || len(r.Subject) > 1000 || len(r.HTML) > 500000:
		return badField("body", "is too long (body up to 100,000 characters, subject 1,000, html 500,000)")
	}
	seen := map[string]bool{}
	for i, c := range r.Channels {
		c = strings.ToLower(strings.TrimSpace(c))
		if _, ok := channels[c]; !ok {
			return badField("channel", fmt.Sprintf("%q is not a channel: use email, sms, whatsapp or chat", r.Channels[i]))
		}
		if seen[c] {
			return badField("channel", fmt.Sprintf("%q is listed twice", c))
		}
		seen[c] = true
		r.Channels[i] = c
	}
	if r.WATemplate != nil && (strings.TrimSpace(r.WATemplate.Name) == "" || strings.TrimSpace(r.WATemplate.Language) == "") {
		return badField("wa_template", "needs the approved template's name and language")
	}
	return nil
}

// ledgerID is the ledger row id for a request id: the id itself when it is
// already a record id, else a stable hash of it, so a request repeated
// over the bus maps to the same row.
func ledgerID(requestID string) string {
	if requestID == "" {
		return store.NewRecordID()
	}
	if len(requestID) == 15 && strings.Trim(requestID, "0123456789abcdefghijklmnopqrstuvwxyz") == "" {
		return requestID
	}
	sum := sha256.Sum256([]byte(requestID))
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 15)
	for i := range b {
		b[i] = alphabet[int(sum[i])%36]
	}
	return string(b)
}

// Send runs a request through the gate: it picks the first channel that
// passes, renders the message, writes the ledger row and enqueues it (or
// schedules it past quiet hours). A refusal is a Result with status
// suppressed and its reason, recorded in the ledger too; an error is a
// request that cannot be read (*RequestError) or a failure of Omni.
func (m *Module) Send(ctx context.Context, r Request) (Result, error) {
	if err := validate(&r); err != nil {
		return Result{}, err
	}
	id := ledgerID(r.ID)
	// Decide and record under the lock (the cap counts recorded rows);
	// publish after it, so a slow bus does not hold up other sends.
	m.mu.Lock()
	locked := true
	defer func() {
		if locked {
			m.mu.Unlock()
		}
	}()

	if prev, ok := m.existing(id); ok {
		return prev, nil // a repeated request: answered by the first decision
	}
	p, err := loadProfile(m.app, r.Profile)
	if errors.Is(err, errNoProfile) {
		return Result{}, badField("profile", fmt.Sprintf("no customer with id %q", r.Profile))
	}
	if err != nil {
		return Result{}, err
	}
	tpl, err := m.loadTemplate(&r)
	if err != nil {
		return Result{}, err
	}
	now := m.opts.Now().UTC()
	d := m.decide(p, &r, tpl, now, "")

	row := ledgerRow{ID: id, Profile: p.ID, Kind: r.Kind, Template: tpl.ref, Attempts: d.attempts,
		JourneyRun: r.JourneyRun, Conversation: r.Conversation, Event: eventID(r.Event)}
	res := Result{ID: id, Tried: d.attempts}
	if d.channel == "" {
		row.Status, row.Reason = StatusSuppressed, d.reason
		if len(r.Channels) == 1 {
			row.Channel = r.Channels[0]
		}
		res.Status, res.Reason, res.Channel, res.HTTPStatus = StatusSuppressed, d.reason, row.Channel, http.StatusConflict
		if d.unfixable {
			res.HTTPStatus = http.StatusUnprocessableEntity
		}
		return res, m.insert(row, now)
	}

	out, err := m.compose(id, p, &r, tpl, d)
	if err != nil {
		return Result{}, err
	}
	row.Channel, row.To, row.Connector, row.Outbound = d.channel, d.address, d.connector, out
	res.Channel, res.HTTPStatus = d.channel, http.StatusAccepted
	if r.Kind == KindMarketing {
		if until, quiet := m.quietUntil(p, now); quiet {
			row.Status, row.SendAt = StatusScheduled, until
			row.Reason = fmt.Sprintf("quiet hours: held until %s in the customer's time zone", until.In(m.customerTZ(p)).Format("15:04 MST"))
			res.Status, res.Reason, res.SendAt = StatusScheduled, row.Reason, store.FormatTime(until)
			return res, m.insert(row, now)
		}
	}
	row.Status = StatusQueued
	res.Status = StatusQueued
	if err := m.insert(row, now); err != nil {
		return Result{}, err
	}
	m.mu.Unlock()
	locked = false
	// The row is committed: if this publish is lost (a crash, the bus
	// down), the re-drive of unpublished queued rows sends it.
	m.publish(ctx, id, d.connector, out)
	return res, nil
}

// decision is the gate's verdict for a request at a moment.
type decision struct {
	channel, address, connector string
	reason                      string // why nothing passed
	unfixable                   bool   // every refusal was "cannot send" rather than a rule
	attempts                    []Attempt
}

// decide applies the rules in order (connector and address, undeliverable,
// consent, WhatsApp window) per channel, then the frequency cap. self is a
// ledger row not to count against the cap (a scheduled message re-checked).
func (m *Module) decide(p *profile, r *Request, tpl template, now time.Time, self string) decision {
	var d decision
	if r.Kind == KindMarketing {
		// Staff paused marketing for this customer (e.g. while a complaint
		// is handled): every channel refuses for that reason.
		if until := m.pausedUntil(p.ID, now); !until.IsZero() {
			d.reason = pauseReason(until)
			for _, ch := range r.Channels {
				d.attempts = append(d.attempts, Attempt{Channel: ch, Outcome: "skipped", Reason: d.reason})
			}
			return d
		}
	}
	d.unfixable = true
	for _, ch := range r.Channels {
		addr, conn, reason, unfixable := m.checkChannel(p, r, tpl, ch, now)
		if reason != "" {
			d.attempts = append(d.attempts, Attempt{Channel: ch, Outcome: "skipped", Reason: reason, unfixable: unfixable})
			d.unfixable = d.unfixable && unfixable
			continue
		}
		d.attempts = append(d.attempts, Attempt{Channel: ch, Outcome: "chosen"})
		d.channel, d.address, d.connector = ch, addr, conn
		break
	}
	if d.channel == "" {
		parts := make([]string, len(d.attempts))
		for i, a := range d.attempts {
			parts[i] = a.Reason
			if len(d.attempts) > 1 {
				parts[i] = a.Channel + ": " + a.Reason
			}
		}
		d.reason = strings.Join(parts, "; ")
		return d
	}
	if r.Kind == KindMarketing {
		if reason := m.capReached(p.ID, now, self); reason != "" {
			d.attempts[len(d.attempts)-1] = Attempt{Channel: d.channel, Outcome: "skipped", Reason: reason}
			d.channel, d.reason, d.unfixable = "", reason, false
		}
	}
	return d
}

// checkChannel says why ch cannot carry the message ("" when it can), and
// otherwise the address and connector to use.
func (m *Module) checkChannel(p *profile, r *Request, tpl template, ch string, now time.Time) (addr, conn, reason string, unfixable bool) {
	if ch == "chat" {
		return checkChat(r)
	}
	conn = m.connectorFor(ch)
	if conn == "" {
		return "", "", fmt.Sprintf("no %s channel is connected: enable a connector that sends %s on the Connectors page", ch, ch), true
	}
	addr = p.address(ch)
	if addr == "" {
		return "", "", fmt.Sprintf("the customer has no %s", addressName(ch)), true
	}
	if why := m.undeliverable(ch, addr); why != "" {
		return "", "", fmt.Sprintf("%s is undeliverable (%s)", addr, why), false
	}
	if r.Kind == KindMarketing {
		if st := p.consent[ch].Status; st != "subscribed" {
			if st == "" {
				st = "not subscribed"
			}
			return "", "", fmt.Sprintf("no marketing consent on %s (%s)", ch, st), false
		}
	}
	if ch == "whatsapp" && r.WATemplate == nil && tpl.waName == "" {
		last := m.lastInbound(p.ID, "whatsapp")
		if last.IsZero() || now.Sub(last) >= whatsappWindow {
			return "", "", "outside the WhatsApp 24-hour window: the customer has not written in the last 24 hours, so only an approved template can be sent", false
		}
	}
	return addr, conn, "", false
}

// checkChat: the website chat carries only replies in a conversation
// (the visitor's live stream is the conversation's), so the address is the
// conversation and the inbox delivers it.
func checkChat(r *Request) (addr, conn, reason string, unfixable bool) {
	if r.Kind != KindConversation {
		return "", "", fmt.Sprintf("the website chat carries conversation replies only, not %s messages", r.Kind), true
	}
	if strings.TrimSpace(r.Conversation) == "" {
		return "", "", "a chat message needs the conversation it answers", true
	}
	return r.Conversation, outbox.Webchat, "", false
}

func addressName(ch string) string {
	switch ch {
	case "email":
		return "email address"
	case "sms":
		return "phone number"
	}
	return "WhatsApp number"
}

// connectorFor is the enabled connector that declares send:<channel>
// (the first by name when several do).
func (m *Module) connectorFor(ch string) string {
	var name string
	err := m.app.DB().NewQuery(`SELECT name FROM connectors WHERE enabled = 1
		AND EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(capabilities) THEN capabilities ELSE '[]' END) WHERE value = {:cap})
		ORDER BY name LIMIT 1`).Bind(dbx.Params{"cap": sdk.CapSendPrefix + ch}).Row(&name)
	if err != nil {
		return ""
	}
	return name
}

// undeliverable returns why an address failed permanently, or "".
func (m *Module) undeliverable(ch, addr string) string {
	var reason string
	err := m.app.DB().NewQuery("SELECT reason FROM " + SuppressionsCollection + " WHERE channel={:c} AND address={:a}").
		Bind(dbx.Params{"c": ch, "a": addr}).Row(&reason)
	if err != nil {
		return ""
	}
	if reason == "" {
		reason = "a permanent failure"
	}
	return reason
}

// lastInbound is when the customer last wrote on a channel.
func (m *Module) lastInbound(profileID, ch string) time.Time {
	var at sql.NullString
	_ = m.app.DB().NewQuery("SELECT MAX(occurred_at) FROM events WHERE profile={:p} AND type='message.received' AND channel={:c}").
		Bind(dbx.Params{"p": profileID, "c": ch}).Row(&at)
	t, _ := parseTime(at.String)
	return t
}

// capReached names the frequency cap a new marketing message would break.
func (m *Module) capReached(profileID string, now time.Time, self string) string {
	for _, c := range m.rules.caps {
		var n int
		_ = m.app.DB().NewQuery(`SELECT COUNT(*) FROM ` + Collection + ` WHERE profile={:p} AND kind='marketing'
			AND status IN ('queued','scheduled','sent','delivered','read') AND id != {:self}
			AND COALESCE(NULLIF(queued_at, ''), created) >= {:since}`).
			Bind(dbx.Params{"p": profileID, "self": self, "since": store.FormatTime(now.Add(-c.Period))}).Row(&n)
		if n >= c.Count {
			return fmt.Sprintf("frequency cap: %d in %s", c.Count, periodName(c.Period))
		}
	}
	return ""
}

func periodName(d time.Duration) string {
	if d%(24*time.Hour) == 0 && d > 24*time.Hour {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := strings.TrimSuffix(d.String(), "0s") // "24h0m0s" → "24h0m", "1h30m0s" → "1h30m"
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// quietUntil reports whether now is inside the customer's quiet hours and
// when they end.
func (m *Module) quietUntil(p *profile, now time.Time) (time.Time, bool) {
	return config.QuietEnd(now.In(m.customerTZ(p)), m.rules.quietFrom, m.rules.quietTo)
}

// customerTZ is the profile's time zone trait, or the shop's.
func (m *Module) customerTZ(p *profile) *time.Location {
	for _, k := range []string{"timezone", "time_zone", "tz"} {
		if s, ok := p.traits[k].(string); ok && s != "" {
			if loc, err := time.LoadLocation(s); err == nil {
				return loc
			}
		}
	}
	return m.rules.shopTZ
}

// compose renders the message for the chosen channel.
func (m *Module) compose(id string, p *profile, r *Request, tpl template, d decision) (*sdk.OutboundMessage, error) {
	unsub := m.links.UnsubscribeURL(p.ID, d.channel)
	vars := render.Vars(p.customerVars(m.app), r.Event, customers.Shop(m.app, m.rules.publicURL), unsub, m.links.PreferencesURL(p.ID))
	vars["nps_url"] = m.links.NPSURL(p.ID, m.opts.Now())
	subject, body, html := r.Subject, r.Body, r.HTML
	wa := r.WATemplate
	if tpl.ref != "" {
		subject, body, html = tpl.subject, tpl.body, tpl.html
		if wa == nil && tpl.waName != "" {
			wa = &sdk.Template{Name: tpl.waName, Language: tpl.waLanguage, Params: tpl.waParams}
		}
	}
	var err error
	field := "body"
	if tpl.ref != "" {
		field = "template"
	}
	if r.Raw && tpl.ref == "" {
		// Sent as typed: nothing to render.
	} else if subject, err = render.Render(subject, vars); err != nil {
		return nil, badField(fieldOr(field, "subject"), "subject: "+err.Error())
	} else if body, err = render.Render(body, vars); err != nil {
		return nil, badField(field, err.Error())
	}
	if html != "" && d.channel == "email" {
		if html, err = render.RenderHTML(html, vars); err != nil {
			return nil, badField(fieldOr(field, "html"), "html: "+err.Error())
		}
		if r.Kind == KindMarketing && m.rules.trackEmail {
			html = m.track(id, p.ID, html)
		}
	} else {
		html = ""
	}
	if wa != nil {
		c := *wa
		c.Params = make([]string, len(wa.Params))
		for i, s := range wa.Params {
			if c.Params[i], err = render.Render(s, vars); err != nil {
				return nil, badField("wa_template", fmt.Sprintf("param %d: %s", i+1, err))
			}
		}
		wa = &c
	}
	if d.channel != "whatsapp" {
		wa = nil
	}
	props := map[string]any{"kind": r.Kind}
	if r.Kind == KindMarketing {
		props["unsubscribe_url"] = unsub
	}
	if d.channel == "sms" || d.channel == "whatsapp" {
		props["status_callback_url"] = m.rules.statusCallback
	}
	if r.Conversation != "" && d.channel == "email" {
		if irt, refs := m.threadOf(r.Conversation); irt != "" {
			props["in_reply_to"], props["references"] = irt, refs
		}
	}
	return &sdk.OutboundMessage{ID: id, Channel: d.channel, To: map[string]string{channels[d.channel]: d.address},
		Subject: subject, Text: body, HTML: html, Template: wa, Properties: props, ProfileID: p.ID,
		ConversationID: r.Conversation, JourneyRun: r.JourneyRun}, nil
}

// track adds the open pixel and routes the email's links through Omni
// (docs/messaging.md#open-and-click-tracking). Links to Omni's own
// customer pages (unsubscribe, preferences, surveys) stay direct.
func (m *Module) track(messageID, profileID, html string) string {
	own := m.rules.publicURL + "/p/"
	survey := m.rules.publicURL + "/survey/"
	return render.TrackHTML(html, func(target string) string {
		if strings.HasPrefix(target, own) || strings.HasPrefix(target, survey) {
			return ""
		}
		return m.links.ClickURL(messageID, profileID, target)
	}, m.links.OpenURL(messageID, profileID))
}

func fieldOr(field, sub string) string {
	if field == "template" {
		return field
	}
	return sub
}

// threadOf is how a reply in a conversation threads in the customer's
// mail client: In-Reply-To the conversation's latest mail, whichever way
// it went (the customer's, as the inbox filed it, or Omni's own, from the
// ledger), and References from the thread's root to it. The inbox's
// tables are read by name (modules share tables, not code); without them
// only Omni's own mail counts.
func (m *Module) threadOf(conversation string) (inReplyTo string, references string) {
	db := m.app.DB()
	err := db.NewQuery(`SELECT id FROM (
			SELECT provider_id AS id, created FROM ` + Collection + ` WHERE conversation = {:c} AND channel = 'email' AND provider_id LIKE '<%'
			UNION ALL
			SELECT external_id AS id, created FROM conversation_messages WHERE conversation = {:c} AND direction = 'in' AND external_id LIKE '<%'
		) ORDER BY created DESC LIMIT 1`).Bind(dbx.Params{"c": conversation}).Row(&inReplyTo)
	if err != nil {
		_ = db.NewQuery("SELECT provider_id FROM " + Collection + " WHERE conversation = {:c} AND channel = 'email' AND provider_id LIKE '<%' ORDER BY created DESC LIMIT 1").
			Bind(dbx.Params{"c": conversation}).Row(&inReplyTo)
	}
	if inReplyTo == "" {
		return "", ""
	}
	var root string
	_ = db.NewQuery("SELECT thread FROM conversations WHERE id = {:c}").Bind(dbx.Params{"c": conversation}).Row(&root)
	if strings.HasPrefix(root, "<") && root != inReplyTo {
		return inReplyTo, root + " " + inReplyTo
	}
	return inReplyTo, inReplyTo
}

func eventID(ev map[string]any) string {
	if ev == nil {
		return ""
	}
	s, _ := ev["id"].(string)
	if len(s) > 256 {
		s = s[:256]
	}
	return s
}

// existing is the decision already recorded for a ledger id.
func (m *Module) existing(id string) (Result, bool) {
	var row struct {
		Status  string `db:"status"`
		Channel string `db:"channel"`
		Reason  string `db:"reason"`
		SendAt  string `db:"send_at"`
	}
	if err := m.app.DB().NewQuery("SELECT status, channel, reason, send_at FROM " + Collection + " WHERE id={:id}").
		Bind(dbx.Params{"id": id}).One(&row); err != nil {
		return Result{}, false
	}
	code := http.StatusAccepted
	if row.Status == StatusSuppressed {
		code = http.StatusConflict
	}
	return Result{ID: id, Status: row.Status, Channel: row.Channel, Reason: row.Reason, SendAt: row.SendAt, HTTPStatus: code}, true
}

// publish enqueues a committed queued row and marks it published. A
// failure is logged only: the row stays unpublished and is re-driven.
func (m *Module) publish(ctx context.Context, id, connector string, out *sdk.OutboundMessage) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := outbox.Enqueue(ctx, m.bus, connector, out); err != nil {
		m.log.Warn("messaging: enqueue failed; the message is sent by the next re-drive", "message", id, "error", err)
		return
	}
	if _, err := m.app.DB().NewQuery("UPDATE " + Collection + " SET enqueued = 1 WHERE id={:id}").Bind(dbx.Params{"id": id}).Execute(); err != nil {
		m.log.Warn("messaging: marking a message published", "message", id, "error", err)
	}
}

// ledgerRow is a new row of the send ledger.
type ledgerRow struct {
	ID, Profile, Channel, Kind, Template, To, Status, Reason string
	Connector, JourneyRun, Conversation, Event               string
	Attempts                                                 []Attempt
	Outbound                                                 *sdk.OutboundMessage
	SendAt                                                   time.Time
}

func (m *Module) insert(r ledgerRow, now time.Time) error {
	attempts, _ := json.Marshal(attemptsJSON(r.Attempts))
	var outbound []byte
	var subject, body, html string
	if r.Outbound != nil {
		outbound, _ = json.Marshal(r.Outbound)
		subject, body, html = r.Outbound.Subject, r.Outbound.Text, r.Outbound.HTML
		if r.Outbound.Template != nil && body == "" {
			body = "WhatsApp template " + r.Outbound.Template.Name + " (" + r.Outbound.Template.Language + ")"
		}
	}
	ts := store.FormatTime(now)
	p := dbx.Params{"id": r.ID, "profile": r.Profile, "channel": r.Channel, "kind": r.Kind, "template": r.Template,
		"subject": subject, "body": body, "html": html, "to": r.To, "status": r.Status, "reason": truncate(r.Reason, 2000),
		"connector": r.Connector, "journey_run": r.JourneyRun, "conversation": r.Conversation, "event": r.Event,
		"attempts": string(attempts), "outbound": string(outbound), "send_at": "", "queued_at": "", "suppressed_at": "", "now": ts}
	switch r.Status {
	case StatusQueued:
		p["queued_at"] = ts
	case StatusScheduled:
		p["send_at"] = store.FormatTime(r.SendAt)
	case StatusSuppressed:
		p["suppressed_at"] = ts
	}
	_, err := m.app.DB().NewQuery(`INSERT INTO ` + Collection + ` (id, profile, channel, kind, template, subject, body, html, "to", status, reason,
		error_code, provider_id, connector, journey_run, conversation, event, attempts, outbound, enqueued, send_at, queued_at, sent_at,
		delivered_at, read_at, failed_at, suppressed_at, created, updated)
		VALUES ({:id}, {:profile}, {:channel}, {:kind}, {:template}, {:subject}, {:body}, {:html}, {:to}, {:status}, {:reason},
		'', '', {:connector}, {:journey_run}, {:conversation}, {:event}, {:attempts}, {:outbound}, 0, {:send_at}, {:queued_at}, '',
		'', '', '', {:suppressed_at}, {:now}, {:now})`).Bind(p).Execute()
	return err
}

// attemptsJSON drops the internal flag.
func attemptsJSON(a []Attempt) []Attempt {
	if a == nil {
		return []Attempt{}
	}
	return a
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("empty")
	}
	for _, layout := range []string{"2006-01-02 15:04:05.000Z", time.RFC3339Nano, "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a time: %q", s)
}
