package api

import (
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/hook"
	"github.com/pocketbase/pocketbase/tools/router"
)

// IsOwner reports whether the request is made by an Omni owner or a
// PocketBase superuser.
func IsOwner(e *core.RequestEvent) bool {
	if e.Auth == nil {
		return false
	}
	return e.Auth.IsSuperuser() || (e.Auth.Collection().Name == "staff" && e.Auth.GetString("role") == "owner")
}

// RequireOwner lets owners and superusers through; others get 401 or 403
// in PocketBase's error shape.
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
