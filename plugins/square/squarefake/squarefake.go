// Package squarefake is a local stand-in for Square's API, for tests: Bearer
// auth, a required Square-Version, {"errors":[…]} bodies, 429
// RATE_LIMITED, RetrieveOrder / RetrieveCustomer / ListLocations,
// SearchCustomers / SearchOrders / ListPayments with cursors that must come
// back with the same request body. Data is built from Square's own examples
// (shared/fixtures).
package squarefake

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

	"github.com/omni/omni/internal/testkit/vendorfixtures"
)

// Version is the Square-Version the fake insists on.
const Version = "2025-08-20"

// Server is the fake. Set its exported fields before calls arrive.
type Server struct {
	URL   string
	Token string

	mu        sync.Mutex
	t         testing.TB
	Locations []string
	Orders    map[string]map[string]any   // RetrieveOrder by id
	Customers map[string]map[string]any   // RetrieveCustomer by id
	SearchC   []map[string]any            // SearchCustomers results
	SearchO   map[string][]map[string]any // SearchOrders results by location
	Payments  []map[string]any            // ListPayments results
	// Fail answers request number n (1-based) once with that status
	// (429 → RATE_LIMITED), with RetryAfter[n] as Retry-After if set.
	Fail       map[int]int
	RetryAfter map[int]string
	// FailPath answers every request to a path with that status.
	FailPath map[string]int

	requests int
	bodies   map[string]string // cursor → request body without cursor
	log      []string
}

// New starts a fake on 127.0.0.1; it stops when the test ends.
func New(t testing.TB) *Server {
	f := &Server{t: t, Token: "EAAAl_test_token",
		Orders: map[string]map[string]any{}, Customers: map[string]map[string]any{}, SearchO: map[string][]map[string]any{},
		Fail: map[int]int{}, RetryAfter: map[int]string{}, FailPath: map[string]int{}, bodies: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Config is a complete square connector configuration pointing at the fake.
func (f *Server) Config(signatureKey string) map[string]string {
	return map[string]string{"access_token": f.Token, "signature_key": signatureKey, "test_base_url": f.URL}
}

// Log returns "METHOD /path" of every request, in order.
func (f *Server) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

// SeedOrder makes RetrieveOrder answer for id with the
// retrieve_order_response fixture, COMPLETED at location S8GWD5R9QB376,
// bought by customerID (if not empty). It returns the order.
func (f *Server) SeedOrder(t testing.TB, id, customerID string) map[string]any {
	var r struct {
		Order map[string]any `json:"order"`
	}
	mustJSON(t, vendorfixtures.Read(t, "square", "retrieve_order_response.json"), &r)
	r.Order["id"], r.Order["state"], r.Order["closed_at"] = id, "COMPLETED", "2020-11-22T21:19:01.000Z"
	r.Order["location_id"] = "S8GWD5R9QB376"
	if customerID != "" {
		r.Order["customer_id"] = customerID
	}
	f.mu.Lock()
	f.Orders[id] = r.Order
	f.mu.Unlock()
	return r.Order
}

// SeedCustomer makes RetrieveCustomer answer for id with the
// customer_created fixture's customer, with that email and phone.
func (f *Server) SeedCustomer(t testing.TB, id, email, phone string) map[string]any {
	var n map[string]any
	mustJSON(t, vendorfixtures.Read(t, "square", "customer_created.json"), &n)
	c := n["data"].(map[string]any)["object"].(map[string]any)["customer"].(map[string]any)
	c["id"], c["email_address"], c["phone_number"] = id, email, phone
	f.mu.Lock()
	f.Customers[id] = c
	f.mu.Unlock()
	return c
}

func sqErr(w http.ResponseWriter, status int, category, code, detail string) {
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{"category": category, "code": code, "detail": detail}}})
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	n := f.requests
	f.log = append(f.log, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != "Bearer "+f.Token {
		sqErr(w, 401, "AUTHENTICATION_ERROR", "UNAUTHORIZED", "This request could not be authorized.")
		return
	}
	if r.Header.Get("Square-Version") != Version {
		sqErr(w, 400, "INVALID_REQUEST_ERROR", "INVALID_SQUARE_VERSION_FORMAT", "Square-Version header missing or unsupported")
		return
	}
	if st, ok := f.Fail[n]; ok {
		if ra := f.RetryAfter[n]; ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		if st == 429 {
			sqErr(w, 429, "RATE_LIMIT_ERROR", "RATE_LIMITED", "Rate limit exceeded.")
		} else {
			sqErr(w, st, "API_ERROR", "INTERNAL_SERVER_ERROR", "An internal error occurred.")
		}
		return
	}
	if st, ok := f.FailPath[r.URL.Path]; ok {
		sqErr(w, st, "API_ERROR", "SERVICE_UNAVAILABLE", "Service unavailable.")
		return
	}
	p := r.URL.Path
	switch {
	case r.Method == "GET" && p == "/v2/locations":
		var ls []any
		for _, id := range f.Locations {
			ls = append(ls, map[string]any{"id": id, "name": "Store " + id, "status": "ACTIVE"})
		}
		json.NewEncoder(w).Encode(map[string]any{"locations": ls})
	case r.Method == "GET" && strings.HasPrefix(p, "/v2/orders/"):
		o, ok := f.Orders[strings.TrimPrefix(p, "/v2/orders/")]
		if !ok {
			sqErr(w, 404, "INVALID_REQUEST_ERROR", "NOT_FOUND", "Order not found.")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"order": o})
	case r.Method == "GET" && strings.HasPrefix(p, "/v2/customers/"):
		c, ok := f.Customers[strings.TrimPrefix(p, "/v2/customers/")]
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
		page, next := f.paginate(f.SearchC, cursor, limit, body)
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
			all = append(all, f.SearchO[l]...)
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
		page, next := f.paginate(f.Payments, cursor, limit, q.Encode())
		json.NewEncoder(w).Encode(map[string]any{"payments": page, "cursor": next})
	default:
		sqErr(w, 404, "INVALID_REQUEST_ERROR", "NOT_FOUND", "unknown endpoint "+p)
	}
}

// readSearch returns the body without its cursor, the cursor and limit.
func (f *Server) readSearch(w http.ResponseWriter, r *http.Request) (string, string, int) {
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
// for ("include the cursor along with the same original request body"),
// then returns one page.
func (f *Server) paginate(all []map[string]any, cursor string, limit int, body string) ([]map[string]any, string) {
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

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
