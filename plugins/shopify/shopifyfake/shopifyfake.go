// Package shopifyfake is a local stand-in for Shopify's GraphQL Admin API,
// for tests: POST /admin/api/{version}/graphql.json with
// X-Shopify-Access-Token, cursor pagination with pageInfo, cost extensions,
// THROTTLED answers, HTTP 429 with Retry-After, webhook subscriptions. Its
// data is built from Shopify's own sample payloads (shared/fixtures).
package shopifyfake

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

// Version is the Admin API version the fake serves.
const Version = "2026-07"

// Server is the fake. Set its exported fields before calls arrive; read
// them after (under no concurrent calls) or through the accessors.
type Server struct {
	URL   string // base URL, give it as the connector's test_base_url
	Token string // the valid access token

	mu sync.Mutex
	t  testing.TB
	// Data served by customers / orders / order(id:) queries.
	Customers []map[string]any
	Orders    []map[string]any
	OrderByID map[string]map[string]any // by GraphQL id
	// Subs are the existing webhook subscriptions; Created lists the topics
	// subscribed through the API.
	Subs    []map[string]any
	Created []string
	// DenyWrite answers webhookSubscriptionCreate with ACCESS_DENIED.
	DenyWrite bool
	// Fail429 and Throttle name request numbers (1-based) answered with an
	// HTTP 429 (Retry-After: RetryAfter, default "2.0") or a THROTTLED error.
	Fail429    map[int]bool
	Throttle   map[int]bool
	RetryAfter string

	requests int
	queries  []string
}

// New starts a fake on 127.0.0.1; it stops when the test ends.
func New(t testing.TB) *Server {
	f := &Server{t: t, Token: "shpat_test_token", Fail429: map[int]bool{}, Throttle: map[int]bool{}, OrderByID: map[string]map[string]any{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Config is a complete shopify connector configuration pointing at the fake.
func (f *Server) Config(webhookSecret string) map[string]string {
	return map[string]string{
		"shop": "jsmith.myshopify.com", "access_token": f.Token, "webhook_secret": webhookSecret,
		"test_base_url": f.URL, "register_webhooks": "false",
	}
}

// Requests is how many API requests arrived.
func (f *Server) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// Queries returns the GraphQL documents received, in order.
func (f *Server) Queries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.queries...)
}

// CreatedTopics returns the topics subscribed through the API.
func (f *Server) CreatedTopics() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.Created...)
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost || r.URL.Path != "/admin/api/"+Version+"/graphql.json" {
		w.WriteHeader(404)
		io.WriteString(w, `{"errors":"Not Found"}`)
		return
	}
	if r.Header.Get("X-Shopify-Access-Token") != f.Token {
		w.WriteHeader(401)
		io.WriteString(w, `{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}`)
		return
	}
	var req struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		w.WriteHeader(400)
		io.WriteString(w, `{"errors":"bad json"}`)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	n := f.requests
	f.queries = append(f.queries, req.Query)
	if f.Fail429[n] {
		ra := f.RetryAfter
		if ra == "" {
			ra = "2.0"
		}
		w.Header().Set("Retry-After", ra)
		w.WriteHeader(429)
		io.WriteString(w, `{"errors":"Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}`)
		return
	}
	cost := map[string]any{"requestedQueryCost": 52, "actualQueryCost": 12,
		"throttleStatus": map[string]any{"maximumAvailable": 2000.0, "currentlyAvailable": 1988, "restoreRate": 100.0}}
	if f.Throttle[n] {
		cost["throttleStatus"] = map[string]any{"maximumAvailable": 2000.0, "currentlyAvailable": 2, "restoreRate": 100.0}
		json.NewEncoder(w).Encode(map[string]any{
			"errors":     []any{map[string]any{"message": "Throttled", "extensions": map[string]any{"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}},
			"extensions": map[string]any{"cost": cost},
		})
		return
	}
	q := req.Query
	var data any
	switch {
	case strings.Contains(q, "customersCount"):
		data = map[string]any{"customersCount": map[string]any{"count": len(f.Customers), "precision": "EXACT"},
			"ordersCount": map[string]any{"count": len(f.Orders), "precision": "EXACT"}}
	case strings.Contains(q, "webhookSubscriptionCreate"):
		if f.DenyWrite {
			json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{
				"message":    "Access denied for webhookSubscriptionCreate field. Required access: The app must have access to the input topic.",
				"extensions": map[string]any{"code": "ACCESS_DENIED"}}}})
			return
		}
		topic, _ := req.Variables["topic"].(string)
		uri, _ := req.Variables["uri"].(string)
		f.Created = append(f.Created, topic)
		sub := map[string]any{"id": fmt.Sprintf("gid://shopify/WebhookSubscription/%d", 1000+len(f.Subs)), "topic": topic, "uri": uri}
		f.Subs = append(f.Subs, sub)
		data = map[string]any{"webhookSubscriptionCreate": map[string]any{"webhookSubscription": sub, "userErrors": []any{}}}
	case strings.Contains(q, "webhookSubscriptions("):
		data = map[string]any{"webhookSubscriptions": map[string]any{
			"pageInfo": map[string]any{"hasNextPage": false, "endCursor": nil}, "nodes": f.Subs}}
	case strings.Contains(q, "customers("):
		data = map[string]any{"customers": f.page(f.Customers, req.Variables)}
	case strings.Contains(q, "orders("):
		data = map[string]any{"orders": f.page(f.Orders, req.Variables)}
	case strings.Contains(q, "order(id:"):
		id, _ := req.Variables["id"].(string)
		var o any
		if ord, ok := f.OrderByID[id]; ok {
			o = ord
		}
		data = map[string]any{"order": o}
	case strings.Contains(q, "shop {"):
		data = map[string]any{"shop": map[string]any{"name": "John Smith Test Store"}}
	default:
		json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{"message": "unknown query in fake"}}})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"data": data, "extensions": map[string]any{"cost": cost}})
}

func (f *Server) page(all []map[string]any, vars map[string]any) map[string]any {
	first := 50
	if v, ok := vars["first"].(float64); ok {
		first = int(v)
	}
	if first > 250 {
		f.t.Errorf("first=%d exceeds Shopify's 250 maximum", first)
	}
	start := 0
	if a, ok := vars["after"].(string); ok && a != "" {
		raw, err := base64.StdEncoding.DecodeString(a)
		if err != nil {
			f.t.Errorf("bad cursor %q", a)
		}
		start, _ = strconv.Atoi(strings.TrimPrefix(string(raw), "cursor:"))
	}
	end := min(start+first, len(all))
	nodes := all[start:end]
	var endCursor any
	if end > start {
		endCursor = base64.StdEncoding.EncodeToString([]byte("cursor:" + strconv.Itoa(end)))
	}
	return map[string]any{"pageInfo": map[string]any{"hasNextPage": end < len(all), "endCursor": endCursor}, "nodes": nodes}
}

// Seed fills the fake with n customers and m orders shaped like the GraphQL
// Admin API returns them, built from the REST fixtures customer.json and
// order.json; it also makes order 450789469 (order.json) known to
// order(id:) lookups.
func (f *Server) Seed(t testing.TB, n, m int) {
	var c map[string]any
	mustJSON(t, vendorfixtures.Read(t, "shopify", "customer.json"), &c)
	var o map[string]any
	mustJSON(t, vendorfixtures.Read(t, "shopify", "order.json"), &o)
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 0; i < n; i++ {
		id := 207119551 + i
		f.Customers = append(f.Customers, map[string]any{
			"id": fmt.Sprintf("gid://shopify/Customer/%d", id), "legacyResourceId": strconv.Itoa(id),
			"firstName": c["first_name"], "lastName": c["last_name"], "state": strings.ToUpper(fmt.Sprint(c["state"])),
			"tags": []string{"New Customer"}, "createdAt": c["created_at"], "updatedAt": c["updated_at"], "numberOfOrders": "1",
			"amountSpent":         map[string]any{"amount": c["total_spent"], "currencyCode": "USD"},
			"defaultEmailAddress": map[string]any{"emailAddress": fmt.Sprintf("customer%d@mail.example.com", i), "marketingState": "SUBSCRIBED", "marketingOptInLevel": "SINGLE_OPT_IN", "marketingUpdatedAt": "2025-04-02T16:23:47Z"},
			"defaultPhoneNumber":  nil,
		})
	}
	for i := 0; i < m; i++ {
		id := 450789469 + i
		var items []any
		for _, li := range o["line_items"].([]any) {
			l := li.(map[string]any)
			items = append(items, map[string]any{
				"id": fmt.Sprintf("gid://shopify/LineItem/%v", l["id"]), "sku": l["sku"], "title": l["title"],
				"variantTitle": l["variant_title"], "quantity": l["quantity"],
				"product":              map[string]any{"legacyResourceId": fmt.Sprint(l["product_id"])},
				"variant":              map[string]any{"legacyResourceId": fmt.Sprint(l["variant_id"])},
				"originalUnitPriceSet": map[string]any{"shopMoney": map[string]any{"amount": l["price"], "currencyCode": "USD"}},
			})
		}
		set := func(k string) any {
			return map[string]any{"shopMoney": map[string]any{"amount": o[k], "currencyCode": "USD"}}
		}
		f.Orders = append(f.Orders, map[string]any{
			"id": fmt.Sprintf("gid://shopify/Order/%d", id), "legacyResourceId": strconv.Itoa(id), "name": fmt.Sprintf("#%d", 1001+i),
			"createdAt": "2026-01-10T16:00:00Z", "processedAt": "2026-01-10T16:00:00Z", "updatedAt": "2026-01-10T16:00:00Z",
			"cancelledAt": nil, "cancelReason": nil, "email": o["email"], "phone": o["phone"], "sourceName": "web", "test": false,
			"currencyCode": "USD", "displayFinancialStatus": "PAID", "discountCodes": []string{"TENOFF"},
			"totalPriceSet": set("total_price"), "subtotalPriceSet": set("subtotal_price"), "totalTaxSet": set("total_tax"),
			"totalDiscountsSet": set("total_discounts"),
			"customer": map[string]any{"legacyResourceId": "207119551", "defaultEmailAddress": map[string]any{"emailAddress": "bob.norman@mail.example.com"},
				"defaultPhoneNumber": map[string]any{"phoneNumber": "+16136120707"}},
			"customerJourneySummary": map[string]any{"firstVisit": map[string]any{"landingPage": "https://jsmith.myshopify.com/?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
				"referrerUrl": nil, "utmParameters": map[string]any{"source": "newsletter", "medium": "email", "campaign": "spring", "term": nil, "content": nil}}},
			"lineItems": map[string]any{"nodes": items},
		})
	}
	f.OrderByID["gid://shopify/Order/450789469"] = map[string]any{"email": "bob.norman@mail.example.com", "phone": nil,
		"customer": map[string]any{"legacyResourceId": "207119551", "defaultEmailAddress": map[string]any{"emailAddress": "bob.norman@mail.example.com"},
			"defaultPhoneNumber": map[string]any{"phoneNumber": "+16136120707"}}}
}

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
