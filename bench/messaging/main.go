// Command messaging measures messages through the send gate and out to an
// SMTP server: a real Omni in-process (profiles, the messaging gate, the
// connector host running the built-in email connector as a subprocess) and
// an in-process SMTP server (go-smtp) that accepts everything. It sends N
// transactional emails, one per subscribed customer, through
// POST /api/v1/messages with C concurrent clients (or the gate's Go
// function), 3 runs, and reports the medians of: messages/s accepted by the
// gate, messages/s accepted by the SMTP server, and p50/p99 from the gate's
// 202 to the SMTP server's acceptance of the DATA (matched by the
// Message-ID, which carries the ledger id).
//
//	go run ./bench/messaging -n 2000 -concurrency 8
//	go run ./bench/messaging -short
//
// The program is its own plugin executable: Omni starts it again as
// `messaging plugin run email`, exactly as the omni binary does.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/cli"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/messaging"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/plugins/builtin"
	"github.com/omni/omni/plugins/email"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "plugin" {
		os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr, builtin.Extension(connectors.Options{})))
	}
	n := flag.Int("n", 2000, "customers, and messages per run")
	conc := flag.Int("concurrency", 8, "concurrent senders")
	runs := flag.Int("runs", 3, "runs (the report gives each and the medians)")
	via := flag.String("via", "http", "how messages reach the gate: http (POST /api/v1/messages) or go (messaging.Module.Send)")
	short := flag.Bool("short", false, "a seconds-long run: 200 messages")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the runs (Omni and the benchmark; the plugin subprocess is not in it)")
	slots := flag.Int("sends-per-connector", 0, "the connector host's cap on one connector's concurrent sends (0 = Omni's default, 8)")
	flag.Parse()
	if *short {
		*n = 200
	}
	if *n < 1 || *conc < 1 || *runs < 1 || (*via != "http" && *via != "go") {
		fmt.Fprintln(os.Stderr, "bench: -n, -concurrency and -runs must be at least 1, -via http or go")
		os.Exit(2)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		profileRuns = func() func() {
			_ = pprof.StartCPUProfile(f)
			return pprof.StopCPUProfile
		}
	}
	if err := run(*n, *conc, *runs, *via, *slots); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// profileRuns, when set, starts a CPU profile of the runs and returns its stop.
var profileRuns func() func()

// result is one run's figures.
type result struct {
	gateRate, smtpRate float64 // messages/s
	p50, p99           time.Duration
	refused            int
}

func run(n, conc, runs int, via string, slots int) error {
	sink, err := startSMTP()
	if err != nil {
		return err
	}
	defer sink.close()

	dir, err := os.MkdirTemp("", "omni-bench-messaging-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.DataDir = dir
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	o := app.New(cfg, log)
	gate := messaging.New(messaging.Options{})
	o.Use(profiles.New(profiles.Options{}))
	o.Use(gate)
	o.Use(connectors.New(connectors.Options{SendsPerConnector: slots}))
	if err := o.Open(); err != nil {
		return err
	}
	if err := setUpEmail(o, cfg, sink.port); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	go func() { _ = o.Serve(ln, ready) }()
	<-ready
	defer o.Shutdown()
	base := "http://" + ln.Addr().String()

	token, err := ownerToken(o)
	if err != nil {
		return err
	}
	if err := waitRunning(o); err != nil {
		return err
	}
	t0 := time.Now()
	ids, err := loadCustomers(o, n)
	if err != nil {
		return err
	}
	if slots == 0 {
		slots = 8
	}
	fmt.Printf("%d customers subscribed to email in %v; sending %d transactional emails per run via %s, %d concurrent senders, %d concurrent sends to SMTP\n",
		n, time.Since(t0).Round(time.Millisecond), n, via, conc, slots)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc * 2}}
	send := func(r messaging.Request) (string, error) {
		if via == "go" {
			res, err := gate.Send(context.Background(), r)
			if err != nil {
				return "", err
			}
			if res.Status != messaging.StatusQueued {
				return "", fmt.Errorf("refused: %s", res.Reason)
			}
			return res.ID, nil
		}
		body, _ := json.Marshal(map[string]any{"profile": r.Profile, "channel": "email", "kind": r.Kind,
			"subject": r.Subject, "body": r.Body, "event": r.Event})
		req, _ := http.NewRequest("POST", base+"/api/v1/messages", bytes.NewReader(body))
		req.Header.Set("Authorization", token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var out struct {
			ID     string `json:"id"`
			Reason string `json:"reason"`
		}
		raw, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(raw, &out)
		if resp.StatusCode != http.StatusAccepted {
			return "", fmt.Errorf("%d: %s", resp.StatusCode, raw)
		}
		return out.ID, nil
	}

	var all []result
	accepted := 0
	if profileRuns != nil {
		defer profileRuns()()
	}
	for i := range runs {
		r, err := oneRun(sink, ids, i, conc, send)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		// Not timed: the ledger must end up agreeing with the SMTP server.
		accepted += n - r.refused
		if err := waitLedgerSent(o, accepted); err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		all = append(all, r)
		fmt.Printf("run %d: gate %7.0f msg/s  SMTP %7.0f msg/s  202→SMTP p50 %8.1f ms  p99 %8.1f ms  refused %d\n",
			i+1, r.gateRate, r.smtpRate, ms(r.p50), ms(r.p99), r.refused)
	}
	med := func(f func(result) float64) float64 {
		v := make([]float64, len(all))
		for i, r := range all {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Printf("median of %d: gate %7.0f msg/s  SMTP %7.0f msg/s  202→SMTP p50 %8.1f ms  p99 %8.1f ms\n", runs,
		med(func(r result) float64 { return r.gateRate }), med(func(r result) float64 { return r.smtpRate }),
		med(func(r result) float64 { return ms(r.p50) }), med(func(r result) float64 { return ms(r.p99) }))
	return nil
}

// oneRun sends one message to each customer and waits until the SMTP
// server has accepted them all.
func oneRun(sink *smtpSink, profiles []string, run, conc int, send func(messaging.Request) (string, error)) (result, error) {
	var (
		mu       sync.Mutex
		accepted = make(map[string]time.Time, len(profiles))
		refused  atomic.Int64
		firstErr error
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(profiles) {
					return
				}
				id, err := send(messaging.Request{Profile: profiles[i], Channels: []string{"email"}, Kind: messaging.KindTransactional,
					Subject: "Order {{ event.properties.order }} shipped",
					Body:    "Hi {{ customer.first_name | default: \"there\" }}, order {{ event.properties.order }} is on its way.",
					Event:   map[string]any{"type": "order.shipped", "properties": map[string]any{"order": fmt.Sprintf("%d-%d", run, i)}}})
				at := time.Now()
				mu.Lock()
				if err != nil {
					refused.Add(1)
					if firstErr == nil {
						firstErr = err
					}
				} else {
					accepted[id] = at
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	gateDone := time.Since(start)
	if len(accepted) == 0 {
		return result{}, fmt.Errorf("the gate accepted nothing: %v", firstErr)
	}

	// Wait for the SMTP server to have every accepted message.
	deadline := time.Now().Add(5*time.Minute + time.Duration(len(profiles))*50*time.Millisecond)
	var lat []time.Duration
	var last time.Time
	for {
		lat, last = lat[:0], time.Time{}
		missing := 0
		for id, at := range accepted {
			got, ok := sink.receivedAt(id)
			if !ok {
				missing++
				continue
			}
			lat = append(lat, got.Sub(at))
			if got.After(last) {
				last = got
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("%d of %d accepted messages never reached the SMTP server", missing, len(accepted))
		}
		time.Sleep(50 * time.Millisecond)
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return result{
		gateRate: float64(len(accepted)) / gateDone.Seconds(),
		smtpRate: float64(len(accepted)) / last.Sub(start).Seconds(),
		p50:      q(0.50), p99: q(0.99), refused: int(refused.Load()),
	}, nil
}

// waitLedgerSent waits until the send ledger has want messages sent (the
// connector host's message.sent events applied).
func waitLedgerSent(o *app.Omni, want int) error {
	var sent int
	for start := time.Now(); time.Since(start) < 2*time.Minute; time.Sleep(100 * time.Millisecond) {
		if err := o.PB.DB().NewQuery("SELECT COUNT(*) FROM messages WHERE status='sent'").Row(&sent); err != nil {
			return err
		}
		if sent >= want {
			return nil
		}
	}
	return fmt.Errorf("the ledger shows %d messages sent, want %d", sent, want)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// setUpEmail configures and enables the email connector for the sink
// (plain SMTP on loopback, no login), as the admin's Connectors page does.
func setUpEmail(o *app.Omni, cfg *config.Config, port int) error {
	rec, err := connectors.EnsureRecord(o.PB, connectors.Installed{Name: email.Name, Kind: "builtin"})
	if err != nil {
		return err
	}
	sealer, err := connectors.LoadKey("", cfg.SecretKeyPath())
	if err != nil {
		return err
	}
	d, err := email.New().Describe(context.Background())
	if err != nil {
		return err
	}
	if err := connectors.ApplyConfig(rec, sealer, d.Config, map[string]string{
		"smtp_host": "127.0.0.1", "smtp_port": strconv.Itoa(port), "smtp_security": "none",
		"from_email": "shop@omni-shop.dev", "from_name": "Bench Shop",
	}); err != nil {
		return err
	}
	rec.Set("enabled", true)
	return connectors.SaveSettings(o.PB, rec)
}

// waitRunning waits until the email plugin subprocess runs.
func waitRunning(o *app.Omni) error {
	for start := time.Now(); time.Since(start) < 60*time.Second; time.Sleep(100 * time.Millisecond) {
		r, err := o.PB.FindFirstRecordByData(connectors.Collection, "name", email.Name)
		if err == nil && r.GetString("state") == connectors.StateRunning {
			return nil
		}
	}
	return errors.New("the email connector did not start")
}

// ownerToken makes an owner and returns an auth token for the API.
func ownerToken(o *app.Omni) (string, error) {
	col, err := o.PB.FindCollectionByNameOrId("staff")
	if err != nil {
		return "", err
	}
	r := core.NewRecord(col)
	r.SetEmail("owner@omni-shop.dev")
	r.SetPassword("password-123456")
	r.Set("role", "owner")
	r.Set("name", "Bench Owner")
	if err := o.PB.Save(r); err != nil {
		return "", err
	}
	return r.NewAuthToken()
}

// loadCustomers publishes an identify and an email subscription for n
// customers and returns their profile ids once all are stored.
func loadCustomers(o *app.Omni, n int) ([]string, error) {
	ctx := context.Background()
	now := time.Now().UTC()
	var batch []*events.Event
	flush := func() error {
		for i, err := range ingest.Publish(ctx, o.Bus, batch) {
			if err != nil {
				return fmt.Errorf("publish %s: %w", batch[i].ID, err)
			}
		}
		batch = batch[:0]
		return nil
	}
	for i := range n {
		ids := events.Identities{events.Email: fmt.Sprintf("c%d@omni-shop.dev", i)}
		batch = append(batch,
			&events.Event{ID: fmt.Sprintf("bench-id-%d", i), Type: events.Identify, Source: "bench", OccurredAt: now, ReceivedAt: now,
				Identities: ids, Properties: map[string]any{"traits": map[string]any{"first_name": fmt.Sprintf("Cus%d", i)}}},
			&events.Event{ID: fmt.Sprintf("bench-consent-%d", i), Type: events.ConsentChanged, Source: "bench", OccurredAt: now.Add(time.Millisecond), ReceivedAt: now,
				Identities: ids, Properties: map[string]any{"channel": "email", "status": "subscribed", "reason": "bench"}})
		if len(batch) >= 1000 {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		var subscribed int
		_ = o.PB.DB().NewQuery(`SELECT COUNT(*) FROM profiles WHERE merged_into='' AND json_extract(consent, '$.email.status')='subscribed'`).Row(&subscribed)
		if subscribed >= n {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return nil, fmt.Errorf("only %d of %d customers subscribed after 10 minutes", subscribed, n)
		}
	}
	var ids []string
	err := o.PB.DB().NewQuery(`SELECT id FROM profiles WHERE merged_into='' AND json_extract(consent, '$.email.status')='subscribed' ORDER BY id`).Column(&ids)
	return ids, err
}

// smtpSink is an SMTP server that accepts every message and notes when
// each Message-ID's DATA was accepted.
type smtpSink struct {
	srv  *smtp.Server
	port int
	mu   sync.Mutex
	at   map[string]time.Time // ledger id → accepted
}

func startSMTP() (*smtpSink, error) {
	s := &smtpSink{at: map[string]time.Time{}}
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout, s.srv.WriteTimeout = 30*time.Second, 30*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

func (s *smtpSink) close() { _ = s.srv.Close() }

func (s *smtpSink) receivedAt(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[id]
	return t, ok
}

func (s *smtpSink) NewSession(*smtp.Conn) (smtp.Session, error) { return sinkSession{s}, nil }

type sinkSession struct{ s *smtpSink }

func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }

// Data reads the header for the Message-ID and drains the body.
func (ss sinkSession) Data(r io.Reader) error {
	br := bufio.NewReader(r)
	h, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	if id := email.OutboundID(h.Get("Message-Id")); id != "" {
		ss.s.mu.Lock()
		ss.s.at[id] = time.Now()
		ss.s.mu.Unlock()
	}
	return nil
}
