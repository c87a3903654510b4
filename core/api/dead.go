package api

import (
	"errors"
	"net/http"

	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/deadletter"
)

// RegisterDeadEvents adds the owner routes over parked (dead) events:
//
//	GET  /api/v1/events/dead         {count, items: [...]} newest failure first
//	POST /api/v1/events/dead/retry   {"ids": [...]} (empty or absent: all) → {requested}
//
// A retry only marks the rows; the consumer that parked them re-drives
// them within seconds (see core/deadletter).
func RegisterDeadEvents(r *router.Router[*core.RequestEvent]) {
	g := r.Group("/api/v1/events/dead")
	g.Bind(RequireOwner())
	g.GET("", listDead)
	g.POST("/retry", retryDead)
}

func listDead(e *core.RequestEvent) error {
	n, err := deadletter.Count(e.App)
	if err != nil {
		return err
	}
	items, err := deadletter.List(e.App, e.Request.URL.Query().Get("consumer"), 200)
	if err != nil {
		return err
	}
	if items == nil {
		items = []deadletter.Entry{}
	}
	return e.JSON(http.StatusOK, map[string]any{"count": n, "items": items})
}

func retryDead(e *core.RequestEvent) error {
	var in struct {
		IDs []string `json:"ids"`
	}
	if e.Request.ContentLength != 0 {
		if err := e.BindBody(&in); err != nil {
			return FieldError(http.StatusBadRequest, "ids", "validation_invalid_ids", `must be a list of dead event ids, as in {"ids": ["…"]}`)
		}
	}
	marked, err := deadletter.RequestRetry(e.App, in.IDs...)
	if err != nil {
		if errors.Is(err, deadletter.ErrNotFound) {
			return FieldError(http.StatusBadRequest, "ids", "validation_not_dead", err.Error())
		}
		return err
	}
	return e.JSON(http.StatusOK, map[string]any{"requested": len(marked)})
}
