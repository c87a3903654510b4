package square

import (
	"strconv"
	"strings"
	"time"

	"github.com/omni/omni/core/events"
	moneypkg "github.com/omni/omni/plugins/internal/money"
	"github.com/omni/omni/plugins/sdk"
)

// Square objects (money is always integer minor units).

type money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

func (m *money) major() (float64, string, bool) {
	if m == nil || m.Currency == "" {
		return 0, "", false
	}
	return moneypkg.FromMinor(m.Amount, m.Currency), strings.ToUpper(m.Currency), true
}

type payment struct {
	ID                string `json:"id"`
	Status            string `json:"status"`
	OrderID           string `json:"order_id"`
	LocationID        string `json:"location_id"`
	CustomerID        string `json:"customer_id"`
	BuyerEmailAddress string `json:"buyer_email_address"`
	SourceType        string `json:"source_type"`
	ReceiptNumber     string `json:"receipt_number"`
	ReceiptURL        string `json:"receipt_url"`
	CreatedAt         string `json:"created_at"`
	UpdatedAt         string `json:"updated_at"`
	AmountMoney       *money `json:"amount_money"`
	TotalMoney        *money `json:"total_money"`
	TipMoney          *money `json:"tip_money"`
}

type order struct {
	ID          string `json:"id"`
	LocationID  string `json:"location_id"`
	CustomerID  string `json:"customer_id"`
	ReferenceID string `json:"reference_id"`
	State       string `json:"state"`
	CreatedAt   string `json:"created_at"`
	UpdatedAt   string `json:"updated_at"`
	ClosedAt    string `json:"closed_at"`
	Source      *struct {
		Name string `json:"name"`
	} `json:"source"`
	LineItems []struct {
		UID                string `json:"uid"`
		Name               string `json:"name"`
		Quantity           string `json:"quantity"`
		CatalogObjectID    string `json:"catalog_object_id"`
		VariationName      string `json:"variation_name"`
		BasePriceMoney     *money `json:"base_price_money"`
		TotalMoney         *money `json:"total_money"`
		TotalDiscountMoney *money `json:"total_discount_money"`
	} `json:"line_items"`
	Discounts []struct {
		UID          string `json:"uid"`
		Name         string `json:"name"`
		Type         string `json:"type"`
		Percentage   string `json:"percentage"`
		Scope        string `json:"scope"`
		AppliedMoney *money `json:"applied_money"`
	} `json:"discounts"`
	Tenders []struct {
		ID         string `json:"id"`
		PaymentID  string `json:"payment_id"`
		CustomerID string `json:"customer_id"`
		Type       string `json:"type"`
	} `json:"tenders"`
	TotalMoney         *money `json:"total_money"`
	TotalTaxMoney      *money `json:"total_tax_money"`
	TotalDiscountMoney *money `json:"total_discount_money"`
	TotalTipMoney      *money `json:"total_tip_money"`
}

type customer struct {
	ID             string `json:"id"`
	GivenName      string `json:"given_name"`
	FamilyName     string `json:"family_name"`
	Nickname       string `json:"nickname"`
	CompanyName    string `json:"company_name"`
	EmailAddress   string `json:"email_address"`
	PhoneNumber    string `json:"phone_number"`
	Birthday       string `json:"birthday"`
	ReferenceID    string `json:"reference_id"`
	CreationSource string `json:"creation_source"`
	CreatedAt      string `json:"created_at"`
	UpdatedAt      string `json:"updated_at"`
	Version        *int64 `json:"version"`
	Preferences    *struct {
		EmailUnsubscribed *bool `json:"email_unsubscribed"`
	} `json:"preferences"`
	Address *struct {
		Locality string `json:"locality"`
		Region   string `json:"administrative_district_level_1"`
		Postal   string `json:"postal_code"`
		Country  string `json:"country"`
	} `json:"address"`
}

type refund struct {
	ID          string `json:"id"`
	PaymentID   string `json:"payment_id"`
	OrderID     string `json:"order_id"`
	LocationID  string `json:"location_id"`
	Status      string `json:"status"`
	Reason      string `json:"reason"`
	CreatedAt   string `json:"created_at"`
	UpdatedAt   string `json:"updated_at"`
	AmountMoney *money `json:"amount_money"`
}

type mapper struct {
	norm events.Normalizer
	now  func() time.Time
}

func (c *Connector) mapper() mapper { return mapper{now: c.now} }

func parseTime(vals ...string) time.Time {
	for _, v := range vals {
		if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(v)); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

func (m mapper) at(vals ...string) time.Time {
	if t := parseTime(vals...); !t.IsZero() {
		return t
	}
	return m.now().UTC()
}

func (m mapper) identities(customerID, email, phone string) map[string]string {
	ids := map[string]string{}
	if customerID = strings.TrimSpace(customerID); customerID != "" {
		ids[events.SquareCustomer] = customerID
	}
	if e := events.NormalizeEmail(email); e != "" {
		ids[events.Email] = e
	}
	if p, ok := m.norm.Phone(phone); ok {
		ids[events.Phone] = p
	}
	return ids
}

func setIf(p map[string]any, k, v string) {
	if v != "" {
		p[k] = v
	}
}

func setMoney(p map[string]any, k string, m *money) {
	if v, _, ok := m.major(); ok {
		p[k] = v
	}
}

// quantity turns Square's decimal-string quantity into a number.
func quantity(s string) any {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return s
}

// sale is what order.placed is built from: a full order when we have it,
// the payment that completed it, and the buyer when known.
type sale struct {
	order    *order
	payment  *payment
	customer *customer
}

func (s sale) customerID() string {
	switch {
	case s.order != nil && s.order.CustomerID != "":
		return s.order.CustomerID
	case s.payment != nil && s.payment.CustomerID != "":
		return s.payment.CustomerID
	case s.order != nil:
		for _, t := range s.order.Tenders {
			if t.CustomerID != "" {
				return t.CustomerID
			}
		}
	}
	return ""
}

// orderPlaced: one event per Square order however it arrives (payment
// webhook, order webhook, backfill), so revenue counts once.
func (m mapper) orderPlaced(s sale) (sdk.Event, bool) {
	orderID, loc := "", ""
	p := map[string]any{}
	var cur string
	var at time.Time
	if o := s.order; o != nil {
		orderID, loc = o.ID, o.LocationID
		total, c, ok := o.TotalMoney.major()
		if ok {
			p["total"], cur = total, c
		}
		setMoney(p, "tax", o.TotalTaxMoney)
		setMoney(p, "discount_total", o.TotalDiscountMoney)
		setMoney(p, "tip", o.TotalTipMoney)
		items := make([]any, 0, len(o.LineItems))
		for _, li := range o.LineItems {
			it := map[string]any{"name": li.Name, "quantity": quantity(li.Quantity)}
			setIf(it, "uid", li.UID)
			setIf(it, "catalog_object_id", li.CatalogObjectID)
			setIf(it, "variation_name", li.VariationName)
			setMoney(it, "price", li.BasePriceMoney)
			setMoney(it, "total", li.TotalMoney)
			if li.TotalDiscountMoney != nil && li.TotalDiscountMoney.Amount != 0 {
				setMoney(it, "total_discount", li.TotalDiscountMoney)
			}
			items = append(items, it)
		}
		p["line_items"] = items
		codes := make([]any, 0, len(o.Discounts))
		for _, d := range o.Discounts {
			if d.Name != "" {
				codes = append(codes, d.Name)
			}
		}
		p["discount_codes"] = codes
		setIf(p, "state", o.State)
		setIf(p, "reference_id", o.ReferenceID)
		if o.Source != nil {
			setIf(p, "order_source", o.Source.Name)
		}
		at = parseTime(o.ClosedAt)
	}
	if pm := s.payment; pm != nil {
		if orderID == "" {
			orderID = pm.OrderID
		}
		if loc == "" {
			loc = pm.LocationID
		}
		if _, ok := p["total"]; !ok {
			if total, c, ok := pm.TotalMoney.major(); ok {
				p["total"], cur = total, c
			} else if total, c, ok := pm.AmountMoney.major(); ok {
				p["total"], cur = total, c
			}
		}
		setIf(p, "payment_id", pm.ID)
		setIf(p, "payment_source_type", pm.SourceType)
		setIf(p, "receipt_number", pm.ReceiptNumber)
		setIf(p, "receipt_url", pm.ReceiptURL)
		if at.IsZero() {
			at = parseTime(pm.UpdatedAt, pm.CreatedAt)
		}
	}
	if _, ok := p["total"]; !ok || (orderID == "" && s.payment == nil) {
		return sdk.Event{}, false
	}
	if s.order != nil && at.IsZero() {
		at = parseTime(s.order.UpdatedAt, s.order.CreatedAt)
	}
	if at.IsZero() {
		at = m.now().UTC()
	}
	if _, ok := p["line_items"]; !ok {
		p["line_items"] = []any{}
		p["discount_codes"] = []any{}
	}
	p["currency"] = cur
	setIf(p, "location_id", loc)
	id := "square:order:" + orderID
	if orderID == "" {
		id = "square:payment:" + s.payment.ID
		orderID = s.payment.ID
	}
	p["order_id"] = orderID

	email, phone := "", ""
	if s.payment != nil {
		email = s.payment.BuyerEmailAddress
	}
	if cu := s.customer; cu != nil {
		if cu.EmailAddress != "" {
			email = cu.EmailAddress
		}
		phone = cu.PhoneNumber
	}
	ids := m.identities(s.customerID(), email, phone)
	if len(ids) == 0 {
		// A walk-in with no customer on file: keep the sale (revenue,
		// store metrics) on an order-scoped anonymous profile.
		ids[events.AnonymousID] = "square_order:" + orderID
	}
	return sdk.Event{
		ID:         id,
		Type:       events.OrderPlaced,
		OccurredAt: at,
		Identities: ids,
		Properties: p,
		Context:    sdk.EventContext{Channel: events.ChannelPOS},
	}, true
}

// customerEvents emits customer.updated and, when the customer opted out of
// Square's marketing email, consent.changed. email_unsubscribed=false is
// not a opt-in (Square's flag only records opt-outs), so it emits nothing:
// treating it as consent would re-subscribe people who opted out elsewhere.
//
// The id follows the customer's version (bumped on every change), so a
// redelivery or a backfill of the same state keeps it; fallbackKey (the
// notification's event_id) is used when Square sent neither version nor
// updated_at.
func (m mapper) customerEvents(cu *customer, fallbackKey string) ([]sdk.Event, bool) {
	if cu == nil || cu.ID == "" {
		return nil, false
	}
	ids := m.identities(cu.ID, cu.EmailAddress, cu.PhoneNumber)
	p := map[string]any{"customer_id": cu.ID}
	setIf(p, "first_name", cu.GivenName)
	setIf(p, "last_name", cu.FamilyName)
	setIf(p, "nickname", cu.Nickname)
	setIf(p, "company_name", cu.CompanyName)
	setIf(p, "birthday", cu.Birthday)
	setIf(p, "reference_id", cu.ReferenceID)
	setIf(p, "creation_source", cu.CreationSource)
	setIf(p, "created_at", cu.CreatedAt)
	if a := cu.Address; a != nil {
		setIf(p, "city", a.Locality)
		setIf(p, "region", a.Region)
		setIf(p, "postal_code", a.Postal)
		setIf(p, "country", a.Country)
	}
	if cu.PhoneNumber != "" && ids[events.Phone] == "" {
		p["invalid_phone"] = cu.PhoneNumber
	}
	rev := "na"
	if fallbackKey != "" {
		rev = "e" + fallbackKey
	}
	if cu.Version != nil {
		rev = "v" + strconv.FormatInt(*cu.Version, 10)
	} else if t := parseTime(cu.UpdatedAt); !t.IsZero() {
		rev = t.Format("20060102T150405.000Z")
	}
	at := m.at(cu.UpdatedAt, cu.CreatedAt)
	out := []sdk.Event{{
		ID:         "square:customer:" + cu.ID + ":" + rev,
		Type:       events.CustomerUpdated,
		OccurredAt: at,
		Identities: ids,
		Properties: p,
	}}
	if cu.Preferences != nil && cu.Preferences.EmailUnsubscribed != nil && *cu.Preferences.EmailUnsubscribed && ids[events.Email] != "" {
		cids := map[string]string{}
		for k, v := range ids {
			cids[k] = v
		}
		out = append(out, sdk.Event{
			ID:         "square:consent:" + cu.ID + ":" + rev + ":email",
			Type:       events.ConsentChanged,
			OccurredAt: at,
			Identities: cids,
			Properties: map[string]any{"channel": "email", "status": "unsubscribed", "source": Name, "email_unsubscribed": true},
		})
	}
	return out, true
}

// refunded maps a COMPLETED refund.
func (m mapper) refunded(r *refund, ids map[string]string) (sdk.Event, bool) {
	if r == nil || r.ID == "" || !strings.EqualFold(r.Status, "COMPLETED") {
		return sdk.Event{}, false
	}
	total, cur, ok := r.AmountMoney.major()
	if !ok {
		return sdk.Event{}, false
	}
	if len(ids) == 0 {
		ref := r.OrderID
		if ref == "" {
			ref = r.PaymentID
		}
		ids = map[string]string{events.AnonymousID: "square_order:" + ref}
	}
	p := map[string]any{"refund_id": r.ID, "total": total, "currency": cur}
	setIf(p, "order_id", r.OrderID)
	setIf(p, "payment_id", r.PaymentID)
	setIf(p, "location_id", r.LocationID)
	setIf(p, "reason", r.Reason)
	return sdk.Event{
		ID:         "square:refund:" + r.ID,
		Type:       events.OrderRefunded,
		OccurredAt: m.at(r.UpdatedAt, r.CreatedAt),
		Identities: ids,
		Properties: p,
		Context:    sdk.EventContext{Channel: events.ChannelPOS},
	}, true
}
