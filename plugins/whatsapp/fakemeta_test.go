package whatsapp

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeMeta is a local Graph API speaking the Cloud API contract: Bearer
// auth, POST /{version}/{phone-number-id}/messages with a JSON body, the
// documented 200 body, and Meta error objects. A recipient listed in
// failWith gets that error instead.
type fakeMeta struct {
	*httptest.Server
	t             *testing.T
	version, pnid string
	token         string
	okResponse    []byte

	mu       sync.Mutex
	requests []map[string]any
	failWith map[string]fakeFailure
}

type fakeFailure struct {
	status     int
	code       int
	message    string
	retryAfter string
}

func newFakeMeta(t *testing.T, okResponse []byte) *fakeMeta {
	f := &fakeMeta{t: t, version: "v23.0", pnid: "106540352242922", token: "test-token",
		okResponse: okResponse, failWith: map[string]fakeFailure{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{version}/{pnid}/messages", f.messages)
	mux.HandleFunc("GET /{version}/{pnid}", f.phoneNumber)
	f.Server = httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(f.Close)
	return f
}

func (f *fakeMeta) fail(to string, ff fakeFailure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failWith[to] = ff
}

func metaErr(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"message":%q,"type":"OAuthException","code":%d,"error_data":{"messaging_product":"whatsapp","details":%q},"fbtrace_id":"AbCdEf"}}`, msg, code, msg)
}

func (f *fakeMeta) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("version") != f.version || r.PathValue("pnid") != f.pnid {
		metaErr(w, http.StatusBadRequest, 100, "Unsupported post request. Object with ID does not exist")
		return false
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		metaErr(w, http.StatusUnauthorized, 190, "Invalid OAuth access token - Cannot parse access token")
		return false
	}
	return true
}

func (f *fakeMeta) phoneNumber(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	fmt.Fprintf(w, `{"id":%q,"display_phone_number":"+1 555-078-3881"}`, f.pnid)
}

func (f *fakeMeta) messages(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		metaErr(w, http.StatusBadRequest, 100, "content type must be application/json")
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		metaErr(w, http.StatusBadRequest, 100, "invalid JSON")
		return
	}
	if body["messaging_product"] != "whatsapp" {
		metaErr(w, http.StatusBadRequest, 100, "The parameter messaging_product is required.")
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, body)
	ff, failing := f.failWith[fmt.Sprint(body["to"])]
	f.mu.Unlock()
	if failing {
		if ff.retryAfter != "" {
			w.Header().Set("Retry-After", ff.retryAfter)
		}
		if ff.code == 0 {
			w.WriteHeader(ff.status)
			io.WriteString(w, "upstream trouble")
			return
		}
		metaErr(w, ff.status, ff.code, ff.message)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(f.okResponse)
}

func (f *fakeMeta) sent() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.requests...)
}
