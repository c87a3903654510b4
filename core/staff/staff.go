// Package staff guards the staff auth collection beyond what API rules can
// say: only owners change roles, and the last owner can be neither demoted
// nor deleted, so a shop is never left without someone who can administer
// it.
package staff

import (
	"net/http"

	validation "github.com/go-ozzo/ozzo-validation/v4"
	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// Collection is the staff auth collection.
const Collection = "staff"

// Roles a staff member can have.
const (
	RoleOwner = "owner"
	RoleAgent = "agent"
)

// IsMember reports whether auth is a staff member, of any role.
func IsMember(auth *core.Record) bool {
	return auth != nil && auth.Collection().Name == Collection
}

// IsOwner reports whether auth is a staff member with role owner. It is
// the one definition of "owner"; core/api's middleware builds on it.
func IsOwner(auth *core.Record) bool {
	return IsMember(auth) && auth.GetString("role") == RoleOwner
}

// RegisterHooks binds the guards. They are bound on the app itself, not in
// a module, so every way in (REST, batch, /_/, Go code) goes through them.
func RegisterHooks(app core.App) {
	// The update rule lets a staff member edit their own record (name,
	// password); the role is the one field of it only owners may change.
	// A request hook rather than the rule, so the refusal names the field.
	app.OnRecordUpdateRequest(Collection).BindFunc(func(e *core.RecordRequestEvent) error {
		if e.Record.GetString("role") != e.Record.Original().GetString("role") && !e.HasSuperuserAuth() && !IsOwner(e.Auth) {
			return router.NewApiError(http.StatusForbidden, "role: only owners can change roles.",
				validation.Errors{"role": validation.NewError("validation_owner_only", "Only owners can change roles.")})
		}
		return e.Next()
	})
	// Create is owner-only by rule; refuse an owner-making create by anyone
	// else as well, should the rule ever be loosened.
	app.OnRecordCreateRequest(Collection).BindFunc(func(e *core.RecordRequestEvent) error {
		if e.Record.GetString("role") == RoleOwner && !e.HasSuperuserAuth() && !IsOwner(e.Auth) {
			return router.NewApiError(http.StatusForbidden, "role: only owners can create owners.",
				validation.Errors{"role": validation.NewError("validation_owner_only", "Only owners can create owners.")})
		}
		return e.Next()
	})

	// Last-owner checks run at the write itself (the Execute hooks), for
	// every caller including superusers and Go code, and count the other
	// owners inside the write's transaction: SQLite has one writer, so two
	// owners demoting each other at once cannot both pass the check.
	app.OnRecordUpdateExecute(Collection).BindFunc(func(e *core.RecordEvent) error {
		if e.Record.Original().GetString("role") != RoleOwner || e.Record.GetString("role") == RoleOwner {
			return e.Next()
		}
		return guardLastOwner(e, "The last owner cannot be demoted; make another staff member owner first.")
	})
	app.OnRecordDeleteExecute(Collection).BindFunc(func(e *core.RecordEvent) error {
		if e.Record.Original().GetString("role") != RoleOwner {
			return e.Next()
		}
		return guardLastOwner(e, "The last owner cannot be deleted; make another staff member owner first.")
	})
}

// guardLastOwner continues the write only if another owner remains.
func guardLastOwner(e *core.RecordEvent, msg string) error {
	outer := e.App
	defer func() { e.App = outer }()
	return outer.RunInTransaction(func(tx core.App) error {
		e.App = tx
		var others int
		err := tx.DB().Select("COUNT(*)").From(Collection).
			Where(dbx.HashExp{"role": RoleOwner}).
			AndWhere(dbx.Not(dbx.HashExp{"id": e.Record.Id})).
			Row(&others)
		if err != nil {
			return err
		}
		if others == 0 {
			return router.NewBadRequestError("role: "+msg,
				validation.Errors{"role": validation.NewError("validation_last_owner", msg)})
		}
		return e.Next()
	})
}
