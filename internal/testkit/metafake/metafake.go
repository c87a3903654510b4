// Package metafake runs a local WhatsApp Cloud API (Meta's Graph API) for
// tests that drive the real whatsapp connector, e.g. as a plugin
// subprocess of the omni binary: Bearer auth, GET /{version}/{phone number
// id} (the connector's health check), and POST /{version}/{phone number
// id}/messages answered with the documented body and a fresh wamid, each
// request kept for the test to read.
package metafake

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

// Server is a running fake; point the connector's base_url at URL.
type Server struct {
	*httptest.Server
	Version, PhoneNumberID, Token string

	mu   sync.Mutex
	sent []Message
}

// Message is one accepted send: the JSON body the connector posted and the
// wamid it was answered with.
type Message struct {
	To       string
	Type     string // text or template
	Template string // the template's name, for template messages
	Body     map[string]any
	WAMID    string
}

// Start runs a fake on 127.0.0.1 until the test ends, accepting token for
// phone number id pnid on Graph API version "v23.0" (the connector's default).
func Start(t testing.TB, pnid, token string) *Server {
	s := &Server{Version: "v23.0", PhoneNumberID: pnid, Token: token}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{version}/{pnid}", s.phoneNumber)
	mux.HandleFunc("POST /{version}/{pnid}/messages", s.messages)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// Sent is every accepted message so far, in order.
func (s *Server) Sent() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.sent...)
}

// SentTo is the accepted messages to one recipient (digits only, as the
// connector sends them).
func (s *Server) SentTo(to string) []Message {
	var out []Message
	for _, m := range s.Sent() {
		if m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// metaError answers in Meta's error object shape.
func metaError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"message":%q,"type":"OAuthException","code":%d,"fbtrace_id":"AbCdEfGh"}}`, msg, code)
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("version") != s.Version || r.PathValue("pnid") != s.PhoneNumberID {
		metaError(w, http.StatusBadRequest, 100, "Unsupported post request. Object with ID does not exist")
		return false
	}
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		metaError(w, http.StatusUnauthorized, 190, "Invalid OAuth access token - Cannot parse access token")
		return false
	}
	return true
}

func (s *Server) phoneNumber(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":%q,"display_phone_number":"15550783881","verified_name":"Omni Test Shop"}`, s.PhoneNumberID)
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		metaError(w, http.StatusBadRequest, 100, "content type must be application/json")
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil || body["messaging_product"] != "whatsapp" {
		metaError(w, http.StatusBadRequest, 100, "The parameter messaging_product is required.")
		return
	}
	to, _ := body["to"].(string)
	if to == "" {
		metaError(w, http.StatusBadRequest, 100, "The parameter to is required.")
		return
	}
	m := Message{To: to, Body: body}
	m.Type, _ = body["type"].(string)
	if tpl, ok := body["template"].(map[string]any); ok {
		m.Template, _ = tpl["name"].(string)
	}
	s.mu.Lock()
	m.WAMID = fmt.Sprintf("wamid.FAKE%08d", len(s.sent)+1)
	s.sent = append(s.sent, m)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"messaging_product":"whatsapp","contacts":[{"input":%q,"wa_id":%q}],"messages":[{"id":%q}]}`, to, to, m.WAMID)
}
