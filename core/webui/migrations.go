package webui

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// The staff password-reset email links to the web admin's own page
// (/reset-password/{TOKEN}) instead of PocketBase's superuser UI.
// Registered under the file name it was first applied with, so existing
// databases do not run it again. New migrations of this module are named
// "<unix time>_webui_<what>.go" (see app.Module).
func init() {
	m.Register(func(app core.App) error {
		staff, err := app.FindCollectionByNameOrId("staff")
		if err != nil {
			return err
		}
		staff.ResetPasswordTemplate.Subject = "Reset your {APP_NAME} password"
		staff.ResetPasswordTemplate.Body = `<p>Hello,</p>
<p>Click the button below to choose a new password for {APP_NAME}.</p>
<p><a class="btn" href="{APP_URL}/reset-password/{TOKEN}" target="_blank" rel="noopener">Reset password</a></p>
<p><i>If you did not ask for this, you can ignore this email.</i></p>`
		return app.Save(staff)
	}, nil, "0006_webui.go")
}
