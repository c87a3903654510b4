package inbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/url"
	"regexp"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"
	"github.com/pocketbase/pocketbase/tools/security"

	"github.com/omni/omni/core/api"
)

// WidgetKeyPrefix starts every widget key (public: it is in the snippet).
const WidgetKeyPrefix = "cw_"

// WidgetView is a chat_widgets row with the snippet to paste in the
// shop's pages.
type WidgetView struct {
	ID              string   `json:"id"`
	Name            string   `json:"name"`
	Source          string   `json:"source"`
	Key             string   `json:"key"`
	Enabled         bool     `json:"enabled"`
	AllowedOrigins  []string `json:"allowed_origins"`
	Title           string   `json:"title"`
	Greeting        string   `json:"greeting"`
	Color           string   `json:"color"`
	AskEmailOffline bool     `json:"ask_email_offline"`
	Created         string   `json:"created"`
	Updated         string   `json:"updated"`
	Snippet         string   `json:"snippet"`
}

func (m *Module) widgetView(r *core.Record) WidgetView {
	var origins []string
	_ = json.Unmarshal([]byte(r.GetString("allowed_origins")), &origins)
	if origins == nil {
		origins = []string{}
	}
	return WidgetView{ID: r.Id, Name: r.GetString("name"), Source: r.GetString("source"), Key: r.GetString("key"),
		Enabled: r.GetBool("enabled"), AllowedOrigins: origins, Title: r.GetString("title"), Greeting: r.GetString("greeting"),
		Color: r.GetString("color"), AskEmailOffline: r.GetBool("ask_email_offline"),
		Created: rfc3339(r.GetDateTime("created").String()), Updated: rfc3339(r.GetDateTime("updated").String()),
		Snippet: m.widgetSnippet(r.GetString("key"))}
}

// widgetSnippet is the one tag a shop adds to its pages.
func (m *Module) widgetSnippet(key string) string {
	base := ""
	if m.o != nil && m.o.Config != nil {
		base = m.o.Config.PublicBaseURL()
	}
	return fmt.Sprintf(`<script src="%s/widget/omni-chat.js" data-omni-widget="%s" async></script>`, html.EscapeString(base), html.EscapeString(key))
}

// widgetInput is the body of POST and PATCH (absent fields unchanged).
type widgetInput struct {
	Name            *string   `json:"name"`
	Source          *string   `json:"source"`
	Enabled         *bool     `json:"enabled"`
	AllowedOrigins  *[]string `json:"allowed_origins"`
	Title           *string   `json:"title"`
	Greeting        *string   `json:"greeting"`
	Color           *string   `json:"color"`
	AskEmailOffline *bool     `json:"ask_email_offline"`
}

var colorRe = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// widgetAdminRoutes: GET /widgets (staff), POST, PATCH /{id}, DELETE /{id}
// (owner).
func (m *Module) widgetAdminRoutes(g *router.RouterGroup[*core.RequestEvent]) {
	g.GET("/widgets", func(e *core.RequestEvent) error {
		rows, err := m.app.FindRecordsByFilter(WidgetsCollection, "", "created", 0, 0)
		if err != nil {
			return api.Internal("could not read the chat widgets", err)
		}
		items := make([]WidgetView, 0, len(rows))
		for _, r := range rows {
			items = append(items, m.widgetView(r))
		}
		return e.JSON(200, map[string]any{"items": items})
	}).Bind(api.RequireStaff())
	g.POST("/widgets", func(e *core.RequestEvent) error {
		col, err := m.app.FindCollectionByNameOrId(WidgetsCollection)
		if err != nil {
			return api.Internal("could not read the chat widgets", err)
		}
		r := core.NewRecord(col)
		r.Set("key", WidgetKeyPrefix+security.RandomString(24))
		r.Set("enabled", true)
		r.Set("ask_email_offline", true)
		r.Set("title", "Chat with us")
		r.Set("greeting", "Hi! How can we help?")
		return m.saveWidget(e, r, true)
	}).Bind(api.RequireOwner())
	g.PATCH("/widgets/{id}", func(e *core.RequestEvent) error {
		r, err := m.app.FindRecordById(WidgetsCollection, e.Request.PathValue("id"))
		if err != nil {
			return e.NotFoundError("There is no such chat widget.", nil)
		}
		return m.saveWidget(e, r, false)
	}).Bind(api.RequireOwner())
	g.DELETE("/widgets/{id}", func(e *core.RequestEvent) error {
		r, err := m.app.FindRecordById(WidgetsCollection, e.Request.PathValue("id"))
		if err != nil {
			return e.NotFoundError("There is no such chat widget.", nil)
		}
		if err := m.app.Delete(r); err != nil {
			return api.Internal("could not delete the chat widget", err)
		}
		return e.NoContent(204)
	}).Bind(api.RequireOwner())
}

func (m *Module) saveWidget(e *core.RequestEvent, r *core.Record, create bool) error {
	var in widgetInput
	if err := strictJSON(readLimited(e, 1<<16), &in); err != nil {
		return api.BadRequest("body", "is not a chat widget: "+err.Error())
	}
	if in.Name != nil {
		name := strings.TrimSpace(*in.Name)
		if name == "" || len(name) > 100 {
			return api.BadRequest("name", "is required (up to 100 characters)")
		}
		r.Set("name", name)
	} else if create {
		return api.BadRequest("name", "is required (up to 100 characters)")
	}
	if in.AllowedOrigins != nil {
		origins, field, err := normaliseOrigins(*in.AllowedOrigins)
		if err != nil {
			return api.BadRequest(field, err.Error())
		}
		r.Set("allowed_origins", origins)
	} else if create {
		return api.BadRequest("allowed_origins", "list the shop's origins the widget may run on, such as https://shop.example")
	}
	if in.Source != nil {
		id, err := m.browserSource(strings.TrimSpace(*in.Source))
		if err != nil {
			return api.BadRequest("source", err.Error())
		}
		r.Set("source", id)
	}
	for field, v := range map[string]*string{"title": in.Title, "greeting": in.Greeting} {
		if v == nil {
			continue
		}
		s := strings.TrimSpace(*v)
		if limit := map[string]int{"title": 200, "greeting": 2000}[field]; len(s) > limit {
			return api.BadRequest(field, fmt.Sprintf("is too long (up to %d characters)", limit))
		}
		r.Set(field, s)
	}
	if in.Color != nil {
		c := strings.TrimSpace(*in.Color)
		if c != "" && !colorRe.MatchString(c) {
			return api.BadRequest("color", "must be a colour such as #1f6feb")
		}
		r.Set("color", c)
	}
	if in.Enabled != nil {
		r.Set("enabled", *in.Enabled)
	}
	if in.AskEmailOffline != nil {
		r.Set("ask_email_offline", *in.AskEmailOffline)
	}
	if err := m.app.Save(r); err != nil {
		return api.Invalid(err, "could not save the chat widget")
	}
	code := 200
	if create {
		code = 201
	}
	return e.JSON(code, m.widgetView(r))
}

// normaliseOrigins checks each allowed origin (scheme://host[:port], no
// path) and writes it the way browsers send it in the Origin header.
func normaliseOrigins(in []string) ([]string, string, error) {
	if len(in) == 0 {
		return nil, "allowed_origins", errors.New("list at least one origin, such as https://shop.example")
	}
	if len(in) > 20 {
		return nil, "allowed_origins", errors.New("up to 20 origins")
	}
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for i, raw := range in {
		field := fmt.Sprintf("allowed_origins.%d", i)
		o, err := normaliseOrigin(raw)
		if err != nil {
			return nil, field, err
		}
		if !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	return out, "", nil
}

func normaliseOrigin(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	u, err := url.Parse(s)
	bad := fmt.Errorf("%q is not an origin: write the scheme and host, such as https://shop.example", raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.Contains(u.Host, "*") {
		return "", bad
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}

// browserSource resolves a source by id or name; it must be a browser
// source (the one whose anonymousId the shop's pages carry). "" unlinks.
func (m *Module) browserSource(ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	var row struct {
		ID   string `db:"id"`
		Kind string `db:"kind"`
	}
	err := m.app.DB().Select("id", "kind").From("sources").Where(dbx.Or(dbx.HashExp{"id": ref}, dbx.HashExp{"name": ref})).Limit(1).One(&row)
	if err != nil {
		return "", fmt.Errorf("there is no source %q", ref)
	}
	if row.Kind != "browser" {
		return "", fmt.Errorf("%q is a server source: link the browser source of the shop's pages", ref)
	}
	return row.ID, nil
}

// readLimited reads at most n bytes of the request body (more fails to
// decode).
func readLimited(e *core.RequestEvent, n int64) []byte {
	b, _ := io.ReadAll(io.LimitReader(e.Request.Body, n))
	return b
}
