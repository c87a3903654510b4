package webui

import (
	"crypto/subtle"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/security"

	"github.com/omni/omni/core/api"
)

// registerSetup adds first-run owner creation, so a fresh install is
// usable from the browser without the CLI:
//
//	GET  /api/v1/setup        → {"needs_owner": bool, "token_required": bool}
//	POST /api/v1/setup/owner  {email, password, passwordConfirm, name, setup_token}
//	                          → 200 {token, record} (signed in), 403 without the setup
//	                            token when one is required, or 409 once an owner exists
//
// On an address other than loopback, whoever reached the page first would
// become owner; there the request must carry a one-time setup token that
// only the operator can see, printed in the server log (as Jupyter does).
func (m *Module) registerSetup(pb core.App, se *core.ServeEvent, log *slog.Logger) {
	m.setupLog = log
	m.setupAddr = listenAddr(se)
	m.tokenRequired = !isLoopback(m.setupAddr)
	if n, err := countOwners(pb); err == nil && n == 0 && m.tokenRequired {
		m.setup.Lock()
		m.newSetupToken()
		m.setup.Unlock()
	}
	se.Router.GET("/api/v1/setup", func(e *core.RequestEvent) error {
		n, err := countOwners(e.App)
		if err != nil {
			return api.Internal("", err)
		}
		return e.JSON(http.StatusOK, map[string]any{"needs_owner": n == 0, "token_required": n == 0 && m.tokenRequired})
	})
	se.Router.POST("/api/v1/setup/owner", m.createOwner)
}

// listenAddr is the address HTTP is served on: the listener handed to
// Serve, or the configured address PocketBase will listen on.
func listenAddr(se *core.ServeEvent) string {
	if se.Listener != nil {
		return se.Listener.Addr().String()
	}
	if se.Server != nil {
		return se.Server.Addr
	}
	return ""
}

// isLoopback reports whether addr (host:port) only accepts connections
// from this machine. An empty or unspecified host (":8090", "0.0.0.0")
// listens everywhere; a name other than localhost may resolve anywhere.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newSetupToken makes a fresh token and prints the link that carries it.
// Called with m.setup held.
func (m *Module) newSetupToken() {
	m.setupToken = security.RandomString(40)
	host, port, _ := net.SplitHostPort(m.setupAddr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		// Listening everywhere: the machine's name is the best guess at an
		// address the operator can open.
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		} else {
			host = "localhost"
		}
	}
	// Warn, so the default and warn log levels both show it. The token is
	// single use and worthless once an owner exists.
	m.setupLog.Warn("first run: open this link to create the owner account; the setup token in it is required because http is not bound to loopback",
		"url", "http://"+net.JoinHostPort(host, port)+"/?setup="+m.setupToken)
}

type ownerInput struct {
	Email           string `json:"email"`
	Password        string `json:"password"`
	PasswordConfirm string `json:"passwordConfirm"`
	Name            string `json:"name"`
	SetupToken      string `json:"setup_token"`
}

func (m *Module) createOwner(e *core.RequestEvent) error {
	var in ownerInput
	if err := e.BindBody(&in); err != nil {
		return api.BadRequest("body", "must be a JSON object")
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
		return api.Internal("", err)
	}
	if n > 0 {
		return api.Error(http.StatusConflict, "An owner already exists; sign in, or ask the owner for an account.")
	}
	if m.tokenRequired {
		if m.setupToken == "" {
			// Used up by an owner who is gone again: print a fresh one.
			m.newSetupToken()
		}
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(in.SetupToken)), []byte(m.setupToken)) != 1 {
			msg := "A valid setup token is required: open the link printed in the server log when Omni started (it ends in ?setup=…)."
			if in.SetupToken == "" {
				msg = "The setup token is missing: open the link printed in the server log when Omni started (it ends in ?setup=…)."
			}
			return api.FieldError(http.StatusForbidden, "setup_token", "validation_setup_token", msg)
		}
	}
	col, err := e.App.FindCollectionByNameOrId("staff")
	if err != nil {
		return api.Internal("", err)
	}
	rec := core.NewRecord(col)
	rec.SetEmail(in.Email)
	rec.SetPassword(in.Password)
	rec.Set("passwordConfirm", in.PasswordConfirm)
	rec.Set("name", strings.TrimSpace(in.Name))
	rec.Set("role", "owner")
	rec.SetVerified(true)
	if in.Password != in.PasswordConfirm {
		return api.FieldError(http.StatusBadRequest, "passwordConfirm", "validation_values_mismatch", "the passwords do not match")
	}
	if err := e.App.Save(rec); err != nil {
		return api.Invalid(err, "Could not create the owner account.")
	}
	m.setupToken = "" // single use
	return apis.RecordAuthResponse(e, rec, "password", nil)
}

func countOwners(app core.App) (int, error) {
	var n int
	err := app.DB().NewQuery("SELECT COUNT(*) FROM staff WHERE role = 'owner'").Row(&n)
	return n, err
}
