package inbox

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/signedlink"
)

// The survey page: <public_url>/survey/<token>, no login. The token
// (core/signedlink) names a CSAT question's conversation or, for NPS, the
// customer, and expires. GET shows the question as buttons (1–5, or 0–10
// for NPS); POST records the answer as a survey.answered event on the
// customer (and csat_score). An answer given twice with the same score is
// one event (its id names the question and the score), so a link cannot
// be used to flood the customer's timeline.

func (m *Module) surveyPageRoutes(se *core.ServeEvent) {
	se.Router.GET("/survey/{token}", m.handleSurveyPage)
	se.Router.POST("/survey/{token}", m.handleSurveyAnswer)
}

// surveyPage is what the page template shows.
type surveyPage struct {
	Page     string // ask | thanks | invalid | expired | bad
	Survey   string // csat | nps
	Shop     string
	Question string
	Scores   []int
	Low      string // the lowest score's meaning
	High     string
	Score    int // the answer given (thanks), or the earlier one (ask)
	Action   string
}

// surveyTarget is what a valid token names, read from the database.
type surveyTarget struct {
	survey       string
	conversation *Conversation // csat
	profile      string        // nps: the surviving profile
	link         string        // the token's signature: the NPS event id names the link and the score
}

// target checks the token; on failure it writes the page and returns nil.
func (m *Module) surveyTarget(e *core.RequestEvent) (*surveyTarget, error) {
	signer, err := m.surveys()
	if err != nil {
		return nil, err
	}
	token := e.Request.PathValue("token")
	survey, subject, err := signer.VerifySurvey(token, m.opts.Now())
	if errors.Is(err, signedlink.ErrExpired) {
		return nil, m.writeSurveyPage(e, http.StatusGone, surveyPage{Page: "expired"})
	}
	if err != nil {
		return nil, m.writeSurveyPage(e, http.StatusNotFound, surveyPage{Page: "invalid"})
	}
	t := &surveyTarget{survey: survey, link: token[strings.LastIndex(token, ".")+1:]}
	switch survey {
	case signedlink.SurveyCSAT:
		c, err := loadConversation(m.app.DB(), subject)
		if errors.Is(err, ErrNotFound) { // erased with its customer
			return nil, m.writeSurveyPage(e, http.StatusNotFound, surveyPage{Page: "invalid"})
		}
		if err != nil {
			return nil, err
		}
		t.conversation = c
	case signedlink.SurveyNPS:
		p, err := survivingProfile(m.app.DB(), subject) // api_write.go: follows merges
		if errors.Is(err, ErrNotFound) {
			return nil, m.writeSurveyPage(e, http.StatusNotFound, surveyPage{Page: "invalid"})
		}
		if err != nil {
			return nil, err
		}
		if ok, err := hasIdentity(m.app.DB(), p); err != nil {
			return nil, err
		} else if !ok {
			return nil, m.writeSurveyPage(e, http.StatusNotFound, surveyPage{Page: "invalid"})
		}
		t.profile = p
	}
	return t, nil
}

// hasIdentity reports whether the profile still names someone (an
// erased customer has no identity left, and an event about them could not
// be resolved).
func hasIdentity(db dbx.Builder, profile string) (bool, error) {
	var n int
	err := db.NewQuery("SELECT COUNT(*) FROM identities WHERE profile = {:id}").Bind(dbx.Params{"id": profile}).Row(&n)
	return n > 0, err
}

func (m *Module) askPage(t *surveyTarget) surveyPage {
	shop := m.shopName()
	if t.survey == signedlink.SurveyNPS {
		return surveyPage{Page: "ask", Survey: t.survey, Question: "How likely are you to recommend " + shop + " to a friend or colleague?",
			Scores: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, Low: "0: not at all likely", High: "10: extremely likely"}
	}
	return surveyPage{Page: "ask", Survey: t.survey, Question: "How would you rate your conversation with " + shop + "?",
		Scores: []int{1, 2, 3, 4, 5}, Low: "1: bad", High: "5: great", Score: t.conversation.CSATScore}
}

func (m *Module) handleSurveyPage(e *core.RequestEvent) error {
	t, err := m.surveyTarget(e)
	if t == nil {
		return err
	}
	return m.writeSurveyPage(e, http.StatusOK, m.askPage(t))
}

func (m *Module) handleSurveyAnswer(e *core.RequestEvent) error {
	t, err := m.surveyTarget(e)
	if t == nil {
		return err
	}
	e.Request.Body = http.MaxBytesReader(e.Response, e.Request.Body, 1<<12)
	score, err := strconv.Atoi(strings.TrimSpace(e.Request.FormValue("score")))
	page := m.askPage(t)
	if err != nil || score < page.Scores[0] || score > page.Scores[len(page.Scores)-1] {
		page.Page = "bad"
		return m.writeSurveyPage(e, http.StatusBadRequest, page)
	}
	now := m.opts.Now()
	err = m.app.RunInTransaction(func(tx core.App) error {
		if t.survey == signedlink.SurveyCSAT {
			c, err := loadConversation(tx.DB(), t.conversation.ID)
			if err != nil {
				return err
			}
			return m.recordCSAT(tx, c, score, now, "link")
		}
		ev := &events.Event{ID: fmt.Sprintf("%s:nps:%s:%s:%d", events.SurveyAnswered, t.profile, t.link, score),
			Type: events.SurveyAnswered, Source: "omni", OccurredAt: now, ReceivedAt: now, Identities: events.Identities{},
			Properties: map[string]any{"profile_id": t.profile, "survey": signedlink.SurveyNPS, "score": score, "scale": 10, "via": "link"},
			Context:    events.Context{Channel: "web"}}
		return m.stage(tx, ev)
	})
	if err != nil {
		return err
	}
	m.afterCommit()
	page.Page, page.Score = "thanks", score
	return m.writeSurveyPage(e, http.StatusOK, page)
}

// shopName is the shop's name (PocketBase's application name), else the
// public URL's host.
func (m *Module) shopName() string {
	name := strings.TrimSpace(m.app.Settings().Meta.AppName)
	if name == "" || name == "Acme" { // PocketBase's placeholder, never a shop's
		if u, err := url.Parse(m.o.Config.PublicBaseURL()); err == nil && u.Hostname() != "" {
			name = u.Hostname()
		}
	}
	return name
}

func (m *Module) writeSurveyPage(e *core.RequestEvent, status int, d surveyPage) error {
	if d.Shop == "" {
		d.Shop = m.shopName()
	}
	d.Action = e.Request.URL.Path
	var b bytes.Buffer
	if err := surveyTemplate.Execute(&b, d); err != nil {
		return err
	}
	h := e.Response.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer") // the token is in the URL
	h.Set("X-Robots-Tag", "noindex")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	e.Response.WriteHeader(status)
	_, err := e.Response.Write(b.Bytes())
	return err
}

var surveyTemplate = template.Must(template.New("survey").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{if eq .Page "invalid"}}Link not valid{{else if eq .Page "expired"}}Survey closed{{else if eq .Page "thanks"}}Thank you{{else}}Your opinion{{end}} · {{.Shop}}</title>
<style>
  body { margin: 0; font: 17px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1a1a1a; background: #f4f4f2; }
  main { max-width: 36rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
  header { font-weight: 700; font-size: 1.1rem; padding: 1rem; text-align: center; border-bottom: 1px solid #d6d6d2; background: #fff; }
  .card { background: #fff; border: 1px solid #d6d6d2; border-radius: 10px; padding: 1.25rem 1.25rem 1.5rem; margin-top: 1.25rem; }
  h1 { font-size: 1.35rem; margin: 0 0 .75rem; }
  .scores { display: flex; flex-wrap: wrap; gap: .5rem; margin: 1rem 0 .5rem; }
  button { font: inherit; font-weight: 700; min-width: 44px; min-height: 44px; border-radius: 8px; border: 2px solid #0b5cad; background: #fff; color: #0b5cad; cursor: pointer; flex: 1; }
  button.chosen { background: #0b5cad; color: #fff; }
  .legend { display: flex; justify-content: space-between; color: #4a4a4a; font-size: .9rem; }
  .status { padding: .75rem 1rem; border-radius: 8px; background: #fdecea; border: 1px solid #e0a19a; margin-bottom: 1rem; }
  :focus-visible { outline: 3px solid #c2410c; outline-offset: 2px; }
</style>
</head>
<body>
<header>{{.Shop}}</header>
<main>
<div class="card">
{{if eq .Page "invalid"}}
  <h1>This link is not valid</h1>
  <p>It may be incomplete. If you copied it from a message, check that the whole link was copied.</p>
{{else if eq .Page "expired"}}
  <h1>This survey has closed</h1>
  <p>Thank you for wanting to answer. You can always reply to our messages to tell us more.</p>
{{else if eq .Page "thanks"}}
  <h1>Thank you!</h1>
  <p role="status">Your answer ({{.Score}}) is saved. It helps {{.Shop}} do better.</p>
{{else}}
  {{if eq .Page "bad"}}<div class="status" role="alert">Choose one of the numbers below.</div>{{end}}
  <form method="post" action="{{.Action}}">
    <h1 id="q">{{.Question}}</h1>
    <div class="scores" role="group" aria-labelledby="q">
      {{range .Scores}}<button type="submit" name="score" value="{{.}}"{{if and (eq . $.Score) (ne $.Score 0)}} class="chosen" aria-pressed="true"{{end}}>{{.}}</button>{{end}}
    </div>
    <div class="legend"><span>{{.Low}}</span><span>{{.High}}</span></div>
  </form>
  {{if and (eq .Survey "csat") (ne .Score 0)}}<p>You answered {{.Score}}. Choose again to change your answer.</p>{{end}}
{{end}}
</div>
</main>
</body>
</html>
`))
