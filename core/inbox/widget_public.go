package inbox

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/security"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/ingest"
	"github.com/omni/omni/core/store"
)

// The widget's public routes. Anyone on an allowed origin may call them;
// a visitor proves who they are with the token their session minted.
// Nothing about staff leaves here but an agent's first name and whether
// someone is online.

//go:embed widget/omni-chat.js
var widgetScript []byte

// Bounds and rates of the public routes.
const (
	maxChatText           = 5000 // characters of one visitor message
	visitorMessagesPerMin = 20
	ipMessagesPerMin      = 60
	ipSessionsPerMin      = 30
	visitorEmailsPerMin   = 5
	streamPing            = 25 * time.Second
	// onlineWindow: an agent whose inbox sent a heartbeat this recently
	// (and who is not away) is online.
	onlineWindow = 90 * time.Second
)

// ChatSource is the source of the events the widget records.
const ChatSource = "chat"

func (m *Module) widgetPublicRoutes(se *core.ServeEvent) {
	r := se.Router
	r.GET("/widget/omni-chat.js", serveWidgetScript)
	r.POST("/widget/{key}/session", m.widgetSession)
	// The token rides in the query of GET requests (EventSource cannot
	// send headers): successful ones stay out of the request log.
	r.GET("/widget/{key}/messages", m.widgetHistory).Bind(apis.SkipSuccessActivityLog())
	r.GET("/widget/{key}/stream", m.widgetStream).Bind(apis.SkipSuccessActivityLog())
	r.POST("/widget/{key}/messages", m.widgetSend)
	r.POST("/widget/{key}/email", m.widgetEmail)
}

var (
	scriptOnce sync.Once
	scriptGz   []byte
	scriptETag string
)

// serveWidgetScript serves omni-chat.js, gzipped when the browser takes
// it, cacheable for a few minutes (an update reaches shops quickly).
func serveWidgetScript(e *core.RequestEvent) error {
	scriptOnce.Do(func() {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		_, _ = zw.Write(widgetScript)
		_ = zw.Close()
		scriptGz = b.Bytes()
		sum := sha256.Sum256(widgetScript)
		scriptETag = `"` + hex.EncodeToString(sum[:8]) + `"`
	})
	h := e.Response.Header()
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("ETag", scriptETag)
	h.Set("Vary", "Accept-Encoding")
	if e.Request.Header.Get("If-None-Match") == scriptETag {
		return e.NoContent(http.StatusNotModified)
	}
	if strings.Contains(e.Request.Header.Get("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		return e.Blob(200, "application/javascript; charset=utf-8", scriptGz)
	}
	return e.Blob(200, "application/javascript; charset=utf-8", widgetScript)
}

// chatWidget is what the public routes read of a chat_widgets row.
type chatWidget struct {
	ID              string   `db:"id"`
	Title           string   `db:"title"`
	Greeting        string   `db:"greeting"`
	Color           string   `db:"color"`
	Enabled         bool     `db:"enabled"`
	AskEmailOffline bool     `db:"ask_email_offline"`
	AllowedOrigins  JSONList `db:"allowed_origins"`
}

// openWidget finds the widget of the request's key and checks the page's
// origin against its allowed origins (403 otherwise); an allowed origin
// gets CORS headers naming it.
func (m *Module) openWidget(e *core.RequestEvent) (*chatWidget, error) {
	var w chatWidget
	err := m.app.DB().Select("id", "title", "greeting", "color", "enabled", "ask_email_offline", "allowed_origins").
		From(WidgetsCollection).Where(dbx.HashExp{"key": e.Request.PathValue("key")}).One(&w)
	if err != nil || !w.Enabled {
		return nil, api.Error(http.StatusNotFound, "There is no such chat widget (or it is switched off).")
	}
	origin := requestOrigin(e.Request)
	allowed := false
	for _, o := range w.AllowedOrigins {
		if s, _ := o.(string); s != "" && s == origin {
			allowed = true
		}
	}
	h := e.Response.Header()
	if !allowed {
		h.Del("Access-Control-Allow-Origin")
		return nil, api.Error(http.StatusForbidden, "This site may not use this chat widget: add its origin to the widget's allowed origins.")
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	return &w, nil
}

// requestOrigin is the page's origin: the Origin header, else the
// Referer's (a same-origin GET carries no Origin); "" when neither.
func requestOrigin(r *http.Request) string {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		ref, err := url.Parse(r.Header.Get("Referer"))
		if err != nil || ref.Host == "" {
			return ""
		}
		o = ref.Scheme + "://" + ref.Host
	}
	n, err := normaliseOrigin(o)
	if err != nil {
		return ""
	}
	return n
}

// chatVisitor is a chat_visitors row.
type chatVisitor struct {
	ID          string `db:"id"`
	Widget      string `db:"widget"`
	AnonymousID string `db:"anonymous_id"`
	Email       string `db:"email"`
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// visitorBody is what the widget posts; the token may also come as a
// Bearer header or (GET) the query.
type visitorBody struct {
	Token       string `json:"token"`
	AnonymousID string `json:"anonymous_id"`
	ID          string `json:"id"`
	Text        string `json:"text"`
	Page        string `json:"page"`
	Email       string `json:"email"`
}

// readVisitorBody reads the JSON body whatever its Content-Type (the
// widget sends text/plain so the browser needs no preflight).
func readVisitorBody(e *core.RequestEvent) (visitorBody, error) {
	var b visitorBody
	raw := readLimited(e, 32<<10)
	if len(bytes.TrimSpace(raw)) == 0 {
		return b, nil
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return b, api.BadRequest("body", "is not JSON")
	}
	return b, nil
}

func visitorToken(e *core.RequestEvent, body string) string {
	if body != "" {
		return body
	}
	if t, ok := strings.CutPrefix(e.Request.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return e.Request.URL.Query().Get("token")
}

// findVisitor is the visitor of a token on widget w (nil when unknown).
func (m *Module) findVisitor(w *chatWidget, token string) (*chatVisitor, error) {
	if token == "" {
		return nil, nil
	}
	var v chatVisitor
	err := m.app.DB().Select("id", "widget", "anonymous_id", "email").From(VisitorsCollection).
		Where(dbx.HashExp{"token_hash": tokenHash(token), "widget": w.ID}).One(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// visitorFor is findVisitor that answers 401 for a missing or unknown
// token.
func (m *Module) visitorFor(e *core.RequestEvent, w *chatWidget, bodyToken string) (*chatVisitor, error) {
	token := visitorToken(e, bodyToken)
	if token == "" {
		return nil, api.FieldError(http.StatusUnauthorized, "token", "", "is required: start a chat session first")
	}
	v, err := m.findVisitor(w, token)
	if err != nil {
		return nil, api.Internal("could not read the chat session", err)
	}
	if v == nil {
		return nil, api.FieldError(http.StatusUnauthorized, "token", "", "is not a session of this chat widget: start a new one")
	}
	return v, nil
}

// agentsOnline reports whether any agent has the inbox open and is not
// away.
func (m *Module) agentsOnline() bool {
	var n int
	since := store.FormatTime(m.opts.Now().Add(-onlineWindow))
	_ = m.app.DB().NewQuery("SELECT COUNT(*) FROM " + AgentsCollection + " WHERE away = 0 AND seen_at >= {:since}").
		Bind(dbx.Params{"since": since}).Row(&n)
	return n > 0
}

func tooMany(what string) error {
	return api.Error(http.StatusTooManyRequests, "Too many "+what+": wait a minute and try again.")
}

var anonRe = regexp.MustCompile(`^[\x21-\x7e]{1,200}$`)

// widgetSession (POST /widget/{key}/session {token?, anonymous_id?})
// resumes the visitor of a valid token or mints a new visitor and token,
// keyed to the page's anonymousId (or one of its own when the page has
// none). The answer carries what the widget shows.
func (m *Module) widgetSession(e *core.RequestEvent) error {
	w, err := m.openWidget(e)
	if err != nil {
		return err
	}
	body, err := readVisitorBody(e)
	if err != nil {
		return err
	}
	v, err := m.findVisitor(w, body.Token)
	if err != nil {
		return api.Internal("could not read the chat session", err)
	}
	token := body.Token
	if v == nil {
		if !m.widget.limits.allow("session:"+e.RealIP(), ipSessionsPerMin, time.Minute, time.Now()) {
			return tooMany("new chats from this address")
		}
		anon := strings.TrimSpace(body.AnonymousID)
		if anon != "" && !anonRe.MatchString(anon) {
			return api.BadRequest("anonymous_id", "must be up to 200 printable characters")
		}
		if anon == "" {
			anon = "chat-" + security.RandomString(24)
		}
		token = "cv_" + security.RandomString(40)
		v = &chatVisitor{ID: store.NewRecordID(), Widget: w.ID, AnonymousID: anon}
		now := store.FormatTime(time.Now())
		if _, err := m.app.DB().NewQuery(`INSERT INTO ` + VisitorsCollection + ` (id, widget, anonymous_id, token_hash, profile, email, last_seen, created)
			VALUES ({:id}, {:w}, {:a}, {:h}, '', '', {:now}, {:now})`).
			Bind(dbx.Params{"id": v.ID, "w": w.ID, "a": anon, "h": tokenHash(token), "now": now}).Execute(); err != nil {
			return api.Internal("could not start the chat", err)
		}
	}
	return e.JSON(200, map[string]any{
		"token": token, "visitor": v.ID, "anonymous_id": v.AnonymousID, "email_given": v.Email != "", "online": m.agentsOnline(),
		"widget": map[string]any{"title": w.Title, "greeting": w.Greeting, "color": w.Color, "ask_email_offline": w.AskEmailOffline},
	})
}

// visitorConversation is the visitor's latest chat conversation, or nil.
func (m *Module) visitorConversation(v *chatVisitor) (*Conversation, error) {
	var c Conversation
	err := m.app.DB().NewQuery("SELECT * FROM " + ConversationsCollection + " WHERE channel = 'chat' AND address = {:v} ORDER BY last_message_at DESC, created DESC LIMIT 1").
		Bind(dbx.Params{"v": v.ID}).One(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// widgetHistory (GET /widget/{key}/messages?token=) is the visitor's
// conversation as they may see it.
func (m *Module) widgetHistory(e *core.RequestEvent) error {
	w, err := m.openWidget(e)
	if err != nil {
		return err
	}
	v, err := m.visitorFor(e, w, "")
	if err != nil {
		return err
	}
	c, err := m.visitorConversation(v)
	if err != nil {
		return api.Internal("could not read the chat", err)
	}
	out := map[string]any{"conversation": nil, "messages": []VisitorMessage{}, "online": m.agentsOnline(), "email_given": v.Email != ""}
	if c != nil {
		views, err := conversationMessages(m.app.DB(), c.ID)
		if err != nil {
			return api.Internal("could not read the chat", err)
		}
		out["conversation"] = map[string]any{"id": c.ID, "status": c.Status}
		out["messages"] = toVisitor(m.app.DB(), views, false)
	}
	return e.JSON(200, out)
}

var clientIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// widgetSend (POST /widget/{key}/messages {token, text, id?, page?})
// records the visitor's message as a message.received on channel chat;
// the inbox files it like any channel's. id is the widget's own id for the
// message: a retry with the same id is stored once.
func (m *Module) widgetSend(e *core.RequestEvent) error {
	w, err := m.openWidget(e)
	if err != nil {
		return err
	}
	body, err := readVisitorBody(e)
	if err != nil {
		return err
	}
	v, err := m.visitorFor(e, w, body.Token)
	if err != nil {
		return err
	}
	now := time.Now()
	if !m.widget.limits.allow("msg:"+v.ID, visitorMessagesPerMin, time.Minute, now) ||
		!m.widget.limits.allow("msgip:"+e.RealIP(), ipMessagesPerMin, time.Minute, now) {
		return tooMany("messages")
	}
	text := strings.TrimSpace(body.Text)
	if text == "" {
		return api.BadRequest("text", "is required")
	}
	if !utf8.ValidString(text) || utf8.RuneCountInString(text) > maxChatText {
		return api.BadRequest("text", "is too long (up to 5,000 characters)")
	}
	cid := body.ID
	if cid == "" {
		cid = security.RandomString(20)
	} else if !clientIDRe.MatchString(cid) {
		return api.BadRequest("id", "must be up to 64 letters, digits, '-' or '_'")
	}
	ids := events.Identities{events.AnonymousID: v.AnonymousID}
	if v.Email != "" {
		ids[events.Email] = v.Email
	}
	ctx := events.Context{Channel: events.ChannelChat, IP: e.RealIP(), UserAgent: clip(e.Request.UserAgent(), 500)}
	if u, err := url.Parse(body.Page); err == nil && (u.Scheme == "http" || u.Scheme == "https") && len(body.Page) <= 2000 {
		ctx.Page = &events.Page{URL: body.Page, Path: u.Path}
	}
	ev := &events.Event{ID: "chat:" + v.ID + ":" + cid, Type: events.MessageReceived, Source: ChatSource, OccurredAt: now.UTC(),
		ReceivedAt: now.UTC(), Identities: ids, Properties: map[string]any{"text": text, "widget": w.ID, "visitor": v.ID}, Context: ctx}
	if err := m.publishChatEvent(e.Request.Context(), ev); err != nil {
		return err
	}
	return e.JSON(http.StatusAccepted, map[string]any{"id": ev.ID, "client_id": cid})
}

// widgetEmail (POST /widget/{key}/email {token, email}) records the email
// a visitor left while nobody was online: an identify adds it to the
// visitor's profile, and replies they are not connected for go by email.
func (m *Module) widgetEmail(e *core.RequestEvent) error {
	w, err := m.openWidget(e)
	if err != nil {
		return err
	}
	body, err := readVisitorBody(e)
	if err != nil {
		return err
	}
	v, err := m.visitorFor(e, w, body.Token)
	if err != nil {
		return err
	}
	if !m.widget.limits.allow("email:"+v.ID, visitorEmailsPerMin, time.Minute, time.Now()) {
		return tooMany("attempts")
	}
	addr, err := mail.ParseAddress(strings.TrimSpace(body.Email))
	if err != nil || len(addr.Address) > 320 || addr.Address != strings.TrimSpace(body.Email) {
		return api.BadRequest("email", "is not an email address")
	}
	email := events.NormalizeEmail(addr.Address)
	now := time.Now().UTC()
	sum := sha256.Sum256([]byte(email))
	ev := &events.Event{ID: "chat:email:" + v.ID + ":" + hex.EncodeToString(sum[:6]), Type: events.Identify, Source: ChatSource,
		OccurredAt: now, ReceivedAt: now, Identities: events.Identities{events.AnonymousID: v.AnonymousID, events.Email: email},
		Properties: map[string]any{"widget": w.ID, "visitor": v.ID}, Context: events.Context{Channel: events.ChannelChat}}
	if err := m.publishChatEvent(e.Request.Context(), ev); err != nil {
		return err
	}
	if _, err := m.app.DB().NewQuery("UPDATE " + VisitorsCollection + " SET email = {:e} WHERE id = {:id}").
		Bind(dbx.Params{"e": email, "id": v.ID}).Execute(); err != nil {
		return api.Internal("could not save the email", err)
	}
	return e.JSON(200, map[string]any{"email_given": true, "email": email})
}

func (m *Module) publishChatEvent(ctx context.Context, ev *events.Event) error {
	events.Normalizer{}.Normalize(ev)
	if err := ev.Validate(time.Now()); err != nil {
		var fe *events.FieldError
		if errors.As(err, &fe) {
			return api.BadRequest(fe.Field, fe.Message)
		}
		return api.BadRequest("body", err.Error())
	}
	for _, err := range ingest.Publish(ctx, m.bus, []*events.Event{ev}) {
		if err != nil {
			m.log.Error("inbox: a chat event could not be stored on the bus", "error", err)
			return api.Error(http.StatusServiceUnavailable, "The message could not be stored right now; send it again.")
		}
	}
	return nil
}

// widgetStream (GET /widget/{key}/stream?token=) is the visitor's live
// stream (Server-Sent Events): "message" for each new visible message of
// their chat, "conversation" for its status, "presence" every few seconds
// with whether someone is online. A stream that falls behind loses events;
// the widget reloads the history on every (re)connect ("ready").
func (m *Module) widgetStream(e *core.RequestEvent) error {
	w, err := m.openWidget(e)
	if err != nil {
		return err
	}
	v, err := m.visitorFor(e, w, "")
	if err != nil {
		return err
	}
	ch := m.widget.streams.add(v.ID)
	if ch == nil {
		return api.Error(http.StatusServiceUnavailable, "The chat is restarting; reconnect in a moment.")
	}
	defer m.widget.streams.remove(v.ID, ch)
	h := e.Response.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	e.Response.WriteHeader(200)
	write := func(b []byte) bool {
		if _, err := e.Response.Write(b); err != nil {
			return false
		}
		return e.Flush() == nil
	}
	presence := func() []byte {
		b, _ := json.Marshal(map[string]any{"online": m.agentsOnline()})
		return []byte("event: presence\ndata: " + string(b) + "\n\n")
	}
	if !write(append([]byte("retry: 3000\nevent: ready\ndata: {}\n\n"), presence()...)) {
		return nil
	}
	t := time.NewTicker(streamPing)
	defer t.Stop()
	ctx := e.Request.Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case frame, ok := <-ch:
			if !ok || !write(frame) {
				return nil
			}
		case <-t.C:
			if !write(presence()) {
				return nil
			}
		}
	}
}

// widgetLimits counts requests per key in fixed one-minute windows.
type widgetLimits struct {
	mu   sync.Mutex
	hits map[string]*hitWindow
}

type hitWindow struct {
	ends time.Time
	n    int
}

func newWidgetLimits() *widgetLimits { return &widgetLimits{hits: map[string]*hitWindow{}} }

// allow counts one request for key and reports whether it is within max
// per window.
func (l *widgetLimits) allow(key string, max int, window time.Duration, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.hits) > 50000 {
		for k, h := range l.hits {
			if now.After(h.ends) {
				delete(l.hits, k)
			}
		}
	}
	h := l.hits[key]
	if h == nil || now.After(h.ends) {
		h = &hitWindow{ends: now.Add(window)}
		l.hits[key] = h
	}
	h.n++
	return h.n <= max
}
