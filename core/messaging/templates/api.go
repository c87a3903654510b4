package templates

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/messaging/customers"
	"github.com/omni/omni/core/messaging/links"
	"github.com/omni/omni/core/messaging/render"
)

// Register adds the templates' record hook and the preview route. The
// messaging module calls it from Start.
func Register(se *core.ServeEvent, o *app.Omni, signer *links.Signer) {
	o.PB.OnRecordValidate(Collection).BindFunc(validate)
	o.PB.OnRecordCreateRequest(Collection).BindFunc(func(e *core.RecordRequestEvent) error { return namedField(e.Next()) })
	o.PB.OnRecordUpdateRequest(Collection).BindFunc(func(e *core.RecordRequestEvent) error { return namedField(e.Next()) })
	p := &previewer{omni: o, signer: signer}
	se.Router.POST("/api/v1/templates/preview", p.handle).Bind(api.RequireStaff())
}

// namedField makes a refused save say which field and line are wrong in
// its message ("body: line 2: unknown variable …"), as every Omni 400 does,
// not PocketBase's "Failed to create record.".
func namedField(err error) error {
	var apiErr *router.ApiError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		return err
	}
	if raw, ok := apiErr.RawData().(error); ok {
		return api.Invalid(raw, apiErr.Message)
	}
	return err
}

type previewer struct {
	omni   *app.Omni
	signer *links.Signer
}

// previewRequest is the preview's body: a saved template (by id or name)
// or the editor's unsaved content, a customer, and optionally the event
// that would trigger the send (an object, or a stored event's id).
type previewRequest struct {
	Template string          `json:"template"`
	Channel  string          `json:"channel"`
	Subject  string          `json:"subject"`
	Body     string          `json:"body"`
	HTML     string          `json:"html"`
	WATpl    string          `json:"wa_template"`
	WALang   string          `json:"wa_language"`
	WAParams []string        `json:"wa_params"`
	Profile  string          `json:"profile"`
	Event    json.RawMessage `json:"event"`
}

// previewResponse is what the editor shows beside itself.
type previewResponse struct {
	Rendered
	Problems []Problem `json:"problems"`
}

// handle renders a template for a customer:
//
//	POST /api/v1/templates/preview {"template": "abandoned cart", "profile": "…", "event": {…}}
//	POST /api/v1/templates/preview {"channel": "email", "subject": "…", "body": "…", "html": "…", "profile": "…"}
//
// It answers 200 with the rendered subject, text and HTML and the problems
// a save would refuse (same check), plus any error rendering for this
// customer; 400 only for a request it cannot read.
func (p *previewer) handle(e *core.RequestEvent) error {
	var req previewRequest
	if err := e.BindBody(&req); err != nil {
		return api.BadRequest("body", `must be JSON like {"template": "…", "profile": "…"} or {"channel": "email", "subject": "…", "body": "…", "profile": "…"}`)
	}
	var t Template
	if req.Template != "" {
		found, err := Find(e.App, req.Template)
		if err != nil {
			return api.FieldError(http.StatusNotFound, "template", "validation_not_found", "no template with that id or name")
		}
		t = found
	} else {
		t = Template{Channel: strings.TrimSpace(req.Channel), Subject: req.Subject, Body: req.Body, HTML: req.HTML,
			WATemplate: req.WATpl, WALanguage: req.WALang, WAParams: req.WAParams}
	}

	customer := map[string]any{}
	profileID := "preview"
	if req.Profile != "" {
		c, err := customers.Load(e.App, req.Profile)
		if errors.Is(err, customers.ErrNotFound) {
			return api.FieldError(http.StatusNotFound, "profile", "validation_not_found", "no customer with that id")
		}
		if err != nil {
			return api.Internal("Could not load the customer.", err)
		}
		customer, profileID = c.Vars, c.ID
	}
	event, apiErr := p.event(e.App, req.Event)
	if apiErr != nil {
		return apiErr
	}

	names, err := customers.TraitNames(e.App)
	if err != nil {
		return api.Internal("Could not list the customers' traits.", err)
	}
	problems := Check(t, render.CheckVars(names))
	channel := t.Channel
	if channel == "" {
		channel = "email"
	}
	base := p.omni.Config.PublicBaseURL()
	vars := render.Vars(customer, event, customers.Shop(e.App, base),
		p.signer.UnsubscribeURL(profileID, channel), p.signer.PreferencesURL(profileID))
	vars["nps_url"] = p.signer.NPSURL(profileID, time.Now())
	out, err := Render(t, vars)
	if err != nil {
		field, rest, _ := strings.Cut(err.Error(), ": ")
		var re *render.Error
		line := 0
		if errors.As(err, &re) {
			line = re.Line
		}
		problems = append(problems, Problem{Field: field, Problem: render.Problem{Line: line, Kind: "render",
			Message: "with this customer: " + rest}})
	}
	if problems == nil {
		problems = []Problem{}
	}
	return e.JSON(http.StatusOK, previewResponse{Rendered: out, Problems: problems})
}

// event reads the preview's event: an object like a stored event's
// (type, name, properties), or the id of a stored event.
func (p *previewer) event(app core.App, raw json.RawMessage) (map[string]any, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return nil, nil
	}
	var id string
	if json.Unmarshal(raw, &id) == nil {
		var row struct {
			ID         string `db:"event_id"`
			Type       string `db:"type"`
			Name       string `db:"name"`
			Source     string `db:"source"`
			OccurredAt string `db:"occurred_at"`
			Properties string `db:"properties"`
		}
		err := app.DB().NewQuery(`SELECT event_id, type, name, source, occurred_at, properties FROM events
WHERE id={:id} OR event_id={:id} LIMIT 1`).Bind(dbx.Params{"id": id}).One(&row)
		if err != nil {
			return nil, api.FieldError(http.StatusNotFound, "event", "validation_not_found", "no stored event with that id")
		}
		props := map[string]any{}
		_ = json.Unmarshal([]byte(row.Properties), &props)
		return map[string]any{"id": row.ID, "type": row.Type, "name": row.Name, "source": row.Source,
			"occurred_at": row.OccurredAt, "properties": props}, nil
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, api.BadRequest("event", `must be an event like {"type": "checkout.started", "properties": {…}} or a stored event's id`)
	}
	return ev, nil
}
