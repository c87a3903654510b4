package example_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/omni/omni/plugins/example"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.MainOrServe(m, example.New) }

// fakeAPI is the example vendor: records messages, pages events.
type fakeAPI struct {
	mu       sync.Mutex
	messages []sdk.OutboundMessage
	status   int
	delay    time.Duration // before answering a message, so sends overlap
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/messages":
		var m sdk.OutboundMessage
		_ = json.NewDecoder(r.Body).Decode(&m)
		f.mu.Lock()
		st, delay := f.status, f.delay
		f.messages = append(f.messages, m)
		f.mu.Unlock()
		time.Sleep(delay)
		if st == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		if st != 0 {
			w.WriteHeader(st)
			return
		}
		_, _ = w.Write([]byte(`{"id":"prov-` + m.ID + `"}`))
	case "/events":
		cur := r.URL.Query().Get("cursor")
		next := map[string]string{"": "p2", "p2": ""}[cur]
		at := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"events":      []example.Payload{{ID: "h1" + cur, Type: "order.placed", Email: "a@b.co", OccurredAt: at}, {ID: "h2" + cur, Type: "order.placed", Email: "c@d.co", OccurredAt: at}},
			"next_cursor": next, "total": 4,
		})
	default:
		http.NotFound(w, r)
	}
}

func run(t *testing.T, h *sdktest.Harness, api *fakeAPI) {
	body := []byte(`{"id":"evt1","type":"order.placed","email":"Ann@Example.com","properties":{"total":12.5}}`)
	bad := h.Webhook(t, "POST", "/", map[string]string{example.SignatureHeader: "sha256=00"}, body)
	if bad.Status != http.StatusUnauthorized || len(bad.Events) != 0 {
		t.Fatalf("bad signature: status %d, %d events", bad.Status, len(bad.Events))
	}
	ok := h.Webhook(t, "POST", "/", map[string]string{example.SignatureHeader: example.Sign("s3cret", body)}, body)
	if ok.Status != 200 || len(ok.Events) != 1 || ok.Events[0].ID != "example:evt1" || ok.Events[0].Properties["total"] != 12.5 {
		t.Fatalf("webhook: %+v", ok)
	}
	// Emit path: events come back through the broker callback.
	h.Webhook(t, "POST", "/emit", map[string]string{example.SignatureHeader: example.Sign("s3cret", body)}, body)
	if em := h.Emitted(); len(em) != 1 || em[0].Identities["email"] != "Ann@Example.com" {
		t.Fatalf("emitted: %+v", em)
	}

	res, err := h.Send(&sdk.OutboundMessage{ID: "m1", Channel: "sms", To: map[string]string{"phone": "+15550001111"}, Text: "hi"})
	if err != nil || res.ProviderMessageID != "prov-m1" {
		t.Fatalf("send: %v %v", res, err)
	}
	api.mu.Lock()
	api.status = http.StatusTooManyRequests
	api.mu.Unlock()
	_, err = h.Send(&sdk.OutboundMessage{ID: "m2", Text: "hi"})
	var se *sdk.SendError
	if !errors.As(err, &se) || se.Kind != sdk.KindRateLimited || se.RetryAfter != 7*time.Second {
		t.Fatalf("rate limited: %#v", err)
	}
	api.mu.Lock()
	api.status = http.StatusBadRequest
	api.mu.Unlock()
	_, err = h.Send(&sdk.OutboundMessage{ID: "m3", Text: "hi"})
	if !errors.As(err, &se) || se.Kind != sdk.KindPermanent || se.Code != "400" {
		t.Fatalf("permanent: %#v", err)
	}

	evs, progress, err := h.Backfill(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), "")
	if err != nil || len(evs) != 4 || len(progress) != 2 || progress[1].Done != 4 || progress[1].Total != 4 {
		t.Fatalf("backfill: %v %d events %+v", err, len(evs), progress)
	}
	if len(h.Logs()) == 0 {
		t.Fatal("no log line came back through the host callback")
	}
}

func TestExampleInProcess(t *testing.T) {
	api := &fakeAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	run(t, sdktest.Start(t, example.New(), sdk.Config{"webhook_secret": "s3cret", "api_url": srv.URL}), api)
}

func TestExampleSubprocess(t *testing.T) {
	api := &fakeAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	run(t, sdktest.StartSelf(t, sdk.Config{"webhook_secret": "s3cret", "api_url": srv.URL}), api)
}

// Omni runs several of a connector's sends at once: they must reuse the
// vendor connections rather than open one for most messages (Go's default
// transport keeps only 2 idle per host).
func TestConcurrentSendsReuseConnections(t *testing.T) {
	api := &fakeAPI{delay: 5 * time.Millisecond}
	srv, opened := sdktest.CountingServer(t, api)
	h := sdktest.Start(t, example.New(), sdk.Config{"webhook_secret": "s3cret", "api_url": srv.URL})
	const senders, rounds = 8, 5
	for r := range rounds {
		var wg sync.WaitGroup
		for i := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := h.Send(&sdk.OutboundMessage{ID: fmt.Sprintf("m%d-%d", r, i), Channel: "sms", Text: "hi"}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	api.mu.Lock()
	n := len(api.messages)
	api.mu.Unlock()
	if n != senders*rounds {
		t.Fatalf("the vendor got %d messages, want %d", n, senders*rounds)
	}
	if n := opened(); n > senders {
		t.Fatalf("%d sends opened %d connections, want at most %d", senders*rounds, n, senders)
	}
}

func TestExampleConfigErrorNamesField(t *testing.T) {
	h := sdktest.Start(t, example.New(), nil)
	err := h.Connector.Configure(t.Context(), sdk.Config{"api_url": "x"}, h)
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Field != "webhook_secret" {
		t.Fatalf("want ConfigError on webhook_secret, got %#v", err)
	}
}
