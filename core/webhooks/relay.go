package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/bus"
)

// Relay is a front end's /webhooks/{connector} (see the package comment).
type Relay struct {
	bus   *bus.Bus
	known *Known
	log   *slog.Logger
	// maxKB bounds a body (ingest.max_webhook_kb).
	maxKB int
	// CallTimeout bounds a forwarded handshake: the writer's own webhook
	// timeout plus the round trip.
	callTimeout time.Duration
	// consumed is set once the writer's consumer of Stream is seen: the
	// stream keeps messages by interest, so without it a stored delivery
	// would be kept for nobody.
	consumed atomic.Bool
}

// NewRelay follows the writer's connectors and returns the relay; Stop
// ends the watch.
func NewRelay(ctx context.Context, b *bus.Bus, maxKB int, log *slog.Logger) (*Relay, error) {
	known, err := WatchConnectors(ctx, b, log)
	if err != nil {
		return nil, err
	}
	return &Relay{bus: b, known: known, log: log.With("component", "webhooks"), maxKB: maxKB, callTimeout: 5 * time.Second}, nil
}

// Stop ends the relay's watch of the connectors.
func (r *Relay) Stop() { r.known.Stop() }

// Register adds the relay at the routes the writer has for webhooks.
func (r *Relay) Register(se *core.ServeEvent) { Routes(se, r.serve) }

// Routes serves handle at /webhooks/{connector}[/{path...}], GET and POST:
// the writer's connectors and a front end's relay alike. Successful
// deliveries are not written to the request log: at vendor volumes that
// log would cost more than storing the events.
func Routes(se *core.ServeEvent, handle func(*core.RequestEvent) error) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		se.Router.Route(method, "/webhooks/{connector}", handle).Bind(apis.SkipSuccessActivityLog())
		se.Router.Route(method, "/webhooks/{connector}/{path...}", handle).Bind(apis.SkipSuccessActivityLog())
	}
}

// ReadBody reads a webhook's body, up to maxKB (ingest.max_webhook_kb).
// A body it cannot take has been answered (400, or 413 when too large,
// both naming the field body) when ok is false.
func ReadBody(e *core.RequestEvent, maxKB int) (body []byte, ok bool, err error) {
	limit := int64(maxKB) << 10
	body, err = io.ReadAll(io.LimitReader(e.Request.Body, limit+1))
	if err != nil {
		return nil, false, Fail(e, http.StatusBadRequest, "body", "could not read body: "+err.Error())
	}
	if int64(len(body)) > limit {
		return nil, false, Fail(e, http.StatusRequestEntityTooLarge, "body", fmt.Sprintf("webhook body is larger than %d KB (ingest.max_webhook_kb)", maxKB))
	}
	return body, true, nil
}

// Fail answers a vendor in the API's error shape plus the top-level
// "field" webhooks have always carried (docs/api.md#errors). The writer's
// connectors answer the same way.
func Fail(e *core.RequestEvent, status int, field, msg string) error {
	return api.WriteCompat(e, api.FieldError(status, field, "", msg), map[string]any{"field": field})
}

func retryLater(e *core.RequestEvent, msg string) error {
	e.Response.Header().Set("Retry-After", "5")
	return Fail(e, http.StatusServiceUnavailable, "", msg)
}

func (r *Relay) serve(e *core.RequestEvent) error {
	name := e.Request.PathValue("connector")
	st, ok := r.known.Get(name)
	if !ok {
		return Fail(e, http.StatusNotFound, "connector", fmt.Sprintf("no connector named %q is installed", name))
	}
	if !st.Enabled {
		// As the writer answers for a connector that is not running: the
		// vendor retries, and nothing is kept for a connector switched off.
		return retryLater(e, fmt.Sprintf("connector %s is not enabled; retry later", name))
	}
	body, ok, err := ReadBody(e, r.maxKB)
	if !ok {
		return err
	}
	d := &Delivery{Connector: name, Received: time.Now().UTC(), Request: Request(e.Request, body)}
	data, err := json.Marshal(d)
	if err != nil {
		return Fail(e, http.StatusBadRequest, "body", err.Error())
	}
	if Synchronous(e.Request.Method) {
		return r.call(e, name, data)
	}
	if !r.consumed.Load() {
		if _, err := r.bus.JS.Consumer(e.Request.Context(), Stream, ConsumerName); err != nil {
			r.log.Warn("webhook not taken: no writer has created the webhooks consumer", "connector", name, "error", err)
			return retryLater(e, fmt.Sprintf("no writer takes webhooks for %s yet; retry later", name))
		}
		r.consumed.Store(true)
	}
	if _, err := r.bus.Publish(e.Request.Context(), bus.Msg{Subject: Subject(name), Data: data, ID: MsgID(d)}); err != nil {
		r.log.Warn("webhook not stored: the bus refused it", "connector", name, "error", err)
		return retryLater(e, fmt.Sprintf("cannot take webhooks for %s right now; retry later", name))
	}
	// Stored: the writer's connector verifies and translates it. The body
	// is empty, which every vendor takes as "received" (Twilio as "no
	// reply").
	e.Response.WriteHeader(http.StatusOK)
	return nil
}

// call forwards a handshake to the writer and answers with its reply.
func (r *Relay) call(e *core.RequestEvent, name string, data []byte) error {
	ctx, cancel := context.WithTimeout(e.Request.Context(), r.callTimeout)
	defer cancel()
	msg, err := r.bus.Conn.RequestWithContext(ctx, CallSubject(name), data)
	if err != nil {
		if !errors.Is(err, nats.ErrNoResponders) {
			r.log.Warn("webhook call: the writer did not answer", "connector", name, "error", err)
		}
		return retryLater(e, fmt.Sprintf("no writer answers webhook calls for %s right now; retry later", name))
	}
	var rep Reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil || rep.Status == 0 {
		r.log.Error("webhook call: the writer's reply is not understood", "connector", name, "error", err)
		return Fail(e, http.StatusBadGateway, "", "the writer's answer to this webhook was not understood")
	}
	return rep.Write(e)
}
