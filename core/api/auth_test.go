package api_test

import (
	"errors"
	"net/http"
	"testing"

	validation "github.com/go-ozzo/ozzo-validation/v4"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
)

// probes adds routes guarded by the middleware and routes answering with
// each error helper, next to the real ones.
func probes(o *app.Omni) []app.Module {
	o.PB.OnServe().BindFunc(func(se *core.ServeEvent) error {
		ok := func(e *core.RequestEvent) error { return e.JSON(http.StatusOK, map[string]bool{"ok": true}) }
		se.Router.GET("/api/v1/test/staff", ok).Bind(api.RequireStaff())
		se.Router.GET("/api/v1/test/owner", ok).Bind(api.RequireOwner())
		se.Router.GET("/api/v1/test/bad-request", func(e *core.RequestEvent) error {
			return api.BadRequest("email", "must be an email address")
		})
		se.Router.GET("/api/v1/test/conflict", func(e *core.RequestEvent) error {
			return api.FieldError(http.StatusConflict, "config.api_key", "validation_taken", "is in use")
		})
		se.Router.GET("/api/v1/test/invalid", func(e *core.RequestEvent) error {
			return api.Invalid(validation.Errors{
				"name": validation.NewError("validation_required", "cannot be blank"),
				"kind": validation.NewError("validation_in_invalid", "must be browser or server"),
			}, "Could not save.")
		})
		se.Router.GET("/api/v1/test/not-found", func(e *core.RequestEvent) error {
			return api.Error(http.StatusNotFound, "No such thing.")
		})
		se.Router.GET("/api/v1/test/internal", func(e *core.RequestEvent) error {
			return api.Internal("Could not load it.", errors.New("SQL logic error near secret_table"))
		})
		return se.Next()
	})
	return nil
}

// TestGuards: guests get 401, signed-in non-staff and (on owner routes)
// agents 403, in PocketBase's error shape; staff, owners and superusers
// pass as their role allows. The dead-events routes use the same guard.
func TestGuards(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{Modules: probes})
	agent := omnitest.Auth(s.Staff(t, "agent@shop.test", "agent"))
	owner := omnitest.Auth(s.Staff(t, "owner@shop.test", "owner"))
	superuser := omnitest.Auth(token(t, s, core.CollectionNameSuperusers, "root@shop.test"))
	// A signed-in record of another auth collection is not staff.
	outsider := omnitest.Auth(token(t, s, "users", "customer@shop.test"))

	cases := []struct {
		who    string
		header http.Header
		staff  int // GET /api/v1/test/staff
		owner  int // GET /api/v1/test/owner and GET /api/v1/events/dead
	}{
		{"guest", nil, 401, 401},
		{"other auth collection", outsider, 403, 403},
		{"agent", agent, 200, 403},
		{"owner", owner, 200, 200},
		{"superuser", superuser, 200, 200},
	}
	for _, c := range cases {
		t.Run(c.who, func(t *testing.T) {
			for path, want := range map[string]int{"/api/v1/test/staff": c.staff, "/api/v1/test/owner": c.owner, "/api/v1/events/dead": c.owner} {
				code, body := s.Do(t, "GET", path, nil, c.header)
				if want == 200 {
					if code != 200 {
						t.Fatalf("%s: %d %s, want 200", path, code, body)
					}
					continue
				}
				if e := omnitest.WantError(t, code, body, want); len(e.Data) != 0 {
					t.Fatalf("%s: data names a field: %s", path, body)
				}
			}
		})
	}
}

func token(t *testing.T, s *omnitest.Server, collection, email string) string {
	t.Helper()
	col, err := s.PB.FindCollectionByNameOrId(collection)
	if err != nil {
		t.Fatal(err)
	}
	r := core.NewRecord(col)
	r.SetEmail(email)
	r.SetPassword("password-123456")
	if err := s.PB.Save(r); err != nil {
		t.Fatalf("create %s in %s: %v", email, collection, err)
	}
	tok, err := r.NewAuthToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestErrorHelpers: each helper answers in PocketBase's shape over HTTP;
// field errors name the field in the message and in data.<field>, with
// the field spelled as given; a 500 does not send its cause.
func TestErrorHelpers(t *testing.T) {
	s := omnitest.Start(t, omnitest.Options{Modules: probes})
	get := func(path string) (int, []byte) { return s.Do(t, "GET", path, nil, nil) }

	code, body := get("/api/v1/test/bad-request")
	e := omnitest.WantFieldError(t, code, body, 400, "email")
	if e.Message != "email: must be an email address" || e.Data["email"].Message != "Must be an email address." || e.Data["email"].Code != api.CodeInvalid {
		t.Fatalf("bad request: %s", body)
	}

	code, body = get("/api/v1/test/conflict")
	if e := omnitest.WantFieldError(t, code, body, 409, "config.api_key"); e.Data["config.api_key"].Code != "validation_taken" {
		t.Fatalf("conflict: %s", body)
	}

	code, body = get("/api/v1/test/invalid")
	e = omnitest.WantFieldError(t, code, body, 400, "kind") // the first field by name leads the message
	if e.Data["name"].Code != "validation_required" || e.Data["kind"].Message != "Must be browser or server." {
		t.Fatalf("invalid: %s", body)
	}

	code, body = get("/api/v1/test/not-found")
	if e := omnitest.WantError(t, code, body, 404); e.Message != "No such thing." || len(e.Data) != 0 {
		t.Fatalf("not found: %s", body)
	}

	code, body = get("/api/v1/test/internal")
	if e := omnitest.WantError(t, code, body, 500); e.Message != "Could not load it." || len(e.Data) != 0 {
		t.Fatalf("internal: %s", body)
	}
}
