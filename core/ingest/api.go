package ingest

import (
	"errors"
	"net/http"

	validation "github.com/go-ozzo/ozzo-validation/v4"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
)

// registerSourceAPI adds POST /api/v1/sources, the one way (with the CLI)
// to create a server source: its secret key is in this response and
// nowhere else. Browser sources can be created here too; listing, renaming
// and disabling go through the sources collection (owner rules).
func (h *Handler) registerSourceAPI(r *router.Router[*core.RequestEvent]) {
	r.POST("/api/v1/sources", h.createSource).Bind(api.RequireOwner())
}

func (h *Handler) createSource(e *core.RequestEvent) error {
	var in struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
	}
	if err := e.BindBody(&in); err != nil {
		return api.BadRequest("body", "must be a JSON object with name and kind")
	}
	ns, err := CreateSource(e.App, in.Name, in.Kind)
	var ie *InputError
	var ve validation.Errors
	switch {
	case errors.As(err, &ie):
		return api.BadRequest(ie.Field, ie.Message)
	case errors.As(err, &ve):
		return api.Invalid(ve, "Could not create the source.")
	case err != nil:
		return api.Internal("Could not create the source.", err)
	}
	out := map[string]any{"id": ns.Record.Id, "name": ns.Record.GetString("name"), "kind": ns.Record.GetString("kind"),
		"disabled": false, "created": ns.Record.GetString("created")}
	if ns.SecretKey != "" {
		out["secret_key"] = ns.SecretKey // shown once; only its hash is kept
	} else {
		out["write_key"] = ns.WriteKey
	}
	return e.JSON(http.StatusCreated, out)
}
