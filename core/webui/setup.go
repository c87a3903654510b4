package webui

import (
	"errors"
	"net/http"
	"sort"
	"strings"

	validation "github.com/go-ozzo/ozzo-validation/v4"

	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
)

// registerSetup adds first-run owner creation, so a fresh install is
// usable from the browser without the CLI:
//
//	GET  /api/v1/setup        → {"needs_owner": bool}
//	POST /api/v1/setup/owner  {email, password, passwordConfirm, name}
//	                          → 200 {token, record} (signed in), or 409 once an owner exists
func (m *Module) registerSetup(pb core.App, se *core.ServeEvent) {
	se.Router.GET("/api/v1/setup", func(e *core.RequestEvent) error {
		n, err := countOwners(e.App)
		if err != nil {
			return e.InternalServerError("", err)
		}
		return e.JSON(http.StatusOK, map[string]any{"needs_owner": n == 0})
	})
	se.Router.POST("/api/v1/setup/owner", m.createOwner)
}

type ownerInput struct {
	Email           string `json:"email"`
	Password        string `json:"password"`
	PasswordConfirm string `json:"passwordConfirm"`
	Name            string `json:"name"`
}

func (m *Module) createOwner(e *core.RequestEvent) error {
	var in ownerInput
	if err := e.BindBody(&in); err != nil {
		return e.BadRequestError("The body must be a JSON object.", err)
	}
	in.Email = strings.TrimSpace(in.Email)
	if in.PasswordConfirm == "" {
		in.PasswordConfirm = in.Password
	}
	// One request at a time, so two browsers racing on a fresh install
	// cannot both become owner.
	m.setup.Lock()
	defer m.setup.Unlock()
	n, err := countOwners(e.App)
	if err != nil {
		return e.InternalServerError("", err)
	}
	if n > 0 {
		return e.JSON(http.StatusConflict, map[string]any{
			"status": http.StatusConflict, "message": "An owner already exists; sign in, or ask the owner for an account.", "data": map[string]any{},
		})
	}
	col, err := e.App.FindCollectionByNameOrId("staff")
	if err != nil {
		return e.InternalServerError("", err)
	}
	rec := core.NewRecord(col)
	rec.SetEmail(in.Email)
	rec.SetPassword(in.Password)
	rec.Set("passwordConfirm", in.PasswordConfirm)
	rec.Set("name", strings.TrimSpace(in.Name))
	rec.Set("role", "owner")
	rec.SetVerified(true)
	if in.Password != in.PasswordConfirm {
		return e.JSON(http.StatusBadRequest, map[string]any{
			"status": http.StatusBadRequest, "message": "passwordConfirm: the passwords do not match.", "field": "passwordConfirm",
			"data": map[string]any{"passwordConfirm": map[string]string{"code": "validation_values_mismatch", "message": "The passwords do not match."}},
		})
	}
	if err := e.App.Save(rec); err != nil {
		return validationError(e, err)
	}
	return apis.RecordAuthResponse(e, rec, "password", nil)
}

func countOwners(app core.App) (int, error) {
	var n int
	err := app.DB().NewQuery("SELECT COUNT(*) FROM staff WHERE role = 'owner'").Row(&n)
	return n, err
}

// validationError answers 400 naming the first invalid field in the
// message and in "field", with every field's error in "data" (PocketBase's
// shape, which the web admin shows beside each input).
func validationError(e *core.RequestEvent, err error) error {
	var ve validation.Errors
	if !errors.As(err, &ve) || len(ve) == 0 {
		return e.BadRequestError("Could not create the owner account.", err)
	}
	names := make([]string, 0, len(ve))
	for k := range ve {
		names = append(names, k)
	}
	sort.Strings(names)
	data := map[string]any{}
	for _, k := range names {
		code := "invalid"
		var ce validation.Error
		if errors.As(ve[k], &ce) {
			code = ce.Code()
		}
		data[k] = map[string]string{"code": code, "message": ve[k].Error()}
	}
	return e.JSON(http.StatusBadRequest, map[string]any{
		"status": http.StatusBadRequest, "message": names[0] + ": " + ve[names[0]].Error(), "field": names[0], "data": data,
	})
}
