package shopify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/omni/omni/plugins/sdk"
)

// Verify reports whether sig (the X-Shopify-Hmac-Sha256 header) is the
// base64 HMAC-SHA256 of the raw body under secret.
func Verify(body []byte, sig, secret string) bool {
	if sig == "" || secret == "" {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// Sign returns the X-Shopify-Hmac-Sha256 value for body (used by tests and
// by fakes of Shopify).
func Sign(body []byte, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// header reads a Shopify header in either delivery style: the newer events
// delivery drops the "X-" prefix, and Shopify's own library checks that
// form first.
func header(req *sdk.WebhookRequest, name string) string {
	if v := req.Header(name); v != "" {
		return v
	}
	return req.Header("X-" + name)
}

// delivery is what the headers say about one webhook.
type delivery struct {
	topic, eventID, webhookID, shop, apiVersion, triggeredAt string
}

// errBadPayload marks a body that is not the JSON the topic promises.
var errBadPayload = errors.New("bad payload")

type payloadError struct{ msg string }

func (e *payloadError) Error() string   { return e.msg }
func (e *payloadError) Is(t error) bool { return t == errBadPayload }

func badPayload(msg string) error { return &payloadError{msg} }

// HandleWebhook verifies one delivery and translates it into events.
func (c *Connector) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest) (*sdk.WebhookResponse, error) {
	s, _, ok := c.settings()
	if !ok {
		return sdk.JSONResponse(http.StatusServiceUnavailable, "the shopify connector is not configured yet"), nil
	}
	if req.Method != "" && req.Method != http.MethodPost {
		return sdk.JSONResponse(http.StatusMethodNotAllowed, "Shopify webhooks are POST requests"), nil
	}
	if !Verify(req.Body, header(req, "Shopify-Hmac-Sha256"), s.secret) {
		return sdk.JSONResponse(http.StatusUnauthorized, "X-Shopify-Hmac-Sha256: signature does not match the body (check webhook_secret)"), nil
	}
	d := delivery{
		topic:       strings.ToLower(strings.TrimSpace(header(req, "Shopify-Topic"))),
		eventID:     header(req, "Shopify-Event-Id"),
		webhookID:   header(req, "Shopify-Webhook-Id"),
		shop:        header(req, "Shopify-Shop-Domain"),
		apiVersion:  header(req, "Shopify-API-Version"),
		triggeredAt: header(req, "Shopify-Triggered-At"),
	}
	if d.topic == "" {
		return sdk.JSONResponse(http.StatusBadRequest, "X-Shopify-Topic: header is required"), nil
	}
	if d.eventID == "" {
		d.eventID = d.webhookID
	}
	if d.eventID == "" {
		// No id header at all: the body itself identifies the delivery.
		sum := sha256.Sum256(append([]byte(d.topic+"\n"), req.Body...))
		d.eventID = "sha256-" + hex.EncodeToString(sum[:12])
	}
	evs, err := c.translate(ctx, d, req.Body)
	if err != nil {
		if errors.Is(err, errBadPayload) {
			return sdk.JSONResponse(http.StatusBadRequest, err.Error()), nil
		}
		c.log("warn", "shopify webhook could not be processed; Shopify will retry", "topic", d.topic, "error", err.Error())
		return sdk.JSONResponse(http.StatusServiceUnavailable, "temporarily unable to process this webhook"), nil
	}
	return &sdk.WebhookResponse{Status: http.StatusOK, Events: evs}, nil
}

// translate maps one topic's payload to events.
func (c *Connector) translate(ctx context.Context, d delivery, body []byte) ([]sdk.Event, error) {
	m := c.mapper()
	dec := func(v any) error {
		dc := json.NewDecoder(bytes.NewReader(body))
		dc.UseNumber()
		if err := dc.Decode(v); err != nil {
			return badPayload("body: not a valid " + d.topic + " payload: " + err.Error())
		}
		return nil
	}
	var evs []sdk.Event
	switch d.topic {
	case "orders/create", "orders/paid":
		var o restOrder
		if err := dec(&o); err != nil {
			return nil, err
		}
		ev, err := m.orderPlaced(&o)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	case "orders/cancelled":
		var o restOrder
		if err := dec(&o); err != nil {
			return nil, err
		}
		ev, err := m.orderCancelled(&o)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	case "refunds/create":
		var r restRefund
		if err := dec(&r); err != nil {
			return nil, err
		}
		ids := c.refundIdentities(ctx, r.OrderID.String())
		ev, err := m.orderRefunded(&r, ids)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	case "checkouts/create", "checkouts/update":
		var ch restCheckout
		if err := dec(&ch); err != nil {
			return nil, err
		}
		ev, ok, err := m.checkout(&ch, d.topic == "checkouts/create")
		if err != nil {
			return nil, err
		}
		if ok {
			evs = append(evs, ev)
		}
	case "customers/create", "customers/update":
		var cu restCustomer
		if err := dec(&cu); err != nil {
			return nil, err
		}
		out, err := m.customer(&cu)
		if err != nil {
			return nil, err
		}
		evs = append(evs, out...)
	case "customers/email_marketing_consent/update", "customers/marketing_consent/update":
		var p consentPayload
		if err := dec(&p); err != nil {
			return nil, err
		}
		ev, ok, err := m.consentTopic(&p, d)
		if err != nil {
			return nil, err
		}
		if ok {
			evs = append(evs, ev)
		}
	case "customers/redact":
		var p redactPayload
		if err := dec(&p); err != nil {
			return nil, err
		}
		if ev, ok := m.redact(&p, d); ok {
			evs = append(evs, ev)
		}
	default:
		// app/uninstalled, shop/redact, customers/data_request and topics we
		// did not subscribe to: acknowledge so Shopify does not retry.
		if !json.Valid(body) {
			return nil, badPayload("body: not valid JSON")
		}
		c.log("info", "shopify webhook topic ignored", "topic", d.topic)
		return nil, nil
	}
	for i := range evs {
		if evs[i].Context.Extra == nil {
			evs[i].Context.Extra = map[string]any{}
		}
		evs[i].Context.Extra["shopify_topic"] = d.topic
		evs[i].Context.Extra["shopify_event_id"] = d.eventID
		if d.shop != "" {
			evs[i].Context.Extra["shop_domain"] = d.shop
		}
	}
	return evs, nil
}

// refundIdentities looks up who placed the refunded order: refund payloads
// carry only the order id. Without API access it falls back to the
// order-scoped anonymous id that order.placed also carries for walk-ins.
func (c *Connector) refundIdentities(ctx context.Context, orderID string) map[string]string {
	_, api, ok := c.settings()
	if ok && orderID != "" {
		if ids, err := api.orderIdentities(ctx, orderID); err == nil && len(ids) > 0 {
			return ids
		} else if err != nil {
			c.log("warn", "could not look up the refunded order's customer", "order_id", orderID, "error", err.Error())
		}
	}
	return nil
}
