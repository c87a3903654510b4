package profiles

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/relay"
)

// Tags and internal notes: staff (owners and agents) label a customer and
// write notes about them. They are staff annotations, not the customer's
// activity, so they are written directly in one transaction rather than
// as events: that transaction also rewrites the profile's search words and
// re-evaluates its segments (a "tags contains vip" segment gains or loses
// the customer at once, with segment.entered/exited staged through the
// relay like any other membership change), and the answer already shows
// the change. Notes also appear on the timeline (type "note").
const (
	maxTagLen  = 50
	maxNoteLen = 5000
	maxTags    = 50 // per customer
)

func (m *Module) registerTagsNotes(g *router.RouterGroup[*core.RequestEvent]) {
	g.GET("/tags", m.handleTagSuggest)
	g.GET("/profiles/{id}/tags", m.handleTags)
	g.POST("/profiles/{id}/tags", m.handleAddTag)
	g.DELETE("/profiles/{id}/tags/{tag}", m.handleRemoveTag)
	g.GET("/profiles/{id}/notes", m.handleNotes)
	g.POST("/profiles/{id}/notes", m.handleAddNote)
	g.DELETE("/profiles/{id}/notes/{note}", m.handleDeleteNote)
}

// TagRow is one tag on a customer.
type TagRow struct {
	Tag     string `db:"tag" json:"tag"`
	ByName  string `db:"by_name" json:"by_name"`
	Created string `db:"created" json:"created"`
}

// NoteRow is one internal note.
type NoteRow struct {
	ID         string `db:"id" json:"id"`
	Text       string `db:"text" json:"text"`
	Author     string `db:"author" json:"author"`
	AuthorName string `db:"author_name" json:"author_name"`
	Created    string `db:"created" json:"created"`
}

func tagsOf(app core.App, profileID string) ([]TagRow, error) {
	out := []TagRow{}
	err := app.DB().NewQuery("SELECT tag, MIN(by_name) AS by_name, MIN(created) AS created FROM profile_tags WHERE profile={:p} GROUP BY tag ORDER BY tag").
		Bind(dbx.Params{"p": profileID}).All(&out)
	return out, err
}

func notesOf(app core.App, profileID string) ([]NoteRow, error) {
	out := []NoteRow{}
	err := app.DB().NewQuery("SELECT id, text, author, author_name, created FROM profile_notes WHERE profile={:p} ORDER BY created DESC, id DESC").
		Bind(dbx.Params{"p": profileID}).All(&out)
	return out, err
}

// staffName is how an edit is signed: the staff member's name, else email.
func staffName(e *core.RequestEvent) string {
	if n := strings.TrimSpace(e.Auth.GetString("name")); n != "" {
		return n
	}
	return e.Auth.Email()
}

// livePro finds the live profile of the path's id (merged ids resolve).
func livePro(e *core.RequestEvent) (*profileRow, error) {
	row, err := findProfile(e.App, e.Request.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		return nil, noProfile(e)
	}
	if err != nil {
		return nil, api.Internal("Could not load the profile.", err)
	}
	return row, nil
}

// staffEdit runs change in a transaction, then rewrites the profile's words
// of origin and re-evaluates its segments in the same transaction.
func (m *Module) staffEdit(app core.App, profileID, origin string, change func(tx core.App) error) error {
	var emits []*events.Event
	err := app.RunInTransaction(func(tx core.App) error {
		if err := change(tx); err != nil {
			return err
		}
		if err := m.reindexStaffWords(tx, profileID, origin); err != nil {
			return err
		}
		if origin != originTag {
			return nil // notes take part in no segment rule
		}
		var err error
		emits, err = m.evaluateStored(tx, profileID)
		return err
	})
	if err != nil {
		return err
	}
	m.emit(emits)
	m.notify([]string{profileID})
	return nil
}

// evaluateStored evaluates every segment for a profile as stored and
// stages the segment events, for writes outside the events path.
func (m *Module) evaluateStored(tx core.App, profileID string) ([]*events.Event, error) {
	if _, err := m.catchUp(tx, []string{profileID}, false); err != nil { // segment rules read the row
		return nil, err
	}
	b := m.newBatch(tx, false)
	defer b.close()
	p, err := b.load(profileID)
	if err != nil {
		return nil, err
	}
	emits, err := m.evaluateProfiles(tx, []*profile{p}, m.now().UTC(), false)
	if err != nil {
		return nil, err
	}
	return emits, relay.Stage(tx, emits)
}

// reindexStaffWords rewrites the tag or note words of a profile from what
// is stored.
func (m *Module) reindexStaffWords(tx core.App, profileID, origin string) error {
	var texts []string
	q := "SELECT tag FROM profile_tags WHERE profile={:p}"
	if origin == originNote {
		q = "SELECT text FROM profile_notes WHERE profile={:p}"
	}
	if err := tx.DB().NewQuery(q).Bind(dbx.Params{"p": profileID}).Column(&texts); err != nil {
		return err
	}
	var ws []string
	for _, t := range texts {
		w := words(t)
		if origin == originNote && len(w) > maxNoteWords {
			w = w[:maxNoteWords]
		}
		if origin == originTag {
			w = append(w, normalizeTag(t)) // "gift card" is found whole too
		}
		ws = append(ws, w...)
	}
	return writeWords(tx, profileID, origin, dedupe(ws), true)
}

func (m *Module) handleTags(e *core.RequestEvent) error {
	row, err := livePro(e)
	if err != nil {
		return err
	}
	items, err := tagsOf(e.App, row.ID)
	if err != nil {
		return api.Internal("Could not load the tags.", err)
	}
	return e.JSON(200, map[string]any{"items": items})
}

func (m *Module) handleAddTag(e *core.RequestEvent) error {
	var body struct {
		Tag string `json:"tag"`
	}
	if err := e.BindBody(&body); err != nil {
		return api.BadRequest("body", `must be JSON like {"tag": "vip"}`)
	}
	tag := normalizeTag(body.Tag)
	switch {
	case tag == "":
		return api.BadRequest("tag", "is required")
	case utf8.RuneCountInString(tag) > maxTagLen:
		return api.BadRequest("tag", "must be at most "+strconv.Itoa(maxTagLen)+" characters")
	}
	row, err := livePro(e)
	if err != nil {
		return err
	}
	var n int
	_ = e.App.DB().NewQuery("SELECT COUNT(DISTINCT tag) FROM profile_tags WHERE profile={:p}").Bind(dbx.Params{"p": row.ID}).Row(&n)
	if n >= maxTags {
		return api.BadRequest("tag", "a customer can have at most "+strconv.Itoa(maxTags)+" tags")
	}
	by, byName := e.Auth.Id, staffName(e)
	err = m.staffEdit(e.App, row.ID, originTag, func(tx core.App) error {
		_, err := tx.DB().NewQuery(`INSERT INTO profile_tags (id, profile, tag, by, by_name, created)
SELECT {:id}, {:p}, {:t}, {:by}, {:bn}, {:c} WHERE NOT EXISTS (SELECT 1 FROM profile_tags WHERE profile={:p} AND tag={:t})`).
			Bind(dbx.Params{"id": newID(), "p": row.ID, "t": tag, "by": by, "bn": byName, "c": m.now().UTC().Format(dbTime)}).Execute()
		return err
	})
	if err != nil {
		return api.Internal("Could not add the tag.", err)
	}
	return m.handleTagsOf(e, row.ID)
}

func (m *Module) handleTagsOf(e *core.RequestEvent, id string) error {
	items, err := tagsOf(e.App, id)
	if err != nil {
		return api.Internal("Could not load the tags.", err)
	}
	return e.JSON(200, map[string]any{"items": items})
}

func (m *Module) handleRemoveTag(e *core.RequestEvent) error {
	row, err := livePro(e)
	if err != nil {
		return err
	}
	tag := normalizeTag(e.Request.PathValue("tag"))
	var removed int64
	err = m.staffEdit(e.App, row.ID, originTag, func(tx core.App) error {
		res, err := tx.DB().NewQuery("DELETE FROM profile_tags WHERE profile={:p} AND tag={:t}").Bind(dbx.Params{"p": row.ID, "t": tag}).Execute()
		if err == nil {
			removed, _ = res.RowsAffected()
		}
		return err
	})
	if err != nil {
		return api.Internal("Could not remove the tag.", err)
	}
	if removed == 0 {
		return api.Error(http.StatusNotFound, "This customer has no tag "+strconv.Quote(tag)+".")
	}
	return m.handleTagsOf(e, row.ID)
}

// handleTagSuggest lists tags in use, most used first, for autocomplete
// (?q= a prefix).
func (m *Module) handleTagSuggest(e *core.RequestEvent) error {
	type suggestion struct {
		Tag   string `db:"tag" json:"tag"`
		Count int    `db:"n" json:"count"`
	}
	items := []suggestion{}
	q := normalizeTag(e.Request.URL.Query().Get("q"))
	err := e.App.DB().NewQuery(`SELECT tag, COUNT(DISTINCT profile) AS n FROM profile_tags WHERE tag >= {:q} AND tag < {:hi}
GROUP BY tag ORDER BY n DESC, tag LIMIT 20`).Bind(dbx.Params{"q": q, "hi": q + "\U0010FFFF"}).All(&items)
	if err != nil {
		return api.Internal("Could not list the tags.", err)
	}
	return e.JSON(200, map[string]any{"items": items})
}

func (m *Module) handleNotes(e *core.RequestEvent) error {
	row, err := livePro(e)
	if err != nil {
		return err
	}
	items, err := notesOf(e.App, row.ID)
	if err != nil {
		return api.Internal("Could not load the notes.", err)
	}
	return e.JSON(200, map[string]any{"items": items})
}

func (m *Module) handleAddNote(e *core.RequestEvent) error {
	var body struct {
		Text string `json:"text"`
	}
	if err := e.BindBody(&body); err != nil {
		return api.BadRequest("body", `must be JSON like {"text": "…"}`)
	}
	text := strings.TrimSpace(body.Text)
	switch {
	case text == "":
		return api.BadRequest("text", "is required")
	case utf8.RuneCountInString(text) > maxNoteLen:
		return api.BadRequest("text", "must be at most "+strconv.Itoa(maxNoteLen)+" characters")
	}
	row, err := livePro(e)
	if err != nil {
		return err
	}
	note := NoteRow{ID: newID(), Text: text, Author: e.Auth.Id, AuthorName: staffName(e), Created: m.now().UTC().Format(dbTime)}
	err = m.staffEdit(e.App, row.ID, originNote, func(tx core.App) error {
		_, err := tx.DB().NewQuery("INSERT INTO profile_notes (id, profile, text, author, author_name, created) VALUES ({:id}, {:p}, {:t}, {:a}, {:an}, {:c})").
			Bind(dbx.Params{"id": note.ID, "p": row.ID, "t": note.Text, "a": note.Author, "an": note.AuthorName, "c": note.Created}).Execute()
		return err
	})
	if err != nil {
		return api.Internal("Could not save the note.", err)
	}
	return e.JSON(http.StatusCreated, note)
}

// handleDeleteNote: the author or an owner may delete a note.
func (m *Module) handleDeleteNote(e *core.RequestEvent) error {
	row, err := livePro(e)
	if err != nil {
		return err
	}
	var author string
	err = e.App.DB().NewQuery("SELECT author FROM profile_notes WHERE id={:id} AND profile={:p}").
		Bind(dbx.Params{"id": e.Request.PathValue("note"), "p": row.ID}).Row(&author)
	if err != nil {
		return api.Error(http.StatusNotFound, "No note with id "+strconv.Quote(e.Request.PathValue("note"))+" on this customer.")
	}
	if author != e.Auth.Id && !api.IsOwner(e) {
		return api.Error(http.StatusForbidden, "Only the note's author or an owner can delete it.")
	}
	err = m.staffEdit(e.App, row.ID, originNote, func(tx core.App) error {
		_, err := tx.DB().NewQuery("DELETE FROM profile_notes WHERE id={:id}").Bind(dbx.Params{"id": e.Request.PathValue("note")}).Execute()
		return err
	})
	if err != nil {
		return api.Internal("Could not delete the note.", err)
	}
	return e.NoContent(http.StatusNoContent)
}

// TimelineNote is a staff note on the timeline.
type TimelineNote struct {
	ID         string `json:"id"`
	Type       string `json:"type"` // "note"
	Text       string `json:"text"`
	Author     string `json:"author"` // the staff member's name
	AuthorID   string `json:"author_id"`
	At         string `json:"at"`
	OccurredAt string `json:"occurred_at"` // = at, so entries sort alike
}

// withNotes interleaves the profile's notes with one timeline page of
// events: the notes that fall in the page's time window (from the last
// event shown, when there is a next page, up to the cursor), newest first.
// A type filter without "note", or a channel filter, leaves them out.
func withNotes(app core.App, profileID string, items []*TimelineEvent, before string, more bool, types []string, channel string) ([]any, error) {
	out := make([]any, 0, len(items))
	if channel != "" || (len(types) > 0 && !contains(types, "note")) {
		for _, it := range items {
			out = append(out, it)
		}
		return out, nil
	}
	where := []string{"profile = {:p}"}
	prm := dbx.Params{"p": profileID}
	if before != "" {
		ts, _, _ := strings.Cut(before, "~")
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			prm["hi"] = t.UTC().Format(dbTime)
			where = append(where, "created < {:hi}")
		} else if t, err := time.Parse(dbTime, ts); err == nil {
			prm["hi"] = t.UTC().Format(dbTime)
			where = append(where, "created < {:hi}")
		}
	}
	if more && len(items) > 0 {
		prm["lo"] = items[len(items)-1].OccurredAt
		where = append(where, "created >= {:lo}")
	}
	var notes []NoteRow
	if err := app.DB().NewQuery("SELECT id, text, author, author_name, created FROM profile_notes WHERE " + strings.Join(where, " AND ") + " ORDER BY created DESC, id DESC").
		Bind(prm).All(&notes); err != nil {
		return nil, err
	}
	i := 0
	for _, n := range notes {
		for i < len(items) && items[i].OccurredAt > n.Created {
			out = append(out, items[i])
			i++
		}
		at := strings.Replace(n.Created, " ", "T", 1)
		out = append(out, &TimelineNote{ID: n.ID, Type: "note", Text: n.Text, Author: n.AuthorName, AuthorID: n.Author, At: at, OccurredAt: n.Created})
	}
	for ; i < len(items); i++ {
		out = append(out, items[i])
	}
	return out, nil
}
