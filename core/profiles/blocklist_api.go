package profiles

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/events"
)

// registerBlocklist adds the junk-identifier routes (docs/profiles.md#junk-identifiers):
// staff read the list in force; owners add and remove their own entries.
func (m *Module) registerBlocklist(r *router.Router[*core.RequestEvent]) {
	g := r.Group("/api/v1/profiles/blocklist")
	g.Bind(api.RequireStaff())
	g.GET("", m.handleBlocklist)
	g.POST("", m.handleBlock).Bind(api.RequireOwner())
	g.POST("/preview", m.handlePreviewBlock).Bind(api.RequireOwner())
	g.DELETE("/{id}", m.handleUnblock).Bind(api.RequireOwner())
}

func (m *Module) handleBlocklist(e *core.RequestEvent) error {
	out := map[string]any{"items": m.Blocklist(), "default_blocklist": m.identity.DefaultBlocklist}
	// ?value= says which entry, if any, blocks one identifier.
	if v := strings.TrimSpace(e.Request.URL.Query().Get("value")); v != "" {
		out["value"], out["blocked_by"] = v, m.blockedBy(v)
	}
	return e.JSON(http.StatusOK, out)
}

// blockedBy is the entry that blocks v as typed, as an email or as a
// phone number ("" when none).
func (m *Module) blockedBy(v string) string {
	bl := m.block.Load()
	if by := bl.blocked(v); by != "" {
		return by
	}
	if em := events.NormalizeEmail(v); em != "" {
		if by := bl.blocked(em); by != "" {
			return by
		}
	}
	if ph, ok := (events.Normalizer{DefaultRegion: m.defaultRegion}).Phone(v); ok && looksLikePhone(v) {
		return bl.blocked(ph)
	}
	return ""
}

func (m *Module) handleBlock(e *core.RequestEvent) error {
	var body struct {
		Entry string `json:"entry"`
		Note  string `json:"note"`
		// Recheck also un-merges the existing merges the entry's
		// identifiers caused (docs/profiles.md "Preview and re-check").
		Recheck bool `json:"recheck"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(e.Response, e.Request.Body, 1<<14)).Decode(&body); err != nil {
		return api.BadRequest("body", `must be JSON like {"entry": "front-desk@myshop.com", "note": "…", "recheck": true}: `+err.Error())
	}
	entry := strings.TrimSpace(body.Entry)
	if entry == "" {
		return api.BadRequest("entry", "is required: an exact value, a glob with * or a /regular expression/")
	}
	if err := config.CheckBlocklistEntry(entry); err != nil {
		return api.BadRequest("entry", err.Error())
	}
	if len(body.Note) > 500 {
		return api.BadRequest("note", "is longer than 500 characters")
	}
	for _, be := range m.Blocklist() {
		if strings.EqualFold(be.Entry, entry) {
			return api.BadRequest("entry", strconv.Quote(entry)+" is already on the list (from "+be.Origin+")")
		}
	}
	col, err := e.App.FindCollectionByNameOrId("profile_blocklist")
	if err != nil {
		return api.Internal("The blocklist collection is missing.", err)
	}
	rec := core.NewRecord(col)
	rec.Set("entry", entry)
	rec.Set("note", strings.TrimSpace(body.Note))
	if e.Auth != nil {
		rec.Set("created_by", e.Auth.Id)
	}
	// Saving reloads the list in force (record hook), so the next stored
	// batch already skips the entry.
	if err := e.App.Save(rec); err != nil {
		return api.Invalid(err, "Could not add the entry.")
	}
	out := struct {
		BlockEntry
		Resplit *Resplit `json:"resplit,omitempty"`
	}{BlockEntry: BlockEntry{ID: rec.Id, Entry: entry, Origin: originAdmin, Note: rec.GetString("note")}}
	if body.Recheck {
		if out.Resplit, err = m.resplit(e.App, entry, staffOf(e)); err != nil {
			return api.Internal("The entry was added, but re-checking existing customers failed.", err)
		}
	}
	return e.JSON(http.StatusOK, out)
}

// handlePreviewBlock says what adding an entry would do, changing nothing.
func (m *Module) handlePreviewBlock(e *core.RequestEvent) error {
	var body struct {
		Entry string `json:"entry"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(e.Response, e.Request.Body, 1<<14)).Decode(&body); err != nil {
		return api.BadRequest("body", `must be JSON like {"entry": "front-desk@myshop.com"}: `+err.Error())
	}
	entry := strings.TrimSpace(body.Entry)
	if entry == "" {
		return api.BadRequest("entry", "is required: an exact value, a glob with * or a /regular expression/")
	}
	if err := config.CheckBlocklistEntry(entry); err != nil {
		return api.BadRequest("entry", err.Error())
	}
	out, err := m.PreviewBlock(e.App, entry)
	if err != nil {
		return api.Internal("Could not preview the entry.", err)
	}
	return e.JSON(http.StatusOK, out)
}

func (m *Module) handleUnblock(e *core.RequestEvent) error {
	id := e.Request.PathValue("id")
	rec, err := e.App.FindRecordById("profile_blocklist", id)
	if err != nil {
		// Built-in, omni.yaml and connector entries have no id: they are
		// changed where they come from.
		return api.Error(http.StatusNotFound, "No blocklist entry added in the admin has id "+strconv.Quote(id)+
			" (built-in, omni.yaml and connector entries are changed where they come from).")
	}
	if err := e.App.Delete(rec); err != nil {
		return api.Internal("Could not remove the entry.", err)
	}
	return e.NoContent(http.StatusNoContent)
}
