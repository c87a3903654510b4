package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/router"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/store"
)

// Funnel is an owner-defined ordered list of events with a conversion
// window: a customer converts by doing every step, in order, within
// WindowDays of the first.
type Funnel struct {
	ID         string       `json:"id" db:"id"`
	Name       string       `json:"name" db:"name"`
	Steps      []FunnelStep `json:"steps" db:"-"`
	WindowDays int          `json:"window_days" db:"window_days"`
	Position   int          `json:"position" db:"position"`
	// State is "backfilling" while the funnel is derived from the stored
	// events (after it is created or edited), then "ready".
	State     string `json:"state" db:"state"`
	CreatedBy string `json:"created_by" db:"created_by"`
	Created   string `json:"created" db:"created"`
	Updated   string `json:"updated" db:"updated"`
}

// FunnelStep is one step: an event type, optionally narrowed to a custom
// event or page name (Name, case-insensitive) or a page path (Path: a
// prefix, or "*text" for a path containing text).
type FunnelStep struct {
	Event string `json:"event"`
	Name  string `json:"name,omitempty"`
	Path  string `json:"path,omitempty"`
	Label string `json:"label,omitempty"`
}

const (
	stateBackfilling = "backfilling"
	stateReady       = "ready"

	minSteps, maxSteps = 2, 8
	maxWindowDays      = 90
	defaultWindowDays  = 7
	backfillChunk      = 500 // customers per backfill transaction
)

var defaultFunnelSteps = []FunnelStep{
	{Event: events.PageViewed, Label: "Viewed a page"},
	{Event: events.CheckoutStarted, Label: "Started checkout"},
	{Event: events.OrderPlaced, Label: "Placed an order"},
}

// eventTypePattern is the shape of a unified event type (order.placed).
var eventTypePattern = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$`)

type funnelRow struct {
	Funnel
	StepsJSON string `db:"steps"`
}

// load reads the definitions into memory.
func (f *funnelPart) load(app core.App) error {
	var rows []funnelRow
	if err := app.DB().NewQuery("SELECT id, name, steps, window_days, position, state, created_by, created, updated FROM " +
		FunnelsCollection + " ORDER BY position, created, id").All(&rows); err != nil {
		return err
	}
	list := make([]*Funnel, len(rows))
	for i := range rows {
		fn := rows[i].Funnel
		_ = json.Unmarshal([]byte(rows[i].StepsJSON), &fn.Steps)
		list[i] = &fn
	}
	f.mu.Lock()
	f.funnels, f.loaded = list, true
	if f.gen == nil {
		f.gen = map[string]int{}
	}
	f.mu.Unlock()
	return nil
}

func (f *funnelPart) ensureLoaded(app core.App) error {
	f.mu.Lock()
	ok := f.loaded
	f.mu.Unlock()
	if ok {
		return nil
	}
	return f.load(app)
}

// list returns a copy of the definitions.
func (f *funnelPart) list() []Funnel {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Funnel, len(f.funnels))
	for i, fn := range f.funnels {
		out[i] = *fn
	}
	return out
}

func (f *funnelPart) find(id string) (Funnel, bool) {
	for _, fn := range f.list() {
		if fn.ID == id {
			return fn, true
		}
	}
	return Funnel{}, false
}

// readyFunnels are the funnels kept as events are stored (a funnel being
// backfilled catches up when its backfill ends).
func (f *funnelPart) readyFunnels() []*Funnel {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*Funnel
	for _, fn := range f.funnels {
		if fn.State == stateReady {
			c := *fn
			out = append(out, &c)
		}
	}
	return out
}

// start backfills the funnels left backfilling (the default funnel of a
// new install, an edit the last run did not finish).
func (f *funnelPart) start(app core.App) error {
	if err := f.load(app); err != nil {
		return err
	}
	for _, fn := range f.list() {
		if fn.State != stateReady {
			f.backfill(app, fn)
		}
	}
	return nil
}

// stop waits for running backfills to notice and end.
func (f *funnelPart) stop() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.bg.Wait()
}

// bump starts a new generation of a funnel's definition.
func (f *funnelPart) bump(id string) {
	f.mu.Lock()
	if f.gen == nil {
		f.gen = map[string]int{}
	}
	f.gen[id]++
	f.mu.Unlock()
}

// current says whether a backfill of generation gen of funnel id should
// go on.
func (f *funnelPart) current(id string, gen int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.stopped && f.gen[id] == gen
}

// backfill derives a funnel's entries from the stored events in the
// background, a chunk of customers per transaction, then, in the
// transaction that marks it ready, derives again the customers whose
// events were stored (or merged) meanwhile: from then on the events
// processor keeps it.
func (f *funnelPart) backfill(app core.App, fn Funnel) {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	gen := f.gen[fn.ID]
	f.bg.Add(1)
	f.mu.Unlock()
	go func() {
		defer f.bg.Done()
		if err := f.runBackfill(app, &fn, gen, nil); err != nil && f.current(fn.ID, gen) {
			f.m.log.Error("funnel backfill failed; it resumes at the next start", "funnel", fn.ID, "error", err)
		}
	}()
}

var errSuperseded = errors.New("funnel edited or server stopping")

// runBackfill derives fn from the stored events; progress (may be nil)
// is told how many customers each chunk covered.
func (f *funnelPart) runBackfill(app core.App, fn *Funnel, gen int, progress func(customers int)) error {
	// Events stored from now on have a larger rowid (SQLite's, which
	// grows with each insert): the final pass finds them without a scan.
	var since int64
	if err := app.DB().NewQuery("SELECT COALESCE(MAX(rowid), 0) FROM events").Row(&since); err != nil {
		return err
	}
	after := ""
	for {
		if !f.current(fn.ID, gen) {
			return errSuperseded
		}
		var profiles []string
		if err := app.DB().NewQuery("SELECT DISTINCT profile FROM events WHERE profile > {:after} ORDER BY profile LIMIT {:n}").
			Bind(dbx.Params{"after": after, "n": backfillChunk}).Column(&profiles); err != nil {
			return err
		}
		if len(profiles) == 0 {
			break
		}
		after = profiles[len(profiles)-1]
		err := app.RunInTransaction(func(tx core.App) error {
			if !f.current(fn.ID, gen) {
				return errSuperseded
			}
			return f.rederive(tx, []*Funnel{fn}, profiles)
		})
		if err != nil {
			return err
		}
		if progress != nil {
			progress(len(profiles))
		}
	}
	return app.RunInTransaction(func(tx core.App) error {
		if !f.current(fn.ID, gen) {
			return errSuperseded
		}
		// Customers with events stored since the scan began, and those a
		// merge, an un-merge or an erasure moved events of.
		var rows []funnelEventRow
		if err := tx.DB().NewQuery("SELECT profile, type, source, properties FROM events WHERE rowid > {:since}").
			Bind(dbx.Params{"since": since}).All(&rows); err != nil {
			return err
		}
		seen := map[string]bool{}
		var late []string
		add := func(v any) {
			if s, ok := v.(string); ok && s != "" && !seen[s] {
				seen[s] = true
				late = append(late, s)
			}
		}
		for _, r := range rows {
			add(r.Profile)
			if strings.HasPrefix(r.Type, "profile.") {
				var p map[string]any
				_ = json.Unmarshal([]byte(r.Properties), &p)
				add(p["profile_id"])
				add(p["merged_profile_id"])
				add(p["unmerged_profile_id"])
			}
		}
		for i := 0; i < len(late); i += backfillChunk {
			if err := f.rederive(tx, []*Funnel{fn}, late[i:min(i+backfillChunk, len(late))]); err != nil {
				return err
			}
		}
		if _, err := tx.DB().Update(FunnelsCollection, dbx.Params{"state": stateReady}, dbx.HashExp{"id": fn.ID}).Execute(); err != nil {
			return err
		}
		f.mu.Lock()
		for _, x := range f.funnels {
			if x.ID == fn.ID {
				x.State = stateReady
			}
		}
		f.mu.Unlock()
		return nil
	})
}

// holdForRebuild marks every funnel backfilling, in the transaction that
// empties the rollups for a rebuild: the replay then keeps the checkouts
// only, and rebuildEntries derives the entries after it, a chunk of
// customers at a time. (Replayed in stored order, a customer's events come
// out of time order: the stream would derive each customer again from all
// their events at every chunk.) holdForRebuild's changes are in memory
// once the transaction commits: call held then.
func (f *funnelPart) holdForRebuild(tx core.App) error {
	_, err := tx.DB().Update(FunnelsCollection, dbx.Params{"state": stateBackfilling}, nil).Execute()
	return err
}

// held reloads the definitions after holdForRebuild committed and stops
// any backfill running (a new generation of each funnel starts).
func (f *funnelPart) held(app core.App) error {
	if err := f.load(app); err != nil {
		return err
	}
	f.mu.Lock()
	for _, fn := range f.funnels {
		f.gen[fn.ID]++
	}
	f.mu.Unlock()
	return nil
}

// rebuildEntries derives every funnel that is backfilling, as its
// backfill does but here and now. progress counts customers over all
// funnels. A funnel edited meanwhile (its edit's backfill derives it) or a
// server stopping (the next start resumes it) is no error.
func (f *funnelPart) rebuildEntries(ctx context.Context, app core.App, progress func(done, total int)) error {
	type job struct {
		fn  Funnel
		gen int
	}
	var todo []job
	f.mu.Lock()
	for _, fn := range f.funnels {
		if fn.State != stateReady {
			todo = append(todo, job{*fn, f.gen[fn.ID]})
		}
	}
	f.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	var customers int
	if err := app.DB().NewQuery("SELECT COUNT(DISTINCT profile) FROM events WHERE profile > ''").Row(&customers); err != nil {
		return err
	}
	total, done := customers*len(todo), 0
	if progress != nil {
		progress(0, total)
	}
	for _, j := range todo {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := f.runBackfill(app, &j.fn, j.gen, func(n int) {
			done += n
			if progress != nil {
				progress(min(done, total), total)
			}
		})
		if err != nil && !errors.Is(err, errSuperseded) {
			return fmt.Errorf("funnel %s: %w", j.fn.ID, err)
		}
	}
	return nil
}

// funnelInput is a definition as an owner writes it (POST, PUT).
type funnelInput struct {
	Name       *string       `json:"name"`
	Steps      *[]FunnelStep `json:"steps"`
	WindowDays *int          `json:"window_days"`
	Position   *int          `json:"position"`
}

// routes: GET /funnels and /funnels/{id} for staff; POST, PUT /{id} and
// DELETE /{id} for owners. The group already requires staff.
func (f *funnelPart) routes(g *router.RouterGroup[*core.RequestEvent]) {
	g.GET("/funnels", func(e *core.RequestEvent) error {
		if err := f.ensureLoaded(e.App); err != nil {
			return api.Internal("Could not read the funnels.", err)
		}
		return e.JSON(200, map[string]any{
			"items": f.list(),
			// Cart abandonment is the report ?funnel=abandonment.
			"abandonment": map[string]any{"id": abandonmentID, "name": "Cart abandonment", "abandon_hours": f.abandonHours()},
		})
	})
	g.GET("/funnels/{id}", func(e *core.RequestEvent) error {
		if err := f.ensureLoaded(e.App); err != nil {
			return api.Internal("Could not read the funnels.", err)
		}
		fn, ok := f.find(e.Request.PathValue("id"))
		if !ok {
			return api.Error(404, "There is no funnel "+e.Request.PathValue("id")+".")
		}
		return e.JSON(200, fn)
	})
	g.POST("/funnels", func(e *core.RequestEvent) error {
		in, err := readFunnel(e)
		if err != nil {
			return err
		}
		if err := f.ensureLoaded(e.App); err != nil {
			return api.Internal("Could not read the funnels.", err)
		}
		fn := Funnel{ID: store.NewRecordID(), WindowDays: defaultWindowDays, CreatedBy: e.Auth.Id}
		if in.Position == nil {
			for _, x := range f.list() {
				fn.Position = max(fn.Position, x.Position+1)
			}
		}
		if err := applyFunnel(&fn, in, true); err != nil {
			return err
		}
		return f.save(e, &fn, true)
	}).Bind(api.RequireOwner())
	g.PUT("/funnels/{id}", func(e *core.RequestEvent) error {
		in, err := readFunnel(e)
		if err != nil {
			return err
		}
		if err := f.ensureLoaded(e.App); err != nil {
			return api.Internal("Could not read the funnels.", err)
		}
		fn, ok := f.find(e.Request.PathValue("id"))
		if !ok {
			return api.Error(404, "There is no funnel "+e.Request.PathValue("id")+".")
		}
		if err := applyFunnel(&fn, in, false); err != nil {
			return err
		}
		return f.save(e, &fn, false)
	}).Bind(api.RequireOwner())
	g.DELETE("/funnels/{id}", func(e *core.RequestEvent) error {
		id := e.Request.PathValue("id")
		f.bump(id) // a running backfill stops
		found := false
		err := e.App.RunInTransaction(func(tx core.App) error {
			res, err := tx.DB().Delete(FunnelsCollection, dbx.HashExp{"id": id}).Execute()
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			found = n > 0
			_, err = tx.DB().Delete(FunnelEntriesCollection, dbx.HashExp{"funnel": id}).Execute()
			return err
		})
		if err != nil {
			return api.Internal("Could not delete the funnel.", err)
		}
		if !found {
			return api.Error(404, "There is no funnel "+id+".")
		}
		if err := f.load(e.App); err != nil {
			return api.Internal("Could not read the funnels.", err)
		}
		return e.NoContent(204)
	}).Bind(api.RequireOwner())
}

// save writes a definition, drops its entries and backfills it again.
func (f *funnelPart) save(e *core.RequestEvent, fn *Funnel, create bool) error {
	f.bump(fn.ID) // a backfill of the old definition stops
	now := store.FormatTime(time.Now())
	fn.State, fn.Updated = stateBackfilling, now
	if create {
		fn.Created = now
	}
	steps, _ := json.Marshal(fn.Steps)
	p := dbx.Params{"name": fn.Name, "steps": string(steps), "window_days": fn.WindowDays, "position": fn.Position,
		"state": fn.State, "updated": fn.Updated}
	err := e.App.RunInTransaction(func(tx core.App) error {
		if create {
			p["id"], p["created_by"], p["created"] = fn.ID, fn.CreatedBy, fn.Created
			_, err := tx.DB().Insert(FunnelsCollection, p).Execute()
			return err
		}
		if _, err := tx.DB().Update(FunnelsCollection, p, dbx.HashExp{"id": fn.ID}).Execute(); err != nil {
			return err
		}
		_, err := tx.DB().Delete(FunnelEntriesCollection, dbx.HashExp{"funnel": fn.ID}).Execute()
		return err
	})
	if err != nil {
		return api.Internal("Could not save the funnel.", err)
	}
	if err := f.load(e.App); err != nil {
		return api.Internal("Could not read the funnels.", err)
	}
	if f.m.enabled {
		f.backfill(e.App, *fn)
	}
	status := 200
	if create {
		status = 201
	}
	return e.JSON(status, fn)
}

// readFunnel reads a definition body, refusing unknown fields.
func readFunnel(e *core.RequestEvent) (*funnelInput, error) {
	raw, err := io.ReadAll(io.LimitReader(e.Request.Body, 1<<16))
	if err != nil {
		return nil, api.BadRequest("name", "cannot read the body")
	}
	var in funnelInput
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&in); err != nil && !errors.Is(err, io.EOF) {
		field := "name"
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			field = ute.Field
		} else if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			field = strings.Trim(f, `"`)
		}
		return nil, api.BadRequest(field, "the body must be {name, steps: [{event, name, path, label}], window_days, position}: "+err.Error())
	}
	return &in, nil
}

// applyFunnel writes in over fn and checks the result: a name, 2 to 8
// steps each naming an event type, a window of 1 to 90 days. A new
// funnel must have a name and steps.
func applyFunnel(fn *Funnel, in *funnelInput, create bool) error {
	if in.Name != nil {
		fn.Name = strings.TrimSpace(*in.Name)
	}
	if fn.Name == "" {
		return api.BadRequest("name", "give the funnel a name")
	}
	if len(fn.Name) > 200 {
		return api.BadRequest("name", "at most 200 characters")
	}
	if in.Steps == nil && create {
		return api.BadRequest("steps", fmt.Sprintf("give %d to %d steps, each {event, name, path, label}", minSteps, maxSteps))
	}
	if in.Steps != nil {
		steps := *in.Steps
		if len(steps) < minSteps || len(steps) > maxSteps {
			return api.BadRequest("steps", fmt.Sprintf("a funnel has %d to %d steps, got %d", minSteps, maxSteps, len(steps)))
		}
		for i := range steps {
			s := &steps[i]
			field := fmt.Sprintf("steps.%d", i)
			s.Event, s.Name, s.Path, s.Label = strings.TrimSpace(s.Event), strings.TrimSpace(s.Name), strings.TrimSpace(s.Path), strings.TrimSpace(s.Label)
			switch {
			case s.Event == "":
				return api.BadRequest(field+".event", fmt.Sprintf("step %d needs an event type (e.g. page.viewed, checkout.started, order.placed)", i+1))
			case len(s.Event) > 100 || !eventTypePattern.MatchString(s.Event):
				return api.BadRequest(field+".event", fmt.Sprintf("step %d: %q is not an event type (lower case words joined by dots, e.g. order.placed)", i+1, s.Event))
			case len(s.Name) > 200:
				return api.BadRequest(field+".name", fmt.Sprintf("step %d: at most 200 characters", i+1))
			case len(s.Path) > 300:
				return api.BadRequest(field+".path", fmt.Sprintf("step %d: at most 300 characters", i+1))
			case s.Path != "" && s.Event != events.PageViewed:
				return api.BadRequest(field+".path", fmt.Sprintf("step %d: a path narrows page.viewed steps only", i+1))
			case len(s.Label) > 100:
				return api.BadRequest(field+".label", fmt.Sprintf("step %d: at most 100 characters", i+1))
			}
			if s.Label == "" {
				s.Label = s.Event
				if s.Name != "" {
					s.Label += " " + s.Name
				} else if s.Path != "" {
					s.Label += " " + s.Path
				}
			}
		}
		fn.Steps = steps
	}
	if in.WindowDays != nil {
		if *in.WindowDays < 1 || *in.WindowDays > maxWindowDays {
			return api.BadRequest("window_days", fmt.Sprintf("the conversion window is 1 to %d days, got %d", maxWindowDays, *in.WindowDays))
		}
		fn.WindowDays = *in.WindowDays
	}
	if in.Position != nil {
		fn.Position = *in.Position
	}
	return nil
}

// abandonHours is the setting "funnels" {abandon_hours}: how long after a
// checkout an order still completes it (default 24).
func (f *funnelPart) abandonHours() float64 {
	var s struct {
		AbandonHours float64 `json:"abandon_hours"`
	}
	if f.m.settings.get("funnels", &s) && s.AbandonHours > 0 && s.AbandonHours <= 24*90 {
		return s.AbandonHours
	}
	return 24
}
