package inbox

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/signedlink"
	"github.com/omni/omni/core/store"
)

// CSAT: after a conversation is resolved the customer is asked "how did
// we do?" once, on the conversation's channel (author system, through the
// gate like any reply), either as a question answered with a number or as
// a signed link to a page served by Omni (survey_page.go). The answer is a
// survey.answered event on the customer's profile (journeys hold
// marketing after a bad one) and the conversation's csat_score.

// csatAnswerWindow is how long after the question a reply that is just a
// score counts as the answer (and a CSAT link stays valid).
const csatAnswerWindow = 7 * 24 * time.Hour

// CSATSetting is the owner's setting "csat".
type CSATSetting struct {
	Enabled  bool   `json:"enabled"`
	Via      string `json:"via"`      // message (reply with 1–5) | link (a signed page link)
	Question string `json:"question"` // sent as is; with via link the link follows it on a new line
	Thanks   string `json:"thanks"`   // the reply to an answer by message ("" = none)
}

const (
	defaultCSATQuestion     = "How did we do? Reply with a number from 1 (bad) to 5 (great)."
	defaultCSATLinkQuestion = "How did we do? Rate your conversation with us from 1 (bad) to 5 (great):"
	defaultCSATThanks       = "Thank you!"
)

func defaultCSAT() any {
	return CSATSetting{Enabled: true, Via: "message", Question: defaultCSATQuestion, Thanks: defaultCSATThanks}
}

func checkCSAT(raw json.RawMessage) (any, error) {
	var in struct {
		Enabled  *bool   `json:"enabled"`
		Via      string  `json:"via"`
		Question string  `json:"question"`
		Thanks   *string `json:"thanks"`
	}
	if err := strictJSON(raw, &in); err != nil {
		return nil, fieldErr("csat", err.Error())
	}
	s := CSATSetting{Enabled: in.Enabled == nil || *in.Enabled, Via: strings.TrimSpace(in.Via),
		Question: strings.TrimSpace(in.Question), Thanks: defaultCSATThanks}
	switch s.Via {
	case "":
		s.Via = "message"
	case "message", "link":
	default:
		return nil, fieldErr("csat.via", `must be "message" (the customer replies with a number) or "link" (a link to a rating page)`)
	}
	if s.Question == "" {
		s.Question = defaultCSATQuestion
		if s.Via == "link" {
			s.Question = defaultCSATLinkQuestion
		}
	}
	if in.Thanks != nil {
		s.Thanks = strings.TrimSpace(*in.Thanks)
	}
	if len(s.Question) > 1000 {
		return nil, fieldErr("csat.question", "is too long (at most 1,000 characters)")
	}
	if len(s.Thanks) > 1000 {
		return nil, fieldErr("csat.thanks", "is too long (at most 1,000 characters)")
	}
	return s, nil
}

// csatSetting is the saved setting or the default.
func (m *Module) csatSetting() CSATSetting {
	s := defaultCSAT().(CSATSetting)
	m.setting("csat", &s)
	return s
}

// surveyLinks signs the survey page's links with the data dir's link key
// (shared with messaging's links through core/signedlink), opened once.
type surveyLinks struct {
	once   sync.Once
	signer *signedlink.Signer
	err    error
}

func (m *Module) surveys() (*signedlink.Signer, error) {
	m.survey.once.Do(func() {
		m.survey.signer, m.survey.err = signedlink.Open(m.o.Config.DataDir, m.o.Config.PublicBaseURL())
	})
	return m.survey.signer, m.survey.err
}

// csatRoutes: the signed survey page (survey_page.go). The CSAT and SLA
// settings go through /api/v1/inbox/settings/{csat,sla}.
func (m *Module) csatRoutes(se *core.ServeEvent, g *router.RouterGroup[*core.RequestEvent]) {
	m.surveyPageRoutes(se)
}

// onResolved runs when c is resolved: SLA due times end, and the customer
// is asked for CSAT once per resolution: only if they wrote in this
// conversation, their last message is within the reopen window (a stale
// conversation tidied away is not surveyed), and nothing came from them
// since the last question (resolving again after a reopen by staff does
// not ask twice).
func (m *Module) onResolved(tx core.App, c *Conversation, at time.Time) error {
	if err := m.slaOnResolved(tx, c); err != nil {
		return err
	}
	cfg := m.csatSetting()
	if !cfg.Enabled {
		return nil
	}
	db := tx.DB()
	cur, err := loadConversation(db, c.ID)
	if err != nil {
		return err
	}
	var last string
	if err := db.Select("COALESCE(MAX(created), '')").From(MessagesCollection).
		Where(dbx.HashExp{"conversation": c.ID, "author": AuthorCustomer, "auto_reply": false}).Row(&last); err != nil {
		return err
	}
	lastAt, err := parseTime(last)
	if err != nil || at.Sub(lastAt) > m.reopenWindow() || (cur.CSATAskedAt != "" && cur.CSATAskedAt >= last) {
		return nil
	}
	text := cfg.Question
	if cfg.Via == "link" {
		signer, err := m.surveys()
		if err != nil {
			return fmt.Errorf("inbox: survey links: %w", err)
		}
		text += "\n" + signer.SurveyURL(signedlink.SurveyCSAT, c.ID, at.Add(csatAnswerWindow))
	}
	if err := m.postSurveyMessage(tx, cur, text, at); err != nil {
		return err
	}
	_, err = db.NewQuery("UPDATE " + ConversationsCollection + " SET csat_asked_at = {:at}, csat_score = 0 WHERE id = {:id}").
		Bind(dbx.Params{"at": store.FormatTime(at), "id": c.ID}).Execute()
	return err
}

// postSurveyMessage sends the question or the thanks (author system)
// without moving the conversation in the list: its last message stays
// the customer's or the agent's, so resolved conversations keep their
// order and preview.
func (m *Module) postSurveyMessage(tx core.App, c *Conversation, text string, at time.Time) error {
	if _, err := m.post(tx, c, Outgoing{Author: AuthorSystem, Text: text, At: at}); err != nil {
		return err
	}
	_, err := tx.DB().NewQuery("UPDATE " + ConversationsCollection + " SET last_message_at = {:at}, last_message = {:text}, last_author = {:author} WHERE id = {:id}").
		Bind(dbx.Params{"at": c.LastMessageAt, "text": c.LastMessage, "author": c.LastAuthor, "id": c.ID}).Execute()
	return err
}

// surveyAnswer is the score (1–5) when in answers c's CSAT question: c is
// resolved, the question was asked within csatAnswerWindow before in, and
// the message is just a score. 0 otherwise. receive calls it before
// reopening, so an answer files into the resolved conversation without
// reopening it.
func (m *Module) surveyAnswer(c *Conversation, in Inbound) int {
	if c == nil || c.Status != StatusResolved || c.CSATAskedAt == "" || in.AutoReply {
		return 0
	}
	asked, err := parseTime(c.CSATAskedAt)
	if err != nil || in.At.Before(asked) || in.At.Sub(asked) > csatAnswerWindow {
		return 0
	}
	return parseScore(in.Text, in.Channel == "email")
}

// parseScore reads a reply that is only a 1–5 score: "4", "4/5", "4 out
// of 5", "⭐⭐⭐⭐" (trailing "." or "!" allowed). Words ("great") are not
// read: a message with words is a message for a person. An email's quoted
// history (lines from "On … wrote:" or starting with ">") is ignored.
func parseScore(text string, email bool) int {
	if email {
		var keep []string
		for _, line := range strings.Split(text, "\n") {
			l := strings.TrimSpace(line)
			if strings.HasPrefix(l, ">") {
				continue
			}
			if (strings.HasPrefix(l, "On ") && strings.HasSuffix(l, "wrote:")) || strings.HasPrefix(l, "-----Original Message") || l == "--" {
				break
			}
			keep = append(keep, l)
		}
		text = strings.Join(keep, "\n")
	}
	t := strings.TrimRight(strings.TrimSpace(text), ".! ")
	if t == "" || len(t) > 40 {
		return 0
	}
	stars := 0
	for _, r := range t {
		switch r {
		case '⭐', '★':
			stars++
		case '\uFE0F', ' ': // emoji presentation selector, spacing
		default:
			stars = -100
		}
	}
	if stars >= 1 && stars <= 5 {
		return stars
	}
	for _, suffix := range []string{"/5", "/ 5", "out of 5"} {
		if n, ok := strings.CutSuffix(t, suffix); ok {
			t = strings.TrimSpace(n)
			break
		}
	}
	if n, err := strconv.Atoi(t); err == nil && n >= 1 && n <= 5 && len(t) == 1 {
		return n
	}
	return 0
}

// csatOnCustomerMessage records a customer's answer to the CSAT question
// (receive recognised it: f.SurveyScore): csat_score, a survey.answered
// event for journeys and reports, and the thanks.
func (m *Module) csatOnCustomerMessage(tx core.App, f *Filed, ev *events.Event) error {
	if f.SurveyScore == 0 {
		return nil
	}
	at := ev.OccurredAt
	if at.IsZero() {
		at = m.opts.Now()
	}
	if err := m.recordCSAT(tx, f.Conversation, f.SurveyScore, at, "message"); err != nil {
		return err
	}
	if thanks := m.csatSetting().Thanks; thanks != "" {
		if err := m.postSurveyMessage(tx, f.Conversation, thanks, m.opts.Now()); err != nil {
			return err
		}
	}
	return nil
}

// recordCSAT stores score on c and stages survey.answered. The event id
// names the question and the score, so the same answer given twice (by
// message and on the page, or a double click) is one event.
func (m *Module) recordCSAT(tx core.App, c *Conversation, score int, at time.Time, via string) error {
	if _, err := tx.DB().NewQuery("UPDATE " + ConversationsCollection + " SET csat_score = {:s}, updated = {:now} WHERE id = {:id}").
		Bind(dbx.Params{"s": score, "now": store.FormatTime(at), "id": c.ID}).Execute(); err != nil {
		return err
	}
	m.live.touch(c.ID, "")
	ev := conversationEvent(events.SurveyAnswered, c, at, map[string]any{"survey": signedlink.SurveyCSAT, "score": score,
		"scale": 5, "via": via})
	asked, _ := parseTime(c.CSATAskedAt)
	ev.ID = fmt.Sprintf("%s:csat:%s:%d:%d", events.SurveyAnswered, c.ID, asked.UnixMilli(), score)
	return m.stage(tx, ev)
}

// onSurveyAnswered records a CSAT answer that came from elsewhere (an
// import, another tool) on its conversation; the inbox's own answers are
// already recorded.
func (m *Module) onSurveyAnswered(tx core.App, s *eventstore.Stored) error {
	p := s.Event.Properties
	if survey, _ := p["survey"].(string); survey != signedlink.SurveyCSAT {
		return nil
	}
	conv, _ := p["conversation"].(string)
	score, ok := p["score"].(float64)
	if !ok {
		if n, isInt := p["score"].(int); isInt {
			score, ok = float64(n), true
		}
	}
	if conv == "" || !ok || score < 1 || score > 5 || score != float64(int(score)) {
		return nil
	}
	res, err := tx.DB().NewQuery("UPDATE " + ConversationsCollection + " SET csat_score = {:s} WHERE id = {:id} AND profile = {:p} AND csat_score != {:s}").
		Bind(dbx.Params{"s": int(score), "id": conv, "p": s.Profile}).Execute()
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		m.live.touch(conv, "")
	}
	return nil
}
