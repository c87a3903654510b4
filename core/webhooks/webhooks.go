// Package webhooks carries vendor webhooks from the front ends (role:
// frontend) to the writer, whose connectors verify and translate them
// (docs/operations.md#webhooks-on-front-ends).
//
// A front end runs no connector: it keeps no settings and no secrets. It
// takes a POST (or any method but GET and HEAD) for an installed, enabled
// connector, stores it whole on the WEBHOOKS stream and answers 200 once
// the stream has it, so a vendor's deliveries are kept while the writer
// restarts or is busy. The writer's connectors module consumes the stream:
// the connector verifies the signature and makes the events, exactly as
// for a webhook sent to the writer itself; a delivery the connector
// refuses (a bad signature, say) is parked in events_dead, where an owner
// sees why and can retry it once the settings are fixed.
//
// GET and HEAD are the vendors' handshakes (Meta's hub.challenge): their
// answer is the connector's, so a front end forwards them to the writer
// as a NATS request and answers what the writer's connector answered, or
// 503 while no writer answers.
//
// Which connectors exist, and whether they are enabled, reaches the front
// ends through the ConnectorsBucket key-value bucket, which the writer
// keeps current.
package webhooks

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/bus"
	"github.com/omni/omni/plugins/sdk"
)

// Subjects and the bucket.
const (
	// Prefix starts the subject of every stored delivery:
	// omni.webhooks.<connector> (the WEBHOOKS stream, bus.WebhooksSubject).
	Prefix = "omni.webhooks."
	// CallPrefix starts the request subject of a forwarded handshake:
	// omni.webhook-calls.<connector>. Plain NATS request/reply, not a stream.
	CallPrefix = "omni.webhook-calls."
	// CallQueue is the queue group the writer answers calls in.
	CallQueue = "omni-writer"
	// ConnectorsBucket holds one entry per installed connector.
	ConnectorsBucket = "omni_connectors"
	// Stream is where deliveries are stored.
	Stream = bus.StreamWebhooks
	// ConsumerName is the writer's durable consumer of Stream.
	ConsumerName = "connectors-webhooks"
)

// Subject is the stream subject of connector's deliveries.
func Subject(connector string) string { return Prefix + connector }

// CallSubject is the request subject of connector's handshakes.
func CallSubject(connector string) string { return CallPrefix + connector }

// Delivery is one vendor request as a front end took it.
type Delivery struct {
	Connector string             `json:"connector"`
	Received  time.Time          `json:"received"`
	Request   sdk.WebhookRequest `json:"request"`
}

// MsgID is the delivery's Nats-Msg-Id: the same request sent again (a
// client or proxy retrying), on the same or another front end, within the
// bus's dedupe window is stored once. Headers count: two deliveries may
// share a body and differ only there (Shopify's topic and event id), and
// must not be taken for one. A vendor's later retry that differs in a
// header is stored again, and its events are dropped by their own ids.
func MsgID(d *Delivery) string {
	h := sha256.New()
	part := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	part(d.Connector)
	part(d.Request.Method)
	part(d.Request.URL)
	names := make([]string, 0, len(d.Request.Headers))
	for k := range d.Request.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		part(k)
		for _, v := range d.Request.Headers[k] {
			part(v)
		}
	}
	h.Write(d.Request.Body)
	return "wh:" + d.Connector + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Reply is a connector's HTTP answer to a forwarded call.
type Reply struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    []byte            `json:"body,omitempty"`
}

// Write sends the reply as the HTTP answer.
func (rep Reply) Write(e *core.RequestEvent) error {
	for k, v := range rep.Headers {
		e.Response.Header().Set(k, v)
	}
	e.Response.WriteHeader(rep.Status)
	_, _ = e.Response.Write(rep.Body) // the vendor hung up: nothing left to answer
	return nil
}

// Request is what a connector sees of r: the path after
// /webhooks/{connector}, the raw query, the headers, the body, and the
// public URL the vendor called (some vendors sign it; a proxy in front
// says the scheme with X-Forwarded-Proto).
func Request(r *http.Request, body []byte) sdk.WebhookRequest {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = p
	}
	return sdk.WebhookRequest{
		Method:  r.Method,
		Path:    "/" + r.PathValue("path"),
		Query:   r.URL.RawQuery,
		Headers: r.Header,
		Body:    body,
		URL:     scheme + "://" + r.Host + r.URL.RequestURI(),
	}
}

// Synchronous reports whether a request of this method is forwarded to
// the writer and answered with the connector's own answer (handshakes),
// rather than stored and answered 200.
func Synchronous(method string) bool {
	return method == http.MethodGet || method == http.MethodHead
}
