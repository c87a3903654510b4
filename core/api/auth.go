package api

import (
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/hook"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/staff"
)

// IsStaff reports whether the request is made by a staff member of any
// role or by a PocketBase superuser.
func IsStaff(e *core.RequestEvent) bool { return IsStaffRecord(e.Auth) }

// IsOwner reports whether the request is made by an Omni owner or a
// PocketBase superuser.
func IsOwner(e *core.RequestEvent) bool { return IsOwnerRecord(e.Auth) }

// IsStaffRecord is IsStaff for an auth record outside a request, such as
// a realtime client's (nil: a guest).
func IsStaffRecord(auth *core.Record) bool {
	return auth != nil && (auth.IsSuperuser() || staff.IsMember(auth))
}

// IsOwnerRecord is IsOwner for an auth record outside a request.
func IsOwnerRecord(auth *core.Record) bool {
	return auth != nil && (auth.IsSuperuser() || staff.IsOwner(auth))
}

// RequireStaff lets staff of any role and superusers through: 401 for
// guests, 403 for any other signed-in record.
func RequireStaff() *hook.Handler[*core.RequestEvent] {
	return &hook.Handler[*core.RequestEvent]{
		Id: "omniRequireStaff",
		Func: func(e *core.RequestEvent) error {
			if e.Auth == nil {
				return router.NewUnauthorizedError("Sign in as a staff member.", nil)
			}
			if !IsStaff(e) {
				return router.NewForbiddenError("Only staff can do this.", nil)
			}
			return e.Next()
		},
	}
}

// RequireOwner lets owners and superusers through: 401 for guests, 403
// for agents and anyone else.
func RequireOwner() *hook.Handler[*core.RequestEvent] {
	return &hook.Handler[*core.RequestEvent]{
		Id: "omniRequireOwner",
		Func: func(e *core.RequestEvent) error {
			if e.Auth == nil {
				return router.NewUnauthorizedError("Sign in as an owner.", nil)
			}
			if !IsOwner(e) {
				return router.NewForbiddenError("Only owners can do this.", nil)
			}
			return e.Next()
		},
	}
}
