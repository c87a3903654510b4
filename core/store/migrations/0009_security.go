package migrations

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// Lock PocketBase's default "users" auth collection. PocketBase creates it
// with a public create rule, so anyone could sign up an account; Omni's
// people sign in through "staff" and never use it. It is locked rather
// than dropped so an install that somehow has rows keeps them: every rule
// superusers-only, every way of signing in off, and existing sessions
// invalidated by rotating each record's token key.
func init() {
	m.Register(func(app core.App) error {
		users, err := app.FindCollectionByNameOrId("users")
		if err != nil {
			return nil // already removed by hand
		}
		users.ListRule = nil
		users.ViewRule = nil
		users.CreateRule = nil
		users.UpdateRule = nil
		users.DeleteRule = nil
		users.ManageRule = nil
		users.AuthRule = nil // nil: no one can sign in to it, whatever the method
		users.PasswordAuth.Enabled = false
		users.OAuth2.Enabled = false
		users.OTP.Enabled = false
		users.MFA.Enabled = false
		if err := app.Save(users); err != nil {
			return err
		}
		recs, err := app.FindAllRecords(users)
		if err != nil {
			return err
		}
		for _, r := range recs {
			r.RefreshTokenKey()
			if err := app.SaveNoValidate(r); err != nil {
				return err
			}
		}
		return nil
	}, nil)
}
