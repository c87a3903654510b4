package metrics

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/store"
)

// Collections of the funnels part.
const (
	FunnelsCollection       = "metrics_funnels"
	FunnelEntriesCollection = "metrics_funnel_entries"
	CheckoutsCollection     = "metrics_checkouts"
)

// funnelPart keeps, for every owner-defined funnel, each customer's way
// through it (metrics_funnel_entries), and every checkout with the
// customer's next order (metrics_checkouts) for cart abandonment. Both are
// kept as events are stored so a report reads small indexed tables; a
// funnel that is created or edited is derived from the stored events in
// the background (funnels_defs.go). The report is in funnels_report.go.
type funnelPart struct {
	m *Module

	mu      sync.Mutex
	loaded  bool
	funnels []*Funnel      // by position
	gen     map[string]int // bumped on each edit: a backfill of an older definition stops
	bg      sync.WaitGroup // running backfills
	stopped bool
}

// fev is the part of an event funnels look at, read from a stored batch or
// from the events table.
type fev struct {
	id      string // events record id
	profile string
	typ     string
	name    string // custom event name, else properties.name, else the page title
	channel string
	at      time.Time
	path    string // page path
	props   map[string]any
	source  string
	eventID string
}

func fevOfStored(s *eventstore.Stored) *fev {
	ev := s.Event
	e := &fev{id: s.RecordID, profile: s.Profile, typ: ev.Type, name: ev.Name, channel: ev.Context.Channel,
		at: ev.OccurredAt.UTC(), props: ev.Properties, source: ev.Source, eventID: ev.ID}
	if e.name == "" {
		e.name, _ = ev.Properties["name"].(string)
	}
	if p := ev.Context.Page; p != nil {
		e.path = pagePath(p.Path, p.URL)
		if e.name == "" {
			e.name = p.Title
		}
	}
	return e
}

// funnelEventRow is an events row as rederive reads it.
type funnelEventRow struct {
	ID         string `db:"id"`
	EventID    string `db:"event_id"`
	Profile    string `db:"profile"`
	Type       string `db:"type"`
	Name       string `db:"name"`
	Source     string `db:"source"`
	Channel    string `db:"channel"`
	OccurredAt string `db:"occurred_at"`
	Properties string `db:"properties"`
	Context    string `db:"context"`
}

func (r *funnelEventRow) fev() *fev {
	e := &fev{id: r.ID, profile: r.Profile, typ: r.Type, name: r.Name, channel: r.Channel, source: r.Source, eventID: r.EventID}
	if t, err := types.ParseDateTime(r.OccurredAt); err == nil {
		e.at = t.Time().UTC()
	}
	_ = json.Unmarshal([]byte(r.Properties), &e.props)
	if e.name == "" {
		e.name, _ = e.props["name"].(string)
	}
	var c events.Context
	if json.Unmarshal([]byte(r.Context), &c) == nil {
		e.fromContext(c.Channel, c.Page)
	}
	return e
}

// stepFev is fev without the properties: the fields a step matches on.
func (r *funnelEventRow) stepFev() *fev {
	e := &fev{id: r.ID, profile: r.Profile, typ: r.Type, name: r.Name, channel: r.Channel}
	if t, err := types.ParseDateTime(r.OccurredAt); err == nil {
		e.at = t.Time().UTC()
	}
	if e.name == "" {
		var p struct {
			Name any `json:"name"`
		}
		_ = json.Unmarshal([]byte(r.Properties), &p)
		e.name, _ = p.Name.(string)
	}
	var c struct {
		Channel string       `json:"channel"`
		Page    *events.Page `json:"page"`
	}
	if json.Unmarshal([]byte(r.Context), &c) == nil {
		e.fromContext(c.Channel, c.Page)
	}
	return e
}

// fromContext fills what a step matches on from the event's context: the
// channel when the row has none, the page's path, and its title as the
// name when the event has none.
func (e *fev) fromContext(channel string, p *events.Page) {
	if e.channel == "" {
		e.channel = channel
	}
	if p != nil {
		e.path = pagePath(p.Path, p.URL)
		if e.name == "" {
			e.name = p.Title
		}
	}
}

func pagePath(path, rawURL string) string {
	if path != "" || rawURL == "" {
		return path
	}
	if u, err := url.Parse(rawURL); err == nil {
		return u.Path
	}
	return ""
}

// matches says whether an event is this step.
func (s FunnelStep) matches(e *fev) bool {
	if e.typ != s.Event {
		return false
	}
	if s.Name != "" && !strings.EqualFold(strings.TrimSpace(e.name), s.Name) {
		return false
	}
	if s.Path != "" {
		if rest, ok := strings.CutPrefix(s.Path, "*"); ok {
			return strings.Contains(e.path, rest)
		}
		return strings.HasPrefix(e.path, s.Path)
	}
	return true
}

// entry is one time a customer went into a funnel.
type entry struct {
	id        string
	enteredAt time.Time
	channel   string
	stepAt    []time.Time // one per step reached; len-1 is the highest step index
	changed   bool
}

func (en *entry) reached() int { return len(en.stepAt) - 1 }

// advance moves a customer's latest entry (nil when none) on with event e,
// taken in time order: the next step within the window moves it forward;
// the first step starts a new entry once the latest one has converted or
// its window has ended. It returns the latest entry after e.
func (f *Funnel) advance(cur *entry, e *fev) *entry {
	last := len(f.Steps) - 1
	window := time.Duration(f.WindowDays) * 24 * time.Hour
	if cur != nil && cur.reached() < last && e.at.Before(cur.enteredAt.Add(window)) &&
		!e.at.Before(cur.stepAt[cur.reached()]) && f.Steps[cur.reached()+1].matches(e) {
		cur.stepAt = append(cur.stepAt, e.at)
		cur.changed = true
		return cur
	}
	if f.Steps[0].matches(e) && (cur == nil || cur.reached() == last || !e.at.Before(cur.enteredAt.Add(window))) {
		return &entry{enteredAt: e.at, channel: e.channel, stepAt: []time.Time{e.at}, changed: true}
	}
	return cur
}

// stepTypes lists the event types the funnels' steps are made of.
func stepTypes(fs []*Funnel) []string {
	var out []string
	for _, f := range fs {
		for _, s := range f.Steps {
			if !slices.Contains(out, s.Event) {
				out = append(out, s.Event)
			}
		}
	}
	return out
}

func (f *funnelPart) process(tx core.App, batch []*eventstore.Stored) error {
	if err := f.ensureLoaded(tx); err != nil {
		return err
	}
	ready := f.readyFunnels()
	types := stepTypes(ready)
	var evs []*fev
	for _, s := range batch {
		if s.Profile == "" {
			continue
		}
		switch t := s.Event.Type; {
		case t == events.CheckoutStarted || t == events.OrderPlaced || slices.Contains(types, t):
			evs = append(evs, fevOfStored(s))
		}
	}
	if len(evs) == 0 {
		return nil
	}
	slices.SortStableFunc(evs, func(a, b *fev) int { return a.at.Compare(b.at) })
	if err := f.checkoutsOf(tx, evs); err != nil {
		return err
	}
	// Per funnel, the batch's events of each customer, in time order.
	byProfile := make([]map[string][]*fev, len(ready))
	orders := make([][]string, len(ready))
	var pairs []funnelProfile
	for i, fn := range ready {
		byProfile[i] = map[string][]*fev{}
		for _, e := range evs {
			if !slices.ContainsFunc(fn.Steps, func(s FunnelStep) bool { return s.matches(e) }) {
				continue
			}
			if byProfile[i][e.profile] == nil {
				orders[i] = append(orders[i], e.profile)
				pairs = append(pairs, funnelProfile{fn.ID, e.profile})
			}
			byProfile[i][e.profile] = append(byProfile[i][e.profile], e)
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	latest, err := latestEntries(tx, pairs)
	if err != nil {
		return err
	}
	// A customer without an entry has no stored event of the first step
	// (it would have opened one): unless this batch brings one, nothing of
	// theirs can change, early or late.
	live := make([][]string, len(ready))
	for i, fn := range ready {
		for _, p := range orders[i] {
			if latest[funnelProfile{fn.ID, p}] != nil || slices.ContainsFunc(byProfile[i][p], fn.Steps[0].matches) {
				live[i] = append(live[i], p)
			}
		}
	}
	late, err := lateProfiles(tx, f.m.horizonOf(), ready, live, byProfile, evs)
	if err != nil {
		return err
	}
	w := f.entryWriter(tx)
	defer w.close()
	for i, fn := range ready {
		var again []string
		since := map[string]time.Time{}
		for _, p := range live[i] {
			// A late delivery (an earlier event after later ones that were
			// already applied or skipped) is derived again from the events
			// table, which holds this batch too.
			if late[funnelProfile{fn.ID, p}] {
				again, since[p] = append(again, p), byProfile[i][p][0].at
				continue
			}
			if ok, err := w.advance(fn, p, latest[funnelProfile{fn.ID, p}], byProfile[i][p]); err != nil {
				return err
			} else if !ok {
				again, since[p] = append(again, p), byProfile[i][p][0].at
			}
		}
		if err := w.flush(); err != nil {
			return err
		}
		if err := f.rederiveSince(tx, []*Funnel{fn}, again, since); err != nil {
			return err
		}
	}
	return nil
}

// funnelProfile names a customer's way through one funnel.
type funnelProfile struct{ funnel, profile string }

// lateProfiles says, per funnel, which customers have an event of the
// funnel's step types stored before this batch and later than their first
// event of it in the batch. One query for every funnel: the latest such
// stored event of each customer and type, read from the (profile,
// occurred_at) index from the customer's first time in the batch on, so
// nothing when events come in time order.
func lateProfiles(tx core.App, horizon int64, fns []*Funnel, live [][]string, byProfile []map[string][]*fev, batch []*fev) (map[funnelProfile]bool, error) {
	from := map[string]string{} // customer → their earliest time in the batch over the funnels
	var profiles []string
	for i := range fns {
		for _, p := range live[i] {
			t := store.FormatTime(byProfile[i][p][0].at)
			if cur, ok := from[p]; !ok {
				profiles = append(profiles, p)
				from[p] = t
			} else if t < cur {
				from[p] = t
			}
		}
	}
	if len(profiles) == 0 {
		return nil, nil
	}
	typs := stepTypes(fns)
	b := make([]string, len(profiles))
	for i, p := range profiles {
		b[i] = pairArg(p, from[p])
	}
	ids := make([]string, len(batch))
	for i, e := range batch {
		ids[i] = e.id
	}
	rows, err := store.Executor(tx).Query("WITH b(p, t) AS MATERIALIZED (SELECT "+pairSQL+" FROM json_each(?)) "+
		"SELECT b.p, e.type, MAX(e.occurred_at) FROM b CROSS JOIN events e ON e.profile = b.p AND e.occurred_at > b.t "+
		"WHERE +e.type IN (SELECT value FROM json_each(?)) AND e.id NOT IN (SELECT value FROM json_each(?)) AND e.rowid <= ? GROUP BY b.p, e.type",
		jsonArg(b), jsonArg(typs), jsonArg(ids), horizon)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[funnelProfile]bool{}
	for rows.Next() {
		var p, typ, last string
		if err := rows.Scan(&p, &typ, &last); err != nil {
			return nil, err
		}
		// Later than the customer's first event of a funnel in the batch,
		// for the funnels with steps of that type.
		for i, fn := range fns {
			evs := byProfile[i][p]
			if len(evs) > 0 && last > store.FormatTime(evs[0].at) &&
				slices.ContainsFunc(fn.Steps, func(s FunnelStep) bool { return s.Event == typ }) {
				out[funnelProfile{fn.ID, p}] = true
			}
		}
	}
	return out, rows.Err()
}

// latestEntries reads each customer's latest entry into each funnel: one
// query a funnel for a batch, an index seek a customer.
func latestEntries(tx core.App, pairs []funnelProfile) (map[funnelProfile]*entry, error) {
	byFunnel := map[string][]string{}
	var fns []string
	for _, k := range pairs {
		if byFunnel[k.funnel] == nil {
			fns = append(fns, k.funnel)
		}
		byFunnel[k.funnel] = append(byFunnel[k.funnel], k.profile)
	}
	out := map[funnelProfile]*entry{}
	for _, fn := range fns {
		rows, err := store.Executor(tx).Query("SELECT e.id, e.profile, e.entered_at, e.channel, e.step_at FROM json_each(?2) k CROSS JOIN "+FunnelEntriesCollection+
			" e ON e.rowid = (SELECT rowid FROM "+FunnelEntriesCollection+" l WHERE l.profile = k.value AND l.funnel = ?1 ORDER BY l.entered_at DESC, l.rowid DESC LIMIT 1)",
			fn, jsonArg(byFunnel[fn]))
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id, profile, enteredAt, channel, stepAt string
			if err := rows.Scan(&id, &profile, &enteredAt, &channel, &stepAt); err != nil {
				rows.Close()
				return nil, err
			}
			out[funnelProfile{fn, profile}] = &entry{id: id, channel: channel, stepAt: stepTimes(stepAt)}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// entryWriter writes the entries that changed: updates at once, new
// entries many rows to a statement (flush writes the rest).
type entryWriter struct {
	f    *funnelPart
	st   *store.Statements
	args []any // of the pending new entries, entryColumns each
	// keep (while a customer is derived again) holds the ids of the
	// entries stored, by entrySig: a new entry equal to one is not written
	// and what is left in it is deleted.
	keep map[string][]string
	// The pending updates of stored entries: id, reached, step_at,
	// convert_secs each, and where each id's are.
	upArgs  []any
	updates map[string]int
}

const (
	entryColumns = 9
	// entriesPerInsert keeps a statement's parameters well under SQLite's
	// limit (32766).
	entriesPerInsert = 500
)

func (f *funnelPart) entryWriter(tx core.App) *entryWriter {
	return &entryWriter{f: f, st: store.NewStatements(tx)}
}

// advance applies a customer's new events (in time order) to their latest
// entry (nil when none). It returns false, writing nothing, when an event
// is older than the latest step already recorded (a late delivery, which
// could change earlier entries: the customer is to be derived again).
func (w *entryWriter) advance(fn *Funnel, profile string, cur *entry, evs []*fev) (bool, error) {
	if cur != nil {
		if len(cur.stepAt) == 0 || evs[0].at.Before(cur.stepAt[len(cur.stepAt)-1]) {
			return false, nil
		}
		cur.enteredAt = cur.stepAt[0]
	}
	var out []*entry
	for _, e := range evs {
		next := fn.advance(cur, e)
		if next != cur {
			out = append(out, next)
		} else if cur != nil && cur.changed && !slices.Contains(out, cur) {
			out = append(out, cur)
		}
		cur = next
	}
	return true, w.add(fn, profile, out)
}

// add writes (or queues) the entries of es that changed; new ones have no
// id yet.
func (w *entryWriter) add(fn *Funnel, profile string, es []*entry) error {
	last := len(fn.Steps) - 1
	for _, en := range es {
		if !en.changed {
			continue
		}
		steps := make([]string, len(en.stepAt))
		for i, t := range en.stepAt {
			steps[i] = store.FormatTime(t)
		}
		stepJSON, _ := json.Marshal(steps)
		secs := 0.0
		if en.reached() == last {
			secs = en.stepAt[last].Sub(en.stepAt[0]).Seconds()
		}
		if en.id != "" {
			if w.updates == nil {
				w.updates = map[string]int{}
			}
			if i, ok := w.updates[en.id]; ok { // the later values win
				w.upArgs[i+1], w.upArgs[i+2], w.upArgs[i+3] = en.reached(), string(stepJSON), secs
				continue
			}
			w.updates[en.id] = len(w.upArgs)
			w.upArgs = append(w.upArgs, en.id, en.reached(), string(stepJSON), secs)
			if len(w.upArgs) >= entriesPerInsert*4 {
				if err := w.flush(); err != nil {
					return err
				}
			}
			continue
		}
		enteredAt, day := store.FormatTime(en.enteredAt), en.enteredAt.In(w.f.m.loc).Format(dayLayout)
		if w.keep != nil {
			sig := entrySig(fn.ID, profile, enteredAt, day, en.channel, en.reached(), string(stepJSON), secs)
			if ids := w.keep[sig]; len(ids) > 0 { // stored as it is
				if w.keep[sig] = ids[1:]; len(ids) == 1 {
					delete(w.keep, sig)
				}
				continue
			}
		}
		w.args = append(w.args, store.NewRecordID(), fn.ID, profile, enteredAt, day, en.channel, en.reached(), string(stepJSON), secs)
		if len(w.args) >= entriesPerInsert*entryColumns {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush writes the queued updates and inserts the queued new entries.
func (w *entryWriter) flush() error {
	if len(w.upArgs) > 0 {
		if err := w.st.ExecRows("UPDATE "+FunnelEntriesCollection+" SET reached = v.column2, step_at = v.column3, convert_secs = v.column4 FROM (VALUES ",
			4, ") AS v WHERE "+FunnelEntriesCollection+".id = v.column1", w.upArgs); err != nil {
			return err
		}
		w.upArgs, w.updates = w.upArgs[:0], nil
	}
	if len(w.args) == 0 {
		return nil
	}
	err := w.st.ExecRows("INSERT INTO "+FunnelEntriesCollection+" (id, funnel, profile, entered_at, day, channel, reached, step_at, convert_secs) VALUES ",
		entryColumns, "", w.args)
	w.args = w.args[:0]
	return err
}

func (w *entryWriter) close() { w.st.Close() }

// rederive drops the customers' entries of the funnels and derives them
// again from all their events.
func (f *funnelPart) rederive(tx core.App, fns []*Funnel, profiles []string) error {
	return f.rederiveSince(tx, fns, profiles, nil)
}

// storedEntry is a funnel entry as stored.
type storedEntry struct {
	ID          string  `db:"id"`
	Funnel      string  `db:"funnel"`
	Profile     string  `db:"profile"`
	EnteredAt   string  `db:"entered_at"`
	Day         string  `db:"day"`
	Channel     string  `db:"channel"`
	Reached     int     `db:"reached"`
	StepAt      string  `db:"step_at"`
	ConvertSecs float64 `db:"convert_secs"`
	Since       string  `db:"since"`
}

func (k *storedEntry) sig() string {
	return entrySig(k.Funnel, k.Profile, k.EnteredAt, k.Day, k.Channel, k.Reached, k.StepAt, k.ConvertSecs)
}

// rederiveSince derives the customers' entries into the funnels again
// from their events, for a customer in since only from that time on: a
// late event changes nothing before its time. The derivation is a walk
// through the customer's events in time order in which only the latest
// entry moves, so the walk can start at since from the state it had
// there: the latest entry that began before since, with the steps it took
// from since on taken back (the events that made them are walked again).
// The entries that began at since or later are derived again; those that
// come out as they are stored stay, the rest are deleted or written, so
// the per-day counts' triggers run for those only. A customer not in
// since is derived from all their events.
func (f *funnelPart) rederiveSince(tx core.App, fns []*Funnel, profiles []string, since map[string]time.Time) error {
	if len(fns) == 0 || len(profiles) == 0 {
		return nil
	}
	from := make([]string, len(profiles))
	for i, p := range profiles {
		if t, ok := since[p]; ok {
			from[i] = pairArg(p, store.FormatTime(t))
		} else {
			from[i] = pairArg(p, "")
		}
	}
	w := f.entryWriter(tx)
	defer w.close()
	w.keep = map[string][]string{}
	defer func() { w.keep = nil }()
	// start is each customer's state at since per funnel: the entry that
	// was latest there (nil when none), and its steps as stored.
	type start struct {
		cur    *entry
		stored []time.Time
	}
	starts := make([]map[string]start, len(fns))
	for i, fn := range fns {
		// Per customer, the entries from the latest one that began before
		// since on (every one when since is empty).
		var kept []storedEntry
		err := tx.DB().NewQuery("WITH b(p, t) AS MATERIALIZED (SELECT " + pairSQL + " FROM json_each({:from})) " +
			"SELECT e.id, e.funnel, e.profile, e.entered_at, e.day, e.channel, e.reached, e.step_at, e.convert_secs, b.t AS since " +
			"FROM b CROSS JOIN " + FunnelEntriesCollection + " e ON e.profile = b.p AND e.funnel = {:fn} AND e.entered_at >= " +
			"COALESCE((SELECT MAX(l.entered_at) FROM " + FunnelEntriesCollection + " l WHERE l.profile = b.p AND l.funnel = {:fn} AND l.entered_at < b.t), b.t)").
			Bind(dbx.Params{"from": jsonArg(from), "fn": fn.ID}).All(&kept)
		if err != nil {
			return err
		}
		starts[i] = map[string]start{}
		for _, k := range kept {
			if k.EnteredAt >= k.Since {
				w.keep[k.sig()] = append(w.keep[k.sig()], k.ID)
				continue
			}
			// Began before since. Of entries that began at the same time
			// (one converted at once, the next began), the one whose steps
			// go furthest in time, else the one not converted, was latest.
			en := storedEntryOf(&k)
			if len(en.stepAt) == 0 { // unreadable: no state to go on from; it goes
				w.keep[k.sig()] = append(w.keep[k.sig()], k.ID)
				continue
			}
			s, seen := starts[i][k.Profile]
			if seen && !laterEntry(en, &entry{stepAt: s.stored}, len(fn.Steps)-1) {
				continue
			}
			cur := &entry{id: en.id, enteredAt: en.enteredAt, channel: en.channel}
			for _, t := range en.stepAt {
				if store.FormatTime(t) < k.Since {
					cur.stepAt = append(cur.stepAt, t)
				}
			}
			starts[i][k.Profile] = start{cur: cur, stored: en.stepAt}
		}
	}
	rows, err := stepEventsSince(tx, f.m.horizonOf(), from, stepTypes(fns))
	if err != nil {
		return err
	}
	for i, fn := range fns {
		var cur *entry
		var out []*entry
		prev := ""
		walked := map[string]bool{}
		begin := func(p string) {
			prev, out = p, nil
			walked[p] = true
			if cur = starts[i][p].cur; cur != nil {
				out = append(out, cur)
			}
		}
		flush := func() error {
			if s := starts[i][prev]; s.cur != nil {
				s.cur.changed = !slices.Equal(s.cur.stepAt, s.stored)
			}
			err := w.add(fn, prev, out)
			cur, out = nil, nil
			return err
		}
		for _, e := range rows {
			if e.profile != prev {
				if err := flush(); err != nil {
					return err
				}
				begin(e.profile)
			}
			if next := fn.advance(cur, e); next != cur {
				out = append(out, next)
				cur = next
			}
		}
		if err := flush(); err != nil {
			return err
		}
		// Customers with no event left from since on: the entry latest
		// there keeps only its earlier steps.
		for p, s := range starts[i] {
			if !walked[p] && s.cur != nil {
				begin(p)
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	var gone []any
	for _, ids := range w.keep {
		for _, id := range ids {
			gone = append(gone, id)
		}
	}
	for i := 0; i < len(gone); i += entriesPerInsert {
		if _, err := tx.DB().Delete(FunnelEntriesCollection, dbx.In("id", gone[i:min(i+entriesPerInsert, len(gone))]...)).Execute(); err != nil {
			return err
		}
	}
	return w.flush()
}

// storedEntryOf is a stored entry as the derivation holds it.
func storedEntryOf(k *storedEntry) *entry {
	en := &entry{id: k.ID, channel: k.Channel, stepAt: stepTimes(k.StepAt)}
	if len(en.stepAt) > 0 {
		en.enteredAt = en.stepAt[0]
	}
	return en
}

// stepTimes reads an entry's stored step_at (a JSON list of times); what
// cannot be read is left out.
func stepTimes(stepAt string) []time.Time {
	var steps []string
	_ = json.Unmarshal([]byte(stepAt), &steps)
	var out []time.Time
	for _, s := range steps {
		if t, err := types.ParseDateTime(s); err == nil {
			out = append(out, t.Time().UTC())
		}
	}
	return out
}

// laterEntry reports whether a, of two entries that began at the same
// time, came after b: only the latest of them can have taken a step after
// that time or be short of the last step.
func laterEntry(a, b *entry, last int) bool {
	at, bt := a.stepAt[len(a.stepAt)-1], b.stepAt[len(b.stepAt)-1]
	if !at.Equal(bt) {
		return at.After(bt)
	}
	return a.reached() < last && b.reached() == last
}

// entrySig is an entry's stored values but its id.
func entrySig(funnel, profile, enteredAt, day, channel string, reached int, stepAt string, secs float64) string {
	return strings.Join([]string{funnel, profile, enteredAt, day, channel, strconv.Itoa(reached), stepAt, strconv.FormatFloat(secs, 'g', -1, 64)}, "\x00")
}

// stepEventsSince reads the events of the given types of the customers
// in from (pairArg(customer, time) each, from that stored time on; all of
// them for an empty time), by customer and time, with only what a step
// matches on (no properties kept; a small decode of the JSON columns
// instead of maps).
func stepEventsSince(tx core.App, horizon int64, from []string, typs []string) ([]*fev, error) {
	if len(typs) == 0 {
		return nil, nil
	}
	var rows []funnelEventRow
	err := tx.DB().NewQuery("WITH b(p, t) AS MATERIALIZED (SELECT " + pairSQL + " FROM json_each({:from})) " +
		"SELECT e.id, e.profile, e.type, e.name, e.channel, e.occurred_at, e.properties, e.context " +
		"FROM b CROSS JOIN events e ON e.profile = b.p AND e.occurred_at >= b.t " +
		"WHERE +e.type IN (SELECT value FROM json_each({:types})) AND e.rowid <= {:horizon} ORDER BY e.profile, e.occurred_at, e.id").
		Bind(dbx.Params{"from": jsonArg(from), "types": jsonArg(typs), "horizon": horizon}).All(&rows)
	if err != nil {
		return nil, err
	}
	out := make([]*fev, len(rows))
	for i := range rows {
		out[i] = rows[i].stepFev()
	}
	return out, nil
}

// profileEvents reads the customers' events of the given types, by
// customer and time.
func profileEvents(tx core.App, horizon int64, profiles, typs []string) ([]*fev, error) {
	if len(typs) == 0 {
		return nil, nil
	}
	var rows []funnelEventRow
	err := tx.DB().Select("id", "event_id", "profile", "type", "name", "source", "channel", "occurred_at", "properties", "context").
		From("events").Where(dbx.And(dbx.In("profile", anys(profiles)...), dbx.In("type", anys(typs)...), beforeHorizon(horizon))).
		OrderBy("profile", "occurred_at", "id").All(&rows)
	if err != nil {
		return nil, err
	}
	out := make([]*fev, len(rows))
	for i := range rows {
		out[i] = rows[i].fev()
	}
	return out, nil
}

// jsonArg passes a list to a query as one parameter, read with
// json_each: the SQLite driver binds each parameter by a search of them
// all, so a statement with thousands of them costs more in the binding
// than in SQLite. Only for text and integers (a JSON number is read back
// as a float not always to the bit).
func jsonArg(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// pairArg and pairSQL pass two strings as one element of a jsonArg list
// (a JSON array a pair costs SQLite a parse a column): a customer id and
// a time, which hold no unit separator.
func pairArg(a, b string) string { return a + "\x1f" + b }

const pairSQL = "substr(value, 1, instr(value, char(31)) - 1), substr(value, instr(value, char(31)) + 1)"

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// checkoutKey names one checkout however often it is reported: the
// source's checkout token (or id, or cart id), else the event.
func checkoutKey(e *fev) string {
	for _, k := range []string{"checkout_token", "token", "checkout_id", "cart_id", "cart_token"} {
		switch v := e.props[k].(type) {
		case string:
			if v != "" {
				return e.source + ":" + v
			}
		case float64:
			return e.source + ":" + strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	return e.source + ":event:" + e.eventID
}

// orderTotal reads an order's amount under the names vendors and
// analytics libraries use.
func orderTotal(props map[string]any) (float64, string) {
	cur, _ := props["currency"].(string)
	for _, k := range []string{"total", "revenue", "value", "total_price", "amount"} {
		switch v := props[k].(type) {
		case float64:
			return v, strings.ToUpper(cur)
		case string:
			if x, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return x, strings.ToUpper(cur)
			}
		}
	}
	return 0, strings.ToUpper(cur)
}

const (
	// The merged_into condition lets SQLite use the partial index on
	// merged_into instead of reading every profile.
	journeyMessageSQL = "SELECT journey_run FROM messages WHERE profile IN (SELECT ?1 UNION SELECT id FROM profiles WHERE merged_into = ?1 AND merged_into != '')" +
		" AND created >= ?2 AND created <= ?3 AND journey_run != '' AND status IN ('sent', 'delivered', 'read') ORDER BY created DESC LIMIT 1"
	setNextOrderSQL = "UPDATE " + CheckoutsCollection + " SET order_at = ?, order_event = ?, order_total = ?, order_currency = ?, order_after = ?, recovered_run = ? WHERE id = ?"
)

// checkoutRow is a checkout's row with the order that follows it.
func (f *funnelPart) checkoutRow(e *fev, o nextOrder) []any {
	return []any{store.NewRecordID(), checkoutKey(e), e.profile, e.id, store.FormatTime(e.at), e.at.In(f.m.loc).Format(dayLayout), e.channel,
		o.at, o.event, o.total, o.currency, o.after, o.run}
}

const (
	checkoutColumns   = 13
	checkoutsPerQuery = 500
	// pairsPerQuery bounds a read's JSON list (customers, or funnel and
	// customer pairs).
	pairsPerQuery = 2000
)

// checkoutsOf records a batch's checkouts (each with the customer's first
// order at or after it) and gives its orders to the earlier checkouts
// they follow, as doing so one event at a time in time order would, in a
// few statements: the checkouts' next orders are read in one query and
// the checkouts written many to an INSERT (the events table holds the
// whole batch, so a checkout's next order is known before the batch's
// orders are applied; an order never changes a checkout of this batch,
// which has it or an earlier one).
func (f *funnelPart) checkoutsOf(tx core.App, evs []*fev) error {
	var cos, orders []*fev
	for _, e := range evs {
		switch e.typ {
		case events.CheckoutStarted:
			cos = append(cos, e)
		case events.OrderPlaced:
			orders = append(orders, e)
		}
	}
	if len(cos) == 0 && len(orders) == 0 {
		return nil
	}
	c := store.NewStatements(tx)
	defer c.Close()
	for i := 0; i < len(cos); i += checkoutsPerQuery {
		chunk := cos[i:min(i+checkoutsPerQuery, len(cos))]
		next, err := nextOrders(c.Executor(), chunk)
		if err != nil {
			return err
		}
		args := make([]any, 0, checkoutColumns*len(chunk))
		for j, e := range chunk {
			o := nextOrder{after: -1} // none yet
			if r := next[j]; r != nil {
				// The journey's message is looked for only before an order.
				o = f.nextOrder(c, e.profile, e.at, r.fev())
			}
			args = append(args, f.checkoutRow(e, o)...)
		}
		// Rows go in in time order: of two with one key, the first stays.
		if err := c.ExecRows("INSERT INTO "+CheckoutsCollection+" (id, key, profile, event, started_at, day, channel, order_at, order_event, order_total, order_currency, order_after, recovered_run) VALUES ",
			checkoutColumns, " ON CONFLICT(key) DO NOTHING", args); err != nil {
			return err
		}
	}
	return f.ordersPlaced(c, orders)
}

// nextOrders reads the first order at or after each checkout of its
// customer (nil when none), one query for them all.
func nextOrders(ex dbx.Executor, cos []*fev) ([]*funnelEventRow, error) {
	c := make([]string, len(cos)) // by position
	for i, e := range cos {
		c[i] = pairArg(e.profile, store.FormatTime(e.at))
	}
	// A seek on the customer's events (profile, time) each: the unary +
	// keeps SQLite there (on the type index it reads every later order of
	// every customer).
	rows, err := ex.Query("WITH c(i, p, t) AS MATERIALIZED (SELECT key, "+pairSQL+" FROM json_each(?)) "+
		"SELECT c.i, o.id, o.occurred_at, o.properties FROM c CROSS JOIN events o ON o.id = "+
		"(SELECT id FROM events WHERE profile = c.p AND occurred_at >= c.t AND +type = 'order.placed' ORDER BY occurred_at, id LIMIT 1)", jsonArg(c))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]*funnelEventRow, len(cos))
	for rows.Next() {
		var i int
		r := &funnelEventRow{}
		if err := rows.Scan(&i, &r.ID, &r.OccurredAt, &r.Properties); err != nil {
			return nil, err
		}
		if i >= 0 && i < len(out) {
			out[i] = r
		}
	}
	return out, rows.Err()
}

// nextOrder is what a checkout keeps of the order that follows it: when,
// which, how much, and the journey run whose message reached the customer
// in between (the recovery). The zero value (after -1) is none yet.
type nextOrder struct {
	at, event, currency, run string
	total, after             float64
}

func (f *funnelPart) nextOrder(c *store.Statements, profile string, started time.Time, o *fev) nextOrder {
	total, cur := orderTotal(o.props)
	return nextOrder{at: store.FormatTime(o.at), event: o.id, total: total, currency: cur,
		after: o.at.Sub(started).Seconds(), run: journeyMessageBetween(c, profile, started, o.at)}
}

// journeyMessageBetween returns the journey run of the last message of a
// journey sent to the customer (or to a customer merged into them) from
// one time to another, "" when none. The send ledger belongs to messaging:
// without it there is none.
func journeyMessageBetween(c *store.Statements, profile string, from, to time.Time) string {
	st, err := c.Get(journeyMessageSQL)
	if err != nil {
		return ""
	}
	var run string
	_ = st.QueryRow(profile, store.FormatTime(from), store.FormatTime(to)).Scan(&run)
	return run
}

// ordersPlaced makes each order (in time order) the next order of the
// customer's earlier checkouts that had none or a later one. The
// checkouts any of them could change are read in one query.
func (f *funnelPart) ordersPlaced(c *store.Statements, orders []*fev) error {
	if len(orders) == 0 {
		return nil
	}
	type span struct{ from, to string }
	spans := map[string]*span{}
	var profiles []string
	for _, e := range orders {
		t := store.FormatTime(e.at)
		if s := spans[e.profile]; s != nil {
			s.to = t
		} else {
			spans[e.profile] = &span{t, t}
			profiles = append(profiles, e.profile)
		}
	}
	type open struct{ id, startedAt, orderAt string }
	opens := map[string][]*open{}
	for i := 0; i < len(profiles); i += pairsPerQuery {
		chunk := profiles[i:min(i+pairsPerQuery, len(profiles))]
		o := make([][3]string, len(chunk))
		for j, p := range chunk {
			o[j] = [3]string{p, spans[p].from, spans[p].to}
		}
		// The checkouts any of the customer's orders in the batch could be
		// the next order of: started by the last, without an order or with
		// one after the first.
		rows, err := c.Executor().Query("WITH o(p, t0, t1) AS MATERIALIZED (SELECT value->>0, value->>1, value->>2 FROM json_each(?)) "+
			"SELECT c.id, c.profile, c.started_at, COALESCE(c.order_at, '') FROM o CROSS JOIN "+CheckoutsCollection+
			" c ON c.profile = o.p AND c.started_at <= o.t1 AND (c.order_at = '' OR c.order_at IS NULL OR c.order_at > o.t0)", jsonArg(o))
		if err != nil {
			return err
		}
		for rows.Next() {
			var o open
			var p string
			if err := rows.Scan(&o.id, &p, &o.startedAt, &o.orderAt); err != nil {
				rows.Close()
				return err
			}
			opens[p] = append(opens[p], &o)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	for _, e := range orders {
		at := store.FormatTime(e.at)
		for _, r := range opens[e.profile] {
			if r.startedAt > at || (r.orderAt != "" && r.orderAt <= at) {
				continue
			}
			started, err := types.ParseDateTime(r.startedAt)
			if err != nil {
				continue
			}
			o := f.nextOrder(c, e.profile, started.Time(), e)
			up, err := c.Get(setNextOrderSQL)
			if err != nil {
				return err
			}
			if _, err := up.Exec(o.at, o.event, o.total, o.currency, o.after, o.run, r.id); err != nil {
				return err
			}
			r.orderAt = o.at
		}
	}
	return nil
}

// rederiveCheckouts drops the customers' checkouts and records them again
// from their events.
func (f *funnelPart) rederiveCheckouts(tx core.App, profiles []string) error {
	if _, err := tx.DB().Delete(CheckoutsCollection, dbx.In("profile", anys(profiles)...)).Execute(); err != nil {
		return err
	}
	evs, err := profileEvents(tx, f.m.horizonOf(), profiles, []string{events.CheckoutStarted})
	if err != nil {
		return err
	}
	// In the customers' time order: of two with one key, the first stays.
	return f.checkoutsOf(tx, evs)
}

func (f *funnelPart) recompute(tx core.App, profiles []string) error {
	if err := f.ensureLoaded(tx); err != nil {
		return err
	}
	if err := f.rederiveCheckouts(tx, profiles); err != nil {
		return err
	}
	return f.rederive(tx, f.readyFunnels(), profiles)
}

func (f *funnelPart) reset(tx core.App) error {
	// The triggers empty the per-day counts as the rows go; the last two
	// make sure (the checkouts' window row stays).
	for _, q := range []string{"DELETE FROM " + FunnelEntriesCollection, "DELETE FROM " + CheckoutsCollection,
		"DELETE FROM " + FunnelDailyCollection, "DELETE FROM " + CheckoutDailyCollection + " WHERE day != ''"} {
		if _, err := tx.DB().NewQuery(q).Execute(); err != nil {
			return err
		}
	}
	return nil
}
