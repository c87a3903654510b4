package email

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode ISO-8859-x, Windows-125x, … bodies
	gomsgmail "github.com/emersion/go-message/mail"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
)

// Bounds that keep an inbound event within the event model's limits.
const (
	maxText        = 60_000
	maxPartBytes   = 1 << 20 // per text part read
	maxAttachments = 50
)

// Inbound reads one raw RFC 5322 message from the mailbox and returns the
// events it stands for: a message.received (customer mail, with
// auto_reply: true for vacation and other automatic answers), a
// message.failed per failed recipient of a delivery status report, a
// consent.changed for a mailto unsubscribe, or nothing for mail that has
// no sender. fallbackID identifies the message when it has no Message-ID
// (folder, UIDVALIDITY and UID). unsubAddress is the address List-
// Unsubscribe mailto links point at ("" when none).
func Inbound(raw []byte, fallbackID, unsubAddress string, now time.Time) ([]sdk.Event, error) {
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, fmt.Errorf("not a mail message: %w", err)
	}
	h := gomsgmail.Header{Header: ent.Header}
	in := inboundMail{header: h, now: now}
	in.messageID, _ = h.MessageID()
	in.inReplyTo, _ = h.MsgIDList("In-Reply-To")
	in.references, _ = h.MsgIDList("References")
	in.subject, _ = h.Subject()
	if from, err := h.AddressList("From"); err == nil && len(from) > 0 {
		in.from = strings.ToLower(from[0].Address)
		in.fromName = from[0].Name
	}
	in.at = now.UTC()
	if d, err := h.Date(); err == nil && d.Year() > 2000 && d.Before(now.Add(time.Hour)) {
		in.at = d.UTC()
	}
	in.key = in.messageID
	if in.key == "" {
		in.key = "imap:" + fallbackID
	}

	ct, params, _ := mime.ParseMediaType(ent.Header.Get("Content-Type"))
	if ct == "multipart/report" && strings.EqualFold(params["report-type"], "delivery-status") {
		return in.bounce(ent)
	}
	if in.from == "" {
		return nil, nil // nobody to attribute it to
	}
	in.readParts(ent)
	if unsubAddress != "" && in.unsubscribeRequest(unsubAddress) {
		return []sdk.Event{in.unsubscribeEvent()}, nil
	}
	return []sdk.Event{in.received()}, nil
}

type inboundMail struct {
	header     gomsgmail.Header
	now, at    time.Time
	key        string // Message-ID, or the mailbox position when missing
	messageID  string
	inReplyTo  []string
	references []string
	subject    string
	from       string
	fromName   string

	text, html  string
	attachments []string
}

// readParts picks the first text/plain and text/html parts and lists the
// attachments' file names.
func (in *inboundMail) readParts(ent *message.Entity) {
	_ = ent.Walk(func(path []int, part *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) {
			return nil
		}
		ct, params, _ := part.Header.ContentType()
		if strings.HasPrefix(ct, "multipart/") {
			return nil
		}
		disp, dparams, _ := part.Header.ContentDisposition()
		name := dparams["filename"]
		if name == "" {
			name = params["name"]
		}
		if disp == "attachment" || (name != "" && disp != "inline") || !strings.HasPrefix(ct, "text/") {
			if name == "" {
				name = "unnamed (" + ct + ")"
			}
			if len(in.attachments) < maxAttachments {
				in.attachments = append(in.attachments, name)
			}
			return nil
		}
		body, _ := io.ReadAll(io.LimitReader(part.Body, maxPartBytes))
		switch {
		case ct == "text/plain" && in.text == "":
			in.text = string(body)
		case ct == "text/html" && in.html == "":
			in.html = string(body)
		}
		return nil
	})
}

// autoReply tells automatic answers (vacation notices, ticket receipts,
// mailer-daemon notes without a DSN) from mail a person wrote: RFC 3834
// Auto-Submitted, the de facto X-Autoreply / X-Autorespond, Precedence
// auto_reply|bulk|junk, and Microsoft's X-Auto-Response-Suppress on
// "Automatic reply:" subjects.
func (in *inboundMail) autoReply() bool {
	h := in.header
	if v := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); v != "" && v != "no" {
		return true
	}
	if h.Get("X-Autoreply") != "" || h.Get("X-Autorespond") != "" || h.Get("X-Autoreply-From") != "" {
		return true
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Precedence"))) {
	case "auto_reply", "bulk", "junk":
		return true
	}
	local := in.from
	if i := strings.IndexByte(local, '@'); i >= 0 {
		local = local[:i]
	}
	if local == "mailer-daemon" || local == "postmaster" {
		return true
	}
	s := strings.ToLower(in.subject)
	return strings.HasPrefix(s, "automatic reply:") || strings.HasPrefix(s, "auto:") || strings.HasPrefix(s, "out of office")
}

// outboundID finds the outbound message this mail answers, from the
// Message-IDs Omni generated (In-Reply-To first, then References from the
// newest).
func (in *inboundMail) outboundID() string {
	for _, id := range in.inReplyTo {
		if o := OutboundID(id); o != "" {
			return o
		}
	}
	for i := len(in.references) - 1; i >= 0; i-- {
		if o := OutboundID(in.references[i]); o != "" {
			return o
		}
	}
	return ""
}

// conversationKey is the thread's root Message-ID: the first of
// References, else In-Reply-To, else the message's own id.
func (in *inboundMail) conversationKey() string {
	switch {
	case len(in.references) > 0:
		return "<" + in.references[0] + ">"
	case len(in.inReplyTo) > 0:
		return "<" + in.inReplyTo[0] + ">"
	case in.messageID != "":
		return "<" + in.messageID + ">"
	}
	return in.key
}

func (in *inboundMail) received() sdk.Event {
	text := strings.TrimSpace(in.text)
	if text == "" && in.html != "" {
		text = HTMLToText(in.html)
	}
	props := map[string]any{
		"text":             clip(text, maxText),
		"subject":          clip(in.subject, 2000),
		"from":             in.from,
		"conversation_key": clip(in.conversationKey(), 1000),
	}
	if in.messageID != "" {
		props["provider_message_id"] = clip("<"+in.messageID+">", 1000)
	}
	if in.fromName != "" {
		props["from_name"] = clip(in.fromName, 200)
	}
	if len(in.inReplyTo) > 0 {
		props["in_reply_to"] = clip("<"+in.inReplyTo[0]+">", 1000)
	}
	if len(in.references) > 0 {
		refs := make([]any, 0, len(in.references))
		for _, r := range in.references {
			if len(refs) == 50 {
				break
			}
			refs = append(refs, clip("<"+r+">", 1000))
		}
		props["references"] = refs
	}
	if o := in.outboundID(); o != "" {
		props["outbound_id"] = o
	}
	if len(in.attachments) > 0 {
		names := make([]any, len(in.attachments))
		for i, n := range in.attachments {
			names[i] = clip(n, 255)
		}
		props["attachments"] = names
	}
	if in.autoReply() {
		props["auto_reply"] = true
	}
	return sdk.Event{
		ID:         "email:" + eventKey(in.key),
		Type:       events.MessageReceived,
		OccurredAt: in.at,
		Identities: map[string]string{events.Email: in.from},
		Properties: props,
		Context:    sdk.EventContext{Channel: events.ChannelEmail},
	}
}

// unsubscribeRequest: a mail to the List-Unsubscribe mailto address with
// the subject "unsubscribe" (what mail clients send for that link).
func (in *inboundMail) unsubscribeRequest(address string) bool {
	if !strings.EqualFold(strings.TrimSpace(in.subject), "unsubscribe") || in.autoReply() {
		return false
	}
	to, _ := in.header.AddressList("To")
	for _, a := range to {
		if strings.EqualFold(a.Address, address) {
			return true
		}
	}
	return false
}

func (in *inboundMail) unsubscribeEvent() sdk.Event {
	return sdk.Event{
		ID:         "email-unsubscribe:" + eventKey(in.key),
		Type:       events.ConsentChanged,
		OccurredAt: in.at,
		Identities: map[string]string{events.Email: in.from},
		Properties: map[string]any{"channel": "email", "status": "unsubscribed", "source": "customer",
			"reason": "List-Unsubscribe mailto"},
		Context: sdk.EventContext{Channel: events.ChannelEmail},
	}
}

// bounce turns an RFC 3464 delivery status report into message.failed
// events, one per failed recipient; "delayed" and "delivered" reports are
// not failures and give nothing.
func (in *inboundMail) bounce(ent *message.Entity) ([]sdk.Event, error) {
	var status []byte
	var original textproto.MIMEHeader
	_ = ent.Walk(func(path []int, part *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) {
			return nil
		}
		ct, _, _ := part.Header.ContentType()
		switch ct {
		case "message/delivery-status", "message/global-delivery-status":
			status, _ = io.ReadAll(io.LimitReader(part.Body, maxPartBytes))
		case "message/rfc822", "text/rfc822-headers", "message/rfc822-headers", "message/global", "message/global-headers":
			if original == nil {
				original, _ = textproto.NewReader(bufio.NewReader(io.LimitReader(part.Body, maxPartBytes))).ReadMIMEHeader()
			}
		}
		return nil
	})
	if status == nil {
		return nil, fmt.Errorf("delivery status report without a message/delivery-status part")
	}
	outbound := ""
	if original != nil {
		outbound = OutboundID(original.Get("Message-Id"))
	}
	if outbound == "" {
		outbound = in.outboundID() // some servers thread the report to the original
	}
	var out []sdk.Event
	for _, r := range dsnRecipients(status) {
		if r.action != "failed" || r.recipient == "" {
			continue
		}
		props := map[string]any{
			"error_code":   r.status,
			"error_reason": clip(r.reason(), 2000),
			"permanent":    strings.HasPrefix(r.status, "5"),
			"bounce":       true,
		}
		if outbound != "" {
			props["outbound_id"] = outbound
		}
		if original != nil {
			if mid := strings.TrimSpace(original.Get("Message-Id")); mid != "" {
				props["provider_message_id"] = clip(mid, 1000)
			}
		}
		out = append(out, sdk.Event{
			ID:         "email-dsn:" + eventKey(in.key+"|"+r.recipient),
			Type:       events.MessageFailed,
			OccurredAt: in.at,
			Identities: map[string]string{events.Email: r.recipient},
			Properties: props,
			Context:    sdk.EventContext{Channel: events.ChannelEmail},
		})
	}
	return out, nil
}

type dsnRecipient struct {
	recipient, action, status, diagnostic string
}

func (r dsnRecipient) reason() string {
	if r.diagnostic != "" {
		return r.diagnostic
	}
	return "delivery failed with status " + r.status
}

// dsnRecipients parses the per-recipient blocks of a delivery-status body:
// header-like field groups separated by blank lines, the first being the
// per-message fields.
func dsnRecipients(body []byte) []dsnRecipient {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
	var out []dsnRecipient
	for i := 0; i < 1000; i++ {
		h, err := tp.ReadMIMEHeader()
		if len(h) > 0 && i > 0 || len(h) > 0 && h.Get("Final-Recipient") != "" {
			r := dsnRecipient{
				recipient:  addressField(h.Get("Final-Recipient")),
				action:     strings.ToLower(strings.TrimSpace(h.Get("Action"))),
				status:     firstWord(h.Get("Status")),
				diagnostic: strings.TrimSpace(h.Get("Diagnostic-Code")),
			}
			if r.recipient == "" {
				r.recipient = addressField(h.Get("Original-Recipient"))
			}
			if r.recipient != "" {
				out = append(out, r)
			}
		}
		if err != nil {
			break
		}
	}
	return out
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

// addressField reads "rfc822; ann@omni-shop.dev".
func addressField(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = strings.TrimSpace(v[i+1:])
	}
	v = strings.Trim(v, "<>")
	if !strings.Contains(v, "@") {
		return ""
	}
	return strings.ToLower(v)
}

// eventKey keeps event ids short and free of odd characters whatever the
// Message-ID looks like.
func eventKey(s string) string {
	if atomSafe(strings.NewReplacer(".", "", "@", "", "+", "", ":", "").Replace(s)) && len(s) <= 200 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 { // do not cut a UTF-8 sequence
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s
}
