package connectors

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/plugins/sdk"
)

func (m *Module) registerAPI(se *core.ServeEvent) {
	g := se.Router.Group("/api/v1/connectors")
	g.Bind(api.RequireOwner())
	g.GET("", m.apiList)
	g.GET("/{name}", m.apiGet)
	g.PATCH("/{name}", m.apiUpdate)
	g.POST("/{name}/enable", m.apiEnable(true))
	g.POST("/{name}/disable", m.apiEnable(false))
	g.POST("/{name}/backfill", m.apiBackfillStart)
	g.GET("/{name}/backfill", m.apiBackfillGet)
}

// View is a connector as the API shows it.
type View struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Version   string `json:"version"`
	Enabled   bool   `json:"enabled"`
	State     string `json:"state"`
	LastError string `json:"last_error"`
	Restarts  int    `json:"restarts"`
	// Vendor is "reachable", "unreachable" (VendorError says why) or
	// empty while unknown; only for a running connector.
	Vendor       string            `json:"vendor"`
	VendorError  string            `json:"vendor_error"`
	WebhookURL   string            `json:"webhook_url"`
	Schema       []sdk.ConfigField `json:"schema"`
	Capabilities []string          `json:"capabilities"`
	Config       map[string]string `json:"config"`
	Backfill     BackfillView      `json:"backfill"`
	// Held counts the outbound messages waiting until the connector is
	// enabled and running (outbox_held).
	Held int `json:"held"`
}

// BackfillView is a connector's backfill progress.
type BackfillView struct {
	State   string `json:"state"`
	Since   string `json:"since,omitempty"`
	Done    int64  `json:"done"`
	Total   int64  `json:"total"`
	Error   string `json:"error,omitempty"`
	Updated string `json:"updated,omitempty"`
	// Skipped counts the connector's backfilled events that failed
	// validation and are parked in events_dead (until deleted or imported
	// on a retry); LastSkipped is the newest one's error, naming the field.
	Skipped     int64  `json:"skipped"`
	LastSkipped string `json:"last_skipped,omitempty"`
}

func backfillView(a core.App, rec *core.Record) BackfillView {
	st := rec.GetString("backfill_state")
	if st == "" {
		st = BackfillIdle
	}
	v := BackfillView{State: st, Since: rec.GetString("backfill_since"), Done: int64(rec.GetFloat("backfill_done")),
		Total: int64(rec.GetFloat("backfill_total")), Error: rec.GetString("backfill_error")}
	if d := rec.GetDateTime("backfill_updated"); !d.IsZero() {
		v.Updated = d.Time().UTC().Format(time.RFC3339)
	}
	v.Skipped, v.LastSkipped = backfillSkips(a, rec.GetString("name"))
	return v
}

func (m *Module) view(e *core.RequestEvent, rec *core.Record) View {
	name := rec.GetString("name")
	schema := m.schema(rec)
	v := View{Name: name, Kind: rec.GetString("kind"), Version: rec.GetString("version"), Enabled: rec.GetBool("enabled"),
		State: rec.GetString("state"), LastError: rec.GetString("last_error"), Schema: schema,
		Capabilities: capabilitiesOf(rec), Config: MaskedConfig(rec, schema), Backfill: backfillView(m.app, rec),
		Held: m.heldCount(name)}
	if i := m.instance(name); i != nil {
		st := i.status()
		v.State, v.LastError, v.Restarts = st.stateText(), st.LastError, st.Restarts
		v.Vendor, v.VendorError = st.Vendor, st.VendorError
	}
	if v.Schema == nil {
		v.Schema = []sdk.ConfigField{}
	}
	if v.Capabilities == nil {
		v.Capabilities = []string{}
	}
	scheme := "http"
	if e.Request.TLS != nil {
		scheme = "https"
	}
	if p := e.Request.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = p
	}
	v.WebhookURL = scheme + "://" + e.Request.Host + "/webhooks/" + name
	return v
}

// schema is the stored schema, else asks the connector.
func (m *Module) schema(rec *core.Record) []sdk.ConfigField {
	if s := schemaOf(rec); len(s) > 0 {
		return s
	}
	i := m.instance(rec.GetString("name"))
	if i == nil {
		return nil
	}
	i.mu.Lock()
	d := i.desc
	i.mu.Unlock()
	if d == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var pin []byte
		if p := m.fileConfig(i.name)[KeySHA256]; p != "" {
			pin, _ = hex.DecodeString(p)
		}
		var err error
		d, err = DescribeInstalled(ctx, Installed{Name: i.name, Kind: i.kind, Path: i.path}, pin)
		if err != nil {
			return nil
		}
		m.saveDescription(i.name, d)
	}
	return d.Config
}

func (m *Module) find(e *core.RequestEvent) (*core.Record, error) {
	name := e.Request.PathValue("name")
	rec, err := m.app.FindFirstRecordByData(Collection, "name", name)
	if err != nil {
		return nil, api.FieldError(http.StatusNotFound, "name", "validation_not_installed", fmt.Sprintf("no connector named %q is installed", name))
	}
	return rec, nil
}

func (m *Module) apiList(e *core.RequestEvent) error {
	recs, err := m.app.FindRecordsByFilter(Collection, "", "name", 0, 0)
	if err != nil {
		return api.Internal("Could not list the connectors.", err)
	}
	out := make([]View, 0, len(recs))
	for _, r := range recs {
		out = append(out, m.view(e, r))
	}
	return e.JSON(http.StatusOK, map[string]any{"items": out})
}

func (m *Module) apiGet(e *core.RequestEvent) error {
	rec, err := m.find(e)
	if rec == nil {
		return err
	}
	return e.JSON(http.StatusOK, m.view(e, rec))
}

func (m *Module) apiUpdate(e *core.RequestEvent) error {
	rec, err := m.find(e)
	if rec == nil {
		return err
	}
	var in struct {
		Config  map[string]string `json:"config"`
		Enabled *bool             `json:"enabled"`
	}
	if err := e.BindBody(&in); err != nil {
		return api.BadRequest("body", "must be JSON like {\"config\": {\"name\": \"value\"}, \"enabled\": true}: "+err.Error())
	}
	if err := m.update(rec, in.Config, in.Enabled); err != nil {
		var ce *sdk.ConfigError
		if errors.As(err, &ce) {
			return api.BadRequest("config."+ce.Field, ce.Problem)
		}
		return api.Internal("Could not save the connector's settings.", err)
	}
	rec, _ = m.app.FindRecordById(Collection, rec.Id)
	return e.JSON(http.StatusOK, m.view(e, rec))
}

func (m *Module) apiEnable(on bool) func(*core.RequestEvent) error {
	return func(e *core.RequestEvent) error {
		rec, err := m.find(e)
		if rec == nil {
			return err
		}
		if err := m.update(rec, nil, &on); err != nil {
			var ce *sdk.ConfigError
			if errors.As(err, &ce) {
				return api.BadRequest("config."+ce.Field, ce.Problem)
			}
			return api.Internal("Could not save the connector's settings.", err)
		}
		rec, _ = m.app.FindRecordById(Collection, rec.Id)
		return e.JSON(http.StatusOK, m.view(e, rec))
	}
}

// update applies settings and the enabled flag, checking them first (and
// against the running plugin, which names the field it rejects).
func (m *Module) update(rec *core.Record, changes map[string]string, enabled *bool) error {
	name := rec.GetString("name")
	schema := m.schema(rec)
	if len(changes) > 0 {
		if err := ApplyConfig(rec, m.sealer, schema, changes); err != nil {
			return err
		}
	}
	if enabled != nil {
		rec.Set("enabled", *enabled)
	}
	if rec.GetBool("enabled") {
		if ce := MissingRequired(rec, schema, m.fileConfig(name)); ce != nil {
			return ce
		}
		if i := m.instance(name); i != nil && len(changes) > 0 {
			if conn, err := i.ready(); err == nil {
				cfg, _, err := DecryptConfig(rec, m.sealer, m.fileConfig(name))
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err = conn.Configure(ctx, cfg, &host{i: i})
				cancel()
				var ce *sdk.ConfigError
				if errors.As(err, &ce) {
					_ = i.reconfigure() // back to the stored settings
					return ce
				}
			}
		}
	}
	if err := SaveSettings(m.app, rec); err != nil {
		return err
	}
	m.sync()
	return nil
}

func (m *Module) apiBackfillStart(e *core.RequestEvent) error {
	rec, err := m.find(e)
	if rec == nil {
		return err
	}
	var in struct {
		Since string `json:"since"`
	}
	if err := e.BindBody(&in); err != nil {
		return api.BadRequest("body", "must be JSON like {\"since\": \"2025-01-01\"}")
	}
	since, perr := ParseSince(in.Since)
	if perr != nil {
		return api.BadRequest("since", perr.Error())
	}
	name := rec.GetString("name")
	if !hasCap(capabilitiesOf(rec), sdk.CapBackfill) {
		return api.FieldError(http.StatusBadRequest, "name", "validation_no_backfill", fmt.Sprintf("connector %s does not support backfill", name))
	}
	if m.backfills.running(name) {
		return api.FieldError(http.StatusConflict, "name", "validation_backfill_running", fmt.Sprintf("a backfill of %s is already running", name))
	}
	if err := RequestBackfillRecord(m.app, rec, since); err != nil {
		return api.Internal("Could not start the backfill.", err)
	}
	if i := m.instance(name); i != nil {
		if _, err := i.ready(); err == nil {
			m.backfills.start(name)
		}
	}
	rec, _ = m.app.FindRecordById(Collection, rec.Id)
	return e.JSON(http.StatusAccepted, backfillView(m.app, rec))
}

func (m *Module) apiBackfillGet(e *core.RequestEvent) error {
	rec, err := m.find(e)
	if rec == nil {
		return err
	}
	return e.JSON(http.StatusOK, backfillView(m.app, rec))
}

// RequestBackfillRecord marks a backfill as requested; a running server
// picks it up. The same since as an unfinished backfill resumes at its
// cursor; another since starts over.
func RequestBackfillRecord(a core.App, rec *core.Record, since time.Time) error {
	s := since.UTC().Format(time.RFC3339)
	fields := map[string]any{"backfill_state": BackfillRequested, "backfill_since": s, "backfill_error": ""}
	if rec.GetString("backfill_since") != s || rec.GetString("backfill_state") == BackfillDone {
		fields["backfill_cursor"] = ""
		fields["backfill_done"] = 0
		fields["backfill_total"] = 0
	}
	return updateFields(a, rec.GetString("name"), fields)
}

// ParseSince accepts a date (2025-01-01) or an RFC 3339 time.
func ParseSince(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("since is required (e.g. 2025-01-01)")
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since %q is not a date like 2025-01-01 or a time like 2025-01-01T00:00:00Z", s)
}

func hasCap(caps []string, c string) bool {
	for _, x := range caps {
		if x == c {
			return true
		}
	}
	return false
}

// SaveSettings writes only the settings and the enabled flag of rec.
func SaveSettings(a core.App, rec *core.Record) error {
	return updateFields(a, rec.GetString("name"), map[string]any{"config": storedConfig(rec), "enabled": rec.GetBool("enabled")})
}
