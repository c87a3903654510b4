package shopify

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/omni/omni/plugins/sdk"
)

// GraphQL selections. Kept to fields present in 2025-04 and later.
const customerFields = `id legacyResourceId firstName lastName state tags createdAt updatedAt numberOfOrders
amountSpent { amount currencyCode }
defaultEmailAddress { emailAddress marketingState marketingOptInLevel marketingUpdatedAt }
defaultPhoneNumber { phoneNumber marketingState marketingOptInLevel marketingUpdatedAt marketingCollectedFrom }`

const customersQuery = `query Customers($first: Int!, $after: String, $query: String) {
  customers(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes { ` + customerFields + ` }
  }
}`

const ordersQuery = `query Orders($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id legacyResourceId name createdAt processedAt updatedAt cancelledAt cancelReason
      email phone sourceName test currencyCode displayFinancialStatus discountCodes
      totalPriceSet { shopMoney { amount currencyCode } }
      subtotalPriceSet { shopMoney { amount currencyCode } }
      totalTaxSet { shopMoney { amount currencyCode } }
      totalDiscountsSet { shopMoney { amount currencyCode } }
      customer { legacyResourceId defaultEmailAddress { emailAddress } defaultPhoneNumber { phoneNumber } }
      customerJourneySummary { firstVisit { landingPage referrerUrl utmParameters { source medium campaign term content } } }
      lineItems(first: 25) { nodes { id sku title variantTitle quantity
        product { legacyResourceId } variant { legacyResourceId }
        originalUnitPriceSet { shopMoney { amount currencyCode } } } }
    }
  }
}`

const countsQuery = `query Counts($customers: String, $orders: String) {
  customersCount(query: $customers) { count }
  ordersCount(query: $orders) { count }
}`

// Page sizes keep each query's cost under Shopify's 1,000-point cap
// (orders × line items dominates).
const (
	customersPage = 100
	ordersPage    = 25
)

type moneySet struct {
	ShopMoney struct {
		Amount       string `json:"amount"`
		CurrencyCode string `json:"currencyCode"`
	} `json:"shopMoney"`
}

type pageInfo struct {
	HasNextPage bool   `json:"hasNextPage"`
	EndCursor   string `json:"endCursor"`
}

type gqlCustomer struct {
	ID               string   `json:"id"`
	LegacyResourceID string   `json:"legacyResourceId"`
	FirstName        string   `json:"firstName"`
	LastName         string   `json:"lastName"`
	State            string   `json:"state"`
	Tags             []string `json:"tags"`
	CreatedAt        string   `json:"createdAt"`
	UpdatedAt        string   `json:"updatedAt"`
	NumberOfOrders   string   `json:"numberOfOrders"`
	AmountSpent      *struct {
		Amount       string `json:"amount"`
		CurrencyCode string `json:"currencyCode"`
	} `json:"amountSpent"`
	DefaultEmailAddress *struct {
		EmailAddress        string `json:"emailAddress"`
		MarketingState      string `json:"marketingState"`
		MarketingOptInLevel string `json:"marketingOptInLevel"`
		MarketingUpdatedAt  string `json:"marketingUpdatedAt"`
	} `json:"defaultEmailAddress"`
	DefaultPhoneNumber *struct {
		PhoneNumber            string `json:"phoneNumber"`
		MarketingState         string `json:"marketingState"`
		MarketingOptInLevel    string `json:"marketingOptInLevel"`
		MarketingUpdatedAt     string `json:"marketingUpdatedAt"`
		MarketingCollectedFrom string `json:"marketingCollectedFrom"`
	} `json:"defaultPhoneNumber"`
}

type gqlOrder struct {
	ID                     string   `json:"id"`
	LegacyResourceID       string   `json:"legacyResourceId"`
	Name                   string   `json:"name"`
	CreatedAt              string   `json:"createdAt"`
	ProcessedAt            string   `json:"processedAt"`
	UpdatedAt              string   `json:"updatedAt"`
	CancelledAt            string   `json:"cancelledAt"`
	CancelReason           string   `json:"cancelReason"`
	Email                  string   `json:"email"`
	Phone                  string   `json:"phone"`
	SourceName             string   `json:"sourceName"`
	Test                   bool     `json:"test"`
	CurrencyCode           string   `json:"currencyCode"`
	DisplayFinancialStatus string   `json:"displayFinancialStatus"`
	DiscountCodes          []string `json:"discountCodes"`
	TotalPriceSet          moneySet `json:"totalPriceSet"`
	SubtotalPriceSet       moneySet `json:"subtotalPriceSet"`
	TotalTaxSet            moneySet `json:"totalTaxSet"`
	TotalDiscountsSet      moneySet `json:"totalDiscountsSet"`
	Customer               *struct {
		LegacyResourceID    string `json:"legacyResourceId"`
		DefaultEmailAddress *struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"defaultEmailAddress"`
		DefaultPhoneNumber *struct {
			PhoneNumber string `json:"phoneNumber"`
		} `json:"defaultPhoneNumber"`
	} `json:"customer"`
	CustomerJourneySummary *struct {
		FirstVisit *struct {
			LandingPage   string `json:"landingPage"`
			ReferrerURL   string `json:"referrerUrl"`
			UTMParameters *struct {
				Source   string `json:"source"`
				Medium   string `json:"medium"`
				Campaign string `json:"campaign"`
				Term     string `json:"term"`
				Content  string `json:"content"`
			} `json:"utmParameters"`
		} `json:"firstVisit"`
	} `json:"customerJourneySummary"`
	LineItems struct {
		Nodes []struct {
			ID           string `json:"id"`
			SKU          string `json:"sku"`
			Title        string `json:"title"`
			VariantTitle string `json:"variantTitle"`
			Quantity     int64  `json:"quantity"`
			Product      *struct {
				LegacyResourceID string `json:"legacyResourceId"`
			} `json:"product"`
			Variant *struct {
				LegacyResourceID string `json:"legacyResourceId"`
			} `json:"variant"`
			OriginalUnitPriceSet moneySet `json:"originalUnitPriceSet"`
		} `json:"nodes"`
	} `json:"lineItems"`
}

// legacyID turns "gid://shopify/Order/450789469" into "450789469".
func legacyID(legacy, gid string) string {
	if legacy != "" {
		return legacy
	}
	if i := strings.LastIndexByte(gid, '/'); i >= 0 {
		return gid[i+1:]
	}
	return gid
}

func (g *gqlCustomer) rest() *restCustomer {
	c := &restCustomer{
		ID:          json.Number(legacyID(g.LegacyResourceID, g.ID)),
		FirstName:   g.FirstName,
		LastName:    g.LastName,
		State:       strings.ToLower(g.State),
		Tags:        strings.Join(g.Tags, ", "),
		CreatedAt:   g.CreatedAt,
		UpdatedAt:   g.UpdatedAt,
		OrdersCount: json.Number(g.NumberOfOrders),
	}
	if g.AmountSpent != nil {
		c.TotalSpent, c.Currency = g.AmountSpent.Amount, g.AmountSpent.CurrencyCode
	}
	if e := g.DefaultEmailAddress; e != nil {
		c.Email = e.EmailAddress
		if e.MarketingState != "" {
			c.EmailMarketingConsent = &consent{State: strings.ToLower(e.MarketingState),
				OptInLevel: strings.ToLower(e.MarketingOptInLevel), ConsentUpdatedAt: e.MarketingUpdatedAt}
		}
	}
	if p := g.DefaultPhoneNumber; p != nil {
		c.Phone = p.PhoneNumber
		if p.MarketingState != "" {
			c.SMSMarketingConsent = &consent{State: strings.ToLower(p.MarketingState),
				OptInLevel: strings.ToLower(p.MarketingOptInLevel), ConsentUpdatedAt: p.MarketingUpdatedAt,
				ConsentCollectedFrom: p.MarketingCollectedFrom}
		}
	}
	return c
}

func (g *gqlOrder) rest() *restOrder {
	o := &restOrder{
		ID:              json.Number(legacyID(g.LegacyResourceID, g.ID)),
		Name:            g.Name,
		Email:           g.Email,
		Phone:           g.Phone,
		Currency:        g.TotalPriceSet.ShopMoney.CurrencyCode,
		TotalPrice:      g.TotalPriceSet.ShopMoney.Amount,
		SubtotalPrice:   g.SubtotalPriceSet.ShopMoney.Amount,
		TotalTax:        g.TotalTaxSet.ShopMoney.Amount,
		TotalDiscounts:  g.TotalDiscountsSet.ShopMoney.Amount,
		FinancialStatus: strings.ToLower(g.DisplayFinancialStatus),
		SourceName:      g.SourceName,
		ProcessedAt:     g.ProcessedAt,
		CreatedAt:       g.CreatedAt,
		UpdatedAt:       g.UpdatedAt,
		CancelledAt:     g.CancelledAt,
		CancelReason:    strings.ToLower(g.CancelReason),
		Test:            g.Test,
	}
	if o.Currency == "" {
		o.Currency = g.CurrencyCode
	}
	for _, code := range g.DiscountCodes {
		o.DiscountCodes = append(o.DiscountCodes, discountCode{Code: code})
	}
	if c := g.Customer; c != nil {
		o.Customer = &restCustomer{ID: json.Number(c.LegacyResourceID)}
		if c.DefaultEmailAddress != nil {
			o.Customer.Email = c.DefaultEmailAddress.EmailAddress
		}
		if c.DefaultPhoneNumber != nil {
			o.Customer.Phone = c.DefaultPhoneNumber.PhoneNumber
		}
	}
	if j := g.CustomerJourneySummary; j != nil && j.FirstVisit != nil {
		o.LandingSite, o.ReferringSite = j.FirstVisit.LandingPage, j.FirstVisit.ReferrerURL
		if u := j.FirstVisit.UTMParameters; u != nil && u.Source != "" {
			o.utm = &sdk.Campaign{Source: u.Source, Medium: u.Medium, Name: u.Campaign, Term: u.Term, Content: u.Content}
		}
	}
	for _, li := range g.LineItems.Nodes {
		item := lineItem{
			ID:           json.Number(legacyID("", li.ID)),
			SKU:          li.SKU,
			Title:        li.Title,
			VariantTitle: li.VariantTitle,
			Quantity:     json.Number(fmt.Sprint(li.Quantity)),
			Price:        li.OriginalUnitPriceSet.ShopMoney.Amount,
		}
		if li.Product != nil {
			item.ProductID = json.Number(li.Product.LegacyResourceID)
		}
		if li.Variant != nil {
			item.VariantID = json.Number(li.Variant.LegacyResourceID)
		}
		o.LineItems = append(o.LineItems, item)
	}
	return o
}

// backfillCursor is the resume point; it is opaque to the host.
type backfillCursor struct {
	Phase string `json:"phase"` // "customers", "orders", "done"
	After string `json:"after,omitempty"`
	Done  int64  `json:"done"`
	Total int64  `json:"total,omitempty"`
}

func (b backfillCursor) String() string {
	s, _ := json.Marshal(b)
	return string(s)
}

// Backfill imports customers, then orders, page by page. The cursor after
// every page lets an interrupted run resume where it stopped.
func (c *Connector) Backfill(ctx context.Context, req *sdk.BackfillRequest, sink sdk.BackfillSink) error {
	_, api, ok := c.settings()
	if !ok {
		return errNotConfigured
	}
	cur := backfillCursor{Phase: "customers"}
	if req.Cursor != "" {
		if err := json.Unmarshal([]byte(req.Cursor), &cur); err != nil || (cur.Phase != "customers" && cur.Phase != "orders" && cur.Phase != "done") {
			return &sdk.ConfigError{Field: "cursor", Problem: "is not a cursor this connector produced"}
		}
	}
	var custFilter, orderFilter *string
	if !req.Since.IsZero() {
		ts := req.Since.UTC().Format(time.RFC3339)
		cf, of := "updated_at:>='"+ts+"'", "created_at:>='"+ts+"'"
		custFilter, orderFilter = &cf, &of
	}
	if cur.Total == 0 && req.Cursor == "" {
		var counts struct {
			CustomersCount *struct{ Count int64 } `json:"customersCount"`
			OrdersCount    *struct{ Count int64 } `json:"ordersCount"`
		}
		if err := api.query(ctx, countsQuery, map[string]any{"customers": custFilter, "orders": orderFilter}, &counts); err == nil {
			if counts.CustomersCount != nil {
				cur.Total += counts.CustomersCount.Count
			}
			if counts.OrdersCount != nil {
				cur.Total += counts.OrdersCount.Count
			}
		} else {
			c.log("info", "shopify backfill: totals unavailable", "error", err.Error())
		}
	}
	m := c.mapper()
	for cur.Phase != "done" {
		vars := map[string]any{"after": nilIfEmpty(cur.After)}
		var evs []sdk.Event
		var pi pageInfo
		var n int
		switch cur.Phase {
		case "customers":
			vars["first"], vars["query"] = customersPage, custFilter
			var out struct {
				Customers struct {
					PageInfo pageInfo      `json:"pageInfo"`
					Nodes    []gqlCustomer `json:"nodes"`
				} `json:"customers"`
			}
			if err := api.query(ctx, customersQuery, vars, &out); err != nil {
				return fmt.Errorf("shopify backfill (customers): %w", err)
			}
			pi, n = out.Customers.PageInfo, len(out.Customers.Nodes)
			for i := range out.Customers.Nodes {
				ce, err := m.customer(out.Customers.Nodes[i].rest())
				if err != nil {
					c.log("warn", "shopify backfill: customer skipped", "error", err.Error())
					continue
				}
				evs = append(evs, ce...)
			}
		case "orders":
			vars["first"], vars["query"] = ordersPage, orderFilter
			var out struct {
				Orders struct {
					PageInfo pageInfo   `json:"pageInfo"`
					Nodes    []gqlOrder `json:"nodes"`
				} `json:"orders"`
			}
			if err := api.query(ctx, ordersQuery, vars, &out); err != nil {
				return fmt.Errorf("shopify backfill (orders): %w", err)
			}
			pi, n = out.Orders.PageInfo, len(out.Orders.Nodes)
			for i := range out.Orders.Nodes {
				o := out.Orders.Nodes[i].rest()
				ev, err := m.orderPlaced(o)
				if err != nil {
					c.log("warn", "shopify backfill: order skipped", "error", err.Error())
					continue
				}
				evs = append(evs, ev)
				if o.CancelledAt != "" {
					if ce, err := m.orderCancelled(o); err == nil {
						evs = append(evs, ce)
					}
				}
			}
		}
		cur.Done += int64(n)
		phase := cur.Phase
		if pi.HasNextPage && pi.EndCursor != "" {
			cur.After = pi.EndCursor
		} else {
			cur.After = ""
			if cur.Phase == "customers" {
				cur.Phase = "orders"
			} else {
				cur.Phase = "done"
			}
		}
		total := cur.Total
		if total < cur.Done {
			total = 0
		}
		p := sdk.Progress{Done: cur.Done, Total: total, Message: "shopify " + phase}
		if cur.Phase == "done" {
			p.Message = "shopify backfill complete"
		}
		if err := sink.Batch(ctx, evs, cur.String(), p); err != nil {
			return err
		}
	}
	return nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
