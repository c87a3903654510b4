// Package twiliofake is a local Twilio for tests, built from Twilio's
// documented contract (no recorded samples exist in the shared fixtures):
// the Messages API (form-encoded POST, HTTP Basic with the account or an
// API key, 201 JSON with an SM sid, JSON errors with Twilio codes), the
// account read used for health, and Twilio's side of the webhooks: signed
// status callbacks to a message's StatusCallback and signed inbound SMS,
// with Advanced Opt-Out (a STOP blocks later sends with 21610).
package twiliofake

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Fake is a running Twilio.
type Fake struct {
	*httptest.Server
	AccountSID, AuthToken string
	// APIKeySID/APIKeySecret, when set, are accepted as Basic credentials too.
	APIKeySID, APIKeySecret string

	mu       sync.Mutex
	seq      int
	messages []Message
	failures map[string][]Failure // by To: answered in order, then success
	optedOut map[string]bool
	hits     map[string]int
}

// Message is one send Twilio accepted, with the form it was posted.
type Message struct {
	SID  string
	Form url.Values
}

// Failure is an error answer: Code 0 sends a bare status with no JSON.
type Failure struct {
	Status     int
	Code       int
	Message    string
	RetryAfter string
}

// New starts a fake Twilio on 127.0.0.1.
func New(t testing.TB) *Fake {
	f := &Fake{AccountSID: "AC" + strings.Repeat("0a", 16), AuthToken: "fake-auth-token-0123456789abcdef",
		failures: map[string][]Failure{}, optedOut: map[string]bool{}, hits: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", f.createMessage)
	mux.HandleFunc("GET /2010-04-01/Accounts/{file}", f.account)
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// Fail makes the next sends to `to` fail, one failure per send.
func (f *Fake) Fail(to string, fs ...Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[to] = append(f.failures[to], fs...)
}

// Messages returns the accepted sends.
func (f *Fake) Messages() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Message(nil), f.messages...)
}

// Hits counts send attempts to `to`, failed ones included.
func (f *Fake) Hits(to string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[to]
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status})
}

func (f *Fake) authorized(w http.ResponseWriter, r *http.Request, sid string) bool {
	user, pass, ok := r.BasicAuth()
	good := ok && ((user == f.AccountSID && pass == f.AuthToken) ||
		(f.APIKeySID != "" && user == f.APIKeySID && pass == f.APIKeySecret))
	if !good {
		writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return false
	}
	if sid != f.AccountSID {
		writeError(w, http.StatusNotFound, 20404, "The requested resource was not found")
		return false
	}
	return true
}

func (f *Fake) account(w http.ResponseWriter, r *http.Request) {
	sid, ok := strings.CutSuffix(r.PathValue("file"), ".json")
	if !ok || !f.authorized(w, r, sid) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"sid":%q,"friendly_name":"My first Twilio account","status":"active","type":"Full","auth_token":"[redacted]"}`, f.AccountSID)
}

func (f *Fake) createMessage(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r, r.PathValue("sid")) {
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		writeError(w, http.StatusBadRequest, 20001, "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	raw, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		writeError(w, http.StatusBadRequest, 20001, "malformed form body")
		return
	}
	to := form.Get("To")
	f.mu.Lock()
	f.hits[to]++
	var fail *Failure
	if q := f.failures[to]; len(q) > 0 {
		fail, f.failures[to] = &q[0], q[1:]
	}
	opted := f.optedOut[to]
	f.mu.Unlock()
	switch {
	case fail != nil:
		if fail.RetryAfter != "" {
			w.Header().Set("Retry-After", fail.RetryAfter)
		}
		if fail.Code == 0 {
			w.WriteHeader(fail.Status)
			io.WriteString(w, "upstream trouble")
			return
		}
		writeError(w, fail.Status, fail.Code, fail.Message)
		return
	case to == "":
		writeError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
		return
	case !strings.HasPrefix(to, "+") || len(to) < 9:
		writeError(w, http.StatusBadRequest, 21211, fmt.Sprintf("The 'To' number %s is not a valid phone number.", to))
		return
	case form.Get("From") == "" && form.Get("MessagingServiceSid") == "":
		writeError(w, http.StatusBadRequest, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message")
		return
	case form.Get("Body") == "" && form.Get("MediaUrl") == "":
		writeError(w, http.StatusBadRequest, 21602, "Message body is required.")
		return
	case opted:
		writeError(w, http.StatusBadRequest, 21610, "Attempt to send to unsubscribed recipient")
		return
	}
	f.mu.Lock()
	f.seq++
	sid := fmt.Sprintf("SM%032x", f.seq)
	f.messages = append(f.messages, Message{SID: sid, Form: form})
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{
		"account_sid": f.AccountSID, "api_version": "2010-04-01", "body": form.Get("Body"),
		"direction": "outbound-api", "error_code": nil, "error_message": nil,
		"from": form.Get("From"), "messaging_service_sid": nilIfEmpty(form.Get("MessagingServiceSid")),
		"num_media": "0", "num_segments": "1", "price": nil, "price_unit": "USD",
		"sid": sid, "status": "queued", "to": to,
		"uri": "/2010-04-01/Accounts/" + f.AccountSID + "/Messages/" + sid + ".json",
	})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Status posts the signed status callback Twilio sends for an accepted
// message to its StatusCallback URL; errorCode is "" unless failed. It
// returns the HTTP status Omni answered.
func (f *Fake) Status(t testing.TB, sid, status, errorCode string) int {
	t.Helper()
	var m *Message
	f.mu.Lock()
	for i := range f.messages {
		if f.messages[i].SID == sid {
			m = &f.messages[i]
		}
	}
	f.mu.Unlock()
	if m == nil || m.Form.Get("StatusCallback") == "" {
		t.Fatalf("twiliofake: no message %s with a StatusCallback", sid)
	}
	p := url.Values{"AccountSid": {f.AccountSID}, "ApiVersion": {"2010-04-01"}, "MessageSid": {sid}, "SmsSid": {sid},
		"MessageStatus": {status}, "SmsStatus": {status}, "To": {m.Form.Get("To")}, "From": {m.Form.Get("From")}}
	if errorCode != "" {
		p.Set("ErrorCode", errorCode)
	}
	if svc := m.Form.Get("MessagingServiceSid"); svc != "" {
		p.Set("MessagingServiceSid", svc)
	}
	code, _ := f.Post(t, m.Form.Get("StatusCallback"), p)
	return code
}

// Inbound posts the signed webhook Twilio sends when `from` texts the
// shop's number `to`, to the number's incoming-message URL. Advanced
// Opt-Out is on: STOP and START keywords set OptOutType and change what
// later sends to `from` get. media are MMS attachment URLs.
func (f *Fake) Inbound(t testing.TB, webhookURL, from, to, body string, media ...string) (int, []byte) {
	t.Helper()
	f.mu.Lock()
	f.seq++
	sid := fmt.Sprintf("SM%032x", 1<<40+f.seq)
	f.mu.Unlock()
	p := url.Values{"AccountSid": {f.AccountSID}, "ApiVersion": {"2010-04-01"}, "MessageSid": {sid}, "SmsMessageSid": {sid},
		"SmsSid": {sid}, "SmsStatus": {"received"}, "From": {from}, "To": {to}, "Body": {body},
		"NumMedia": {fmt.Sprint(len(media))}, "NumSegments": {"1"}, "FromCountry": {"US"}, "ToCountry": {"US"}}
	for i, u := range media {
		p.Set(fmt.Sprintf("MediaUrl%d", i), u)
		p.Set(fmt.Sprintf("MediaContentType%d", i), "image/jpeg")
	}
	switch strings.ToUpper(strings.TrimSpace(body)) {
	case "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE":
		p.Set("OptOutType", "STOP")
		f.mu.Lock()
		f.optedOut[from] = true
		f.mu.Unlock()
	case "START", "YES", "UNSTOP":
		p.Set("OptOutType", "START")
		f.mu.Lock()
		delete(f.optedOut, from)
		f.mu.Unlock()
	case "HELP", "INFO":
		p.Set("OptOutType", "HELP")
	}
	return f.Post(t, webhookURL, p)
}

// Post sends form params to a webhook URL signed as Twilio does.
func (f *Fake) Post(t testing.TB, webhookURL string, p url.Values) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, webhookURL, strings.NewReader(p.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", Signature(f.AuthToken, webhookURL, p))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("twiliofake: webhook %s: %v", webhookURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// Signature is X-Twilio-Signature, written here independently of the
// connector so a shared mistake cannot pass both sides.
func Signature(authToken, fullURL string, p url.Values) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		for _, v := range p[k] {
			b.WriteString(k + v)
		}
	}
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
