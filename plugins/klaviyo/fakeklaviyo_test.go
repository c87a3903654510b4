package klaviyo

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKlaviyo is a local Klaviyo API speaking the documented contract:
// Klaviyo-API-Key auth, a required revision header, JSON:API bodies,
// links.next cursor paging (page size capped like the recording), and 429
// throttling with retry-after and the recorded error body.
type fakeKlaviyo struct {
	*httptest.Server
	t        *testing.T
	key      string
	revision string
	pageCap  int

	mu          sync.Mutex
	metrics     []resource
	events      []fakeEvent // sorted by time
	profiles    map[string]resource
	posts       map[string][]map[string]any // path → bodies
	throttle    map[string]int              // path → how many 429s to answer next
	eventQuery  []string                    // filters seen on /api/events
	importReply []byte
	throttled   []byte
	privacyDown bool           // the Data Privacy API answers 503
	calls       map[string]int // path → requests seen, answered or not
}

type fakeEvent struct {
	metricID string
	at       time.Time
	res      resource
}

func newFakeKlaviyo(t *testing.T) *fakeKlaviyo {
	f := &fakeKlaviyo{t: t, key: "pk_test_123", revision: DefaultRevision, pageCap: 2,
		profiles: map[string]resource{}, posts: map[string][]map[string]any{}, throttle: map[string]int{}, calls: map[string]int{}}
	var rec struct {
		Response struct {
			Body json.RawMessage `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(readFixture(t, "profile_import_201.recorded.json"), &rec); err != nil {
		t.Fatal(err)
	}
	f.importReply = append([]byte(nil), rec.Response.Body...)
	if err := json.Unmarshal(readFixture(t, "rate_limited_429.recorded.json"), &rec); err != nil {
		t.Fatal(err)
	}
	f.throttled = append([]byte(nil), rec.Response.Body...)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/accounts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", jsonAPI)
		io.WriteString(w, `{"data":[{"type":"account","id":"WBhXHN","attributes":{}}]}`)
	})
	mux.HandleFunc("GET /api/metrics", f.listMetrics)
	mux.HandleFunc("GET /api/events", f.listEvents)
	for _, p := range []string{"/api/events", "/api/profile-import", "/api/profile-subscription-bulk-create-jobs", "/api/profile-subscription-bulk-delete-jobs"} {
		mux.HandleFunc("POST "+p, f.post)
	}
	mux.HandleFunc("POST /api/data-privacy-deletion-jobs", f.deletionJob)
	f.Server = httptest.NewServer(f.guard(mux))
	t.Cleanup(f.Close)
	return f
}

func apiErr(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", jsonAPI)
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"id":"x","status":%d,"code":%q,"title":%q,"detail":%q,"source":{"pointer":"/data/"}}]}`, status, code, detail, detail)
}

// guard enforces the headers every Klaviyo call needs, and throttling.
func (f *fakeKlaviyo) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Klaviyo-API-Key "+f.key {
			apiErr(w, http.StatusUnauthorized, "not_authenticated", "Missing or invalid private key.")
			return
		}
		if r.Header.Get("revision") != f.revision {
			apiErr(w, http.StatusBadRequest, "invalid", "revision header is missing or unsupported")
			return
		}
		if r.Method == http.MethodPost && !strings.HasPrefix(r.Header.Get("Content-Type"), jsonAPI) {
			apiErr(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "use application/vnd.api+json")
			return
		}
		f.mu.Lock()
		n := f.throttle[r.URL.Path]
		if n > 0 {
			f.throttle[r.URL.Path] = n - 1
		}
		f.mu.Unlock()
		if n > 0 {
			w.Header().Set("Content-Type", jsonAPI)
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write(f.throttled)
			return
		}
		w.Header().Set("ratelimit-limit", "350, 350;w=1, 3500;w=60")
		next.ServeHTTP(w, r)
	})
}

func (f *fakeKlaviyo) throttleNext(path string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle[path] = n
}

func (f *fakeKlaviyo) addMetric(id, name, integrationKey string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metrics = append(f.metrics, resource{Type: "metric", ID: id, Attributes: map[string]any{
		"name": name, "integration": map[string]any{"key": integrationKey, "name": integrationKey}}})
}

// addEvent stores an event shaped like the recorded GET /api/events items.
func (f *fakeKlaviyo) addEvent(id, metricID, profileID string, at time.Time, props map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rel := func(typ, rid string) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"data": map[string]any{"type": typ, "id": rid}})
		return b
	}
	f.events = append(f.events, fakeEvent{metricID: metricID, at: at, res: resource{Type: "event", ID: id,
		Attributes: map[string]any{"timestamp": at.Unix(), "datetime": at.UTC().Format("2006-01-02T15:04:05+00:00"),
			"event_properties": props, "uuid": "u-" + id},
		Relationships: map[string]json.RawMessage{"profile": rel("profile", profileID), "metric": rel("metric", metricID)}}})
	sort.SliceStable(f.events, func(i, j int) bool { return f.events[i].at.Before(f.events[j].at) })
}

func (f *fakeKlaviyo) addProfile(p resource) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.profiles[p.ID] = p
}

func (f *fakeKlaviyo) pageSize(r *http.Request) int {
	n, _ := strconv.Atoi(r.URL.Query().Get("page[size]"))
	if n <= 0 || n > f.pageCap {
		n = f.pageCap
	}
	return n
}

func (f *fakeKlaviyo) cursorOffset(r *http.Request) (int, bool) {
	c := r.URL.Query().Get("page[cursor]")
	if c == "" {
		return 0, true
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(string(b))
	return n, err == nil
}

func (f *fakeKlaviyo) nextURL(r *http.Request, offset int) *string {
	q := r.URL.Query()
	q.Set("page[cursor]", base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(offset))))
	s := f.URL + r.URL.Path + "?" + q.Encode()
	return &s
}

func (f *fakeKlaviyo) listMetrics(w http.ResponseWriter, r *http.Request) {
	off, ok := f.cursorOffset(r)
	if !ok {
		apiErr(w, 400, "invalid", "bad page[cursor]")
		return
	}
	f.mu.Lock()
	all := append([]resource(nil), f.metrics...)
	f.mu.Unlock()
	end := min(off+f.pageSize(r), len(all))
	doc := map[string]any{"data": all[min(off, len(all)):end], "links": map[string]any{"self": f.URL + r.URL.String(), "next": nil}}
	if end < len(all) {
		doc["links"].(map[string]any)["next"] = f.nextURL(r, end)
	}
	w.Header().Set("Content-Type", jsonAPI)
	json.NewEncoder(w).Encode(doc)
}

var (
	filterRE   = regexp.MustCompile(`^and\(equals\(metric_id,"([^"]+)"\),(greater-or-equal|greater-than)\(datetime,([^)]+)\)\)$`)
	metricOnly = regexp.MustCompile(`^equals\(metric_id,"([^"]+)"\)$`)
)

func (f *fakeKlaviyo) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	m := filterRE.FindStringSubmatch(q.Get("filter"))
	if mo := metricOnly.FindStringSubmatch(q.Get("filter")); mo != nil {
		m = []string{mo[0], mo[1], "greater-or-equal", "2000-01-01T00:00:00Z"}
	}
	if m == nil {
		apiErr(w, 400, "invalid", "unsupported filter "+q.Get("filter"))
		return
	}
	since, err := time.Parse(time.RFC3339, m[3])
	if err != nil {
		apiErr(w, 400, "invalid", "bad datetime "+m[3])
		return
	}
	if q.Get("sort") != "datetime" {
		apiErr(w, 400, "invalid", "expected sort=datetime")
		return
	}
	off, ok := f.cursorOffset(r)
	if !ok {
		apiErr(w, 400, "invalid", "bad page[cursor]")
		return
	}
	f.mu.Lock()
	f.eventQuery = append(f.eventQuery, q.Get("filter"))
	var match []fakeEvent
	for _, e := range f.events {
		if e.metricID == m[1] && (e.at.After(since) || (m[2] == "greater-or-equal" && e.at.Equal(since))) {
			match = append(match, e)
		}
	}
	profiles := f.profiles
	f.mu.Unlock()
	end := min(off+f.pageSize(r), len(match))
	data := []resource{}
	included := []resource{}
	seen := map[string]bool{}
	for _, e := range match[min(off, len(match)):end] {
		data = append(data, e.res)
		pid := e.res.related("profile")
		if p, ok := profiles[pid]; ok && strings.Contains(q.Get("include"), "profile") && !seen[pid] {
			seen[pid] = true
			included = append(included, p)
		}
	}
	links := map[string]any{"self": f.URL + r.URL.String(), "next": nil, "prev": nil}
	if end < len(match) {
		links["next"] = f.nextURL(r, end)
	}
	w.Header().Set("Content-Type", jsonAPI)
	json.NewEncoder(w).Encode(map[string]any{"data": data, "included": included, "links": links})
}

func (f *fakeKlaviyo) post(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		apiErr(w, 400, "invalid", "body is not JSON")
		return
	}
	data, _ := body["data"].(map[string]any)
	wantType := map[string]string{"/api/events": "event", "/api/profile-import": "profile",
		"/api/profile-subscription-bulk-create-jobs": "profile-subscription-bulk-create-job",
		"/api/profile-subscription-bulk-delete-jobs": "profile-subscription-bulk-delete-job"}[r.URL.Path]
	if data == nil || data["type"] != wantType {
		apiErr(w, 409, "conflict", "data.type must be "+wantType)
		return
	}
	if r.URL.Path == "/api/events" {
		attrs, _ := data["attributes"].(map[string]any)
		prof, _ := attrs["profile"].(map[string]any)
		pdata, _ := prof["data"].(map[string]any)
		pattrs, _ := pdata["attributes"].(map[string]any)
		if pattrs["email"] == nil && pattrs["phone_number"] == nil && pattrs["external_id"] == nil && pdata["id"] == nil {
			apiErr(w, 400, "invalid", "profile needs an identifier")
			return
		}
		if _, inProps := attrs["properties"].(map[string]any)["email"]; inProps {
			apiErr(w, 400, "invalid", "identifiers belong in profile attributes")
			return
		}
	}
	f.mu.Lock()
	f.posts[r.URL.Path] = append(f.posts[r.URL.Path], body)
	f.mu.Unlock()
	w.Header().Set("Content-Type", jsonAPI)
	if r.URL.Path == "/api/profile-import" {
		w.WriteHeader(http.StatusCreated)
		w.Write(f.importReply)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (f *fakeKlaviyo) posted(path string) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.posts[path]...)
}

func (f *fakeKlaviyo) queries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.eventQuery...)
}

// deletionJob is Request Profile Deletion: exactly one identifier (email,
// phone_number or the profile id), 202 with no body. down makes it answer
// 503, as during an outage.
func (f *fakeKlaviyo) deletionJob(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls[r.URL.Path]++
	down := f.privacyDown
	f.mu.Unlock()
	if down {
		apiErr(w, http.StatusServiceUnavailable, "service_unavailable", "try again later")
		return
	}
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		apiErr(w, 400, "invalid", "body is not JSON")
		return
	}
	data, _ := body["data"].(map[string]any)
	attrs, _ := data["attributes"].(map[string]any)
	prof, _ := attrs["profile"].(map[string]any)
	pdata, _ := prof["data"].(map[string]any)
	pattrs, _ := pdata["attributes"].(map[string]any)
	n := len(pattrs)
	if pdata["id"] != nil {
		n++
	}
	if data == nil || data["type"] != "data-privacy-deletion-job" || pdata["type"] != "profile" {
		apiErr(w, 409, "conflict", "data.type must be data-privacy-deletion-job with a profile")
		return
	}
	if n != 1 || (pattrs != nil && pattrs["email"] == nil && pattrs["phone_number"] == nil) {
		apiErr(w, 400, "invalid", "exactly one of email, phone_number or id is required")
		return
	}
	f.mu.Lock()
	f.posts[r.URL.Path] = append(f.posts[r.URL.Path], body)
	f.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// hits is how many requests reached path, whatever the answer.
func (f *fakeKlaviyo) hits(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[path]
}
