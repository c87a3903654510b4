package square

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/omni/omni/plugins/sdk"
)

// Square limits: SearchOrders takes at most 10 location ids per call.
const (
	locationsPerSearch = 10
	customersPageSize  = 100
	ordersPageSize     = 100
	paymentsPageSize   = 100
)

// epoch predates Square's APIs; ListPayments otherwise defaults to the last
// year only.
var epoch = time.Date(2013, 1, 1, 0, 0, 0, 0, time.UTC)

type backfillCursor struct {
	Phase  string `json:"phase"` // customers, orders, payments, done
	Cursor string `json:"cursor,omitempty"`
	Loc    int    `json:"loc,omitempty"` // location chunk for orders
	Done   int64  `json:"done"`
}

func (b backfillCursor) String() string {
	s, _ := json.Marshal(b)
	return string(s)
}

var phases = map[string]string{"customers": "orders", "orders": "payments", "payments": "done"}

// Backfill imports customers (SearchCustomers), completed orders
// (SearchOrders, every location) and payments (ListPayments). Square's
// cursors are resumed with the same request body, as its docs require.
func (c *Connector) Backfill(ctx context.Context, req *sdk.BackfillRequest, sink sdk.BackfillSink) error {
	s, a, ok := c.settings()
	if !ok {
		return errNotConfigured
	}
	cur := backfillCursor{Phase: "customers"}
	if req.Cursor != "" {
		if err := json.Unmarshal([]byte(req.Cursor), &cur); err != nil || (phases[cur.Phase] == "" && cur.Phase != "done") {
			return &sdk.ConfigError{Field: "cursor", Problem: "is not a cursor this connector produced"}
		}
	}
	since := req.Since.UTC()
	if since.IsZero() {
		since = epoch
	}
	start := since.Format(time.RFC3339)
	locs := s.locations
	m := c.mapper()
	for cur.Phase != "done" {
		var evs []sdk.Event
		var next string
		var n int
		switch cur.Phase {
		case "customers":
			body := map[string]any{"limit": customersPageSize,
				"query": map[string]any{
					"filter": map[string]any{"updated_at": map[string]any{"start_at": start}},
					"sort":   map[string]any{"field": "CREATED_AT", "order": "ASC"},
				}}
			if cur.Cursor != "" {
				body["cursor"] = cur.Cursor
			}
			var out struct {
				Customers []customer `json:"customers"`
				Cursor    string     `json:"cursor"`
			}
			if err := a.call(ctx, a.client, http.MethodPost, "/v2/customers/search", body, &out); err != nil {
				return err
			}
			next, n = out.Cursor, len(out.Customers)
			for i := range out.Customers {
				if ce, ok := m.customerEvents(&out.Customers[i], ""); ok {
					evs = append(evs, ce...)
				}
			}
		case "orders":
			if locs == nil {
				var err error
				if locs, err = a.locations(ctx); err != nil {
					return err
				}
			}
			if cur.Loc*locationsPerSearch >= len(locs) {
				cur.Phase, cur.Cursor, cur.Loc = "payments", "", 0
				continue
			}
			chunk := locs[cur.Loc*locationsPerSearch : min((cur.Loc+1)*locationsPerSearch, len(locs))]
			body := map[string]any{"location_ids": chunk, "limit": ordersPageSize,
				"query": map[string]any{
					"filter": map[string]any{
						"state_filter":     map[string]any{"states": []string{"COMPLETED"}},
						"date_time_filter": map[string]any{"closed_at": map[string]any{"start_at": start}},
					},
					"sort": map[string]any{"sort_field": "CLOSED_AT", "sort_order": "ASC"},
				}}
			if cur.Cursor != "" {
				body["cursor"] = cur.Cursor
			}
			var out struct {
				Orders []order `json:"orders"`
				Cursor string  `json:"cursor"`
			}
			if err := a.call(ctx, a.client, http.MethodPost, "/v2/orders/search", body, &out); err != nil {
				return err
			}
			next, n = out.Cursor, len(out.Orders)
			for i := range out.Orders {
				if ev, ok := m.orderPlaced(sale{order: &out.Orders[i]}); ok {
					evs = append(evs, ev)
				}
			}
		case "payments":
			q := url.Values{"begin_time": {start}, "sort_order": {"ASC"}, "limit": {fmt.Sprint(paymentsPageSize)}}
			if cur.Cursor != "" {
				q.Set("cursor", cur.Cursor)
			}
			var out struct {
				Payments []payment `json:"payments"`
				Cursor   string    `json:"cursor"`
			}
			if err := a.call(ctx, a.client, http.MethodGet, "/v2/payments?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			next, n = out.Cursor, len(out.Payments)
			for i := range out.Payments {
				p := &out.Payments[i]
				if p.Status != "COMPLETED" {
					continue
				}
				// Same id as the order's own event: if SearchOrders already
				// delivered the order, the host drops this thinner copy.
				if ev, ok := m.orderPlaced(sale{payment: p}); ok {
					evs = append(evs, ev)
				}
			}
		}
		cur.Done += int64(n)
		phase := cur.Phase
		if next != "" {
			cur.Cursor = next
		} else if cur.Phase == "orders" {
			cur.Cursor = ""
			cur.Loc++
		} else {
			cur.Cursor, cur.Loc = "", 0
			cur.Phase = phases[cur.Phase]
		}
		msg := "square " + phase
		if cur.Phase == "done" {
			msg = "square backfill complete"
		}
		if err := sink.Batch(ctx, evs, cur.String(), sdk.Progress{Done: cur.Done, Message: msg}); err != nil {
			return err
		}
	}
	return nil
}
