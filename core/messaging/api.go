package messaging

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/plugins/sdk"
)

// sendBody is POST /api/v1/messages; channel is one name or a list to try
// in order.
type sendBody struct {
	ID           string          `json:"id"`
	Profile      string          `json:"profile"`
	Channel      json.RawMessage `json:"channel"`
	Kind         string          `json:"kind"`
	Template     string          `json:"template"`
	Subject      string          `json:"subject"`
	Body         string          `json:"body"`
	HTML         string          `json:"html"`
	WATemplate   *sdk.Template   `json:"wa_template"`
	Event        map[string]any  `json:"event"`
	Conversation string          `json:"conversation"`
	JourneyRun   string          `json:"journey_run"`
}

// handleSend is POST /api/v1/messages (owner or agent): 202 with the
// message id when queued or scheduled, 409 when a rule refused it, 422 when
// nothing can send it; both refusals say why and are in the ledger.
func (m *Module) handleSend(e *core.RequestEvent) error {
	var b sendBody
	if err := json.NewDecoder(http.MaxBytesReader(e.Response, e.Request.Body, 2<<20)).Decode(&b); err != nil {
		return api.BadRequest("body", `must be JSON like {"profile": "…", "channel": "email", "kind": "transactional", "subject": "…", "body": "…"}`)
	}
	chans, err := parseChannels(b.Channel)
	if err != nil {
		return api.BadRequest("channel", err.Error())
	}
	res, err := m.Send(e.Request.Context(), Request{ID: b.ID, Profile: b.Profile, Channels: chans, Kind: b.Kind,
		Template: b.Template, Subject: b.Subject, Body: b.Body, HTML: b.HTML, WATemplate: b.WATemplate,
		Event: b.Event, Conversation: b.Conversation, JourneyRun: b.JourneyRun})
	var re *RequestError
	if errors.As(err, &re) {
		return api.BadRequest(re.Field, re.Message)
	}
	if err != nil {
		return api.Internal("The message could not be recorded.", err)
	}
	if res.Status == StatusSuppressed {
		return api.WriteCompat(e, api.Error(res.HTTPStatus, "Not sent: "+res.Reason), map[string]any{
			"id": res.ID, "message_status": res.Status, "channel": res.Channel, "reason": res.Reason, "attempts": attemptsJSON(res.Tried)})
	}
	return e.JSON(http.StatusAccepted, res)
}

func parseChannels(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New(`must be "email", "sms", "whatsapp" or a list of them to try in order`)
	}
	return list, nil
}

// listed is a ledger row as the API lists it.
type listed struct {
	ID           string `db:"id" json:"id"`
	Profile      string `db:"profile" json:"profile"`
	Channel      string `db:"channel" json:"channel"`
	Kind         string `db:"kind" json:"kind"`
	Template     string `db:"template" json:"template"`
	Subject      string `db:"subject" json:"subject"`
	Body         string `db:"body" json:"body"`
	To           string `db:"to" json:"to"`
	Status       string `db:"status" json:"status"`
	Reason       string `db:"reason" json:"reason"`
	ErrorCode    string `db:"error_code" json:"error_code"`
	ProviderID   string `db:"provider_id" json:"provider_id"`
	Connector    string `db:"connector" json:"connector"`
	JourneyRun   string `db:"journey_run" json:"journey_run"`
	Conversation string `db:"conversation" json:"conversation"`
	Attempts     string `db:"attempts" json:"-"`
	SendAt       string `db:"send_at" json:"send_at"`
	QueuedAt     string `db:"queued_at" json:"queued_at"`
	SentAt       string `db:"sent_at" json:"sent_at"`
	DeliveredAt  string `db:"delivered_at" json:"delivered_at"`
	ReadAt       string `db:"read_at" json:"read_at"`
	OpenedAt     string `db:"opened_at" json:"opened_at"`
	ClickedAt    string `db:"clicked_at" json:"clicked_at"`
	FailedAt     string `db:"failed_at" json:"failed_at"`
	SuppressedAt string `db:"suppressed_at" json:"suppressed_at"`
	Created      string `db:"created" json:"created"`

	AttemptList []Attempt `db:"-" json:"attempts"`
}

// handleList is GET /api/v1/messages?profile=…&conversation=…&status=…
// (staff), newest first, for the timeline and the inbox.
func (m *Module) handleList(e *core.RequestEvent) error {
	q := e.Request.URL.Query()
	where, params := []string{"1=1"}, dbx.Params{}
	for _, f := range []string{"profile", "conversation", "status", "channel", "journey_run"} {
		if v := strings.TrimSpace(q.Get(f)); v != "" {
			where = append(where, f+"={:"+f+"}")
			params[f] = v
		}
	}
	if len(params) == 0 {
		return api.BadRequest("profile", "give profile, conversation, journey_run, status or channel to list messages")
	}
	if p, ok := params["profile"].(string); ok {
		if prof, err := loadProfile(e.App, p); err == nil {
			params["profile"] = prof.ID // a merged-away id lists the survivor's messages
		}
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			return api.BadRequest("limit", "must be a whole number from 1 to 500")
		}
		limit = n
	}
	var rows []listed
	if err := e.App.DB().NewQuery(`SELECT id, profile, channel, kind, template, subject, body, "to", status, reason, error_code,
		provider_id, connector, journey_run, conversation, attempts, send_at, queued_at, sent_at, delivered_at, read_at, opened_at,
		clicked_at, failed_at, suppressed_at, created FROM ` + Collection + ` WHERE ` + strings.Join(where, " AND ") + ` ORDER BY created DESC, id DESC LIMIT ` + strconv.Itoa(limit)).
		Bind(params).All(&rows); err != nil {
		return api.Internal("Could not list messages.", err)
	}
	for i := range rows {
		_ = json.Unmarshal([]byte(rows[i].Attempts), &rows[i].AttemptList)
	}
	if rows == nil {
		rows = []listed{}
	}
	return e.JSON(http.StatusOK, map[string]any{"items": rows})
}

// handleSettings is GET /api/v1/messaging/settings: what the admin needs
// to warn that links in messages would not reach customers.
func (m *Module) handleSettings(e *core.RequestEvent) error {
	return e.JSON(http.StatusOK, map[string]any{
		"public_url":          m.rules.publicURL,
		"public_url_loopback": m.o.Config.PublicURLIsLoopback(),
		"quiet_hours":         m.o.Config.Messaging.QuietHours,
		"frequency_cap":       m.o.Config.Messaging.FrequencyCap,
		"timezone":            m.o.Config.Messaging.Timezone,
	})
}
