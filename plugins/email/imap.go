package email

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/omni/omni/plugins/sdk"
)

// readFlag marks mail Omni has turned into events. A keyword of its own
// leaves \Seen to the people reading the mailbox; servers that refuse new
// keywords get \Seen instead. Either way the flag lives on the server, so
// a restart (the plugin keeps no files) neither repeats nor misses mail;
// event ids dedupe whatever slips through twice.
const readFlag imap.Flag = "$OmniRead"

// lookback bounds the first read of a mailbox: mail older than this that
// Omni never read is left alone instead of flooding the inbox.
const lookback = 7 * 24 * time.Hour

// idleRefresh restarts IDLE before servers drop it (RFC 2177: 29 minutes).
const idleRefresh = 25 * time.Minute

// fetchBatch bounds how many messages one FETCH loads into memory.
const fetchBatch = 20

// inbox is the running IMAP reader of one configuration.
type inbox struct {
	c      *Connector
	s      *settings
	host   sdk.Host
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	client *imapclient.Client // the live connection, closed by stop
}

func startInbox(c *Connector, s *settings, host sdk.Host) *inbox {
	ctx, cancel := context.WithCancel(context.Background())
	b := &inbox{c: c, s: s, host: host, cancel: cancel, done: make(chan struct{})}
	go b.run(ctx)
	return b
}

func (b *inbox) stop() {
	b.cancel()
	b.mu.Lock()
	if b.client != nil {
		_ = b.client.Close()
	}
	b.mu.Unlock()
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
	}
}

// run keeps a session open, reconnecting with backoff after failures.
func (b *inbox) run(ctx context.Context) {
	defer close(b.done)
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		err := b.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		b.host.Log("warn", "email: imap session ended; reconnecting", "error", err.Error(), "in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff *= 2; backoff > b.s.imap.poll && backoff > time.Minute {
			backoff = max(b.s.imap.poll, time.Minute)
		}
	}
}

func dialIMAP(s *settings, im *imapSettings, opts *imapclient.Options) (*imapclient.Client, error) {
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.TLSConfig = s.tlsConfig(im.host)
	opts.Dialer = &net.Dialer{Timeout: 30 * time.Second}
	addr := net.JoinHostPort(im.host, strconv.Itoa(im.port))
	var cl *imapclient.Client
	var err error
	switch im.security {
	case secTLS:
		cl, err = imapclient.DialTLS(addr, opts)
	case secStartTLS:
		cl, err = imapclient.DialStartTLS(addr, opts)
	default:
		cl, err = imapclient.DialInsecure(addr, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := cl.Login(im.user, im.password).Wait(); err != nil {
		_ = cl.Close()
		return nil, fmt.Errorf("login as %s: %w", im.user, err)
	}
	return cl, nil
}

// session logs in, selects the folder and reads new mail until the
// connection fails or ctx ends: after IDLE wakes it where the server
// supports IDLE, else every poll interval.
func (b *inbox) session(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	cl, err := dialIMAP(b.s, b.s.imap, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				poke()
			}
		},
	}})
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.client = cl
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.client = nil
		b.mu.Unlock()
		_ = cl.Close()
	}()
	sel, err := cl.Select(b.s.imap.folder, nil).Wait()
	if err != nil {
		return fmt.Errorf("select %q: %w", b.s.imap.folder, err)
	}
	flag := imap.FlagSeen
	for _, f := range sel.PermanentFlags {
		if f == imap.FlagWildcard || strings.EqualFold(string(f), string(readFlag)) {
			flag = readFlag
		}
	}
	idle := cl.Caps().Has(imap.CapIdle)
	for {
		if err := b.readNew(ctx, cl, sel.UIDValidity, flag); err != nil {
			return err
		}
		if idle {
			if err := waitIdle(ctx, cl, wake, min(idleRefresh, b.s.imap.poll)); err != nil {
				return err
			}
		} else {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(b.s.imap.poll):
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// waitIdle holds IDLE until the server reports new mail, refresh passes
// or ctx ends. refresh is at most the poll interval: a server may leave
// out a message that arrived just before IDLE began (go-imap's own
// server does), and the next look finds it.
func waitIdle(ctx context.Context, cl *imapclient.Client, wake <-chan struct{}, refresh time.Duration) error {
	cmd, err := cl.Idle()
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	select {
	case <-ctx.Done():
	case <-wake:
	case <-time.After(refresh):
	case <-cl.Closed():
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	return cmd.Wait()
}

// readNew emits events for every recent message without the read flag,
// then flags it. A message that cannot be parsed is logged and flagged
// too, so one bad mail never blocks the mailbox.
func (b *inbox) readNew(ctx context.Context, cl *imapclient.Client, uidValidity uint32, flag imap.Flag) error {
	crit := &imap.SearchCriteria{NotFlag: []imap.Flag{flag}, Since: b.c.now().Add(-lookback)}
	data, err := cl.UIDSearch(crit, nil).Wait()
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	uids := data.AllUIDs()
	for len(uids) > 0 && ctx.Err() == nil {
		n := min(len(uids), fetchBatch)
		if err := b.readBatch(ctx, cl, uids[:n], uidValidity, flag); err != nil {
			return err
		}
		uids = uids[n:]
	}
	return nil
}

func (b *inbox) readBatch(ctx context.Context, cl *imapclient.Client, uids []imap.UID, uidValidity uint32, flag imap.Flag) error {
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := cl.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	unsub := ""
	if b.s.imap != nil {
		unsub = b.s.replyAddress()
	}
	var evs []sdk.Event
	done := make([]imap.UID, 0, len(msgs))
	for _, m := range msgs {
		pos := fmt.Sprintf("%s:%d:%d", b.s.imap.folder, uidValidity, m.UID)
		got, err := Inbound(m.FindBodySection(section), pos, unsub, b.c.now())
		if err != nil {
			b.host.Log("warn", "email: skipped a message that could not be read", "uid", strconv.FormatUint(uint64(m.UID), 10), "error", err.Error())
		}
		evs = append(evs, got...)
		done = append(done, m.UID)
	}
	if len(evs) > 0 {
		if err := b.host.Emit(ctx, evs); err != nil {
			return fmt.Errorf("emit: %w", err) // not flagged: read again next time
		}
	}
	if len(done) == 0 {
		return nil
	}
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{flag}, Silent: true}
	if err := cl.Store(imap.UIDSetNum(done...), store, nil).Close(); err != nil {
		return fmt.Errorf("flag as read: %w", err)
	}
	return nil
}
