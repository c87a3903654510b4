package connectors

import (
	"errors"
	"net/http"
	"net/mail"
	"strconv"
	"strings"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/mailer"

	"github.com/omni/omni/core/api"
)

// Staff mail: PocketBase's own emails (staff password resets,
// verification) go out through the email connector's SMTP settings once
// that connector is set up and running, so a shop configures mail once.
// PocketBase's own SMTP settings at /_/, when an owner turned them on,
// still win. Without either, requests that would send a mail are refused
// with MailNotSetUp instead of answering "sent" and sending nothing.

// emailConnector is the built-in connector whose settings staff mail
// borrows; the keys below are its settings (plugins/email).
const emailConnector = "email"

// MailNotSetUp is the answer to a request that would need an email while
// no mail server is set up.
const MailNotSetUp = "Email isn't set up yet, so no email can be sent. Ask the shop owner to connect an email account " +
	"(Connectors → Email). Until then an owner can set a new password in the server admin at /_/ " +
	"(sign in there as a superuser; create one on the server with `omni superuser upsert EMAIL PASSWORD`)."

var errMailNotSetUp = errors.New("no mail server: set up the email connector (Connectors → Email)")

// mailRequests are PocketBase's auth routes that send an email.
var mailRequests = []string{"/request-password-reset", "/request-verification", "/request-email-change", "/request-otp"}

func (m *Module) bindStaffMail(se *core.ServeEvent) {
	m.app.OnMailerSend().BindFunc(m.sendStaffMail)
	se.Router.BindFunc(func(e *core.RequestEvent) error {
		if e.Request.Method == http.MethodPost && sendsMail(e.Request.URL.Path) && m.mailVia() == "" {
			return api.Error(http.StatusServiceUnavailable, MailNotSetUp)
		}
		return e.Next()
	})
	// Public: the sign-in pages ask before offering a reset link.
	se.Router.GET("/api/v1/mail/status", func(e *core.RequestEvent) error {
		via := m.mailVia()
		out := map[string]any{"ready": via != "", "via": via}
		if via == "" {
			out["message"] = MailNotSetUp
		}
		return e.JSON(http.StatusOK, out)
	})
}

func sendsMail(path string) bool {
	if !strings.HasPrefix(path, "/api/collections/") {
		return false
	}
	for _, suffix := range mailRequests {
		if strings.HasSuffix(path, suffix) {
			return true
		}
	}
	return false
}

// mailVia says what would carry a PocketBase mail now: "server" (its own
// SMTP settings), "connector" (the running email connector) or "".
func (m *Module) mailVia() string {
	if m.app.Settings().SMTP.Enabled {
		return "server"
	}
	if _, _, ok := m.staffMailer(); ok {
		return "connector"
	}
	return ""
}

// staffMailer is an SMTP client over the email connector's settings, when
// the connector is configured and running.
func (m *Module) staffMailer() (*mailer.SMTPClient, mail.Address, bool) {
	i := m.instance(emailConnector)
	if i == nil {
		return nil, mail.Address{}, false
	}
	i.mu.Lock()
	cfg, state := i.cfg, i.state
	i.mu.Unlock()
	if state != StateRunning || cfg["smtp_host"] == "" || cfg["from_email"] == "" {
		return nil, mail.Address{}, false
	}
	port, err := strconv.Atoi(strings.TrimSpace(cfg["smtp_port"]))
	if err != nil || port <= 0 {
		port = 587
	}
	c := &mailer.SMTPClient{
		Host: strings.TrimSpace(cfg["smtp_host"]), Port: port,
		Username: strings.TrimSpace(cfg["smtp_username"]), Password: cfg["smtp_password"],
		// "tls" is implicit TLS (465); otherwise the client upgrades with
		// STARTTLS whenever the server offers it.
		TLS: strings.EqualFold(strings.TrimSpace(cfg["smtp_security"]), "tls"),
	}
	from := mail.Address{Name: strings.TrimSpace(cfg["from_name"]), Address: strings.TrimSpace(cfg["from_email"])}
	if from.Name == "" {
		from.Name = m.app.Settings().Meta.SenderName
	}
	return c, from, true
}

// sendStaffMail hands a PocketBase mail to the email connector's SMTP
// server when PocketBase's own SMTP is off.
func (m *Module) sendStaffMail(e *core.MailerEvent) error {
	if m.app.Settings().SMTP.Enabled {
		return e.Next()
	}
	client, from, ok := m.staffMailer()
	if !ok {
		return errMailNotSetUp // rather than a silent sendmail that goes nowhere
	}
	e.Message.From = from
	// A fresh client has no app hooks bound, so this does not come back here.
	return client.Send(e.Message)
}
