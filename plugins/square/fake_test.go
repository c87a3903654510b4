package square

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeSquare speaks the parts of Square's API the connector uses, as
// documented: Bearer auth, a required Square-Version, {"errors":[…]}
// bodies, 429 RATE_LIMITED, and cursors that must be sent back with the
// same request body.
type fakeSquare struct {
	t       testing.TB
	srv     *httptest.Server
	token   string
	version string

	mu         sync.Mutex
	locations  []string
	orders     map[string]map[string]any // RetrieveOrder by id
	customers  map[string]map[string]any // RetrieveCustomer by id
	searchC    []map[string]any          // SearchCustomers results
	searchO    map[string][]map[string]any
	payments   []map[string]any
	fail       map[int]int    // request number → status to answer once
	retryAfter map[int]string // request number → Retry-After value
	failPath   map[string]int // path → status answered every time
	requests   int
	bodies     map[string]string // cursor → request body without cursor
	log        []string
}

func newFakeSquare(t testing.TB) *fakeSquare {
	f := &fakeSquare{t: t, token: "EAAAl_test_token", version: DefaultAPIVersion,
		orders: map[string]map[string]any{}, customers: map[string]map[string]any{}, searchO: map[string][]map[string]any{},
		fail: map[int]int{}, retryAfter: map[int]string{}, failPath: map[string]int{}, bodies: map[string]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSquare) config() map[string]string {
	return map[string]string{KeyAccessToken: f.token, KeySignatureKey: testKey, KeyTestBaseURL: f.srv.URL}
}

func sqErr(w http.ResponseWriter, status int, category, code, detail string) {
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{"category": category, "code": code, "detail": detail}}})
}

func (f *fakeSquare) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	n := f.requests
	f.log = append(f.log, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		sqErr(w, 401, "AUTHENTICATION_ERROR", "UNAUTHORIZED", "This request could not be authorized.")
		return
	}
	if r.Header.Get("Square-Version") != f.version {
		sqErr(w, 400, "INVALID_REQUEST_ERROR", "INVALID_SQUARE_VERSION_FORMAT", "Square-Version header missing or unsupported")
		return
	}
	if st, ok := f.fail[n]; ok {
		if ra := f.retryAfter[n]; ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		if st == 429 {
			sqErr(w, 429, "RATE_LIMIT_ERROR", "RATE_LIMITED", "Rate limit exceeded.")
		} else {
			sqErr(w, st, "API_ERROR", "INTERNAL_SERVER_ERROR", "An internal error occurred.")
		}
		return
	}
	if st, ok := f.failPath[r.URL.Path]; ok {
		sqErr(w, st, "API_ERROR", "SERVICE_UNAVAILABLE", "Service unavailable.")
		return
	}
	p := r.URL.Path
	switch {
	case r.Method == "GET" && p == "/v2/locations":
		var ls []any
		for _, id := range f.locations {
			ls = append(ls, map[string]any{"id": id, "name": "Store " + id, "status": "ACTIVE"})
		}
		json.NewEncoder(w).Encode(map[string]any{"locations": ls})
	case r.Method == "GET" && strings.HasPrefix(p, "/v2/orders/"):
		o, ok := f.orders[strings.TrimPrefix(p, "/v2/orders/")]
		if !ok {
			sqErr(w, 404, "INVALID_REQUEST_ERROR", "NOT_FOUND", "Order not found.")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"order": o})
	case r.Method == "GET" && strings.HasPrefix(p, "/v2/customers/"):
		c, ok := f.customers[strings.TrimPrefix(p, "/v2/customers/")]
		if !ok {
			sqErr(w, 404, "INVALID_REQUEST_ERROR", "NOT_FOUND", "Customer not found.")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"customer": c})
	case r.Method == "POST" && p == "/v2/customers/search":
		body, cursor, limit := f.readSearch(w, r)
		if body == "" {
			return
		}
		page, next := f.paginate(f.searchC, cursor, limit, body)
		json.NewEncoder(w).Encode(map[string]any{"customers": page, "cursor": next})
	case r.Method == "POST" && p == "/v2/orders/search":
		body, cursor, limit := f.readSearch(w, r)
		if body == "" {
			return
		}
		var req struct {
			LocationIDs []string `json:"location_ids"`
		}
		json.Unmarshal([]byte(body), &req)
		if len(req.LocationIDs) == 0 || len(req.LocationIDs) > 10 {
			sqErr(w, 400, "INVALID_REQUEST_ERROR", "INVALID_ARRAY_LENGTH", "location_ids must have 1 to 10 entries")
			return
		}
		var all []map[string]any
		for _, l := range req.LocationIDs {
			all = append(all, f.searchO[l]...)
		}
		page, next := f.paginate(all, cursor, limit, body)
		json.NewEncoder(w).Encode(map[string]any{"orders": page, "cursor": next})
	case r.Method == "GET" && p == "/v2/payments":
		q := r.URL.Query()
		if q.Get("begin_time") == "" {
			f.t.Error("ListPayments without begin_time only returns the last year")
		}
		cursor := q.Get("cursor")
		q.Del("cursor")
		limit, _ := strconv.Atoi(q.Get("limit"))
		page, next := f.paginate(f.payments, cursor, limit, q.Encode())
		json.NewEncoder(w).Encode(map[string]any{"payments": page, "cursor": next})
	default:
		sqErr(w, 404, "INVALID_REQUEST_ERROR", "NOT_FOUND", "unknown endpoint "+p)
	}
}

// readSearch returns the body without its cursor, the cursor and limit.
func (f *fakeSquare) readSearch(w http.ResponseWriter, r *http.Request) (string, string, int) {
	raw, _ := io.ReadAll(r.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		sqErr(w, 400, "INVALID_REQUEST_ERROR", "INVALID_BODY", "bad JSON")
		return "", "", 0
	}
	cursor, _ := m["cursor"].(string)
	delete(m, "cursor")
	limit := 100
	if l, ok := m["limit"].(float64); ok {
		limit = int(l)
	}
	b, _ := json.Marshal(m)
	return string(b), cursor, limit
}

// paginate checks that a cursor comes back with the request it was issued
// for, then returns one page.
func (f *fakeSquare) paginate(all []map[string]any, cursor string, limit int, body string) ([]map[string]any, string) {
	if limit <= 0 {
		limit = 100
	}
	start := 0
	if cursor != "" {
		if f.bodies[cursor] != body {
			f.t.Errorf("cursor %q sent with a different request body:\n first: %s\n now:   %s", cursor, f.bodies[cursor], body)
		}
		raw, _ := base64.StdEncoding.DecodeString(cursor)
		start, _ = strconv.Atoi(strings.SplitN(string(raw), ":", 2)[0])
	}
	end := min(start+limit, len(all))
	next := ""
	if end < len(all) {
		next = base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%d:%d", end, len(body))))
		f.bodies[next] = body
	}
	return all[start:end], next
}
