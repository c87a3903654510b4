// Package email is the built-in email connector: it sends over SMTP with
// any provider a shop already has (multipart text+HTML, a Message-ID that
// carries the outbound message id, RFC 8058 one-click unsubscribe on
// marketing mail, optional DKIM) and reads the shop's mailbox over IMAP
// (replies become message.received, bounce reports message.failed).
package email

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	gomail "github.com/wneessen/go-mail"

	"github.com/omni/omni/plugins/sdk"
)

// Name is the connector's name.
const Name = "email"

// Version is this connector's version.
const Version = "1.0.0"

// Config keys.
const (
	keySMTPHost     = "smtp_host"
	keySMTPPort     = "smtp_port"
	keySMTPUser     = "smtp_username"
	keySMTPPassword = "smtp_password"
	keySMTPSecurity = "smtp_security"
	keyFromEmail    = "from_email"
	keyFromName     = "from_name"
	keyReplyTo      = "reply_to"
	keyDKIMDomain   = "dkim_domain"
	keyDKIMSelector = "dkim_selector"
	keyDKIMKey      = "dkim_private_key"
	keyIMAPHost     = "imap_host"
	keyIMAPPort     = "imap_port"
	keyIMAPUser     = "imap_username"
	keyIMAPPassword = "imap_password"
	keyIMAPFolder   = "imap_folder"
	keyIMAPSecurity = "imap_security"
	keyIMAPPoll     = "imap_poll_seconds"
	keyTLSInsecure  = "tls_insecure"
)

// Connection security.
const (
	secStartTLS = "starttls"
	secTLS      = "tls"
	secNone     = "none"
)

type settings struct {
	smtpHost     string
	smtpPort     int
	smtpUser     string
	smtpPassword string
	smtpSecurity string
	from         mail.Address
	replyTo      string
	dkim         *dkim.SignOptions

	imap *imapSettings // nil when inbound mail is off

	// tlsInsecure skips certificate checks: tests with self-signed certs only.
	tlsInsecure bool
}

type imapSettings struct {
	host     string
	port     int
	user     string
	password string
	folder   string
	security string
	poll     time.Duration
}

// Connector implements sdk.Connector for SMTP and IMAP.
type Connector struct {
	now func() time.Time

	mu     sync.RWMutex
	cfg    *settings
	host   sdk.Host
	reader *inbox // the running IMAP reader, if any
	smtp   sessions
}

// New returns an unconfigured email connector.
func New() sdk.Connector { return newConnector() }

func newConnector() *Connector { return &Connector{now: time.Now} }

// Describe declares the config schema and capabilities.
func (c *Connector) Describe(ctx context.Context) (*sdk.Description, error) {
	return &sdk.Description{
		Name:        Name,
		Version:     Version,
		DisplayName: "Email (SMTP and IMAP)",
		Description: "Send email through the shop's own mail provider; read replies and bounces from its mailbox.",
		Config: []sdk.ConfigField{
			{Name: keySMTPHost, Label: "SMTP host", Type: "string", Required: true,
				Help: "Your provider's submission server, e.g. smtp.gmail.com, smtp.office365.com, smtp.postmarkapp.com."},
			{Name: keySMTPPort, Label: "SMTP port", Type: "int", Default: "587",
				Help: "587 with STARTTLS (most providers) or 465 with TLS."},
			{Name: keySMTPUser, Label: "SMTP username", Type: "string",
				Help: "Usually the full email address or the provider's API user; empty for servers without login."},
			{Name: keySMTPPassword, Label: "SMTP password", Type: "string", Secret: true,
				Help: "An app password (Gmail, Microsoft 365, Fastmail) or the provider's SMTP key."},
			{Name: keySMTPSecurity, Label: "SMTP security", Type: "string", Default: secStartTLS,
				Help: "starttls (port 587), tls (port 465) or none (local relays only)."},
			{Name: keyFromEmail, Label: "From address", Type: "string", Required: true,
				Help: "The address customers see, on a domain you control (for SPF, DKIM and DMARC)."},
			{Name: keyFromName, Label: "From name", Type: "string", Help: "The shop's name as customers know it."},
			{Name: keyReplyTo, Label: "Reply-To", Type: "string",
				Help: "Where replies go; leave empty to use the From address. Point it at the IMAP mailbox below to see replies in Omni."},
			{Name: keyDKIMDomain, Label: "DKIM domain", Type: "string",
				Help: "Sign mail as this domain (usually the From address's domain). Leave the three DKIM fields empty if your provider signs for you."},
			{Name: keyDKIMSelector, Label: "DKIM selector", Type: "string", Help: "e.g. omni; the DNS record is <selector>._domainkey.<domain>."},
			{Name: keyDKIMKey, Label: "DKIM private key (PEM)", Type: "string", Secret: true,
				Help: "RSA (2048 bit) or Ed25519 private key in PEM; see docs/connectors/email.md for generating it."},
			{Name: keyIMAPHost, Label: "IMAP host", Type: "string",
				Help: "Read replies and bounces from this mailbox, e.g. imap.gmail.com. Leave empty to send only."},
			{Name: keyIMAPPort, Label: "IMAP port", Type: "int", Default: "993"},
			{Name: keyIMAPUser, Label: "IMAP username", Type: "string", Help: "Empty: the SMTP username."},
			{Name: keyIMAPPassword, Label: "IMAP password", Type: "string", Secret: true, Help: "Empty: the SMTP password."},
			{Name: keyIMAPFolder, Label: "IMAP folder", Type: "string", Default: "INBOX"},
			{Name: keyIMAPSecurity, Label: "IMAP security", Type: "string", Default: secTLS,
				Help: "tls (port 993), starttls (port 143) or none (local servers only)."},
			{Name: keyIMAPPoll, Label: "Check mail every (seconds)", Type: "int", Default: "60",
				Help: "How often to look for new mail when the server does not support IDLE (push); with IDLE, how often to look anyway, in case the server missed one."},
			{Name: keyTLSInsecure, Label: "Skip TLS certificate checks (testing only)", Type: "bool",
				Help: "Accept self-signed certificates. Never turn this on with a real provider."},
		},
		Capabilities: []string{sdk.CapSendPrefix + "email"},
	}, nil
}

// Configure validates and stores the settings, and (re)starts the IMAP
// reader when one is set up.
func (c *Connector) Configure(ctx context.Context, cfg sdk.Config, host sdk.Host) error {
	s, err := parseSettings(cfg)
	if err != nil {
		return err
	}
	c.mu.Lock()
	old := c.reader
	c.cfg, c.host, c.reader = s, host, nil
	if s.imap != nil && host != nil {
		c.reader = startInbox(c, s, host)
	}
	c.mu.Unlock()
	if old != nil {
		old.stop()
	}
	return nil
}

func parseSettings(cfg sdk.Config) (*settings, error) {
	get := func(k string) string { return strings.TrimSpace(cfg[k]) }
	s := &settings{
		smtpHost:     get(keySMTPHost),
		smtpUser:     get(keySMTPUser),
		smtpPassword: cfg[keySMTPPassword],
		smtpSecurity: strings.ToLower(get(keySMTPSecurity)),
		tlsInsecure:  get(keyTLSInsecure) == "true",
	}
	if s.smtpHost == "" {
		return nil, &sdk.ConfigError{Field: keySMTPHost, Problem: "is required"}
	}
	if strings.ContainsAny(s.smtpHost, ":/ ") {
		return nil, &sdk.ConfigError{Field: keySMTPHost, Problem: "must be a host name only, e.g. smtp.gmail.com (the port has its own setting)"}
	}
	if s.smtpSecurity == "" {
		s.smtpSecurity = secStartTLS
	}
	if !validSecurity(s.smtpSecurity) {
		return nil, &sdk.ConfigError{Field: keySMTPSecurity, Problem: fmt.Sprintf("%q is not one of starttls, tls, none", s.smtpSecurity)}
	}
	var err error
	if s.smtpPort, err = port(cfg, keySMTPPort, 587); err != nil {
		return nil, err
	}
	fromEmail := get(keyFromEmail)
	if fromEmail == "" {
		return nil, &sdk.ConfigError{Field: keyFromEmail, Problem: "is required"}
	}
	addr, err := mail.ParseAddress(fromEmail)
	if err != nil || addr.Name != "" || !strings.Contains(addr.Address, "@") {
		return nil, &sdk.ConfigError{Field: keyFromEmail, Problem: fmt.Sprintf("%q is not a plain email address like shop@your-domain.com", fromEmail)}
	}
	s.from = mail.Address{Name: get(keyFromName), Address: addr.Address}
	if rt := get(keyReplyTo); rt != "" {
		a, err := mail.ParseAddress(rt)
		if err != nil {
			return nil, &sdk.ConfigError{Field: keyReplyTo, Problem: fmt.Sprintf("%q is not an email address", rt)}
		}
		s.replyTo = a.Address
	}
	if s.dkim, err = parseDKIM(cfg); err != nil {
		return nil, err
	}
	if s.imap, err = parseIMAP(cfg, s); err != nil {
		return nil, err
	}
	return s, nil
}

func validSecurity(v string) bool { return v == secStartTLS || v == secTLS || v == secNone }

func port(cfg sdk.Config, key string, def int) (int, error) {
	v := strings.TrimSpace(cfg[key])
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		return 0, &sdk.ConfigError{Field: key, Problem: fmt.Sprintf("%q is not a port number", v)}
	}
	return n, nil
}

// parseDKIM returns signing options when all three DKIM settings are given.
func parseDKIM(cfg sdk.Config) (*dkim.SignOptions, error) {
	domain := strings.TrimSpace(cfg[keyDKIMDomain])
	selector := strings.TrimSpace(cfg[keyDKIMSelector])
	pem := strings.TrimSpace(cfg[keyDKIMKey])
	if domain == "" && selector == "" && pem == "" {
		return nil, nil
	}
	for _, f := range []struct{ key, val string }{{keyDKIMDomain, domain}, {keyDKIMSelector, selector}, {keyDKIMKey, pem}} {
		if f.val == "" {
			return nil, &sdk.ConfigError{Field: f.key, Problem: "is required when DKIM signing is set up (fill in domain, selector and key, or none of them)"}
		}
	}
	key, err := gomail.PrivKeyFromPEM([]byte(pem))
	if err != nil {
		return nil, &sdk.ConfigError{Field: keyDKIMKey, Problem: "is not an RSA or Ed25519 private key in PEM: " + err.Error()}
	}
	return &dkim.SignOptions{Domain: domain, Selector: selector, Signer: key, HeaderKeys: dkimHeaders,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed}, nil
}

// dkimHeaders are signed when present, so no relay can add or change the
// addressing, threading or unsubscribe headers without breaking the
// signature (Gmail requires List-Unsubscribe to be covered).
var dkimHeaders = []string{
	"From", "Reply-To", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
	"List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
}

func parseIMAP(cfg sdk.Config, s *settings) (*imapSettings, error) {
	get := func(k string) string { return strings.TrimSpace(cfg[k]) }
	host := get(keyIMAPHost)
	if host == "" {
		return nil, nil
	}
	if strings.ContainsAny(host, ":/ ") {
		return nil, &sdk.ConfigError{Field: keyIMAPHost, Problem: "must be a host name only, e.g. imap.gmail.com (the port has its own setting)"}
	}
	im := &imapSettings{host: host, user: get(keyIMAPUser), password: cfg[keyIMAPPassword],
		folder: get(keyIMAPFolder), security: strings.ToLower(get(keyIMAPSecurity))}
	if im.user == "" {
		im.user = s.smtpUser
	}
	if im.password == "" {
		im.password = s.smtpPassword
	}
	if im.user == "" {
		return nil, &sdk.ConfigError{Field: keyIMAPUser, Problem: "is required to read the mailbox (or set smtp_username)"}
	}
	if im.folder == "" {
		im.folder = "INBOX"
	}
	if im.security == "" {
		im.security = secTLS
	}
	if !validSecurity(im.security) {
		return nil, &sdk.ConfigError{Field: keyIMAPSecurity, Problem: fmt.Sprintf("%q is not one of tls, starttls, none", im.security)}
	}
	var err error
	if im.port, err = port(cfg, keyIMAPPort, 993); err != nil {
		return nil, err
	}
	im.poll = 60 * time.Second
	if v := get(keyIMAPPoll); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 86400 {
			return nil, &sdk.ConfigError{Field: keyIMAPPoll, Problem: fmt.Sprintf("%q is not a number of seconds between 1 and 86400", v)}
		}
		im.poll = time.Duration(n) * time.Second
	}
	return im, nil
}

func (c *Connector) settings() (*settings, sdk.Host, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cfg == nil {
		return nil, nil, fmt.Errorf("email: not configured")
	}
	return c.cfg, c.host, nil
}

func (s *settings) tlsConfig(serverName string) *tls.Config {
	return &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.tlsInsecure} //nolint:gosec // opt-in, tests only
}

// fromDomain is the domain of the From address, used in Message-IDs.
func (s *settings) fromDomain() string {
	if i := strings.LastIndexByte(s.from.Address, '@'); i >= 0 {
		return strings.ToLower(s.from.Address[i+1:])
	}
	return "localhost"
}

// Health connects to the SMTP server and logs in (EHLO, STARTTLS, AUTH)
// without sending; with IMAP set up it also logs in there.
func (c *Connector) Health(ctx context.Context) error {
	s, _, err := c.settings()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client, err := s.smtpClient()
	if err != nil {
		return err
	}
	if err := client.DialWithContext(ctx); err != nil {
		return fmt.Errorf("email: smtp %s: %s", net.JoinHostPort(s.smtpHost, strconv.Itoa(s.smtpPort)), smtpProblem(err))
	}
	_ = client.Close()
	if s.imap != nil {
		cl, err := dialIMAP(s, s.imap, nil)
		if err != nil {
			return fmt.Errorf("email: imap %s: %w", net.JoinHostPort(s.imap.host, strconv.Itoa(s.imap.port)), err)
		}
		_ = cl.Logout().Wait()
		_ = cl.Close()
	}
	return nil
}

// Backfill is not offered: old mail is not customer activity Omni missed.
func (c *Connector) Backfill(ctx context.Context, req *sdk.BackfillRequest, sink sdk.BackfillSink) error {
	return fmt.Errorf("email: no history to backfill; new mail in the IMAP folder is read as it arrives")
}

// HandleWebhook: email has no webhooks (inbound mail comes over IMAP).
func (c *Connector) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	return sdk.JSONResponse(404, "the email connector takes no webhooks"), nil
}
