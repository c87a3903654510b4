package inbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
)

// SettingError names the field of a setting that is wrong
// ("sla.targets.0.first_response").
type SettingError struct{ Field, Message string }

func (e *SettingError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, msg string) error { return &SettingError{Field: field, Message: msg} }

// strictJSON decodes raw into v, refusing unknown fields.
func strictJSON(raw []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// settingsRoutes: GET /api/v1/inbox/settings (staff) is every setting,
// saved or default; PUT /api/v1/inbox/settings/{key} (owner) replaces one.
func (m *Module) settingsRoutes(g *router.RouterGroup[*core.RequestEvent]) {
	g.GET("/settings", func(e *core.RequestEvent) error {
		out := map[string]any{}
		for _, k := range settingKeys {
			var v json.RawMessage
			if m.setting(k, &v) {
				out[k] = v
			} else {
				out[k] = settingDefault(k)
			}
		}
		return e.JSON(200, out)
	}).Bind(api.RequireStaff())
	g.PUT("/settings/{key}", func(e *core.RequestEvent) error {
		key := e.Request.PathValue("key")
		known := false
		for _, k := range settingKeys {
			known = known || k == key
		}
		if !known {
			return e.NotFoundError("There is no inbox setting "+key+".", nil)
		}
		raw, err := io.ReadAll(io.LimitReader(e.Request.Body, 1<<16))
		if err != nil {
			return api.BadRequest(key, "cannot read the body")
		}
		v, err := m.checkSetting(key, raw)
		var se *SettingError
		if errors.As(err, &se) {
			return api.BadRequest(se.Field, se.Message)
		}
		if err != nil {
			return api.BadRequest(key, err.Error())
		}
		err = saveSetting(m.app, key, v)
		m.settings.changed() // committed (or not written): read it afresh
		if err != nil {
			return api.Internal("could not save the setting", err)
		}
		return e.JSON(200, v)
	}).Bind(api.RequireOwner())
}
