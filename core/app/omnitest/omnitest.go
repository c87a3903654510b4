// Package omnitest starts a real Omni (PocketBase on SQLite, embedded
// JetStream, HTTP on 127.0.0.1) inside a Go test.
package omnitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/logging"
	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// Server is a running Omni for one test.
type Server struct {
	*app.Omni
	URL      string
	WriteKey string // of the browser source "test"
	SourceID string // its record id
	stopped  bool
}

// Options customise Start.
type Options struct {
	// DataDir reuses a directory (to test restarts); default t.TempDir().
	DataDir string
	// Configure edits the configuration before start.
	Configure func(*config.Config)
	// Modules are added before serving (connectors, profiles, …).
	Modules func(o *app.Omni) []app.Module
	// Log receives the server's logs (default: discarded unless -v).
	Log io.Writer
	// Listen is the address HTTP listens on (default 127.0.0.1:0). A test
	// of behaviour that differs off loopback may use 0.0.0.0:0; URL then
	// still points at 127.0.0.1.
	Listen string
}

// Start boots Omni and registers Stop with t.Cleanup. It creates a source
// named "test" whose write key is in Server.WriteKey.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = opts.DataDir
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	// Tests read the metrics right after the events are stored: the
	// rollups work in the events transaction unless a test opts in to the
	// follower (metrics.max_delay > 0).
	cfg.Metrics.MaxDelay = 0
	// And they read what they sent right after the 200: stored at once.
	cfg.Ingest.AckFirst = 0
	if opts.Configure != nil {
		opts.Configure(cfg)
	}
	w := opts.Log
	if w == nil {
		w = io.Discard
		if testing.Verbose() {
			w = os.Stderr
		}
	}
	log := logging.New(w, "info", "text")
	o := app.New(cfg, log)
	if opts.Modules != nil {
		for _, m := range opts.Modules(o) {
			o.Use(m)
		}
	}
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- o.Serve(ln, ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("omni did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("omni did not start within 30s")
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	host, _, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	s := &Server{Omni: o, URL: "http://" + net.JoinHostPort(host, port)}
	t.Cleanup(s.Stop)

	src, err := ingest.CreateSource(o.PB, "test", ingest.KindBrowser)
	if err != nil {
		if recs, ferr := o.PB.FindRecordsByFilter("sources", "name = 'test'", "", 1, 0); ferr == nil && len(recs) == 1 {
			s.WriteKey, s.SourceID = recs[0].GetString("write_key"), recs[0].Id
		} else {
			t.Fatalf("create source: %v", err)
		}
	} else {
		s.WriteKey, s.SourceID = src.WriteKey, src.Record.Id
	}
	return s
}

// Stop shuts the server down cleanly (idempotent).
func (s *Server) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	_ = s.Shutdown()
}

// Do sends a request with an optional JSON body and returns status and body.
func (s *Server) Do(t testing.TB, method, path string, body any, header http.Header) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = bytes.NewReader([]byte(b))
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" && body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// Track posts to a tracking endpoint with the test source's write key.
func (s *Server) Track(t testing.TB, path string, body any) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", "/", nil)
	req.SetBasicAuth(s.WriteKey, "")
	return s.Do(t, "POST", path, body, http.Header{"Authorization": req.Header["Authorization"]})
}

// EventID is the stored id of a message the "test" source sent with
// messageId (tracking-API ids are scoped by source).
func (s *Server) EventID(messageID string) string { return events.TrackingID(s.SourceID, messageID) }

// CountEvents returns how many events are stored.
func (s *Server) CountEvents(t testing.TB) int {
	t.Helper()
	var n int
	if err := s.PB.DB().NewQuery("SELECT COUNT(*) FROM events").Row(&n); err != nil {
		t.Fatalf("count events: %v", err)
	}
	return n
}

// WaitEvents waits until at least n events are stored (up to 60s).
func (s *Server) WaitEvents(t testing.TB, n int) {
	t.Helper()
	Eventually(t, 60*time.Second, func() bool { return s.CountEvents(t) >= n }, "%d events stored", n)
}

// WaitEvent waits until the event with this id is stored (up to 60s). A
// count of events (WaitEvents) can be reached by events Omni derives and
// relays meanwhile, such as segment events; an id cannot.
func (s *Server) WaitEvent(t testing.TB, id string) {
	t.Helper()
	Eventually(t, 60*time.Second, func() bool {
		var n int
		if err := s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE event_id={:id}").Bind(dbx.Params{"id": id}).Row(&n); err != nil {
			t.Fatalf("count event %s: %v", id, err)
		}
		return n == 1
	}, "event %s stored", id)
}

// WaitConsumed waits (up to 60s) until the events consumer has taken every
// message on EVENTS at the time of the call: each one stored, or dropped as
// Omni drops it (a duplicate, an erasure notice), in a committed batch.
// Unlike a count of stored events (WaitEvents), events Omni derives
// meanwhile cannot end it early, and an event Omni drops cannot keep it
// waiting.
func (s *Server) WaitConsumed(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	str, err := s.Bus.JS.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatalf("stream %s: %v", bus.StreamEvents, err)
	}
	last := str.CachedInfo().State.LastSeq
	cons, err := str.Consumer(ctx, eventstore.ConsumerName)
	if err != nil {
		t.Fatalf("consumer %s: %v", eventstore.ConsumerName, err)
	}
	Eventually(t, 60*time.Second, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.AckFloor.Stream >= last
	}, "the events consumer to take EVENTS up to sequence %d", last)
}

// Eventually polls cond until it holds or the timeout passes, then fails
// the test with "timed out waiting for " + what. It is the one polling
// helper of Omni's tests: the pause between polls starts at 20 ms and
// grows to 250 ms, so a slow condition (an HTTP round trip, a password
// check) does not take a core from the server it waits for.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := 20 * time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+what, args...)
		}
		time.Sleep(pause)
		pause = min(pause*3/2, 250*time.Millisecond)
	}
}

// Staff creates a staff member with role "owner" or "agent" and returns an
// auth token for the Authorization header.
func (s *Server) Staff(t testing.TB, email, role string) string {
	t.Helper()
	col, err := s.PB.FindCollectionByNameOrId("staff")
	if err != nil {
		t.Fatal(err)
	}
	r := core.NewRecord(col)
	r.SetEmail(email)
	r.SetPassword("password-123456")
	r.Set("role", role)
	r.Set("name", role)
	if err := s.PB.Save(r); err != nil {
		t.Fatalf("create staff %s: %v", email, err)
	}
	tok, err := r.NewAuthToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Auth is the header that carries a token.
func Auth(token string) http.Header { return http.Header{"Authorization": {token}} }
