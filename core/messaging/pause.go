package messaging

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/store"
)

// PausesCollection holds per-customer marketing pauses.
const PausesCollection = "marketing_pauses"

// maxPause is the longest pause staff can set in one go: a pause is a
// temporary hold, not an unsubscribe (that is consent, recorded as such).
const maxPause = 365 * 24 * time.Hour

// pausedUntil is when the customer's marketing pause ends (zero: not paused).
func (m *Module) pausedUntil(profileID string, now time.Time) time.Time {
	var until string
	err := m.app.DB().NewQuery("SELECT COALESCE(MAX(until), '') FROM " + PausesCollection + " WHERE profile = {:p} AND until > {:now}").
		Bind(dbx.Params{"p": profileID, "now": store.FormatTime(now)}).Row(&until)
	if err != nil || until == "" {
		return time.Time{}
	}
	t, _ := parseTime(until)
	return t
}

// pauseReason is the gate's refusal while a pause lasts.
func pauseReason(until time.Time) string {
	return "marketing paused for this customer until " + until.UTC().Format("2006-01-02 15:04 UTC")
}

// pauseRoutes: POST /api/v1/profiles/{id}/marketing-pause {days | until,
// reason?} sets (replaces) the pause; DELETE ends it. Staff: an agent
// pauses marketing for a customer they are helping.
func (m *Module) pauseRoutes(se *core.ServeEvent) {
	se.Router.POST("/api/v1/profiles/{id}/marketing-pause", m.handlePause).Bind(api.RequireStaff())
	// "DELETE /api/v1/profiles/{id}/marketing-pause" would clash with the
	// profiles module's "DELETE /api/v1/profiles/blocklist/{id}" (both
	// match /profiles/blocklist/marketing-pause, neither is more specific),
	// so the DELETE takes the rest of the path and answers only this one.
	se.Router.DELETE("/api/v1/profiles/{id}/{rest...}", func(e *core.RequestEvent) error {
		if e.Request.PathValue("rest") != "marketing-pause" {
			return e.NotFoundError("", nil)
		}
		return m.handleUnpause(e)
	}).Bind(api.RequireStaff())
}

type pauseBody struct {
	Days   *float64 `json:"days"`
	Until  string   `json:"until"`
	Reason string   `json:"reason"`
}

func (m *Module) handlePause(e *core.RequestEvent) error {
	var b pauseBody
	if err := json.NewDecoder(http.MaxBytesReader(e.Response, e.Request.Body, 1<<16)).Decode(&b); err != nil {
		return api.BadRequest("days", `must be JSON like {"days": 14} or {"until": "2026-12-24T00:00:00Z"}`)
	}
	now := m.opts.Now().UTC()
	var until time.Time
	switch {
	case b.Days != nil && b.Until != "":
		return api.BadRequest("days", "give days or until, not both")
	case b.Days != nil:
		if *b.Days <= 0 || time.Duration(*b.Days*float64(24*time.Hour)) > maxPause {
			return api.BadRequest("days", "must be more than 0 and at most 365")
		}
		until = now.Add(time.Duration(*b.Days * float64(24*time.Hour)))
	case b.Until != "":
		t, err := time.Parse(time.RFC3339, b.Until)
		if err != nil {
			return api.BadRequest("until", "must be an RFC 3339 time such as 2026-12-24T00:00:00Z")
		}
		if !t.After(now) || t.Sub(now) > maxPause {
			return api.BadRequest("until", "must be in the future and at most a year away")
		}
		until = t.UTC()
	default:
		return api.BadRequest("days", "is required: how many days to pause marketing (or until, a time)")
	}
	if len(b.Reason) > 500 {
		return api.BadRequest("reason", "is too long (at most 500 characters)")
	}
	p, err := loadProfile(m.app, e.Request.PathValue("id"))
	if errors.Is(err, errNoProfile) {
		return e.NotFoundError("There is no such customer.", nil)
	}
	if err != nil {
		return api.Internal("Could not read the customer.", err)
	}
	by := ""
	if e.Auth != nil {
		by = e.Auth.Id
	}
	err = m.app.RunInTransaction(func(tx core.App) error {
		if _, err := tx.DB().Delete(PausesCollection, dbx.HashExp{"profile": p.ID}).Execute(); err != nil {
			return err
		}
		_, err := tx.DB().Insert(PausesCollection, dbx.Params{"id": store.NewRecordID(), "profile": p.ID,
			"until": store.FormatTime(until), "by": by, "reason": strings.TrimSpace(b.Reason), "created": store.FormatTime(now)}).Execute()
		return err
	})
	if err != nil {
		return api.Internal("Could not pause marketing.", err)
	}
	return e.JSON(http.StatusOK, map[string]any{"profile": p.ID, "until": until.Format(time.RFC3339),
		"reason": pauseReason(until)})
}

func (m *Module) handleUnpause(e *core.RequestEvent) error {
	p, err := loadProfile(m.app, e.Request.PathValue("id"))
	if errors.Is(err, errNoProfile) {
		return e.NotFoundError("There is no such customer.", nil)
	}
	if err != nil {
		return api.Internal("Could not read the customer.", err)
	}
	if _, err := m.app.DB().Delete(PausesCollection, dbx.HashExp{"profile": p.ID}).Execute(); err != nil {
		return api.Internal(fmt.Sprintf("Could not end the pause for %s.", p.ID), err)
	}
	return e.NoContent(http.StatusNoContent)
}
