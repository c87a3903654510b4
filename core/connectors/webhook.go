package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/webhooks"
	"github.com/omni/omni/plugins/sdk"
)

func (m *Module) registerWebhooks(se *core.ServeEvent) { webhooks.Routes(se, m.webhook) }

// webhook hands a vendor request to its connector, stores the events the
// connector made of it on the bus and only then answers with the
// connector's response. Anything short of "stored" is a 5xx, so the vendor
// retries; redeliveries are dropped by event id.
func (m *Module) webhook(e *core.RequestEvent) error {
	name := e.Request.PathValue("connector")
	if m.instance(name) == nil {
		return webhooks.Fail(e, http.StatusNotFound, "connector", fmt.Sprintf("no connector named %q is installed", name))
	}
	body, ok, err := webhooks.ReadBody(e, m.cfg.Ingest.MaxWebhookKB)
	if !ok {
		return err
	}
	req := webhooks.Request(e.Request, body)
	return m.handleWebhook(e.Request.Context(), name, &req).Write(e)
}

// outcome is what became of one webhook: the answer for the vendor, and
// for a delivery taken by a front end, whether to try it again later
// (the connector is not running, the bus refused the events) and why it
// failed.
type outcome struct {
	webhooks.Reply
	retry bool
	err   string
}

func (o outcome) ok() bool { return o.Status < 300 }

// refused renders a failure in the answer's error shape.
func refused(status int, field, msg string, retry bool) outcome {
	err := api.FieldError(status, field, "", msg)
	body, _ := json.Marshal(api.CompatBody(err, map[string]any{"field": field}))
	o := outcome{Reply: webhooks.Reply{Status: status, Headers: map[string]string{"Content-Type": "application/json"}, Body: body},
		retry: retry, err: msg}
	if retry {
		o.Headers["Retry-After"] = "5"
	}
	return o
}

// handleWebhook runs one request through the connector and stores its
// events; the outcome says what to answer.
func (m *Module) handleWebhook(ctx context.Context, name string, req *sdk.WebhookRequest) outcome {
	i := m.instance(name)
	if i == nil {
		return refused(http.StatusNotFound, "connector", fmt.Sprintf("no connector named %q is installed", name), false)
	}
	conn, err := i.ready()
	if err != nil {
		return m.unavailable(name, err)
	}
	hctx, cancel := context.WithTimeout(ctx, m.opts.WebhookTimeout)
	defer cancel()
	resp, err := conn.HandleWebhook(hctx, req)
	if err != nil {
		var te *sdk.TransportError
		if errors.As(err, &te) {
			return m.unavailable(name, err)
		}
		i.log.Error("webhook failed in the connector", "error", i.red.redact(err.Error()))
		return refused(http.StatusInternalServerError, "", "the connector could not handle this webhook: "+i.red.redact(err.Error()), false)
	}
	if len(resp.Events) > 0 {
		evs, err := m.convert(name, resp.Events)
		var fe *events.FieldError
		if errors.As(err, &fe) {
			// Out of bounds or invalid (events.Validate): nothing of this
			// delivery is stored, and the vendor is told which field.
			i.log.Warn("webhook refused: the connector produced an invalid event", "field", fe.Field, "error", i.red.redact(err.Error()))
			return refused(http.StatusBadRequest, fe.Field, "the connector produced an invalid event: "+i.red.redact(err.Error()), false)
		}
		if err != nil {
			i.log.Error("connector produced an invalid event", "error", err)
			return refused(http.StatusInternalServerError, "", "the connector produced an invalid event: "+err.Error(), false)
		}
		for _, err := range ingest.Publish(ctx, m.o.Bus, evs) {
			if err != nil {
				return m.unavailable(name, err)
			}
		}
	}
	out := outcome{Reply: webhooks.Reply{Status: resp.Status, Headers: map[string]string{}, Body: resp.Body}}
	for k, v := range resp.Headers {
		out.Headers[http.CanonicalHeaderKey(k)] = v
	}
	if out.Status == 0 {
		out.Status = http.StatusOK
	}
	if out.Headers["Content-Type"] == "" && len(resp.Body) > 0 {
		ct := "text/plain; charset=utf-8"
		if b := strings.TrimSpace(string(resp.Body)); strings.HasPrefix(b, "{") || strings.HasPrefix(b, "[") {
			ct = "application/json"
		}
		out.Headers["Content-Type"] = ct
	}
	if !out.ok() {
		out.err = fmt.Sprintf("the connector answered %d: %s", out.Status, i.red.redact(strings.TrimSpace(string(resp.Body))))
	}
	return out
}

func (m *Module) unavailable(name string, err error) outcome {
	m.log.Warn("webhook refused: connector unavailable", "connector", name, "error", err)
	return refused(http.StatusServiceUnavailable, "", fmt.Sprintf("connector %s cannot take webhooks right now; retry later", name), true)
}
