// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp)
// inside a test: optional STARTTLS with a self-signed certificate, optional
// AUTH PLAIN, and per-recipient answers so tests can script 550 and 451.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options shape the server.
type Options struct {
	// STARTTLS offers STARTTLS with a self-signed certificate for 127.0.0.1.
	STARTTLS bool
	// Username and Password, when set, require AUTH PLAIN before MAIL.
	Username, Password string
	// Reply, when set, answers RCPT TO: a non-nil error (e.g.
	// &smtp.SMTPError{Code: 550, …}) refuses the recipient. attempt counts
	// the RCPTs for this address so far, from 1.
	Reply func(rcpt string, attempt int) error
}

// Mail is one accepted message.
type Mail struct {
	From string
	To   []string
	Data []byte
	// TLS and Auth tell how the client connected.
	TLS  bool
	Auth string // the user that logged in, "" if none
}

// Server is a running test SMTP server.
type Server struct {
	Host string
	Port int

	opts     Options
	mu       sync.Mutex
	mails    []Mail
	attempts map[string]int
	logins   int
	conns    int                 // connections accepted
	open     map[*smtp.Conn]bool // connections still open
}

// Start runs a server on 127.0.0.1 until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{opts: opts, attempts: map[string]int{}, open: map[*smtp.Conn]bool{}}
	srv := smtp.NewServer(backend{s})
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.AllowInsecureAuth = !opts.STARTTLS
	if opts.STARTTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, MinVersion: tls.VersionTLS12}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Host = "127.0.0.1"
	s.Port = l.Addr().(*net.TCPAddr).Port
	go func() { _ = srv.Serve(countingListener{l, s}) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Mails returns the accepted messages so far.
func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// Attempts is how many times rcpt was offered.
func (s *Server) Attempts(rcpt string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[rcpt]
}

// Logins counts successful AUTHs.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// countingListener counts the TCP connections accepted (go-smtp makes a
// new session after STARTTLS, so sessions do not count connections).
type countingListener struct {
	net.Listener
	s *Server
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.mu.Lock()
		l.s.conns++
		l.s.mu.Unlock()
	}
	return c, err
}

// Connections counts the TCP connections accepted so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// DropConnections closes every open connection, as a server does with
// clients idle past its timeout.
func (s *Server) DropConnections() {
	s.mu.Lock()
	open := make([]*smtp.Conn, 0, len(s.open))
	for c := range s.open {
		open = append(open, c)
	}
	s.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.s.mu.Lock()
	b.s.open[c] = true
	b.s.mu.Unlock()
	return &session{s: b.s, conn: c}, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn
	user string
	mail Mail
}

func (se *session) AuthMechanisms() []string {
	if se.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != se.s.opts.Username || password != se.s.opts.Password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "authentication failed"}
		}
		se.user = username
		se.s.mu.Lock()
		se.s.logins++
		se.s.mu.Unlock()
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if se.s.opts.Username != "" && se.user == "" {
		return smtp.ErrAuthRequired
	}
	_, isTLS := se.conn.TLSConnectionState()
	se.mail = Mail{From: from, TLS: isTLS, Auth: se.user}
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.s.mu.Lock()
	se.s.attempts[to]++
	n := se.s.attempts[to]
	se.s.mu.Unlock()
	if se.s.opts.Reply != nil {
		if err := se.s.opts.Reply(to, n); err != nil {
			return err
		}
	}
	se.mail.To = append(se.mail.To, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(se.mail.To) == 0 {
		return errors.New("no recipients")
	}
	se.mail.Data = b
	se.s.mu.Lock()
	se.s.mails = append(se.s.mails, se.mail)
	se.s.mu.Unlock()
	return nil
}

func (se *session) Reset() { se.mail = Mail{} }
func (se *session) Logout() error {
	se.s.mu.Lock()
	delete(se.s.open, se.conn)
	se.s.mu.Unlock()
	return nil
}

func selfSigned(t testing.TB) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtptest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// SelfSigned is a throwaway certificate for 127.0.0.1/localhost (for the
// IMAP test server too).
func SelfSigned(t testing.TB) tls.Certificate { return selfSigned(t) }
