package email

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/omni/omni/internal/testkit/smtptest"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/sdk/sdktest"
)

// The test binary doubles as the plugin executable for StartSelf.
func TestMain(m *testing.M) { sdktest.MainOrServe(m, New) }

// smtpConfig points the connector at a test server over STARTTLS with a
// self-signed certificate and AUTH PLAIN.
func smtpConfig(srv *smtptest.Server) sdk.Config {
	return sdk.Config{
		keySMTPHost: srv.Host, keySMTPPort: strconv.Itoa(srv.Port), keySMTPSecurity: "starttls",
		keySMTPUser: "shop@omni-shop.dev", keySMTPPassword: "app-password-1",
		keyFromEmail: "shop@omni-shop.dev", keyFromName: "Omni Test Shop", keyReplyTo: "help@omni-shop.dev",
		keyTLSInsecure: "true",
	}
}

func startSMTP(t *testing.T, reply func(string, int) error) *smtptest.Server {
	return smtptest.Start(t, smtptest.Options{STARTTLS: true, Username: "shop@omni-shop.dev", Password: "app-password-1", Reply: reply})
}

type parsedMail struct {
	header *mail.Message
	raw    []byte
	parts  map[string]string // content type → body
}

func parse(t *testing.T, raw []byte) parsedMail {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not a message: %v\n%s", err, raw)
	}
	p := parsedMail{header: m, raw: raw, parts: map[string]string{}}
	ct, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ct, "multipart/") {
		b, _ := io.ReadAll(m.Body)
		p.parts[ct] = decodeQP(t, m.Header.Get("Content-Transfer-Encoding"), b)
		return p
	}
	p.parts[ct] = ""
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		b, _ := io.ReadAll(part)
		p.parts[pct] = decodeQP(t, part.Header.Get("Content-Transfer-Encoding"), b)
	}
	return p
}

func decodeQP(t *testing.T, enc string, b []byte) string {
	switch strings.ToLower(enc) {
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	case "base64":
		out, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", ""), "\n", ""))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	return string(b)
}

func testKey(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// A marketing email through the plugin subprocess over STARTTLS (self-signed)
// with AUTH PLAIN: multipart text+HTML, the Message-ID carrying the
// outbound id, one-click List-Unsubscribe, and a DKIM signature that
// go-msgauth verifies against the published key and that covers the
// unsubscribe headers.
func TestSendMarketingMultipartUnsubscribeDKIM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a plugin subprocess")
	}
	srv := startSMTP(t, nil)
	key, keyPEM := testKey(t)
	cfg := smtpConfig(srv)
	cfg[keyDKIMDomain], cfg[keyDKIMSelector], cfg[keyDKIMKey] = "omni-shop.dev", "omni", keyPEM
	h := sdktest.StartSelf(t, cfg)

	res, err := h.Send(&sdk.OutboundMessage{ID: "msg0001", Channel: "email", To: map[string]string{"email": "ann@omni-shop.dev"},
		Subject: "Your cart misses you", Text: "Hi Ann, your cart is waiting.", HTML: "<p>Hi <b>Ann</b>, your cart is waiting.</p>",
		Properties: map[string]any{"kind": "marketing", "unsubscribe_url": "https://shop.omni-shop.dev/p/u/tok123",
			"unsubscribe_mailto": "mailto:unsubscribe@omni-shop.dev?subject=unsubscribe"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ProviderMessageID != "<omni.msg0001@omni-shop.dev>" {
		t.Fatalf("provider id %q", res.ProviderMessageID)
	}
	mails := srv.Mails()
	if len(mails) != 1 || !mails[0].TLS || mails[0].Auth != "shop@omni-shop.dev" || mails[0].To[0] != "ann@omni-shop.dev" || mails[0].From != "shop@omni-shop.dev" {
		t.Fatalf("server saw %+v", mails)
	}
	p := parse(t, mails[0].Data)
	hd := p.header.Header
	if hd.Get("Message-Id") != "<omni.msg0001@omni-shop.dev>" {
		t.Fatalf("Message-ID %q", hd.Get("Message-Id"))
	}
	if from, _ := mail.ParseAddress(hd.Get("From")); from == nil || from.Name != "Omni Test Shop" || from.Address != "shop@omni-shop.dev" {
		t.Fatalf("From %q", hd.Get("From"))
	}
	if hd.Get("Reply-To") != "<help@omni-shop.dev>" && hd.Get("Reply-To") != "help@omni-shop.dev" {
		t.Fatalf("Reply-To %q", hd.Get("Reply-To"))
	}
	if lu := hd.Get("List-Unsubscribe"); lu != "<https://shop.omni-shop.dev/p/u/tok123>, <mailto:unsubscribe@omni-shop.dev?subject=unsubscribe>" {
		t.Fatalf("List-Unsubscribe %q", lu)
	}
	if hd.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
		t.Fatalf("List-Unsubscribe-Post %q", hd.Get("List-Unsubscribe-Post"))
	}
	if _, ok := p.parts["multipart/alternative"]; !ok {
		t.Fatalf("not multipart/alternative: %v", hd.Get("Content-Type"))
	}
	if strings.TrimSpace(p.parts["text/plain"]) != "Hi Ann, your cart is waiting." || !strings.Contains(p.parts["text/html"], "<b>Ann</b>") {
		t.Fatalf("parts %q", p.parts)
	}

	// DKIM: verify with go-msgauth against the test key as DNS would publish it.
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(domain string) ([]string, error) {
		if domain != "omni._domainkey.omni-shop.dev" {
			return nil, errors.New("no such record " + domain)
		}
		return []string{"v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub)}, nil
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(mails[0].Data), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "omni-shop.dev" {
		t.Fatalf("dkim: %v %+v %v\n%s", err, vs, vs[0].Err, mails[0].Data)
	}
	signed := strings.ToLower(strings.Join(vs[0].HeaderKeys, ":"))
	for _, want := range []string{"from", "subject", "message-id", "list-unsubscribe", "list-unsubscribe-post"} {
		if !strings.Contains(":"+signed+":", ":"+want+":") {
			t.Fatalf("DKIM does not sign %s: h=%s", want, signed)
		}
	}
	// A relay that rewrites the unsubscribe link breaks the signature.
	tampered := bytes.Replace(mails[0].Data, []byte("tok123"), []byte("tok999"), 1)
	vs, err = dkim.VerifyWithOptions(bytes.NewReader(tampered), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 1 || vs[0].Err == nil {
		t.Fatalf("tampered List-Unsubscribe still verifies: %v %+v", err, vs)
	}
}

// Transactional and conversation mail carry no List-Unsubscribe; HTML-only
// gets a derived text part; text-only is a single text/plain part; replies
// carry In-Reply-To and References.
func TestSendKindsBodiesAndThreading(t *testing.T) {
	srv := startSMTP(t, nil)
	c := newConnector()
	if err := c.Configure(context.Background(), smtpConfig(srv), nil); err != nil {
		t.Fatal(err)
	}
	send := func(msg *sdk.OutboundMessage) parsedMail {
		t.Helper()
		before := len(srv.Mails())
		if _, err := c.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		mails := srv.Mails()
		if len(mails) != before+1 {
			t.Fatalf("server has %d mails", len(mails))
		}
		return parse(t, mails[len(mails)-1].Data)
	}
	to := map[string]string{"email": "bob@omni-shop.dev"}

	p := send(&sdk.OutboundMessage{ID: "t1", Channel: "email", To: to, Subject: "Order #1001 shipped",
		HTML:       `<html><head><style>p{}</style></head><body><p>Your order shipped.</p><p><a href="https://track.omni-shop.dev/1">Track it</a></p></body></html>`,
		Properties: map[string]any{"kind": "transactional", "unsubscribe_url": "https://shop.omni-shop.dev/p/u/x"}})
	if p.header.Header.Get("List-Unsubscribe") != "" || p.header.Header.Get("List-Unsubscribe-Post") != "" {
		t.Fatal("transactional mail has List-Unsubscribe")
	}
	if got := strings.ReplaceAll(strings.TrimSpace(p.parts["text/plain"]), "\r\n", "\n"); got != "Your order shipped.\n\nTrack it (https://track.omni-shop.dev/1)" {
		t.Fatalf("derived text %q", got)
	}

	p = send(&sdk.OutboundMessage{ID: "c1", Channel: "email", To: to, Subject: "Re: sizes", Text: "Yes, we have it in M.",
		Properties: map[string]any{"kind": "conversation", "in_reply_to": "<CAF1234@mail.omni-shop.dev>",
			"references": []any{"<omni.m0@omni-shop.dev>", "<CAF1234@mail.omni-shop.dev>"}}})
	ct, _, _ := mime.ParseMediaType(p.header.Header.Get("Content-Type"))
	if ct != "text/plain" || strings.TrimSpace(p.parts["text/plain"]) != "Yes, we have it in M." {
		t.Fatalf("text-only mail: %s %q", ct, p.parts)
	}
	if p.header.Header.Get("In-Reply-To") != "<CAF1234@mail.omni-shop.dev>" ||
		p.header.Header.Get("References") != "<omni.m0@omni-shop.dev> <CAF1234@mail.omni-shop.dev>" {
		t.Fatalf("threading headers: %q %q", p.header.Header.Get("In-Reply-To"), p.header.Header.Get("References"))
	}
	if p.header.Header.Get("List-Unsubscribe") != "" {
		t.Fatal("conversation reply has List-Unsubscribe")
	}

	// Marketing without a one-click URL is refused before anything is sent.
	before := len(srv.Mails())
	_, err := c.Send(context.Background(), &sdk.OutboundMessage{ID: "m2", Channel: "email", To: to, Text: "Sale!", Properties: map[string]any{"kind": "marketing"}})
	if se := sdk.AsSendError(err); err == nil || se.Kind != sdk.KindPermanent || se.Code != "missing_unsubscribe_url" {
		t.Fatalf("marketing without unsubscribe_url: %v", err)
	}
	if len(srv.Mails()) != before {
		t.Fatal("a marketing mail without unsubscribe URL went out")
	}
}

// SMTP answers map to the host's retry policy: 550 permanent with the
// code, 451 retryable, a refused login waits for the owner.
func TestSendErrorMapping(t *testing.T) {
	srv := startSMTP(t, func(rcpt string, n int) error {
		switch {
		case strings.HasPrefix(rcpt, "gone@"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable"}
		case strings.HasPrefix(rcpt, "busy@"):
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		return nil
	})
	c := newConnector()
	if err := c.Configure(context.Background(), smtpConfig(srv), nil); err != nil {
		t.Fatal(err)
	}
	send := func(to string) *sdk.SendError {
		_, err := c.Send(context.Background(), &sdk.OutboundMessage{ID: "e-" + to[:4], Channel: "email", To: map[string]string{"email": to}, Text: "hi"})
		if err == nil {
			t.Fatalf("send to %s succeeded", to)
		}
		return sdk.AsSendError(err)
	}
	if se := send("gone@omni-shop.dev"); se.Kind != sdk.KindPermanent || se.Code != "550" || !strings.Contains(se.Reason, "5.1.1") {
		t.Fatalf("550: %+v", se)
	}
	if se := send("busy@omni-shop.dev"); se.Kind != sdk.KindRetryable || se.Code != "451" {
		t.Fatalf("451: %+v", se)
	}

	bad := smtpConfig(srv)
	bad[keySMTPPassword] = "wrong"
	if err := c.Configure(context.Background(), bad, nil); err != nil {
		t.Fatal(err)
	}
	if se := send("ann@omni-shop.dev"); se.Kind != sdk.KindRateLimited || se.Code != "535" {
		t.Fatalf("bad login: %+v", se)
	}
	if err := c.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "535") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("health with a wrong password: %v", err)
	}

	// Nothing listening: retryable.
	down := smtpConfig(srv)
	down[keySMTPPort] = "1"
	if err := c.Configure(context.Background(), down, nil); err != nil {
		t.Fatal(err)
	}
	if se := send("ann@omni-shop.dev"); se.Kind != sdk.KindRetryable {
		t.Fatalf("server down: %+v", se)
	}
}

// Health logs in without sending anything.
func TestHealthLogsInWithoutSending(t *testing.T) {
	srv := startSMTP(t, nil)
	c := newConnector()
	if err := c.Configure(context.Background(), smtpConfig(srv), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	if srv.Logins() != 1 || len(srv.Mails()) != 0 {
		t.Fatalf("logins %d, mails %d", srv.Logins(), len(srv.Mails()))
	}
}

// Config errors name the field.
func TestConfigErrorsNameTheField(t *testing.T) {
	base := sdk.Config{keySMTPHost: "smtp.omni-shop.dev", keyFromEmail: "shop@omni-shop.dev"}
	cases := []struct {
		change map[string]string
		field  string
	}{
		{map[string]string{keySMTPHost: ""}, keySMTPHost},
		{map[string]string{keySMTPHost: "smtp.omni-shop.dev:587"}, keySMTPHost},
		{map[string]string{keySMTPPort: "70000"}, keySMTPPort},
		{map[string]string{keySMTPSecurity: "ssl"}, keySMTPSecurity},
		{map[string]string{keyFromEmail: ""}, keyFromEmail},
		{map[string]string{keyFromEmail: "Shop <shop@omni-shop.dev>"}, keyFromEmail},
		{map[string]string{keyReplyTo: "not an address"}, keyReplyTo},
		{map[string]string{keyDKIMDomain: "omni-shop.dev"}, keyDKIMSelector},
		{map[string]string{keyDKIMDomain: "omni-shop.dev", keyDKIMSelector: "s", keyDKIMKey: "nope"}, keyDKIMKey},
		{map[string]string{keyIMAPHost: "imap.omni-shop.dev"}, keyIMAPUser},
		{map[string]string{keyIMAPHost: "imap.omni-shop.dev", keyIMAPUser: "u", keyIMAPPoll: "0"}, keyIMAPPoll},
		{map[string]string{keyIMAPHost: "imap.omni-shop.dev", keyIMAPUser: "u", keyIMAPSecurity: "ssl"}, keyIMAPSecurity},
	}
	for _, tc := range cases {
		cfg := sdk.Config{}
		for k, v := range base {
			cfg[k] = v
		}
		for k, v := range tc.change {
			cfg[k] = v
		}
		err := newConnector().Configure(context.Background(), cfg, nil)
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%v: got %v, want an error naming %s", tc.change, err, tc.field)
		}
	}
	if err := newConnector().Configure(context.Background(), base, nil); err != nil {
		t.Fatalf("minimal settings: %v", err)
	}
}

func TestMessageIDRoundTrip(t *testing.T) {
	for _, id := range []string{"abc123", "a b/c@d", ""} {
		mid := MessageID(id, "omni-shop.dev")
		if _, err := mail.ParseAddress("x <" + strings.Trim(mid, "<>") + ">"); err != nil {
			t.Errorf("%q: Message-ID %s is not addr-spec shaped: %v", id, mid, err)
		}
		if id != "" && OutboundID(mid) != id {
			t.Errorf("%q: round trip gave %q", id, OutboundID(mid))
		}
	}
	if OutboundID("<CAF123@mail.gmail.com>") != "" {
		t.Error("a foreign Message-ID matched")
	}
}
