package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/plugins/sdk"
)

// fail answers a vendor in the API's error shape plus the top-level
// "field" webhooks have always carried (vendors are not our clients; see
// docs/api.md#errors).
func fail(e *core.RequestEvent, status int, field, msg string) error {
	return api.WriteCompat(e, api.FieldError(status, field, "", msg), map[string]any{"field": field})
}

func (m *Module) registerWebhooks(se *core.ServeEvent) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		// Successful deliveries are not written to the request log: at
		// vendor volumes that log would cost more than storing the events.
		se.Router.Route(method, "/webhooks/{connector}", m.webhook).Bind(apis.SkipSuccessActivityLog())
		se.Router.Route(method, "/webhooks/{connector}/{path...}", m.webhook).Bind(apis.SkipSuccessActivityLog())
	}
}

// webhook hands a vendor request to its connector, stores the events the
// connector made of it on the bus and only then answers with the
// connector's response. Anything short of "stored" is a 5xx, so the vendor
// retries; redeliveries are dropped by event id.
func (m *Module) webhook(e *core.RequestEvent) error {
	name := e.Request.PathValue("connector")
	i := m.instance(name)
	if i == nil {
		return fail(e, http.StatusNotFound, "connector", fmt.Sprintf("no connector named %q is installed", name))
	}
	limit := int64(m.cfg.Ingest.MaxWebhookKB) << 10
	body, err := io.ReadAll(io.LimitReader(e.Request.Body, limit+1))
	if err != nil {
		return fail(e, http.StatusBadRequest, "body", "could not read body: "+err.Error())
	}
	if int64(len(body)) > limit {
		return fail(e, http.StatusRequestEntityTooLarge, "body", fmt.Sprintf("webhook body is larger than %d KB (ingest.max_webhook_kb)", m.cfg.Ingest.MaxWebhookKB))
	}
	conn, err := i.ready()
	if err != nil {
		return m.unavailable(e, name, err)
	}
	path := "/" + e.Request.PathValue("path")
	scheme := "http"
	if e.Request.TLS != nil {
		scheme = "https"
	}
	if p := e.Request.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = p
	}
	req := &sdk.WebhookRequest{
		Method:  e.Request.Method,
		Path:    path,
		Query:   e.Request.URL.RawQuery,
		Headers: e.Request.Header,
		Body:    body,
		URL:     scheme + "://" + e.Request.Host + e.Request.URL.RequestURI(),
	}
	ctx, cancel := context.WithTimeout(e.Request.Context(), m.opts.WebhookTimeout)
	defer cancel()
	resp, err := conn.HandleWebhook(ctx, req)
	if err != nil {
		var te *sdk.TransportError
		if errors.As(err, &te) {
			return m.unavailable(e, name, err)
		}
		i.log.Error("webhook failed in the connector", "error", i.red.redact(err.Error()))
		return fail(e, http.StatusInternalServerError, "", "the connector could not handle this webhook: "+i.red.redact(err.Error()))
	}
	if len(resp.Events) > 0 {
		evs, err := m.convert(name, resp.Events)
		var fe *events.FieldError
		if errors.As(err, &fe) {
			// Out of bounds or invalid (events.Validate): nothing of this
			// delivery is stored, and the vendor is told which field.
			i.log.Warn("webhook refused: the connector produced an invalid event", "field", fe.Field, "error", i.red.redact(err.Error()))
			return fail(e, http.StatusBadRequest, fe.Field, "the connector produced an invalid event: "+i.red.redact(err.Error()))
		}
		if err != nil {
			i.log.Error("connector produced an invalid event", "error", err)
			return fail(e, http.StatusInternalServerError, "", "the connector produced an invalid event: "+err.Error())
		}
		for _, err := range ingest.Publish(e.Request.Context(), m.o.Bus, evs) {
			if err != nil {
				return m.unavailable(e, name, err)
			}
		}
	}
	for k, v := range resp.Headers {
		e.Response.Header().Set(k, v)
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	if e.Response.Header().Get("Content-Type") == "" && len(resp.Body) > 0 {
		ct := "text/plain; charset=utf-8"
		if b := strings.TrimSpace(string(resp.Body)); strings.HasPrefix(b, "{") || strings.HasPrefix(b, "[") {
			ct = "application/json"
		}
		e.Response.Header().Set("Content-Type", ct)
	}
	e.Response.WriteHeader(status)
	_, _ = e.Response.Write(resp.Body)
	return nil
}

func (m *Module) unavailable(e *core.RequestEvent, name string, err error) error {
	m.log.Warn("webhook refused: connector unavailable", "connector", name, "error", err)
	e.Response.Header().Set("Retry-After", "5")
	return fail(e, http.StatusServiceUnavailable, "", fmt.Sprintf("connector %s cannot take webhooks right now; retry later", name))
}
