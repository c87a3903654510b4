package shopify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/plugins/internal/money"
	"github.com/omni/omni/plugins/sdk"
)

// REST-shaped payloads (webhooks use the REST resource shape of the
// subscription's API version). Ids are int64 that can exceed 2^53, so they
// are decoded as json.Number and carried as strings.

type restOrder struct {
	ID                json.Number    `json:"id"`
	Name              string         `json:"name"`
	OrderNumber       json.Number    `json:"order_number"`
	Email             string         `json:"email"`
	ContactEmail      string         `json:"contact_email"`
	Phone             string         `json:"phone"`
	Currency          string         `json:"currency"`
	TotalPrice        string         `json:"total_price"`
	SubtotalPrice     string         `json:"subtotal_price"`
	TotalTax          string         `json:"total_tax"`
	TotalDiscounts    string         `json:"total_discounts"`
	CurrentTotalPrice string         `json:"current_total_price"`
	FinancialStatus   string         `json:"financial_status"`
	SourceName        string         `json:"source_name"`
	LocationID        json.Number    `json:"location_id"`
	UserID            json.Number    `json:"user_id"`
	DeviceID          json.Number    `json:"device_id"`
	LandingSite       string         `json:"landing_site"`
	ReferringSite     string         `json:"referring_site"`
	LandingSiteRef    string         `json:"landing_site_ref"`
	CheckoutToken     string         `json:"checkout_token"`
	CartToken         string         `json:"cart_token"`
	ProcessedAt       string         `json:"processed_at"`
	CreatedAt         string         `json:"created_at"`
	UpdatedAt         string         `json:"updated_at"`
	CancelledAt       string         `json:"cancelled_at"`
	CancelReason      string         `json:"cancel_reason"`
	Test              bool           `json:"test"`
	DiscountCodes     []discountCode `json:"discount_codes"`
	LineItems         []lineItem     `json:"line_items"`
	Customer          *restCustomer  `json:"customer"`
	// landing campaign fields filled from GraphQL's customerJourneySummary
	utm *sdk.Campaign
}

type discountCode struct {
	Code   string `json:"code"`
	Amount string `json:"amount"`
	Type   string `json:"type"`
}

type lineItem struct {
	ID            json.Number `json:"id"`
	ProductID     json.Number `json:"product_id"`
	VariantID     json.Number `json:"variant_id"`
	SKU           string      `json:"sku"`
	Title         string      `json:"title"`
	VariantTitle  string      `json:"variant_title"`
	Quantity      json.Number `json:"quantity"`
	Price         string      `json:"price"`
	TotalDiscount string      `json:"total_discount"`
}

type restCustomer struct {
	ID                    json.Number `json:"id"`
	Email                 string      `json:"email"`
	Phone                 string      `json:"phone"`
	FirstName             string      `json:"first_name"`
	LastName              string      `json:"last_name"`
	State                 string      `json:"state"`
	Tags                  string      `json:"tags"`
	OrdersCount           json.Number `json:"orders_count"`
	TotalSpent            string      `json:"total_spent"`
	Currency              string      `json:"currency"`
	VerifiedEmail         *bool       `json:"verified_email"`
	CreatedAt             string      `json:"created_at"`
	UpdatedAt             string      `json:"updated_at"`
	EmailMarketingConsent *consent    `json:"email_marketing_consent"`
	SMSMarketingConsent   *consent    `json:"sms_marketing_consent"`
}

type consent struct {
	State                string `json:"state"`
	OptInLevel           string `json:"opt_in_level"`
	ConsentUpdatedAt     string `json:"consent_updated_at"`
	ConsentCollectedFrom string `json:"consent_collected_from"`
}

type restRefund struct {
	ID              json.Number `json:"id"`
	OrderID         json.Number `json:"order_id"`
	CreatedAt       string      `json:"created_at"`
	ProcessedAt     string      `json:"processed_at"`
	Note            string      `json:"note"`
	RefundLineItems []struct {
		LineItemID json.Number `json:"line_item_id"`
		Quantity   json.Number `json:"quantity"`
		Subtotal   json.Number `json:"subtotal"`
		LineItem   lineItem    `json:"line_item"`
	} `json:"refund_line_items"`
	Transactions []struct {
		Kind     string `json:"kind"`
		Status   string `json:"status"`
		Amount   string `json:"amount"`
		Currency string `json:"currency"`
	} `json:"transactions"`
}

type restCheckout struct {
	ID                    json.Number    `json:"id"`
	Token                 string         `json:"token"`
	CartToken             string         `json:"cart_token"`
	Email                 string         `json:"email"`
	Phone                 string         `json:"phone"`
	SMSMarketingPhone     string         `json:"sms_marketing_phone"`
	AbandonedCheckoutURL  string         `json:"abandoned_checkout_url"`
	CompletedAt           string         `json:"completed_at"`
	CreatedAt             string         `json:"created_at"`
	UpdatedAt             string         `json:"updated_at"`
	Currency              string         `json:"currency"`
	TotalPrice            string         `json:"total_price"`
	SubtotalPrice         string         `json:"subtotal_price"`
	TotalDiscounts        string         `json:"total_discounts"`
	SourceName            string         `json:"source_name"`
	LandingSite           string         `json:"landing_site"`
	ReferringSite         string         `json:"referring_site"`
	BuyerAcceptsMarketing bool           `json:"buyer_accepts_marketing"`
	DiscountCodes         []discountCode `json:"discount_codes"`
	LineItems             []lineItem     `json:"line_items"`
	Customer              *restCustomer  `json:"customer"`
}

// consentPayload covers both consent topics:
// customers/email_marketing_consent/update {customer_id, email_address, email_marketing_consent}
// customers/marketing_consent/update {id, phone, sms_marketing_consent}
type consentPayload struct {
	CustomerID            json.Number `json:"customer_id"`
	ID                    json.Number `json:"id"`
	EmailAddress          string      `json:"email_address"`
	Email                 string      `json:"email"`
	Phone                 string      `json:"phone"`
	EmailMarketingConsent *consent    `json:"email_marketing_consent"`
	SMSMarketingConsent   *consent    `json:"sms_marketing_consent"`
}

type redactPayload struct {
	Customer struct {
		ID    json.Number `json:"id"`
		Email string      `json:"email"`
		Phone string      `json:"phone"`
	} `json:"customer"`
}

// mapper turns payloads into unified events.
type mapper struct {
	norm events.Normalizer
	now  func() time.Time
}

func (c *Connector) mapper() mapper { return mapper{now: c.now} }

func (m mapper) identities(customerID, email, phone string) map[string]string {
	ids := map[string]string{}
	if customerID != "" && customerID != "0" {
		ids[events.ShopifyCustomer] = customerID
	}
	if e := events.NormalizeEmail(email); e != "" {
		ids[events.Email] = e
	}
	if p, ok := m.norm.Phone(phone); ok {
		ids[events.Phone] = p
	}
	return ids
}

// orderAnonymousID ties events about an order without a known buyer (POS
// walk-ins) to one anonymous profile, so its refund lands on the same one.
func orderAnonymousID(orderID string) string { return "shopify_order:" + orderID }

func parseTime(vals ...string) time.Time {
	for _, v := range vals {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
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

func amount(s, currency string) (float64, bool) { return money.ParseDecimal(s, currency) }

// channel maps Shopify's source_name: "pos" is an in-store sale, everything
// else (web, shopify_draft_order, iphone, app ids…) counts as online.
func channel(sourceName string) string {
	if strings.EqualFold(strings.TrimSpace(sourceName), "pos") {
		return events.ChannelPOS
	}
	return events.ChannelWeb
}

func lineItems(items []lineItem, currency string) []any {
	out := make([]any, 0, len(items))
	for _, li := range items {
		item := map[string]any{"title": li.Title}
		if li.ID != "" {
			item["id"] = li.ID.String()
		}
		if li.ProductID != "" {
			item["product_id"] = li.ProductID.String()
		}
		if li.VariantID != "" {
			item["variant_id"] = li.VariantID.String()
		}
		if li.SKU != "" {
			item["sku"] = li.SKU
		}
		if li.VariantTitle != "" {
			item["variant_title"] = li.VariantTitle
		}
		if q, err := li.Quantity.Int64(); err == nil {
			item["quantity"] = q
		}
		if p, ok := amount(li.Price, currency); ok {
			item["price"] = p
		}
		if d, ok := amount(li.TotalDiscount, currency); ok && d != 0 {
			item["total_discount"] = d
		}
		out = append(out, item)
	}
	return out
}

func discountCodes(dc []discountCode) []any {
	out := make([]any, 0, len(dc))
	for _, d := range dc {
		if d.Code != "" {
			out = append(out, d.Code)
		}
	}
	return out
}

// campaign reads UTM parameters from the landing page; without them an
// external referrer counts as a referral from its host.
func campaign(landingSite, referringSite string) *sdk.Campaign {
	c := &sdk.Campaign{}
	if u := parseLoose(landingSite); u != nil {
		q := u.Query()
		c.Source, c.Medium, c.Name = q.Get("utm_source"), q.Get("utm_medium"), q.Get("utm_campaign")
		c.Term, c.Content = q.Get("utm_term"), q.Get("utm_content")
	}
	if c.Source == "" {
		if r := parseLoose(referringSite); r != nil && r.Host != "" {
			c.Source = strings.TrimPrefix(strings.ToLower(r.Host), "www.")
			if c.Medium == "" {
				c.Medium = "referral"
			}
		}
	}
	if *c == (sdk.Campaign{}) {
		return nil
	}
	return c
}

func parseLoose(s string) *url.URL {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil
	}
	return u
}

func (m mapper) orderIdentities(o *restOrder) map[string]string {
	cid, email, phone := "", o.Email, o.Phone
	if email == "" {
		email = o.ContactEmail
	}
	if o.Customer != nil {
		cid = o.Customer.ID.String()
		if o.Customer.Email != "" {
			email = o.Customer.Email
		}
		if o.Customer.Phone != "" {
			phone = o.Customer.Phone
		}
	}
	ids := m.identities(cid, email, phone)
	if len(ids) == 0 {
		ids[events.AnonymousID] = orderAnonymousID(o.ID.String())
	}
	return ids
}

func (m mapper) orderProperties(o *restOrder) (map[string]any, error) {
	id := o.ID.String()
	if id == "" {
		return nil, badPayload("id: order id is required")
	}
	cur := strings.ToUpper(o.Currency)
	p := map[string]any{
		"order_id":       id,
		"currency":       cur,
		"line_items":     lineItems(o.LineItems, cur),
		"discount_codes": discountCodes(o.DiscountCodes),
		"source_name":    o.SourceName,
	}
	total, ok := amount(o.TotalPrice, cur)
	if !ok {
		return nil, badPayload("total_price: must be a decimal string such as \"19.99\"")
	}
	p["total"] = total
	for key, v := range map[string]string{"subtotal": o.SubtotalPrice, "tax": o.TotalTax, "discount_total": o.TotalDiscounts} {
		if f, ok := amount(v, cur); ok {
			p[key] = f
		}
	}
	setIf(p, "order_name", o.Name)
	setIf(p, "order_number", o.OrderNumber.String())
	setIf(p, "financial_status", o.FinancialStatus)
	setIf(p, "location_id", o.LocationID.String())
	setIf(p, "staff_user_id", o.UserID.String())
	setIf(p, "device_id", o.DeviceID.String())
	setIf(p, "checkout_token", o.CheckoutToken)
	setIf(p, "cart_token", o.CartToken)
	setIf(p, "landing_site", o.LandingSite)
	setIf(p, "referring_site", o.ReferringSite)
	setIf(p, "landing_site_ref", o.LandingSiteRef)
	if o.Test {
		p["test"] = true
	}
	return p, nil
}

func setIf(p map[string]any, k, v string) {
	if v != "" {
		p[k] = v
	}
}

// orderPlaced: one event per order whichever way it arrives (orders/create,
// orders/paid, backfill), so revenue is counted once.
func (m mapper) orderPlaced(o *restOrder) (sdk.Event, error) {
	p, err := m.orderProperties(o)
	if err != nil {
		return sdk.Event{}, err
	}
	ch := channel(o.SourceName)
	ev := sdk.Event{
		ID:         "shopify:order:" + o.ID.String(),
		Type:       events.OrderPlaced,
		OccurredAt: m.at(o.ProcessedAt, o.CreatedAt),
		Identities: m.orderIdentities(o),
		Properties: p,
		Context:    sdk.EventContext{Channel: ch},
	}
	if ch == events.ChannelWeb {
		ev.Context.Campaign = campaign(o.LandingSite, o.ReferringSite)
		if o.utm != nil {
			ev.Context.Campaign = o.utm
		}
	}
	return ev, nil
}

func (m mapper) orderCancelled(o *restOrder) (sdk.Event, error) {
	p, err := m.orderProperties(o)
	if err != nil {
		return sdk.Event{}, err
	}
	setIf(p, "cancel_reason", o.CancelReason)
	return sdk.Event{
		ID:         "shopify:order:" + o.ID.String() + ":cancelled",
		Type:       events.OrderCancelled,
		OccurredAt: m.at(o.CancelledAt, o.UpdatedAt),
		Identities: m.orderIdentities(o),
		Properties: p,
		Context:    sdk.EventContext{Channel: channel(o.SourceName)},
	}, nil
}

func (m mapper) orderRefunded(r *restRefund, ids map[string]string) (sdk.Event, error) {
	id, oid := r.ID.String(), r.OrderID.String()
	if id == "" || oid == "" {
		return sdk.Event{}, badPayload("id, order_id: refund and order ids are required")
	}
	cur := ""
	var total float64
	for _, t := range r.Transactions {
		if !strings.EqualFold(t.Kind, "refund") || (t.Status != "" && !strings.EqualFold(t.Status, "success")) {
			continue
		}
		if cur == "" {
			cur = strings.ToUpper(t.Currency)
		}
		if a, ok := amount(t.Amount, t.Currency); ok {
			total += a
		}
	}
	total, _ = money.ParseDecimal(formatFloat(total), cur)
	items := make([]any, 0, len(r.RefundLineItems))
	for _, rl := range r.RefundLineItems {
		it := map[string]any{"line_item_id": rl.LineItemID.String()}
		if q, err := rl.Quantity.Int64(); err == nil {
			it["quantity"] = q
		}
		if s, err := rl.Subtotal.Float64(); err == nil {
			it["subtotal"] = s
		}
		setIf(it, "sku", rl.LineItem.SKU)
		setIf(it, "title", rl.LineItem.Title)
		items = append(items, it)
	}
	if len(ids) == 0 {
		ids = map[string]string{events.AnonymousID: orderAnonymousID(oid)}
	}
	p := map[string]any{"refund_id": id, "order_id": oid, "total": total, "line_items": items}
	setIf(p, "currency", cur)
	setIf(p, "note", r.Note)
	return sdk.Event{
		ID:         "shopify:refund:" + id,
		Type:       events.OrderRefunded,
		OccurredAt: m.at(r.ProcessedAt, r.CreatedAt),
		Identities: ids,
		Properties: p,
	}, nil
}

func formatFloat(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// checkout returns ok=false when nobody can be identified yet (Shopify
// creates checkouts before the buyer types an email).
func (m mapper) checkout(ch *restCheckout, started bool) (sdk.Event, bool, error) {
	if ch.Token == "" {
		return sdk.Event{}, false, badPayload("token: checkout token is required")
	}
	cid, email, phone := "", ch.Email, ch.Phone
	if phone == "" {
		phone = ch.SMSMarketingPhone
	}
	if ch.Customer != nil {
		cid = ch.Customer.ID.String()
		if email == "" {
			email = ch.Customer.Email
		}
		if phone == "" {
			phone = ch.Customer.Phone
		}
	}
	ids := m.identities(cid, email, phone)
	if len(ids) == 0 {
		return sdk.Event{}, false, nil
	}
	cur := strings.ToUpper(ch.Currency)
	p := map[string]any{
		"checkout_token":         ch.Token,
		"currency":               cur,
		"line_items":             lineItems(ch.LineItems, cur),
		"discount_codes":         discountCodes(ch.DiscountCodes),
		"abandoned_checkout_url": ch.AbandonedCheckoutURL,
		"completed":              ch.CompletedAt != "",
	}
	if t, ok := amount(ch.TotalPrice, cur); ok {
		p["total"] = t
	}
	if t, ok := amount(ch.SubtotalPrice, cur); ok {
		p["subtotal"] = t
	}
	setIf(p, "cart_token", ch.CartToken)
	setIf(p, "checkout_id", ch.ID.String())
	typ, id := events.CheckoutStarted, "shopify:checkout:"+ch.Token+":started"
	if !started {
		typ = events.CheckoutUpdated
		id = "shopify:checkout:" + ch.Token + ":" + stamp(ch.UpdatedAt) + ":" + digest(ids, p)
	}
	return sdk.Event{
		ID:         id,
		Type:       typ,
		OccurredAt: m.at(ch.UpdatedAt, ch.CreatedAt),
		Identities: ids,
		Properties: p,
		Context:    sdk.EventContext{Channel: channel(ch.SourceName), Campaign: campaign(ch.LandingSite, ch.ReferringSite)},
	}, true, nil
}

// digest fingerprints an event's content. Shopify's updated_at has
// one-second resolution, so two updates within a second would otherwise
// share an id and the second would be dropped as a duplicate; a redelivery
// has the same content and keeps its id.
func digest(ids map[string]string, props map[string]any) string {
	b, _ := json.Marshal([]any{ids, props})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// stamp makes a timestamp usable inside an event id.
func stamp(s string) string {
	if t := parseTime(s); !t.IsZero() {
		return t.Format("20060102T150405.000Z")
	}
	if s == "" {
		return "na"
	}
	return s
}

// customer emits customer.updated plus consent.changed for each consent
// object present. Since API 2025-01 webhook payloads omit consent; REST
// and GraphQL reads (backfill) still carry it.
func (m mapper) customer(cu *restCustomer) ([]sdk.Event, error) {
	id := cu.ID.String()
	if id == "" {
		return nil, badPayload("id: customer id is required")
	}
	ids := m.identities(id, cu.Email, cu.Phone)
	p := map[string]any{"customer_id": id}
	setIf(p, "first_name", cu.FirstName)
	setIf(p, "last_name", cu.LastName)
	setIf(p, "state", cu.State)
	setIf(p, "tags", cu.Tags)
	setIf(p, "created_at", cu.CreatedAt)
	if n, err := cu.OrdersCount.Int64(); err == nil {
		p["orders_count"] = n
	}
	if t, ok := amount(cu.TotalSpent, cu.Currency); ok {
		p["total_spent"] = t
		setIf(p, "currency", strings.ToUpper(cu.Currency))
	}
	if cu.VerifiedEmail != nil {
		p["verified_email"] = *cu.VerifiedEmail
	}
	out := []sdk.Event{{
		ID:         "shopify:customer:" + id + ":" + stamp(cu.UpdatedAt) + ":" + digest(ids, p),
		Type:       events.CustomerUpdated,
		OccurredAt: m.at(cu.UpdatedAt, cu.CreatedAt),
		Identities: ids,
		Properties: p,
	}}
	if ev, ok := m.consent(id, ids, "email", cu.EmailMarketingConsent, cu.UpdatedAt, ""); ok {
		out = append(out, ev)
	}
	if ev, ok := m.consent(id, ids, "sms", cu.SMSMarketingConsent, cu.UpdatedAt, ""); ok {
		out = append(out, ev)
	}
	return out, nil
}

// consentStatus maps Shopify's marketing state. pending (double opt-in not
// confirmed yet) is not consent, and not a withdrawal either: no event.
func consentStatus(state string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(state)) {
	case "subscribed":
		return "subscribed", true
	case "unsubscribed", "not_subscribed", "redacted", "invalid":
		return "unsubscribed", true
	}
	return "", false
}

// consent builds consent.changed. Its id is the consent state at its
// timestamp, so repeated customer updates that do not touch consent
// collapse into one event.
// Without any timestamp the id falls back to fallbackKey (the delivery's
// event id), which Shopify keeps across retries.
func (m mapper) consent(customerID string, ids map[string]string, ch string, c *consent, fallbackAt, fallbackKey string) (sdk.Event, bool) {
	if c == nil || len(ids) == 0 {
		return sdk.Event{}, false
	}
	status, ok := consentStatus(c.State)
	if !ok {
		return sdk.Event{}, false
	}
	idIDs := map[string]string{}
	for k, v := range ids {
		idIDs[k] = v
	}
	p := map[string]any{"channel": ch, "status": status, "source": Name, "state": strings.ToLower(c.State)}
	setIf(p, "opt_in_level", strings.ToLower(c.OptInLevel))
	setIf(p, "consent_updated_at", c.ConsentUpdatedAt)
	setIf(p, "collected_from", c.ConsentCollectedFrom)
	at := c.ConsentUpdatedAt
	if at == "" {
		at = fallbackAt
	}
	who := customerID
	if who == "" {
		who = ids[events.Email] + ids[events.Phone]
	}
	key := stamp(at)
	if at == "" && fallbackKey != "" {
		key = fallbackKey
	}
	return sdk.Event{
		ID:         "shopify:consent:" + who + ":" + ch + ":" + strings.ToLower(c.State) + ":" + key,
		Type:       events.ConsentChanged,
		OccurredAt: m.at(at),
		Identities: idIDs,
		Properties: p,
	}, true
}

func (m mapper) consentTopic(p *consentPayload, d delivery) (sdk.Event, bool, error) {
	cid := p.CustomerID.String()
	if cid == "" {
		cid = p.ID.String()
	}
	email := p.EmailAddress
	if email == "" {
		email = p.Email
	}
	var c *consent
	ch := "email"
	switch {
	case d.topic == "customers/email_marketing_consent/update" || p.EmailMarketingConsent != nil:
		c = p.EmailMarketingConsent
	default:
		ch, c = "sms", p.SMSMarketingConsent
	}
	if c == nil {
		return sdk.Event{}, false, badPayload(ch + "_marketing_consent: is required for topic " + d.topic)
	}
	ids := m.identities(cid, email, p.Phone)
	if len(ids) == 0 {
		return sdk.Event{}, false, badPayload("customer_id: the consent payload names no customer")
	}
	at := d.triggeredAt
	if c.ConsentUpdatedAt != "" {
		at = c.ConsentUpdatedAt
	}
	ev, ok := m.consent(cid, ids, ch, c, at, d.eventID)
	return ev, ok, nil
}

func (m mapper) redact(p *redactPayload, d delivery) (sdk.Event, bool) {
	ids := m.identities(p.Customer.ID.String(), p.Customer.Email, p.Customer.Phone)
	if len(ids) == 0 {
		return sdk.Event{}, false
	}
	return sdk.Event{
		ID:         "shopify:redact:" + d.eventID,
		Type:       events.ProfileErased,
		OccurredAt: m.at(d.triggeredAt),
		Identities: ids,
		Properties: map[string]any{"reason": "shopify customers/redact"},
	}, true
}
