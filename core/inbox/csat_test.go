package inbox_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/app/omnitest"
	_ "github.com/omni/omni/core/connectors" // the connectors table the gate reads
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/inbox"
	"github.com/omni/omni/core/signedlink"
)

// offsetClock is the inbox's clock, moved forward by tests.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time       { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) Move(d time.Duration) { c.off.Add(int64(d)) }
func csatSQL(t *testing.T, s *omnitest.Server, q string) {
	t.Helper()
	if _, err := s.PB.DB().NewQuery(q).Execute(); err != nil {
		t.Fatal(err)
	}
}

// convRow reads one conversation by id.
func convRow(t *testing.T, s *omnitest.Server, id string) inbox.Conversation {
	t.Helper()
	var c inbox.Conversation
	if err := s.PB.DB().NewQuery("SELECT * FROM conversations WHERE id = {:id}").Bind(dbx.Params{"id": id}).One(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// surveyEvents are the stored survey.answered events of a profile.
func surveyEvents(t *testing.T, s *omnitest.Server, profile string) []map[string]any {
	t.Helper()
	var rows []string
	if err := s.PB.DB().NewQuery("SELECT properties FROM events WHERE profile = {:p} AND type = 'survey.answered' ORDER BY occurred_at").
		Bind(dbx.Params{"p": profile}).Column(&rows); err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]any, len(rows))
	for i, r := range rows {
		_ = json.Unmarshal([]byte(r), &out[i])
	}
	return out
}

// Resolving a conversation asks "how did we do?" on its channel through the
// gate (kind conversation); a reply that is just a score is the answer:
// stored on the conversation and as survey.answered on the profile (what
// journeys read for a bad CSAT), thanked, and the conversation stays
// resolved; a message with words reopens it as usual.
func TestCSATQuestionAndAnswerByMessage(t *testing.T) {
	s, m := startInbox(t, inbox.Options{})
	csatSQL(t, s, `INSERT INTO connectors (id, name, kind, enabled, capabilities) VALUES ('csatwhatsapp001', 'whatsapp', 'builtin', 1, '["send:whatsapp"]')`)
	_, agent := member(t, s, "ana@omni-shop.dev", "agent", "Ana")
	wa := events.Identities{events.WhatsAppID: "447700900201"}
	receive(t, s, "wamid.c1", "whatsapp", wa, map[string]any{"text": "My parcel is late"})
	c := conversationsOf(t, s, events.WhatsAppID, "447700900201")[0]
	call(t, s, agent, "POST", "/api/v1/conversations/"+c.ID+"/messages", map[string]any{"text": "Sorry! It ships today."}, 201, nil)
	call(t, s, agent, "PATCH", "/api/v1/conversations/"+c.ID, map[string]any{"status": "resolved"}, 200, nil)
	var question struct {
		Kind   string `db:"kind"`
		Status string `db:"status"`
		Body   string `db:"body"`
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		return s.PB.DB().NewQuery(`SELECT l.kind, l.status, l.body FROM messages l JOIN conversation_messages cm ON cm.id = l.id
			WHERE cm.conversation = {:c} AND cm.author = 'system'`).Bind(dbx.Params{"c": c.ID}).One(&question) == nil
	}, "the CSAT question in the send ledger")
	if question.Kind != "conversation" || question.Status != "queued" || !strings.HasPrefix(question.Body, "How did we do?") {
		t.Fatalf("question = %+v", question)
	}
	if c = convRow(t, s, c.ID); c.CSATAskedAt == "" || c.Status != inbox.StatusResolved || c.LastMessage != "Sorry! It ships today." {
		t.Fatalf("after resolving: %+v", c)
	}

	receive(t, s, "wamid.c2", "whatsapp", wa, map[string]any{"text": " 4 "})
	c = convRow(t, s, c.ID)
	if c.Status != inbox.StatusResolved || c.CSATScore != 4 || c.WaitingSince != "" || c.Unread != 0 {
		t.Fatalf("after the answer: status %s score %d waiting %q unread %d", c.Status, c.CSATScore, c.WaitingSince, c.Unread)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool { return len(surveyEvents(t, s, c.Profile)) == 1 }, "survey.answered on the profile")
	ev := surveyEvents(t, s, c.Profile)[0]
	if ev["survey"] != "csat" || ev["score"] != 4.0 || ev["scale"] != 5.0 || ev["conversation"] != c.ID {
		t.Fatalf("survey.answered = %v", ev)
	}
	var thanks int
	_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM conversation_messages WHERE conversation = {:c} AND author = 'system' AND text = 'Thank you!'").
		Bind(dbx.Params{"c": c.ID}).Row(&thanks)
	if thanks != 1 {
		t.Fatalf("%d thanks, want 1", thanks)
	}

	// Words are for a person: the conversation reopens.
	receive(t, s, "wamid.c3", "whatsapp", wa, map[string]any{"text": "4 days late though, where is it?"})
	if c = convRow(t, s, c.ID); c.Status != inbox.StatusOpen || c.CSATScore != 4 {
		t.Fatalf("after words: %s, score %d", c.Status, c.CSATScore)
	}

	// A bad score (stars count) is an event journeys see: score ≤ 2 of 5.
	wa2 := events.Identities{events.WhatsAppID: "447700900202"}
	receive(t, s, "wamid.d1", "whatsapp", wa2, map[string]any{"text": "Wrong size sent"})
	d := conversationsOf(t, s, events.WhatsAppID, "447700900202")[0]
	if err := inbox.Reply(m, d.ID, "", "We'll swap it."); err != nil {
		t.Fatal(err)
	}
	if err := inbox.Resolve(m, d.ID, ""); err != nil {
		t.Fatal(err)
	}
	receive(t, s, "wamid.d2", "whatsapp", wa2, map[string]any{"text": "⭐️"})
	if d = convRow(t, s, d.ID); d.Status != inbox.StatusResolved || d.CSATScore != 1 {
		t.Fatalf("a one-star answer: %s, score %d", d.Status, d.CSATScore)
	}
	var bad int
	omnitest.Eventually(t, 10*time.Second, func() bool {
		_ = s.PB.DB().NewQuery(`SELECT COUNT(*) FROM events WHERE profile = {:p} AND type = 'survey.answered'
			AND json_extract(properties, '$.score') <= 2 AND json_extract(properties, '$.scale') = 5`).Bind(dbx.Params{"p": d.Profile}).Row(&bad)
		return bad == 1
	}, "a bad CSAT event on the second customer")

	// Resolving with no customer message asks nothing; nor does resolving
	// again when nothing came from the customer since the question.
	if err := inbox.Resolve(m, c.ID, ""); err != nil { // reopened by words above: asked again
		t.Fatal(err)
	}
	var asked int
	_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM conversation_messages WHERE conversation = {:c} AND author = 'system' AND text LIKE 'How did we do?%'").
		Bind(dbx.Params{"c": c.ID}).Row(&asked)
	if asked != 2 {
		t.Fatalf("asked %d times after two resolutions with customer messages, want 2", asked)
	}
}

var surveyPath = regexp.MustCompile(`/survey/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)

func surveyHTTP(t *testing.T, method, u string, form url.Values) (int, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == "POST" {
		resp, err = http.PostForm(u, form)
	} else {
		resp, err = http.Get(u)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// With via "link" the question carries a signed link to a page served by
// Omni; its answer is the same survey.answered. A forged link is 404, an
// expired one 410. NPS uses the same page with 0–10, by a link naming the
// customer (the one {{ nps_url }} renders, signed with the same key).
func TestSurveyPageAnswersCSATAndNPS(t *testing.T) {
	clock := &offsetClock{}
	s, m := startInbox(t, inbox.Options{Now: clock.Now})
	owner := s.Staff(t, "owner@omni-shop.dev", "owner")
	agent := s.Staff(t, "agent@omni-shop.dev", "agent")
	code, raw := s.Do(t, "PUT", "/api/v1/inbox/settings/csat", map[string]any{"via": "pigeon"}, omnitest.Auth(owner))
	omnitest.WantFieldError(t, code, raw, 400, "csat.via")
	if code, _ := s.Do(t, "PUT", "/api/v1/inbox/settings/csat", map[string]any{"via": "link"}, omnitest.Auth(agent)); code != 403 {
		t.Fatalf("an agent changing CSAT: %d, want 403", code)
	}
	code, raw = s.Do(t, "PUT", "/api/v1/inbox/settings/csat", map[string]any{"via": "link"}, omnitest.Auth(owner))
	if code != 200 || !strings.Contains(string(raw), `"enabled":true`) || !strings.Contains(string(raw), "Rate your conversation") {
		t.Fatalf("csat setting: %d %s", code, raw)
	}

	mail := events.Identities{events.Email: "bea@omni-shop.dev"}
	receive(t, s, "email:s1", "email", mail, map[string]any{"text": "Can I return these?", "subject": "Returns",
		"conversation_key": "<s1@mail.omni-shop.dev>", "provider_message_id": "<s1@mail.omni-shop.dev>"})
	c := conversationsOf(t, s, events.Email, "bea@omni-shop.dev")[0]
	if err := inbox.Reply(m, c.ID, "", "Yes, within 30 days."); err != nil {
		t.Fatal(err)
	}
	if err := inbox.Resolve(m, c.ID, ""); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := s.PB.DB().NewQuery("SELECT text FROM conversation_messages WHERE conversation = {:c} AND author = 'system'").
		Bind(dbx.Params{"c": c.ID}).Row(&text); err != nil {
		t.Fatal(err)
	}
	link := surveyPath.FindString(text)
	if link == "" {
		t.Fatalf("no survey link in %q", text)
	}
	if code, body := surveyHTTP(t, "GET", s.URL+link, nil); code != 200 || strings.Count(body, `name="score"`) != 5 {
		t.Fatalf("CSAT page: %d %s", code, body)
	}
	if code, _ := surveyHTTP(t, "POST", s.URL+link, url.Values{"score": {"9"}}); code != 400 {
		t.Fatalf("a score out of range: %d, want 400", code)
	}
	if code, body := surveyHTTP(t, "POST", s.URL+link, url.Values{"score": {"2"}}); code != 200 || !strings.Contains(body, "Thank you") {
		t.Fatalf("answer: %d %s", code, body)
	}
	if c = convRow(t, s, c.ID); c.CSATScore != 2 || c.Status != inbox.StatusResolved {
		t.Fatalf("after the page: %+v", c)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		evs := surveyEvents(t, s, c.Profile)
		return len(evs) == 1 && evs[0]["score"] == 2.0 && evs[0]["survey"] == "csat" && evs[0]["conversation"] == c.ID
	}, "survey.answered from the page")
	forged := link[:len(link)-2] + "xx"
	if code, body := surveyHTTP(t, "GET", s.URL+forged, nil); code != 404 || !strings.Contains(body, "not valid") {
		t.Fatalf("forged link: %d %s", code, body)
	}

	// NPS: a link naming the customer, as a journey's message carries it.
	signer, err := signedlink.Open(s.Config.DataDir, s.Config.PublicBaseURL())
	if err != nil {
		t.Fatal(err)
	}
	nps := surveyPath.FindString(signer.SurveyURL(signedlink.SurveyNPS, c.Profile, clock.Now().Add(signedlink.NPSValidFor)))
	if code, body := surveyHTTP(t, "GET", s.URL+nps, nil); code != 200 || strings.Count(body, `name="score"`) != 11 {
		t.Fatalf("NPS page: %d %s", code, body)
	}
	if code, _ := surveyHTTP(t, "POST", s.URL+nps, url.Values{"score": {"6"}}); code != 200 {
		t.Fatalf("NPS answer: %d", code)
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		evs := surveyEvents(t, s, c.Profile)
		return len(evs) == 2 && evs[1]["survey"] == "nps" && evs[1]["score"] == 6.0 && evs[1]["scale"] == 10.0
	}, "the NPS answer on the profile")

	// A week later the CSAT link has closed; the NPS link (30 days) not yet.
	clock.Move(8 * 24 * time.Hour)
	if code, body := surveyHTTP(t, "GET", s.URL+link, nil); code != 410 || !strings.Contains(body, "closed") {
		t.Fatalf("expired CSAT link: %d %s", code, body)
	}
	if code, _ := surveyHTTP(t, "GET", s.URL+nps, nil); code != 200 {
		t.Fatalf("NPS link after 8 days: %d", code)
	}
}
