package inbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/store"
)

// The staff API over conversations (the names scripts rely on):
//
//	GET   /api/v1/conversations                   the list (api_list.go)
//	GET   /api/v1/conversations/counts            live counters (api_list.go)
//	POST  /api/v1/conversations                   an agent writes first
//	POST  /api/v1/conversations/bulk              resolve/assign/label many
//	GET   /api/v1/conversations/{id}              one, with its messages
//	PATCH /api/v1/conversations/{id}              status, assignee, labels, priority, team, snooze
//	POST  /api/v1/conversations/{id}/read         unread = 0
//	POST  /api/v1/conversations/{id}/messages     a reply or a private note
//	POST  /api/v1/conversations/{id}/messages/{message}/retry
//
// Each handler writes in its own transaction through the core functions
// (post, setStatus) and calls afterCommit once it commits, so staff see
// the change live and replies reach the gate.
func (m *Module) conversationRoutes(g *router.RouterGroup[*core.RequestEvent]) {
	g.Bind(api.RequireStaff())
	g.GET("", m.handleList)
	g.GET("/counts", m.handleCounts)
	g.POST("", m.handleStart)
	g.POST("/bulk", m.handleBulk)
	g.GET("/{id}", m.handleGet)
	g.PATCH("/{id}", m.handlePatch)
	g.POST("/{id}/read", m.handleRead)
	g.POST("/{id}/messages", m.handlePost)
	g.POST("/{id}/messages/{message}/retry", m.handleRetry)
	// Routes are registered in Start, before any consumer runs, so no push
	// reads the hooks while this appends.
	m.live.extra = append(m.live.extra, m.pushMentions)
}

// Priorities a conversation can have.
var Priorities = []string{"none", "low", "medium", "high", "urgent"}

const (
	maxLabels   = 20
	maxLabelLen = 50
	maxBulk     = 500
)

// readJSON decodes the request body into v, refusing unknown fields and
// naming the field of a type mismatch.
func readJSON(e *core.RequestEvent, v any) error {
	raw, err := io.ReadAll(io.LimitReader(e.Request.Body, 1<<20))
	if err != nil {
		return api.Error(http.StatusBadRequest, "Could not read the request body.")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return api.BadRequest(te.Field, "must be a "+jsonTypeName(te.Type.Kind().String()))
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			f = strings.Trim(f, `"`)
			return api.BadRequest(f, "is not a field of this request")
		}
		return api.Error(http.StatusBadRequest, "The body is not valid JSON: "+err.Error())
	}
	return nil
}

func jsonTypeName(kind string) string {
	switch kind {
	case "bool":
		return "boolean (true or false)"
	case "slice":
		return "list"
	case "map", "struct", "ptr":
		return "object"
	case "string":
		return "string"
	}
	return "number"
}

// conversationOr404 loads the path's conversation.
func (m *Module) conversationOr404(db dbx.Builder, id string) (*Conversation, error) {
	c, err := loadConversation(db, id)
	if errors.Is(err, ErrNotFound) {
		return nil, api.Error(http.StatusNotFound, "There is no conversation "+id+".")
	}
	if err != nil {
		return nil, api.Internal("Could not read the conversation.", err)
	}
	return c, nil
}

// staffID is the signed-in staff member's id ("" for a superuser, who is
// no staff member and so cannot be an assignee or an author).
func staffID(e *core.RequestEvent) string {
	if e.Auth != nil && e.Auth.Collection().Name == "staff" {
		return e.Auth.Id
	}
	return ""
}

func isStaffID(db dbx.Builder, id string) bool {
	var n int
	_ = db.NewQuery("SELECT COUNT(*) FROM staff WHERE id = {:id}").Bind(dbx.Params{"id": id}).Row(&n)
	return n == 1
}

// assigneeFrom reads an assignee value: "me", "" (nobody) or a staff id.
func assigneeFrom(e *core.RequestEvent, field, v string) (string, error) {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		return "", nil
	case v == "me":
		if id := staffID(e); id != "" {
			return id, nil
		}
		return "", api.BadRequest(field, `"me" is a staff member; a superuser cannot be assigned`)
	case isStaffID(e.App.DB(), v):
		return v, nil
	}
	return "", api.BadRequest(field, "there is no staff member "+v)
}

// normLabels trims, lower-cases and de-duplicates labels.
func normLabels(field string, in []string) ([]string, error) {
	out := []string{}
	seen := map[string]bool{}
	for _, l := range in {
		l = strings.ToLower(strings.TrimSpace(l))
		if l == "" || seen[l] {
			continue
		}
		if len([]rune(l)) > maxLabelLen {
			return nil, api.BadRequest(field, fmt.Sprintf("a label is at most %d characters", maxLabelLen))
		}
		seen[l] = true
		out = append(out, l)
	}
	if len(out) > maxLabels {
		return nil, api.BadRequest(field, fmt.Sprintf("a conversation has at most %d labels", maxLabels))
	}
	return out, nil
}

func labelsOf(c *Conversation) []string {
	out := []string{}
	for _, l := range c.Labels {
		if s, ok := l.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func (m *Module) handleGet(e *core.RequestEvent) error {
	db := e.App.DB()
	c, err := m.conversationOr404(db, e.Request.PathValue("id"))
	if err != nil {
		return err
	}
	s, err := m.summaryOf(db, c.ID)
	if err != nil {
		return api.Internal("Could not read the conversation.", err)
	}
	msgs, err := conversationMessages(db, c.ID)
	if err != nil {
		return api.Internal("Could not read the conversation's messages.", err)
	}
	out := map[string]any{"conversation": s, "messages": m.withAuthors(db, msgs, s.Customer.Name), "window": nil}
	if c.Channel == "whatsapp" {
		w, err := m.whatsappWindow(db, c.Profile)
		if err != nil {
			return api.Internal("Could not read the WhatsApp window.", err)
		}
		out["window"] = w
	}
	return e.JSON(http.StatusOK, out)
}

// MessageOut is a message as the API answers it: the view with who wrote
// it (the staff member's name for agents, the customer's for theirs).
type MessageOut struct {
	MessageView
	AuthorName string `json:"author_name"`
}

func (m *Module) withAuthors(db dbx.Builder, msgs []MessageView, customer string) []MessageOut {
	names := staffNames(db)
	out := make([]MessageOut, len(msgs))
	for i, v := range msgs {
		out[i] = MessageOut{MessageView: v}
		switch {
		case v.AuthorStaff != "":
			out[i].AuthorName = names[v.AuthorStaff]
		case v.Author == AuthorCustomer:
			out[i].AuthorName = customer
		}
	}
	return out
}

// staffNames maps staff ids to how they are shown: name, else email.
func staffNames(db dbx.Builder) map[string]string {
	var rows []struct {
		ID    string `db:"id"`
		Name  string `db:"name"`
		Email string `db:"email"`
	}
	_ = db.NewQuery("SELECT id, name, email FROM staff").All(&rows)
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.ID] = firstNonEmpty(strings.TrimSpace(r.Name), r.Email)
	}
	return out
}

// Window is the WhatsApp 24-hour customer-service window: free text goes
// only while it is open; after, only an approved template.
type Window struct {
	Open      bool         `json:"open"`
	ClosesAt  string       `json:"closes_at"` // RFC 3339; "" when the customer never wrote
	Templates []WATemplate `json:"templates"`
}

// WATemplate is a template an agent may send outside the window.
type WATemplate struct {
	ID         string `db:"id" json:"id"`
	Name       string `db:"name" json:"name"`
	WATemplate string `db:"wa_template" json:"wa_template"`
	WALanguage string `db:"wa_language" json:"wa_language"`
}

// whatsappWindow reads the window as the gate decides it: from the
// customer's last WhatsApp message.received.
func (m *Module) whatsappWindow(db dbx.Builder, profile string) (*Window, error) {
	w := &Window{Templates: []WATemplate{}}
	var last string
	if err := db.NewQuery("SELECT COALESCE(MAX(occurred_at), '') FROM events WHERE profile = {:p} AND type = 'message.received' AND channel = 'whatsapp'").
		Bind(dbx.Params{"p": profile}).Row(&last); err != nil {
		return nil, err
	}
	if at, err := parseTime(last); err == nil {
		closes := at.Add(24 * time.Hour)
		w.ClosesAt, w.Open = closes.UTC().Format(time.RFC3339), m.opts.Now().Before(closes)
	}
	err := db.NewQuery("SELECT id, name, wa_template, wa_language FROM templates WHERE channel = 'whatsapp' AND wa_template != '' ORDER BY name").
		All(&w.Templates)
	return w, err
}

func (m *Module) handleRead(e *core.RequestEvent) error {
	id := e.Request.PathValue("id")
	err := m.app.RunInTransaction(func(tx core.App) error {
		c, err := m.conversationOr404(tx.DB(), id)
		if err != nil {
			return err
		}
		if c.Unread == 0 {
			return nil
		}
		if _, err := tx.DB().NewQuery("UPDATE " + ConversationsCollection + " SET unread = 0, updated = {:now} WHERE id = {:id}").
			Bind(dbx.Params{"now": store.FormatTime(m.opts.Now()), "id": id}).Execute(); err != nil {
			return err
		}
		m.live.touch(id, "")
		return nil
	})
	m.live.touch(id, "")
	m.afterCommit()
	if err != nil {
		return apiErr(err, "Could not mark the conversation read.")
	}
	s, err := m.summaryOf(e.App.DB(), id)
	if err != nil {
		return api.Internal("Could not read the conversation back.", err)
	}
	return e.JSON(http.StatusOK, s)
}

// apiErr passes an API error through and hides any other cause.
func apiErr(err error, msg string) error {
	var ae *router.ApiError
	if errors.As(err, &ae) {
		return ae
	}
	return api.Internal(msg, err)
}

// wakeSnoozed reopens conversations whose snooze time has passed (a
// snooze until the customer replies ends in receive).
func (m *Module) wakeSnoozed(ctx context.Context, now time.Time) {
	var ids []string
	err := m.app.DB().Select("id").From(ConversationsCollection).
		Where(dbx.NewExp("status = 'snoozed' AND snoozed_until != '' AND snoozed_until <= {:now}", dbx.Params{"now": store.FormatTime(now)})).
		Limit(500).Column(&ids)
	if err != nil {
		m.log.Warn("inbox: reading snoozes that are over", "error", err)
		return
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		err := m.app.RunInTransaction(func(tx core.App) error {
			c, err := loadConversation(tx.DB(), id)
			if err != nil || c.Status != StatusSnoozed || c.SnoozedUntil == "" || c.SnoozedUntil > store.FormatTime(now) {
				return err // woken meanwhile (a reply, an agent)
			}
			return m.setStatus(tx, c, StatusOpen, "", now)
		})
		if err != nil {
			m.log.Warn("inbox: waking a snoozed conversation", "conversation", id, "error", err)
		}
	}
	if len(ids) > 0 {
		m.afterCommit()
	}
}
