package square

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/omni/omni/plugins/sdk"
)

// SignatureHeader is where Square puts the signature.
const SignatureHeader = "x-square-hmacsha256-signature"

// Verify reports whether sig is base64(HMAC-SHA256(key, notificationURL +
// body)).
func Verify(body []byte, notificationURL, sig, key string) bool {
	if sig == "" || key == "" {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return false
	}
	return hmac.Equal(got, mac(body, notificationURL, key))
}

// Sign returns the signature Square would send (for tests and fakes).
func Sign(body []byte, notificationURL, key string) string {
	return base64.StdEncoding.EncodeToString(mac(body, notificationURL, key))
}

func mac(body []byte, notificationURL, key string) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(notificationURL))
	m.Write(body)
	return m.Sum(nil)
}

type envelope struct {
	MerchantID string `json:"merchant_id"`
	Type       string `json:"type"`
	EventID    string `json:"event_id"`
	CreatedAt  string `json:"created_at"`
	Data       struct {
		Type   string          `json:"type"`
		ID     string          `json:"id"`
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

type thinOrder struct {
	OrderID    string `json:"order_id"`
	LocationID string `json:"location_id"`
	State      string `json:"state"`
	Version    int64  `json:"version"`
}

// HandleWebhook verifies one notification and translates it.
func (c *Connector) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	s, _, ok := c.settings()
	if !ok {
		return sdk.JSONResponse(http.StatusServiceUnavailable, "the square connector is not configured yet"), nil
	}
	if req.Method != "" && req.Method != http.MethodPost {
		return sdk.JSONResponse(http.StatusMethodNotAllowed, "Square notifications are POST requests"), nil
	}
	// Square signs the URL as entered in its console; behind a proxy the URL
	// Omni sees may differ, so an explicitly configured one wins.
	url := s.notificationURL
	if url == "" {
		url = req.URL
	}
	if !Verify(req.Body, url, req.Header(SignatureHeader), s.key) {
		return sdk.JSONResponse(http.StatusUnauthorized, SignatureHeader+": signature does not match (check signature_key and notification_url)"), nil
	}
	var env envelope
	if err := json.Unmarshal(req.Body, &env); err != nil {
		return sdk.JSONResponse(http.StatusBadRequest, "body: not a Square event notification: "+err.Error()), nil
	}
	if env.EventID == "" || env.Type == "" {
		return sdk.JSONResponse(http.StatusBadRequest, "event_id, type: are required in a Square event notification"), nil
	}
	evs, err := c.translate(ctx, &env)
	if err != nil {
		if be, ok := err.(*badPayload); ok {
			return sdk.JSONResponse(http.StatusBadRequest, be.msg), nil
		}
		c.log("warn", "square notification could not be processed; Square will retry", "type", env.Type, "event_id", env.EventID, "error", err.Error())
		return sdk.JSONResponse(http.StatusServiceUnavailable, "temporarily unable to process this notification"), nil
	}
	for i := range evs {
		if evs[i].Context.Extra == nil {
			evs[i].Context.Extra = map[string]any{}
		}
		evs[i].Context.Extra["square_event_id"] = env.EventID
		evs[i].Context.Extra["square_event_type"] = env.Type
		setIf(evs[i].Context.Extra, "square_merchant_id", env.MerchantID)
	}
	return &sdk.WebhookResponse{Status: http.StatusOK, Events: evs}, nil
}

type badPayload struct{ msg string }

func (e *badPayload) Error() string { return e.msg }

func (c *Connector) translate(ctx context.Context, env *envelope) ([]sdk.Event, error) {
	m := c.mapper()
	obj := func(key string, v any) error {
		var wrap map[string]json.RawMessage
		if err := json.Unmarshal(env.Data.Object, &wrap); err != nil || wrap[key] == nil {
			return &badPayload{"data.object." + key + ": is required for " + env.Type}
		}
		if err := json.Unmarshal(wrap[key], v); err != nil {
			return &badPayload{"data.object." + key + ": " + err.Error()}
		}
		return nil
	}
	switch env.Type {
	case "payment.created", "payment.updated":
		var p payment
		if err := obj("payment", &p); err != nil {
			return nil, err
		}
		if !strings.EqualFold(p.Status, "COMPLETED") {
			return nil, nil // authorisations, cancellations and failures are not sales
		}
		return c.sale(ctx, m, p.OrderID, &p, p.CustomerID)
	case "order.created", "order.updated":
		key := "order_created"
		if env.Type == "order.updated" {
			key = "order_updated"
		}
		var t thinOrder
		if err := obj(key, &t); err != nil {
			return nil, err
		}
		if t.OrderID == "" {
			return nil, &badPayload{"data.object." + key + ".order_id: is required"}
		}
		if !strings.EqualFold(t.State, "COMPLETED") {
			return nil, nil
		}
		return c.sale(ctx, m, t.OrderID, nil, "")
	case "customer.created", "customer.updated":
		var cu customer
		if err := obj("customer", &cu); err != nil {
			return nil, err
		}
		evs, ok := m.customerEvents(&cu, env.EventID)
		if !ok {
			return nil, &badPayload{"data.object.customer.id: is required"}
		}
		return evs, nil
	case "refund.created", "refund.updated":
		var r refund
		if err := obj("refund", &r); err != nil {
			return nil, err
		}
		if !strings.EqualFold(r.Status, "COMPLETED") {
			return nil, nil
		}
		var ids map[string]string
		if r.OrderID != "" {
			if s, err := c.lookupSale(ctx, r.OrderID, ""); err == nil {
				ev, ok := m.orderPlaced(s)
				if ok && ev.Identities["anonymous_id"] == "" {
					ids = ev.Identities
				}
			}
		}
		ev, ok := m.refunded(&r, ids)
		if !ok {
			return nil, nil
		}
		return []sdk.Event{ev}, nil
	}
	return nil, nil // webhooks.test_notification and topics we do not map
}

// sale fetches the full order (order webhooks carry no line items or money)
// and the customer, then builds order.placed. A transient API failure is
// returned so Square redelivers; an order Square does not know is mapped
// from the payment alone.
func (c *Connector) sale(ctx context.Context, m mapper, orderID string, p *payment, customerID string) ([]sdk.Event, error) {
	s := sale{payment: p}
	if orderID != "" {
		full, err := c.lookupSale(ctx, orderID, customerID)
		switch {
		case err == nil:
			full.payment = p
			s = full
		case isStatus(err, 404) && p != nil:
			c.log("warn", "square order not found; using the payment alone", "order_id", orderID)
		default:
			return nil, err
		}
	}
	if s.customer == nil && customerID != "" {
		if cu, err := c.fetchCustomer(ctx, customerID); err == nil {
			s.customer = cu
		}
	}
	ev, ok := m.orderPlaced(s)
	if !ok {
		return nil, nil
	}
	return []sdk.Event{ev}, nil
}

func (c *Connector) lookupSale(ctx context.Context, orderID, customerID string) (sale, error) {
	_, a, _ := c.settings()
	o, err := a.retrieveOrder(ctx, orderID)
	if err != nil {
		return sale{}, err
	}
	s := sale{order: o}
	if id := s.customerID(); id != "" {
		customerID = id
	}
	if customerID != "" {
		if cu, err := c.fetchCustomer(ctx, customerID); err == nil {
			s.customer = cu
		}
	}
	return s, nil
}

// fetchCustomer adds the buyer's email and phone so an in-store sale joins
// the profile the same person has online. Failure only loses that join.
func (c *Connector) fetchCustomer(ctx context.Context, id string) (*customer, error) {
	_, a, _ := c.settings()
	cu, err := a.retrieveCustomer(ctx, id)
	if err != nil {
		c.log("warn", "could not fetch the square customer", "customer_id", id, "error", err.Error())
	}
	return cu, err
}
