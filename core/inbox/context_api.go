package inbox

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/store"
)

// The customer beside the chat: what an agent needs to answer without
// leaving the conversation. It is read with SQL from the tables the other
// modules own (profiles, identities, events, messaging's marketing_pauses):
// modules do not import each other. Consent, segments, tags, notes and
// journeys come from the profile and journeys APIs the panel calls itself.

// How much of the customer's history the panel shows.
const (
	contextOrders        = 20
	contextConversations = 50
	// contextOrderEvents bounds the order and checkout events read for one
	// customer (a wholesale buyer may have thousands).
	contextOrderEvents = 2000
)

// CustomerContext is GET /api/v1/inbox/customers/{profile}.
type CustomerContext struct {
	Profile              ContextProfile        `json:"profile"`
	Orders               []ContextOrder        `json:"orders"`
	OpenCheckout         *ContextCheckout      `json:"open_checkout"`
	Conversations        []ContextConversation `json:"conversations"`
	MarketingPausedUntil string                `json:"marketing_paused_until"`
}

// ContextProfile is the customer's basics and lifetime figures.
type ContextProfile struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Email       string            `json:"email"`
	Phone       string            `json:"phone"`
	Traits      map[string]any    `json:"traits"`
	Computed    map[string]any    `json:"computed"` // lifetime value, orders count, average order…
	OrdersCount int               `json:"orders_count"`
	FirstSeen   string            `json:"first_seen"`
	LastSeen    string            `json:"last_seen"`
	Identities  []ContextIdentity `json:"identities"`
}

// ContextIdentity is one of the customer's identifiers (email, phone, wa_id…).
type ContextIdentity struct {
	Kind  string `db:"kind" json:"kind"`
	Value string `db:"value" json:"value"`
}

// ContextLine is a line of an order or checkout.
type ContextLine struct {
	Title    string  `json:"title"`
	Quantity float64 `json:"quantity"`
	Price    float64 `json:"price"`
}

// ContextOrder is one order with its latest status: placed (or the
// vendor's payment status, e.g. paid), partially_refunded, refunded,
// cancelled.
type ContextOrder struct {
	OrderID  string        `json:"order_id"`
	Number   string        `json:"number"` // the shop's order name, e.g. #1001
	At       string        `json:"at"`
	Total    float64       `json:"total"`
	Currency string        `json:"currency"`
	Status   string        `json:"status"`
	Refunded float64       `json:"refunded,omitempty"`
	Lines    []ContextLine `json:"lines"`
	Source   string        `json:"source"`
}

// ContextCheckout is the customer's latest checkout that no order
// completed, with the link that brings them back to it.
type ContextCheckout struct {
	CheckoutID string        `json:"checkout_id"`
	At         string        `json:"at"`
	Total      float64       `json:"total"`
	Currency   string        `json:"currency"`
	URL        string        `json:"url"`
	Lines      []ContextLine `json:"lines"`
	Source     string        `json:"source"`
}

// ContextConversation is one of the customer's conversations, any channel.
type ContextConversation struct {
	ID            string `db:"id" json:"id"`
	Channel       string `db:"channel" json:"channel"`
	Status        string `db:"status" json:"status"`
	Subject       string `db:"subject" json:"subject"`
	LastMessage   string `db:"last_message" json:"last_message"`
	LastMessageAt string `db:"last_message_at" json:"last_message_at"`
	CSATScore     int    `db:"csat_score" json:"csat_score"`
}

// contextRoutes: the customer beside the chat.
func (m *Module) contextRoutes(g *router.RouterGroup[*core.RequestEvent]) {
	g.GET("/customers/{profile}", func(e *core.RequestEvent) error {
		// Last seen and orders as they stand; else as last written.
		_ = store.SyncProfiles(m.app, e.Request.PathValue("profile"))
		out, err := customerContext(m.app.DB(), e.Request.PathValue("profile"), m.opts.Now())
		if errors.Is(err, ErrNotFound) {
			return api.Error(http.StatusNotFound, "There is no such customer.")
		}
		if err != nil {
			return api.Internal("could not read the customer", err)
		}
		return e.JSON(http.StatusOK, out)
	}).Bind(api.RequireStaff())
}

// customerContext gathers what the panel shows about a customer; a merged
// id answers for the customer it was merged into.
func customerContext(db dbx.Builder, id string, now time.Time) (*CustomerContext, error) {
	id, err := survivingProfile(db, id)
	if err != nil {
		return nil, err
	}
	var row struct {
		ID          string  `db:"id"`
		Name        string  `db:"name"`
		Email       string  `db:"email"`
		Phone       string  `db:"phone"`
		Traits      JSONMap `db:"traits"`
		Computed    JSONMap `db:"computed"`
		OrdersCount float64 `db:"orders_count"`
		FirstSeen   string  `db:"first_seen"`
		LastSeen    string  `db:"last_seen"`
	}
	if err := db.NewQuery(`SELECT id, name, email, phone, traits, computed, orders_count, first_seen, last_seen
		FROM profiles WHERE id = {:id}`).Bind(dbx.Params{"id": id}).One(&row); err != nil {
		return nil, err
	}
	out := &CustomerContext{Profile: ContextProfile{ID: row.ID, Name: row.Name, Email: row.Email, Phone: row.Phone,
		Traits: ctxEmpty(row.Traits), Computed: ctxEmpty(row.Computed), OrdersCount: int(row.OrdersCount),
		FirstSeen: ctxTime(row.FirstSeen), LastSeen: ctxTime(row.LastSeen), Identities: []ContextIdentity{}}}
	if err := db.NewQuery("SELECT kind, value FROM identities WHERE profile = {:p} ORDER BY kind, value").
		Bind(dbx.Params{"p": row.ID}).All(&out.Profile.Identities); err != nil {
		return nil, err
	}
	if out.Orders, out.OpenCheckout, err = ordersOf(db, row.ID); err != nil {
		return nil, err
	}
	out.Conversations = []ContextConversation{}
	if err := db.NewQuery(`SELECT id, channel, status, subject, last_message, last_message_at, csat_score FROM ` + ConversationsCollection + `
		WHERE profile = {:p} ORDER BY last_message_at DESC, created DESC LIMIT {:n}`).
		Bind(dbx.Params{"p": row.ID, "n": contextConversations}).All(&out.Conversations); err != nil {
		return nil, err
	}
	for i := range out.Conversations {
		out.Conversations[i].LastMessageAt = ctxTime(out.Conversations[i].LastMessageAt)
	}
	if out.MarketingPausedUntil, err = marketingPausedUntil(db, row.ID, now); err != nil {
		return nil, err
	}
	return out, nil
}

// orderEvent is an order or checkout event as the events table holds it.
type orderEvent struct {
	Type       string `db:"type"`
	Source     string `db:"source"`
	OccurredAt string `db:"occurred_at"`
	Properties string `db:"properties"`
}

// ordersOf builds the customer's orders from their order.placed events
// (Shopify, Square, the Segment API…) with the status later events gave
// them (order.cancelled, order.refunded), newest first, and their latest
// checkout no order completed.
func ordersOf(db dbx.Builder, profile string) ([]ContextOrder, *ContextCheckout, error) {
	var evs []orderEvent
	err := db.NewQuery(`SELECT type, source, occurred_at, properties FROM events WHERE profile = {:p}
		AND type IN ({:placed}, {:cancelled}, {:refunded}, {:started}, {:updated})
		ORDER BY occurred_at DESC LIMIT {:n}`).Bind(dbx.Params{"p": profile, "placed": events.OrderPlaced,
		"cancelled": events.OrderCancelled, "refunded": events.OrderRefunded, "started": events.CheckoutStarted,
		"updated": events.CheckoutUpdated, "n": contextOrderEvents}).All(&evs)
	if err != nil {
		return nil, nil, err
	}
	// Oldest first, so later events update what earlier ones said.
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].OccurredAt < evs[j].OccurredAt })
	orders := map[string]*ContextOrder{} // by orderKey
	var placed []*ContextOrder
	cancelled := map[string]bool{}
	refunded := map[string]float64{}
	checkouts := map[string]*ContextCheckout{} // by checkout token: the latest state
	completed := map[string]bool{}             // checkout and cart tokens an order or the vendor completed
	for _, ev := range evs {
		var p map[string]any
		if json.Unmarshal([]byte(ev.Properties), &p) != nil {
			continue // an unreadable event says nothing about orders
		}
		switch ev.Type {
		case events.OrderPlaced:
			id := ctxString(p["order_id"])
			if id == "" || orders[orderKey(ev.Source, id)] != nil {
				continue
			}
			o := &ContextOrder{OrderID: id, Number: ctxFirst(p, "order_name", "order_number", "receipt_number"), At: ctxTime(ev.OccurredAt),
				Total: ctxAmount(p, "total", "revenue", "value", "amount"), Currency: ctxString(p["currency"]), Status: orderStatus(p), Lines: ctxLines(p), Source: ev.Source}
			orders[orderKey(ev.Source, id)] = o
			placed = append(placed, o)
			for _, k := range []string{"checkout_token", "cart_token"} {
				if t := ctxString(p[k]); t != "" {
					completed[t] = true
				}
			}
		case events.OrderCancelled:
			cancelled[orderKey(ev.Source, ctxString(p["order_id"]))] = true
		case events.OrderRefunded:
			refunded[orderKey(ev.Source, ctxString(p["order_id"]))] += ctxAmount(p, "total", "refund", "amount")
		case events.CheckoutStarted, events.CheckoutUpdated:
			token := ctxFirst(p, "checkout_token", "checkout_id", "cart_token")
			if token == "" {
				continue
			}
			if b, _ := p["completed"].(bool); b {
				completed[token] = true
			}
			checkouts[token] = &ContextCheckout{CheckoutID: ctxFirst(p, "checkout_id", "checkout_token"), At: ctxTime(ev.OccurredAt),
				Total: ctxAmount(p, "total", "value", "subtotal"), Currency: ctxString(p["currency"]), URL: ctxFirst(p, "abandoned_checkout_url", "checkout_url", "url"),
				Lines: ctxLines(p), Source: ev.Source}
			if ct := ctxString(p["cart_token"]); ct != "" && completed[ct] {
				completed[token] = true
			}
		}
	}
	out := make([]ContextOrder, 0, min(len(placed), contextOrders))
	for i := len(placed) - 1; i >= 0 && len(out) < contextOrders; i-- {
		o := placed[i]
		key := orderKey(o.Source, o.OrderID)
		if r := refunded[key]; r > 0 {
			o.Refunded = r
			o.Status = "partially_refunded"
			if o.Total > 0 && r >= o.Total-0.005 {
				o.Status = "refunded"
			}
		}
		if cancelled[key] {
			o.Status = "cancelled"
		}
		out = append(out, *o)
	}
	var open *ContextCheckout
	for token, ch := range checkouts {
		if completed[token] {
			continue
		}
		if open == nil || ch.At > open.At {
			open = ch
		}
	}
	return out, open, nil
}

// orderKey names an order by its source and id: two systems (the web
// shop, the till) may both have an order 1001.
func orderKey(source, id string) string { return source + "\x00" + id }

// orderStatus is what the order's own event says: the vendor's payment
// status (Shopify's financial_status: paid, pending, partially_refunded…),
// Square's state, else placed.
func orderStatus(p map[string]any) string {
	if s := ctxFirst(p, "financial_status", "state", "status"); s != "" {
		return strings.ToLower(s)
	}
	return "placed"
}

// ctxLines reads line items the way the connectors map them (Shopify's
// title and variant_title, Square's name and variation_name) and a tracked
// order's products as Segment's spec names them (name, variant).
func ctxLines(p map[string]any) []ContextLine {
	items, _ := p["line_items"].([]any)
	if items == nil {
		items, _ = p["products"].([]any) // Segment's e-commerce spec
	}
	out := make([]ContextLine, 0, len(items))
	for _, it := range items {
		li, ok := it.(map[string]any)
		if !ok {
			continue
		}
		title := ctxFirst(li, "title", "name", "product_name", "sku")
		if variant := ctxFirst(li, "variant_title", "variation_name", "variant"); variant != "" && !strings.EqualFold(variant, title) && !strings.EqualFold(variant, "regular") {
			title += " – " + variant
		}
		q := ctxNumber(li["quantity"])
		if q == 0 {
			q = 1
		}
		out = append(out, ContextLine{Title: title, Quantity: q, Price: ctxNumber(li["price"])})
	}
	return out
}

// marketingPausedUntil reads messaging's pause for the customer (a time
// in the future), or "" when there is none or no such table yet.
func marketingPausedUntil(db dbx.Builder, profile string, now time.Time) (string, error) {
	var n int
	if err := db.NewQuery("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'marketing_pauses'").Row(&n); err != nil || n == 0 {
		return "", err
	}
	var untils []string
	if err := db.NewQuery("SELECT until FROM marketing_pauses WHERE profile = {:p}").Bind(dbx.Params{"p": profile}).Column(&untils); err != nil {
		return "", err
	}
	var latest time.Time
	for _, u := range untils {
		if t, ok := parseAnyTime(u); ok && t.After(now) && t.After(latest) {
			latest = t
		}
	}
	if latest.IsZero() {
		return "", nil
	}
	return latest.UTC().Format(time.RFC3339), nil
}

// ctxTime turns PocketBase's stored time into RFC 3339 ("" stays "").
func ctxTime(s string) string {
	if t, ok := parseAnyTime(s); ok {
		return t.UTC().Format(time.RFC3339Nano)
	}
	return s
}

// parseAnyTime reads PocketBase's stored form or RFC 3339.
func parseAnyTime(s string) (time.Time, bool) {
	if t, err := parseTime(s); err == nil {
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

func ctxEmpty(m JSONMap) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// ctxString reads a string property (numbers as their decimal text: Shopify ids).
func ctxString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		b, _ := json.Marshal(x)
		return string(b)
	case json.Number:
		return x.String()
	}
	return ""
}

func ctxFirst(p map[string]any, keys ...string) string {
	for _, k := range keys {
		if s := ctxString(p[k]); s != "" {
			return s
		}
	}
	return ""
}

// ctxNumber reads a number property (some sources send decimal strings).
func ctxNumber(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case string:
		var f float64
		if json.Unmarshal([]byte(x), &f) == nil {
			return f
		}
	}
	return 0
}

// ctxAmount is the first of keys that holds a number.
func ctxAmount(p map[string]any, keys ...string) float64 {
	for _, k := range keys {
		if f := ctxNumber(p[k]); f != 0 {
			return f
		}
	}
	return 0
}
