package journeys

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/journeys/graph"
)

// Webhook steps POST the run to the owner's URL, signed, outside the
// batch transaction: the run waits (a lease of webhookLease) while a
// worker calls, then the worker resumes it by "ok" or "failed", or sets
// the next try. A crash mid-call leaves the run waiting; when the lease
// ends the engine calls again with the same X-Omni-Delivery, which
// receivers dedupe on.
const (
	webhookTimeout = 10 * time.Second
	webhookLease   = 30 * time.Second
	webhookTries   = 5
	// WebhookKeyFile holds the per-install signing key, in the data dir.
	WebhookKeyFile = "journeys_webhook.key"
)

// webhookBackoff is the wait after each failed try (5 tries over ~30 min).
var webhookBackoff = []time.Duration{time.Minute, 4 * time.Minute, 10 * time.Minute, 15 * time.Minute}

// hookCall is one call to make.
type hookCall struct {
	Run, Node string
	Attempt   int // the run's visit counter: identifies the delivery
	Try       int // failed tries so far
	URL       string
	Body      []byte
}

func (c hookCall) delivery() string { return visitKey(c.Run, c.Node, c.Attempt) }

type webhooks struct {
	e        *engine
	client   *http.Client
	backoff  []time.Duration
	mu       sync.Mutex
	inflight map[string]bool
	wg       sync.WaitGroup
	keyMu    sync.Mutex
	key      []byte
}

func newWebhooks(e *engine) *webhooks {
	return &webhooks{e: e, client: &http.Client{Timeout: webhookTimeout}, backoff: webhookBackoff, inflight: map[string]bool{}}
}

// busy reports a call in flight for the run.
func (w *webhooks) busy(run string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inflight[run]
}

// dispatch starts the call unless one is in flight for the run.
func (w *webhooks) dispatch(c hookCall) {
	w.mu.Lock()
	if w.inflight[c.Run] {
		w.mu.Unlock()
		return
	}
	w.inflight[c.Run] = true
	w.wg.Add(1)
	w.mu.Unlock()
	go func() {
		defer func() {
			w.mu.Lock()
			delete(w.inflight, c.Run)
			w.mu.Unlock()
			w.wg.Done()
		}()
		w.call(c)
	}()
}

func (w *webhooks) stop(ctx context.Context) {
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// call makes one try and records its outcome on the run.
func (w *webhooks) call(c hookCall) {
	status, err := w.post(c)
	tries := c.Try + 1
	detail := map[string]any{"status": status, "tries": tries, "delivery": c.delivery()}
	if err != nil {
		detail["error"] = err.Error()
	}
	now := w.e.m.opts.Now().UTC()
	var werr error
	switch {
	case err == nil:
		werr = w.finish(c, "ok", detail, now)
	case tries >= webhookTries:
		werr = w.finish(c, "failed", detail, now)
	default:
		wait := w.backoff[min(c.Try, len(w.backoff)-1)]
		w.e.m.log.Info("journeys: webhook failed; will retry", "run", c.Run, "node", c.Node, "try", tries, "error", err, "in", wait)
		_, werr = w.e.m.app.DB().NewQuery("UPDATE " + RunsCollection + ` SET due_at={:due},
			context=json_set(CASE WHEN json_valid(context) THEN context ELSE '{}' END, '$.tries', {:tries}), updated={:now}
			WHERE id={:id} AND status='waiting' AND node={:node} AND attempt={:a}`).
			Bind(dbx.Params{"due": fmtT(now.Add(wait)), "tries": tries, "now": fmtT(now), "id": c.Run, "node": c.Node, "a": c.Attempt}).Execute()
	}
	if werr != nil {
		// The lease ends and the engine calls again: receivers dedupe.
		w.e.m.log.Error("journeys: recording a webhook outcome failed", "run", c.Run, "error", werr)
	}
	w.e.m.kick()
}

// finish resumes the run by exit, if it is still waiting at this visit.
func (w *webhooks) finish(c hookCall, exit string, detail map[string]any, now time.Time) error {
	d, _ := json.Marshal(detail)
	return w.e.m.app.RunInTransaction(func(tx core.App) error {
		_, err := tx.DB().NewQuery("UPDATE " + RunsCollection + ` SET status='active', due_at={:now},
			context=json_set(json_set(CASE WHEN json_valid(context) THEN context ELSE '{}' END, '$.resume', {:exit}), '$.resume_with', json({:d})),
			updated={:now} WHERE id={:id} AND status='waiting' AND node={:node} AND attempt={:a}`).
			Bind(dbx.Params{"now": fmtT(now), "exit": exit, "d": string(d), "id": c.Run, "node": c.Node, "a": c.Attempt}).Execute()
		return err
	})
}

// post sends the body signed; a 2xx answer is success.
func (w *webhooks) post(c hookCall) (int, error) {
	key, err := w.signingKey()
	if err != nil {
		return 0, fmt.Errorf("signing key: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(c.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Omni-Journeys")
	req.Header.Set("X-Omni-Signature", "sha256="+Sign(key, c.Body))
	req.Header.Set("X-Omni-Delivery", c.delivery())
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, errors.New(strings.TrimSpace(redactURL(err.Error(), c.URL)))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("the endpoint answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// redactURL keeps a URL's query (which may hold a token) out of errors.
func redactURL(msg, u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return strings.ReplaceAll(msg, u, u[:i]+"?…")
	}
	return msg
}

// Sign is the hex HMAC-SHA256 of body under key, as sent in
// X-Omni-Signature ("sha256=" + Sign).
func Sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// signingKey reads the install's key, creating it (0600) on first use.
func (w *webhooks) signingKey() ([]byte, error) {
	w.keyMu.Lock()
	defer w.keyMu.Unlock()
	if w.key != nil {
		return w.key, nil
	}
	dir := "."
	if o := w.e.m.o; o != nil && o.Config != nil && o.Config.DataDir != "" {
		dir = o.Config.DataDir
	}
	key, err := loadOrCreateKey(filepath.Join(dir, WebhookKeyFile))
	if err != nil {
		return nil, err
	}
	w.key = key
	return key, nil
}

func loadOrCreateKey(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		k := bytes.TrimSpace(b)
		if len(k) < 32 {
			return nil, fmt.Errorf("%s is too short to be a key", path)
		}
		return k, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	k := []byte(hex.EncodeToString(raw))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateKey(path) // created meanwhile
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(append(k, '\n')); err != nil {
		f.Close()
		return nil, err
	}
	return k, f.Close()
}

// stepWebhook calls the URL through the worker; the run waits meanwhile.
func (b *batch) stepWebhook(st *runState, id string, n *graph.Node) (outcome, error) {
	if r := st.ctx.Resume; r == "ok" || r == "failed" {
		return leave(r, st.ctx.ResumeWith), nil
	}
	if b.e.hooks.busy(st.ID) {
		return stay(b.now.Add(webhookLease)), nil // still calling: extend the lease
	}
	body, err := json.Marshal(map[string]any{"journey": st.Journey, "journey_name": st.j.Name, "run": st.ID, "profile": st.Profile,
		"node": id, "context": publicContext(&st.ctx), "sent_at": b.now.Format(time.RFC3339)})
	if err != nil {
		return outcome{}, err
	}
	st.hooks = append(st.hooks, hookCall{Run: st.ID, Node: id, Attempt: st.Attempt, Try: st.ctx.Tries, URL: n.URL, Body: body})
	return stay(b.now.Add(webhookLease)), nil
}
