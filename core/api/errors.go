package api

import (
	"errors"
	"net/http"
	"sort"

	validation "github.com/go-ozzo/ozzo-validation/v4"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
)

// CodeInvalid is the code of a field error that has no more specific one
// (PocketBase's own default).
const CodeInvalid = "validation_invalid_value"

// Error is an answer about no field in particular: data is {}.
func Error(status int, message string) *router.ApiError {
	return router.NewApiError(status, message, nil)
}

// FieldError is an answer about one field: data.<field> is {code,
// message} and the message starts with the field's name, so a client that
// shows only the message still says what was wrong. An empty field gives
// Error; an empty code, CodeInvalid.
func FieldError(status int, field, code, message string) *router.ApiError {
	if field == "" {
		return Error(status, message)
	}
	if code == "" {
		code = CodeInvalid
	}
	err := router.NewApiError(status, message, validation.Errors{field: validation.NewError(code, message)})
	// Not sentenized: the field keeps the spelling the request used.
	err.Message = field + ": " + message
	return err
}

// BadRequest is a 400 about one field.
func BadRequest(field, message string) *router.ApiError {
	return FieldError(http.StatusBadRequest, field, CodeInvalid, message)
}

// Invalid is a 400 from validation errors (a record's Save, a validator):
// every field is in data and the first, by name, in the message. Without
// field errors in err it is a 400 with message.
func Invalid(err error, message string) *router.ApiError {
	var ve validation.Errors
	if !errors.As(err, &ve) || len(ve) == 0 {
		return router.NewBadRequestError(message, err)
	}
	names := make([]string, 0, len(ve))
	for k := range ve {
		names = append(names, k)
	}
	sort.Strings(names)
	out := router.NewBadRequestError(message, ve)
	if first := ve[names[0]]; first != nil {
		out.Message = names[0] + ": " + first.Error()
	}
	return out
}

// Internal is a 500 saying message. The cause is not sent to the client;
// PocketBase's request log keeps it (Settings → Logs in /_/).
func Internal(message string, cause error) *router.ApiError {
	return router.NewInternalServerError(message, cause)
}

// WriteCompat writes err in PocketBase's shape with extra top-level keys,
// for the surfaces whose clients are not ours and whose documented errors
// carry them: the tracking API ("field", "rejected") and connector
// webhooks ("field"). Empty extras are left out.
func WriteCompat(e *core.RequestEvent, err *router.ApiError, extra map[string]any) error {
	return e.JSON(err.Status, CompatBody(err, extra))
}

// CompatBody is the body WriteCompat sends, for an answer written later
// or elsewhere (a connector's answer relayed to a front end).
func CompatBody(err *router.ApiError, extra map[string]any) map[string]any {
	body := map[string]any{"status": err.Status, "message": err.Message, "data": err.Data}
	for k, v := range extra {
		if v != nil && v != "" {
			body[k] = v
		}
	}
	return body
}
