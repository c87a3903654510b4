package email

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/sdk"
)

// Message kinds (Properties["kind"]) as the messaging gate sets them.
const (
	kindMarketing = "marketing"
)

// authRetry is how long sends wait after the provider refused the
// connector's own credentials or sender: retrying at once cannot help, and
// the messages must survive until the owner fixes the settings.
const authRetry = 5 * time.Minute

func (s *settings) smtpClient() (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithPort(s.smtpPort),
		gomail.WithTimeout(30 * time.Second),
		gomail.WithTLSConfig(s.tlsConfig(s.smtpHost)),
		gomail.WithHELO(s.fromDomain()),
	}
	switch s.smtpSecurity {
	case secTLS:
		opts = append(opts, gomail.WithSSL())
	case secStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.smtpUser != "" {
		auth := gomail.SMTPAuthAutoDiscover
		if s.smtpSecurity == secNone {
			auth = gomail.SMTPAuthPlainNoEnc // the owner chose an unencrypted local relay
		}
		opts = append(opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(s.smtpUser), gomail.WithPassword(s.smtpPassword))
	}
	c, err := gomail.NewClient(s.smtpHost, opts...)
	if err != nil {
		return nil, &clientError{err}
	}
	return c, nil
}

// clientError is settings go-mail cannot make a client of: sends wait for
// the owner to fix them.
type clientError struct{ err error }

func (e *clientError) Error() string { return "email: smtp client: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

// Send delivers one email and returns its Message-ID as the provider id.
func (c *Connector) Send(ctx context.Context, msg *sdk.OutboundMessage) (*sdk.SendResult, error) {
	s, _, err := c.settings()
	if err != nil {
		return nil, sdk.Retryable(err.Error())
	}
	if msg.Channel != "" && msg.Channel != events.ChannelEmail {
		return nil, sdk.Permanent("unsupported_channel", fmt.Sprintf("the email connector cannot send on channel %q", msg.Channel))
	}
	m, rcpt, id, err := c.compose(s, msg)
	if err != nil {
		return nil, err
	}
	raw, err := render(m, s.dkim)
	if err != nil {
		return nil, sdk.Permanent("compose", err.Error())
	}
	// A session kept from an earlier send may have been dropped by the
	// server meanwhile: that shows at MAIL, before anything of this
	// message was accepted, so it is sent again once on a new connection.
	for {
		sess, reused, err := c.smtp.get(ctx, s)
		if err != nil {
			var ce *clientError
			if errors.As(err, &ce) {
				return nil, sdk.RateLimited(authRetry, err.Error())
			}
			return nil, classify(stageConnect, err)
		}
		stage, err := transact(sess.sc, s.from.Address, rcpt, raw)
		var te *textproto.Error
		switch {
		case err == nil:
			sess.sent++
			c.smtp.put(s, sess)
			return &sdk.SendResult{ProviderMessageID: id}, nil
		case reused && stage == stageMail && (!errors.As(err, &te) || te.Code == 421):
			sess.close()
			continue
		case errors.As(err, &te) && te.Code != 421 && sess.sc.Reset() == nil:
			// Refused (a recipient, the message): the connection still
			// serves the next one once the transaction is reset.
			sess.sent++
			c.smtp.put(s, sess)
		default:
			sess.close()
		}
		return nil, classify(stage, err)
	}
}

// transact sends one message on a logged-in session and reports the stage
// it got to.
func transact(sc *smtp.Client, from, rcpt string, raw []byte) (string, error) {
	if err := sc.Mail(from); err != nil {
		return stageMail, err
	}
	if err := sc.Rcpt(rcpt); err != nil {
		return stageRcpt, err
	}
	w, err := sc.Data()
	if err != nil {
		return stageData, err
	}
	if _, err := w.Write(raw); err != nil {
		_ = w.Close()
		return stageData, err
	}
	return stageData, w.Close()
}

// render writes the message out and, with DKIM set up, prepends the
// DKIM-Signature. go-msgauth signs (go-mail's own signer folds long h=
// lists inside a header name, which relaxed verification rejects).
func render(m *gomail.Msg, opts *dkim.SignOptions) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		return nil, err
	}
	if opts == nil {
		return buf.Bytes(), nil
	}
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, bytes.NewReader(buf.Bytes()), opts); err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	return signed.Bytes(), nil
}

// compose builds the message; its errors are permanent (the same message
// would fail the same way on every retry).
func (c *Connector) compose(s *settings, msg *sdk.OutboundMessage) (*gomail.Msg, string, string, error) {
	to := strings.TrimSpace(msg.To[events.Email])
	if to == "" {
		return nil, "", "", sdk.Permanent("missing_recipient", "to needs an email address")
	}
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return nil, "", "", sdk.Permanent("invalid_recipient", fmt.Sprintf("%q is not an email address", to))
	}
	text, html := msg.Text, msg.HTML
	if strings.TrimSpace(text) == "" && strings.TrimSpace(html) == "" {
		return nil, "", "", sdk.Permanent("empty_message", "an email needs text or HTML")
	}
	if strings.TrimSpace(text) == "" {
		text = HTMLToText(html)
	}

	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if s.from.Name != "" {
		err = m.FromFormat(s.from.Name, s.from.Address)
	} else {
		err = m.From(s.from.Address)
	}
	if err != nil {
		return nil, "", "", sdk.Permanent("invalid_sender", err.Error())
	}
	if err := m.To(rcpt.Address); err != nil {
		return nil, "", "", sdk.Permanent("invalid_recipient", err.Error())
	}
	if s.replyTo != "" {
		if err := m.ReplyTo(s.replyTo); err != nil {
			return nil, "", "", sdk.Permanent("invalid_reply_to", err.Error())
		}
	}
	m.Subject(msg.Subject)
	m.SetDateWithValue(c.now())
	id := MessageID(msg.ID, s.fromDomain())
	m.SetMessageIDWithValue(strings.Trim(id, "<>"))
	if v := msgIDList(msg.Properties["in_reply_to"]); v != "" {
		m.SetGenHeaderPreformatted(gomail.HeaderInReplyTo, v)
	}
	if v := msgIDList(msg.Properties["references"]); v != "" {
		m.SetGenHeaderPreformatted(gomail.HeaderReferences, v)
	}
	if kind, _ := msg.Properties["kind"].(string); kind == kindMarketing {
		if err := listUnsubscribe(m, s, msg.Properties); err != nil {
			return nil, "", "", err
		}
	}
	m.SetBodyString(gomail.TypeTextPlain, text)
	if strings.TrimSpace(html) != "" {
		m.AddAlternativeString(gomail.TypeTextHTML, html)
	}
	return m, rcpt.Address, id, nil
}

// listUnsubscribe sets RFC 2369 List-Unsubscribe with the https one-click
// URL and a mailto, plus RFC 8058 List-Unsubscribe-Post. A marketing email
// without a one-click URL is refused: Gmail and Yahoo reject bulk mail
// without one, and the customer would have no way out.
func listUnsubscribe(m *gomail.Msg, s *settings, props map[string]any) error {
	raw, _ := props["unsubscribe_url"].(string)
	u, err := url.Parse(strings.TrimSpace(raw))
	if raw == "" || err != nil || u.Host == "" || !(u.Scheme == "https" || (u.Scheme == "http" && loopback(u.Hostname()))) {
		return sdk.Permanent("missing_unsubscribe_url", "a marketing email needs properties.unsubscribe_url (absolute https) for List-Unsubscribe")
	}
	mailto, _ := props["unsubscribe_mailto"].(string)
	if mailto == "" && s.imap != nil {
		// Omni reads this mailbox, so a mailto unsubscribe reaches it
		// (see unsubscribeRequest in inbound.go).
		mailto = "mailto:" + s.replyAddress() + "?subject=unsubscribe"
	}
	uris := []string{u.String()}
	if strings.HasPrefix(mailto, "mailto:") {
		uris = append(uris, mailto)
	}
	m.SetListUnsubscribe(uris...)
	m.SetListUnsubscribePost()
	return nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// replyAddress is where customers' replies go.
func (s *settings) replyAddress() string {
	if s.replyTo != "" {
		return s.replyTo
	}
	return s.from.Address
}

// msgIDPrefix starts every Message-ID Omni generates; inbound mail that
// refers to one is matched back to the outbound message.
const msgIDPrefix = "omni."

// hexPrefix marks an outbound id that had characters a Message-ID cannot
// carry and was hex-encoded.
const hexPrefix = "omnix."

// MessageID is the Message-ID of outbound message id sent from domain:
// stable across retries, so a provider that already accepted the first
// attempt sees the same id, and DSNs and replies carry it back.
func MessageID(outboundID, domain string) string {
	if outboundID == "" {
		outboundID = strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if atomSafe(outboundID) {
		return "<" + msgIDPrefix + outboundID + "@" + domain + ">"
	}
	return "<" + hexPrefix + hex.EncodeToString([]byte(outboundID)) + "@" + domain + ">"
}

// OutboundID returns the outbound message id inside a Message-ID that
// MessageID made, or "".
func OutboundID(messageID string) string {
	v := strings.Trim(strings.TrimSpace(messageID), "<>")
	at := strings.LastIndexByte(v, '@')
	if at < 0 {
		return ""
	}
	left := v[:at]
	switch {
	case strings.HasPrefix(left, hexPrefix):
		b, err := hex.DecodeString(left[len(hexPrefix):])
		if err != nil {
			return ""
		}
		return string(b)
	case strings.HasPrefix(left, msgIDPrefix):
		return left[len(msgIDPrefix):]
	}
	return ""
}

// atomSafe: letters, digits and -_ only, so the id is a dot-atom.
func atomSafe(s string) bool {
	if len(s) > 200 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// msgIDList formats a property holding Message-IDs (a string, possibly
// several, or a list) as "<a> <b>", dropping anything that is not one.
func msgIDList(v any) string {
	var parts []string
	switch t := v.(type) {
	case string:
		parts = strings.Fields(t)
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok {
				parts = append(parts, strings.Fields(s)...)
			}
		}
	case []string:
		for _, s := range t {
			parts = append(parts, strings.Fields(s)...)
		}
	}
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		p = strings.Trim(p, "<>,")
		if p == "" || !strings.Contains(p, "@") || strings.ContainsAny(p, "<>\r\n\"\\ ") {
			continue
		}
		out = append(out, "<"+p+">")
	}
	return strings.Join(out, " ")
}

// SMTP stages, for classify.
const (
	stageConnect = "connect" // dial, EHLO, STARTTLS, AUTH
	stageMail    = "mail"    // MAIL FROM
	stageRcpt    = "rcpt"    // RCPT TO
	stageData    = "data"    // DATA and the final dot
)

// classify maps an SMTP failure to the host's retry policy: a 5xx about
// the recipient or the message is permanent (the address is likely bad:
// the gate marks it undeliverable); 4xx and connection trouble are
// retried; a refusal of the shop's own login or sender waits for the
// owner to fix the settings, so no customer address is blamed for it.
func classify(stage string, err error) error {
	var te *textproto.Error
	if !errors.As(err, &te) {
		return sdk.Retryable("smtp server unreachable: " + smtpProblem(err))
	}
	code := strconv.Itoa(te.Code)
	reason := code + " " + strings.TrimSpace(te.Msg)
	switch {
	case te.Code >= 500 && (stage == stageConnect || stage == stageMail):
		what := "the connection or login (check the SMTP settings)"
		if stage == stageMail {
			what = "the sender (check from_email and the account's allowed senders)"
		}
		return &sdk.SendError{Kind: sdk.KindRateLimited, RetryAfter: authRetry, Code: code,
			Reason: "the SMTP server refused " + what + ": " + reason}
	case te.Code >= 500:
		return sdk.Permanent(code, "the SMTP server refused the message: "+reason)
	case te.Code >= 400:
		return &sdk.SendError{Kind: sdk.KindRetryable, Code: code, Reason: "the SMTP server deferred the message: " + reason}
	}
	return sdk.Retryable("smtp: " + reason)
}

// smtpProblem is an error's text without anything that could be a secret
// (go-mail never puts credentials in errors; this only trims).
func smtpProblem(err error) string {
	msg := err.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	return msg
}
