package profiles

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
)

// handleUnmerge serves POST /api/v1/profiles/{id}/merges/{merge}/undo
// (owners): body {} or {"block_identifier": true} to keep the two apart.
func (m *Module) handleUnmerge(e *core.RequestEvent) error {
	keep, err := unmergeBody(e)
	if err != nil {
		return err
	}
	by := staffOf(e)
	by.KeepApart = keep
	out, err := m.Unmerge(e.App, e.Request.PathValue("id"), e.Request.PathValue("merge"), by)
	switch {
	case errors.Is(err, ErrNotFound):
		return noProfile(e)
	case errors.Is(err, ErrMergeNotFound):
		return api.Error(http.StatusNotFound, "This customer has no merge with id "+strconv.Quote(e.Request.PathValue("merge"))+".")
	case errors.Is(err, ErrUnmergeRefused):
		return api.Error(http.StatusConflict, err.Error())
	case err != nil:
		return api.Internal("Could not un-merge; nothing was changed.", err)
	}
	return e.JSON(http.StatusOK, out)
}

// staffOf is the signed-in staff member, for the merge ledger.
func staffOf(e *core.RequestEvent) UnmergeBy {
	var by UnmergeBy
	if e.Auth != nil {
		by.StaffID, by.StaffName = e.Auth.Id, e.Auth.GetString("name")
		if by.StaffName == "" {
			by.StaffName = e.Auth.Email()
		}
	}
	return by
}

// unmergeBody reads the optional body; anything but a JSON object with a
// boolean block_identifier is a 400 naming the field.
func unmergeBody(e *core.RequestEvent) (bool, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(e.Response, e.Request.Body, 1<<12))
	if err != nil {
		return false, api.BadRequest("body", "is too large")
	}
	if len(raw) == 0 {
		return false, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return false, api.BadRequest("body", `must be a JSON object like {"block_identifier": true}`)
	}
	keep := false
	for k, v := range fields {
		if k != "block_identifier" {
			return false, api.BadRequest(k, "is not a field of an un-merge (only block_identifier)")
		}
		if err := json.Unmarshal(v, &keep); err != nil {
			return false, api.BadRequest("block_identifier", "must be true or false")
		}
	}
	return keep, nil
}
