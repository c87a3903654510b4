package email

import (
	"context"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// An SMTP relay takes many messages on one connection, so the connector
// keeps logged-in sessions between sends: the TCP, TLS and AUTH handshakes
// (several round trips each to a provider across the internet) are paid
// once per connection instead of once per message, which is what bounds a
// campaign's rate with the host's few concurrent sends per connector.
const (
	// sessionIdle is how long a session waits for the next message before
	// it is closed (servers drop idle clients after a few minutes).
	sessionIdle = 30 * time.Second
	// sessionMessages is how many messages one connection carries before
	// it is closed (some relays cap messages per connection).
	sessionMessages = 25
	// sessionsIdleMax bounds the idle sessions kept (the host sends at
	// most a few messages of one connector at a time).
	sessionsIdleMax = 16
)

// smtpSession is a connected, logged-in SMTP client.
type smtpSession struct {
	client *gomail.Client
	sc     *smtp.Client
	sent   int       // messages accepted on this connection
	idle   time.Time // when it was put back
}

func (s *smtpSession) close() { _ = s.client.CloseWithSMTPClient(s.sc) }

// sessions holds the idle sessions opened with one set of settings; new
// settings (another server, account or sender) close the old ones.
type sessions struct {
	mu    sync.Mutex
	with  *settings
	idle  []*smtpSession // most recently used last
	sweep *time.Timer
}

// get returns an idle session opened with s, or dials a new one; reused
// reports which (a reused one may have been dropped by the server since).
func (p *sessions) get(ctx context.Context, s *settings) (sess *smtpSession, reused bool, err error) {
	p.mu.Lock()
	p.adopt(s)
	for len(p.idle) > 0 {
		sess = p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if time.Since(sess.idle) < sessionIdle {
			p.mu.Unlock()
			return sess, true, nil
		}
		go sess.close()
	}
	p.mu.Unlock()
	client, err := s.smtpClient()
	if err != nil {
		return nil, false, err
	}
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, false, err
	}
	return &smtpSession{client: client, sc: sc}, false, nil
}

// put keeps a session whose last transaction ended (accepted, or refused
// and reset) for the next message, unless it carried its share.
func (p *sessions) put(s *settings, sess *smtpSession) {
	if sess.sent >= sessionMessages {
		sess.close()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.with != s || len(p.idle) >= sessionsIdleMax {
		go sess.close()
		return
	}
	sess.idle = time.Now()
	p.idle = append(p.idle, sess)
	if p.sweep == nil {
		p.sweep = time.AfterFunc(sessionIdle, p.expire)
	}
}

// adopt closes the idle sessions when the settings changed (p.mu held).
func (p *sessions) adopt(s *settings) {
	if p.with == s {
		return
	}
	for _, sess := range p.idle {
		go sess.close()
	}
	p.with, p.idle = s, nil
}

// expire closes the sessions idle for sessionIdle, and looks again while
// any are left.
func (p *sessions) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := p.idle[:0]
	for _, sess := range p.idle {
		if time.Since(sess.idle) >= sessionIdle {
			go sess.close()
		} else {
			kept = append(kept, sess)
		}
	}
	clear(p.idle[len(kept):])
	p.idle = kept
	p.sweep = nil
	if len(p.idle) > 0 {
		p.sweep = time.AfterFunc(sessionIdle-time.Since(p.idle[0].idle), p.expire)
	}
}
