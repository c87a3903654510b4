// Package api holds Omni's HTTP plumbing shared by every module: the
// error answers and the staff/owner guards of /api/v1, and the routes that
// belong to no single module (health, dead events).
//
// # Errors
//
// Every /api/v1 error is PocketBase's (router.ApiError), so the web admin
// and the PocketBase JS SDK read ours and PocketBase's own the same way:
//
//	{"status": 400, "message": "since: must be a date like 2025-01-01",
//	 "data": {"since": {"code": "validation_invalid", "message": "Must be a date like 2025-01-01."}}}
//
// data maps each field at fault, by the name the request used for it
// ("config.api_key", "batch[1].event"), to {code, message}; it is {} when
// no field is at fault. Handlers return, never write, these errors:
//
//	return api.BadRequest("email", "must be an email address")        // 400 about one field
//	return api.FieldError(http.StatusConflict, "name", "validation_busy", "a backfill is running")
//	return api.Invalid(err, "Could not save the source.")             // 400 from a record's validation.Errors
//	return api.Error(http.StatusNotFound, "No profile with id \"x\".") // no field
//	return api.Internal("Search failed.", err)                        // 500; err is logged, not sent
//
// The Segment-compatible tracking API and connector webhooks answer
// clients that are not ours and documented a top-level "field" (and, for
// batches, "rejected"); they write the same shape with those keys added
// (WriteCompat).
//
// # Guards
//
// RequireStaff (staff of any role, or a superuser) and RequireOwner (an
// owner, or a superuser) answer 401 to guests and 403 to anyone else;
// IsStaffRecord and IsOwnerRecord say the same of an auth record outside
// a request (a realtime client's). The
// definition of owner is core/staff's, which owns the staff collection
// and its roles; core/staff imports nothing of Omni, so core/api can build
// on it without a cycle.
package api
