package profiles

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/relay"
	"github.com/omni/omni/core/segmentrule"
	"github.com/omni/omni/core/store"
	"github.com/omni/omni/internal/jsonenc"
)

// segment is a compiled-on-demand segment definition.
type segment struct {
	id, name string
	rule     *Rule
	// reads is what the rule reads of a profile (segment references
	// followed), at the grain profiles compare: the top-level trait.
	reads []segmentrule.Read
	// windows is, per event type the rule counts, the widest window in
	// days (0: all time; segmentrule.EventWindows).
	windows map[string]int
	// conds are the rule's conditions Go answers from values
	// (segmentrule.StateConditions); their answers for a profile are
	// kept from condAt in profile.condAnswers.
	conds  []*Rule
	condAt int
	// stateAt is, for each of reads, its place in the segments'
	// stateReads (-1 for events and staff tags, which no row holds).
	stateAt []int
	// readsDerived: the rule reads computed values, which may wait to be
	// written (behind.go); its SQL reads the waiting rows' computed JSON
	// (readSegmentRows).
	readsDerived bool
}

// stateReads is every read of the segments that a profile's stored row
// answers (not events, not staff tags), in the order readState records
// them, with Computed's field for each computed one (-1 otherwise). A
// new segment list makes a new value, so a profile's segState names the
// list it was recorded for (profile.segStateOf).
type stateReads struct {
	reads  []segmentrule.Read
	fields []int
}

func newStateReads(reads []segmentrule.Read) *stateReads {
	st := &stateReads{reads: reads, fields: make([]int, len(reads))}
	for i, r := range reads {
		st.fields[i] = -1
		if f, ok := computedField[r.Path]; ok && r.Source == "computed" {
			st.fields[i] = f
		}
	}
	return st
}

type segmentCache struct {
	mu   sync.RWMutex
	list []*segment
	byID map[string]*segment
	// state is what readState records of a profile for list.
	state *stateReads
	// conds is how many conditions the segments' conds hold in all.
	conds int
	// epoch moves whenever memberships may have changed other than by the
	// events path's own evaluation (the list reloaded, the scheduled
	// pass, staff tags, an unmerge, an edit at /_/): profiles' answers
	// from an earlier epoch are no longer their memberships.
	epoch atomic.Uint64
	// kept counts the segment answers the events path left alone because
	// Go decided them unchanged, and decided those whose membership Go's
	// answer set without SQL evaluating the rule (tests and benches read
	// them).
	kept, decided atomic.Int64
}

// invalidateAnswers starts a new epoch (see segmentCache.epoch). It is
// called inside the transaction that changes memberships, so no events
// batch runs between the change and the new epoch.
func (c *segmentCache) invalidateAnswers() { c.epoch.Add(1) }

// reads returns the segments' state reads.
func (c *segmentCache) reads() []segmentrule.Read {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.state == nil {
		return nil
	}
	return c.state.reads
}

func (c *segmentCache) snapshot() ([]*segment, map[string]*segment) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.list, c.byID
}

func (c *segmentCache) lookup(id string) (*Rule, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	return s.rule, true
}

// loadSegments reads every segment definition (a bad stored rule is logged
// and skipped rather than stopping the pipeline).
func (m *Module) loadSegments(app core.App) error {
	var rows []struct {
		ID   string `db:"id"`
		Name string `db:"name"`
		Rule string `db:"rule"`
	}
	if err := app.DB().NewQuery("SELECT id, name, rule FROM segments ORDER BY created, id").All(&rows); err != nil {
		return err
	}
	list := make([]*segment, 0, len(rows))
	byID := map[string]*segment{}
	for _, r := range rows {
		rule, err := ParseRule([]byte(r.Rule))
		if err != nil {
			m.log.Warn("segment has an invalid rule; skipped", "segment", r.ID, "error", err)
			continue
		}
		s := &segment{id: r.ID, name: r.Name, rule: rule}
		list = append(list, s)
		byID[s.id] = s
	}
	lookup := func(id string) (*Rule, bool) {
		s, ok := byID[id]
		if !ok {
			return nil, false
		}
		return s.rule, true
	}
	var stateReads []segmentrule.Read
	conds := 0
	for _, s := range list {
		s.windows = segmentrule.EventWindows(s.rule, lookup)
		s.conds, s.condAt = segmentrule.StateConditions(s.rule, lookup), conds
		conds += len(s.conds)
		for _, r := range segmentrule.Reads(s.rule, lookup) {
			r = stateKey(r)
			if !slices.Contains(s.reads, r) {
				s.reads = append(s.reads, r)
			}
			if r.Source == "computed" {
				s.readsDerived = true
			}
			if r.Source != "event" && r.Source != "tags" && !slices.Contains(stateReads, r) {
				stateReads = append(stateReads, r)
			}
		}
	}
	for _, s := range list {
		s.stateAt = make([]int, len(s.reads))
		for i, r := range s.reads {
			s.stateAt[i] = slices.Index(stateReads, r)
		}
	}
	m.segs.mu.Lock()
	m.segs.list, m.segs.byID, m.segs.state, m.segs.conds = list, byID, newStateReads(stateReads), conds
	m.segs.invalidateAnswers()
	m.segs.mu.Unlock()
	return nil
}

// ValidateRule parses and compiles a rule against the current segments.
// self is the id of the segment being saved (for cycle checks), or "".
func (m *Module) ValidateRule(raw []byte, self string) (*Rule, error) {
	r, err := ParseRule(raw)
	if err != nil {
		return nil, err
	}
	lookup := m.segs.lookup
	if self != "" {
		lookup = func(id string) (*Rule, bool) {
			if id == self {
				return r, true
			}
			return m.segs.lookup(id)
		}
	}
	c := newCompiler(m.now(), lookup)
	if self != "" {
		c.Inside(self)
	}
	if _, err := c.Compile(r, ""); err != nil {
		return nil, err
	}
	return r, nil
}

func (m *Module) isTimeBased(r *Rule) bool {
	c := newCompiler(m.now(), m.segs.lookup)
	_, _ = c.Compile(r, "")
	return c.TimeBased
}

// evaluateProfiles re-checks every segment for the given profiles and
// updates membership; it returns the segment events to publish.
func (m *Module) evaluateProfiles(tx core.App, ps []*profile, now time.Time, silent bool) ([]*events.Event, error) {
	m.segs.invalidateAnswers()
	segs, _ := m.segs.snapshot()
	return m.evaluateSegments(tx, ps, segs, now, silent)
}

// reanswer gives p the segments' answers after its batch (evaluateChanged)
// and says, a byte per segment, which need SQL: '0' none (the stored
// membership stands), '1' SQL decides, '2' Go decided and SQL reads the
// membership to change; "" when none does. need is scratch of len(segs).
// It touches only p (and the segments' counters).
func (m *Module) reanswer(p *profile, segs []*segment, st *stateReads, nConds int, epoch uint64, now time.Time, need []byte) string {
	if p.segStateOf != st {
		p.segState = nil // recorded for another segment list
	}
	state := readState(p, st)
	known := p.segState != nil && p.answersAt == epoch && len(p.answers) == len(segs) && len(p.condAnswers) == nConds
	next, nextConds := make([]segmentrule.Truth, len(segs)), make([]segmentrule.Truth, nConds)
	if known {
		copy(nextConds, p.condAnswers)
	}
	for j, s := range segs {
		need[j] = '0'
		stateChanged, eventCounted := true, true
		if p.segState != nil {
			stateChanged, eventCounted = changedFor(s, p, state, now)
			if !stateChanged && !eventCounted {
				if known {
					next[j] = p.answers[j]
				}
				continue
			}
		}
		next[j] = m.answer(s.rule, p, now)
		condsSame := known && !eventCounted
		for k, c := range s.conds {
			at := s.condAt + k
			a := m.answer(c, p, now)
			condsSame = condsSame && sameAnswer(nextConds[at], a)
			nextConds[at] = a
		}
		// A profile the batch made is in no segment yet.
		fresh := p.fresh && next[j].Decided() && !next[j].Holds()
		if fresh || (known && (sameAnswer(p.answers[j], next[j]) || condsSame)) {
			m.segs.kept.Add(1)
			continue
		}
		// Decided in Go: the membership is that answer, and SQL only
		// reads what it was (nothing, for a profile the batch made).
		need[j] = '1'
		if next[j].Decided() {
			need[j] = '2'
			m.segs.decided.Add(1)
		}
	}
	// The answers are the memberships once the groups are written (a
	// failure there fails the batch, and its profiles are forgotten).
	// fresh stays until then: the groups read it.
	p.segState, p.segStateOf, p.newTypes = state, st, nil
	p.answers, p.condAnswers, p.answersAt = next, nextConds, epoch
	if strings.Trim(string(need), "0") == "" {
		return ""
	}
	return string(need)
}

// evaluateChanged is the hot path's evaluation: for each profile a batch
// touched, only the segments whose rules read something of it that
// changed since they were last evaluated for it (a trait, a column,
// consent, or an event of a type the rule counts, inside the window it
// counts over). A profile read from the table compares with what it held
// as stored (loadedState); one made in the batch, and a merge's survivor,
// get every segment. Time alone never changes a member here: the
// scheduled pass re-evaluates time-based segments.
//
// Of those, a segment is left alone, its stored membership standing, when
// Go shows its answer did not change: segmentrule.Eval decides the rule
// the same before and after the batch (p.answers, and now), or each of the
// conditions it answers from values does (p.condAnswers) and no event it
// counts came in its window; or the batch made the profile and Eval
// decides it is not a member. Only the rest are evaluated with SQL, which
// also reads the memberships to change.
func (m *Module) evaluateChanged(tx core.App, ps []*profile, now time.Time) ([]*events.Event, error) {
	m.segs.mu.RLock()
	segs, st, nConds, epoch := m.segs.list, m.segs.state, m.segs.conds, m.segs.epoch.Load()
	m.segs.mu.RUnlock()
	if len(segs) == 0 || len(ps) == 0 {
		for _, p := range ps {
			p.newTypes, p.fresh = nil, false // what they describe is stored now
		}
		return nil, nil
	}
	// Each profile's answers are Go's alone (no SQL), so they are worked
	// out in parts beside the writer; the groups follow in order.
	needs := make([]string, len(ps))
	inParts(len(ps), func(lo, hi int) {
		need := make([]byte, len(segs))
		for i := lo; i < hi; i++ {
			needs[i] = m.reanswer(ps[i], segs, st, nConds, epoch, now, need)
		}
	})
	groups := map[string][]*profile{}
	var keys []string
	for i, p := range ps {
		k := needs[i]
		if k == "" {
			continue
		}
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], p)
	}
	var out []*events.Event
	for _, k := range keys {
		var sub []*segment
		var inGo []int
		for j, s := range segs {
			switch k[j] {
			case '1':
				sub, inGo = append(sub, s), append(inGo, -1)
			case '2':
				sub, inGo = append(sub, s), append(inGo, j)
			}
		}
		// SQL answers some of them from computed values, which may wait
		// to be written (behind.go): the statement reads those of the
		// waiting rows instead (cacheMu is held).
		var waiting map[string]string
		for j, s := range segs {
			if k[j] == '1' && s.readsDerived {
				waiting = m.waitingComputed(groups[k])
				break
			}
		}
		evs, err := m.evaluateSegmentsAnswered(tx, groups[k], sub, inGo, waiting, now, false)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	for _, p := range ps {
		p.fresh = false
	}
	return out, nil
}

// answer is rule r for p at now as segmentrule.Eval gives it.
func (m *Module) answer(r *Rule, p *profile, now time.Time) segmentrule.Truth {
	if !p.exact() {
		return segmentrule.Unknown
	}
	return segmentrule.Eval(r, now, m.segs.lookup, p)
}

// sameAnswer reports whether two answers are decided and make the same
// membership (Null is no member, as False, and a rule's membership
// depends only on that of its conditions: NOT reads Null as false).
func sameAnswer(a, b segmentrule.Truth) bool {
	return a.Decided() && b.Decided() && a.Holds() == b.Holds()
}

// loadedState records, for a profile just read from the table, what the
// segments read of it as stored: its stored memberships are the answers
// to exactly that, because everything that writes those columns
// evaluates the profile's segments in the same transaction (this
// package's batches, staff edits, the scheduled pass; an edit at /_/
// through reevaluateEdited). So the batch that loaded it evaluates only
// the segments whose reads its events change, as for a cached profile;
// without this, a shop with more customers than the cache holds had
// every segment evaluated for nearly every event. For the same reason the
// answers Go gives for the stored row are its memberships. A time-based
// rule's may differ by what the clock alone changed since it was last
// evaluated; that stays for the scheduled pass, as for a profile no event
// touches, and an event that changes the answer has SQL read the
// membership.
//
// A cached row that carries answers of the current epoch (keepAnswers)
// gives them back instead: they are what its stored memberships were
// decided as, the clock's changes since included, so they are its
// memberships more exactly than answers for now.
func (m *Module) loadedState(p *profile, now time.Time, row *storedRow) {
	m.segs.mu.RLock()
	segs, st, nConds, epoch := m.segs.list, m.segs.state, m.segs.conds, m.segs.epoch.Load()
	m.segs.mu.RUnlock()
	p.segState, p.segStateOf = readState(p, st), st
	p.answers, p.condAnswers, p.answersAt = nil, nil, epoch
	if len(segs) == 0 || !p.exact() {
		return
	}
	if n := len(segs); row != nil && row.answersAt == epoch && len(row.answers) == n+nConds {
		// Read only: evaluateChanged makes new slices for what changes.
		p.answers, p.condAnswers = row.answers[:n:n], row.answers[n:]
		return
	}
	p.answers, p.condAnswers = make([]segmentrule.Truth, len(segs)), make([]segmentrule.Truth, nConds)
	for j, s := range segs {
		p.answers[j] = m.answer(s.rule, p, now)
		for k, c := range s.conds {
			p.condAnswers[s.condAt+k] = m.answer(c, p, now)
		}
	}
}

// changedFor reports whether something s reads of p changed since p's
// segments were last evaluated (state is what they read now, p.segState
// what they read then, both in the segments' stateReads order): a value
// it reads (stateChanged), or the count of an event type it counts, by an
// event of that type inside its window (eventCounted). An older event
// leaves the counts over the window as they were.
func changedFor(s *segment, p *profile, state []string, now time.Time) (stateChanged, eventCounted bool) {
	for i, r := range s.reads {
		switch r.Source {
		case "event":
			latest, ok := p.newTypes[r.Path]
			if !ok {
				continue
			}
			days := s.windows[r.Path]
			// A minute's margin for how the stored time rounds.
			if days == 0 || !latest.Before(now.Add(-time.Duration(days)*24*time.Hour-time.Minute)) {
				eventCounted = true
			}
		case "tags":
			// Staff tags change outside the events path, which evaluates
			// the profile's segments itself (tags.go); merges move them
			// (every segment is evaluated then).
		default:
			if k := s.stateAt[i]; k < 0 || p.segState[k] != state[k] {
				stateChanged = true
			}
		}
	}
	return stateChanged, eventCounted
}

// stateKey is the grain at which a read is compared: a trait's top-level
// value (lifetime_value for lifetime_value.USD).
func stateKey(r segmentrule.Read) segmentrule.Read {
	if r.Source == "computed" || r.Source == "traits" {
		r.Path, _, _ = strings.Cut(r.Path, ".")
	}
	return r
}

// computedField maps computed traits' JSON names to Computed's fields.
var computedField = func() map[string]int {
	out := map[string]int{}
	t := reflect.TypeFor[Computed]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out[name] = i
	}
	return out
}()

// readState encodes what st's reads read of p now, in their order; equal
// encodings mean the same stored JSON, so the same answer from every rule
// that reads them.
func readState(p *profile, st *stateReads) []string {
	if st == nil || len(st.reads) == 0 {
		return []string{}
	}
	out := make([]string, len(st.reads))
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			return "\x00" + err.Error()
		}
		return string(b)
	}
	comp := reflect.ValueOf(p.comp).Elem()
	for i, r := range st.reads {
		switch r.Source {
		case "column":
			switch r.Path {
			case "email":
				out[i] = p.email
			case "phone":
				out[i] = p.phone
			case "name":
				out[i] = p.name
			}
		case "computed":
			if f := st.fields[i]; f >= 0 {
				out[i] = computedState(comp.Field(f).Interface(), enc)
			}
		case "traits":
			if v, ok := p.traits[r.Path]; ok {
				out[i] = enc(v)
			} else {
				out[i] = "\x00"
			}
		case "consent":
			if e, ok := p.consent[r.Path]; ok {
				out[i] = e.Status
			} else {
				out[i] = "\x00"
			}
		}
	}
	return out
}

// computedState encodes a computed trait's value as readState does, for
// the types Computed holds without JSON (every loaded and every evaluated
// profile encodes its computed reads, and json.Marshal of a small map was
// most of that): equal encodings still mean equal values, so the same
// stored JSON. Other types go through enc.
func computedState(v any, enc func(any) string) string {
	var b []byte
	str := func(s string) { b = append(strconv.AppendInt(b, int64(len(s)), 10), ':'); b = append(b, s...) }
	num := func(f float64) { b = append(strconv.AppendFloat(b, f, 'g', -1, 64), ';') }
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	case *float64:
		if x == nil {
			return "\x00"
		}
		num(*x)
	case []string:
		for _, s := range x {
			str(s)
		}
	case map[string]float64:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			str(k)
			num(x[k])
		}
	case map[string]int:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			str(k)
			b = append(strconv.AppendInt(b, int64(x[k]), 10), ';')
		}
	default:
		return enc(v)
	}
	return string(b)
}

// evaluateSegments re-checks segs for the given profiles and updates
// membership; it returns the segment events to publish.
func (m *Module) evaluateSegments(tx core.App, ps []*profile, segs []*segment, now time.Time, silent bool) ([]*events.Event, error) {
	return m.evaluateSegmentsAnswered(tx, ps, segs, nil, nil, now, silent)
}

// evaluateSegmentsAnswered is evaluateSegments where Go already decided
// some of the rules: for segs[k] with inGo[k] ≥ 0 each profile's
// membership is its answers[inGo[k]], and SQL only reads the memberships
// it had, for the profiles the batch did not make (fresh ones have none).
// waiting holds, by profile id, the computed JSON of rows whose derived
// columns wait to be written (nil: none; the rows are read as stored).
func (m *Module) evaluateSegmentsAnswered(tx core.App, ps []*profile, segs []*segment, inGo []int, waiting map[string]string,
	now time.Time, silent bool) ([]*events.Event, error) {
	if len(segs) == 0 || len(ps) == 0 {
		return nil, nil
	}
	var out []*events.Event
	const chunk = 200
	for start := 0; start < len(ps); start += chunk {
		part := ps[start:min(start+chunk, len(ps))]
		c := newCompiler(now, m.segs.lookup)
		// live is every segment evaluated here; goAt[i] is where live[i]'s
		// answer is in profile.answers, or -1 when SQL answers it (cols).
		var cols []string
		var live []*segment
		var goAt []int
		for k, s := range segs {
			if inGo != nil && inGo[k] >= 0 {
				live, goAt = append(live, s), append(goAt, inGo[k])
				continue
			}
			sqlExpr, err := c.Compile(s.rule, "")
			if err != nil {
				m.log.Warn("segment rule no longer compiles; skipped", "segment", s.id, "error", err)
				continue
			}
			cols = append(cols, "COALESCE("+sqlExpr+", 0)")
			live, goAt = append(live, s), append(goAt, -1)
		}
		if len(live) == 0 {
			return out, nil
		}
		byID := make(map[string]*profile, len(part))
		for _, p := range part {
			byID[p.id] = p
		}
		names := make(map[string]string, len(live))
		for _, s := range live {
			names[s.id] = s.name
		}
		if len(cols) == 0 {
			evs, err := m.writeDecided(tx, part, live, goAt, byID, names, now, silent)
			if err != nil {
				return nil, err
			}
			out = append(out, evs...)
			continue
		}
		// SQL answers some segments, so it reads every profile's row (and
		// memberships) of the part.
		want := map[[2]string]bool{}
		have := map[[2]string]string{}
		ids := make([]string, 0, len(part))
		for _, p := range part {
			for i, s := range live {
				if goAt[i] >= 0 && p.answers[goAt[i]].Holds() {
					want[[2]string{s.id, p.id}] = true
				}
			}
			ids = append(ids, p.id)
		}
		if err := m.readSegmentRows(tx, c, ids, waiting, cols, live, goAt, want, have); err != nil {
			return nil, err
		}
		var entering [][2]string
		for k := range want {
			if _, ok := have[k]; !ok {
				entering = append(entering, k)
			}
		}
		if err := insertMembers(tx, entering, now); err != nil {
			return nil, err
		}
		if !silent {
			for _, k := range entering {
				out = append(out, enteredEvent(k[0], names[k[0]], byID[k[1]], now))
			}
		}
		for k, at := range have {
			if want[k] || names[k[0]] == "" {
				continue // still a member, or a segment being removed
			}
			ev, err := m.exit(tx, k[0], names[k[0]], byID[k[1]], at, now, silent)
			if err != nil {
				return nil, err
			}
			if ev != nil {
				out = append(out, ev)
			}
		}
	}
	return out, nil
}

// readSegmentRows runs the statement of evaluateSegmentsAnswered for ids:
// each profile's memberships into have, and where cols (the SQL of the
// segments of live whose goAt is -1, in order) hold, into want.
func (m *Module) readSegmentRows(tx core.App, c *compiler, ids []string, waiting map[string]string, cols []string, live []*segment, goAt []int,
	want map[[2]string]bool, have map[[2]string]string) error {
	// One JSON list of [id] or, for a row whose computed values wait to be
	// written, [id, computed]: the rules read those instead of the column.
	buf := make([]byte, 0, 20*len(ids))
	buf = append(buf, '[')
	for i, id := range ids {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = jsonenc.String(append(buf, '['), id)
		if comp, ok := waiting[id]; ok {
			buf = jsonenc.String(append(buf, ','), comp)
		}
		buf = append(buf, ']')
	}
	c.Params["profile_rows"] = string(append(buf, ']'))
	// The profiles' current memberships come in the same statement:
	// "segment\x1fentered_at" pairs joined by \x1e. The ids come as one
	// JSON list so that the statement's text depends only on the segments
	// (the writer keeps it prepared from batch to batch).
	q := "SELECT p.id, (SELECT group_concat(sm.segment || char(31) || sm.entered_at, char(30)) FROM segment_members sm WHERE sm.profile = p.id)"
	for _, col := range cols {
		q += ", " + col
	}
	q += " FROM (SELECT pr.id, pr.name, pr.email, pr.phone, pr.traits, pr.consent, COALESCE(j.value->>1, pr.computed) AS computed" +
		" FROM json_each({:profile_rows}) j JOIN profiles pr ON pr.id = j.value->>0) p"
	rows, err := tx.DB().NewQuery(q).Bind(c.Params).Rows()
	if err != nil {
		return fmt.Errorf("evaluate segments: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols)+2)
		var pid string
		var members sql.NullString
		ptrs[0], ptrs[1] = &pid, &members
		for i := range vals {
			ptrs[i+2] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		col := 0
		for i, s := range live {
			if goAt[i] >= 0 {
				continue
			}
			if truthy(vals[col]) {
				want[[2]string{s.id, pid}] = true
			}
			col++
		}
		if members.String != "" {
			for _, pair := range strings.Split(members.String, "\x1e") {
				seg, at, _ := strings.Cut(pair, "\x1f")
				have[[2]string{seg, pid}] = at
			}
		}
	}
	// An error on a later row (e.g. JSON SQLite cannot parse) ends the
	// loop like the last row does: without this check that profile would
	// silently leave its segments.
	if err := rows.Err(); err != nil {
		return fmt.Errorf("evaluate segments: %w", err)
	}
	return nil
}

func truthy(v any) bool {
	switch x := v.(type) {
	case int64:
		return x != 0
	case float64:
		return x != 0
	case bool:
		return x
	case []byte:
		return string(x) != "0" && len(x) > 0
	case string:
		return x != "0" && x != ""
	}
	return false
}

func (m *Module) enter(tx core.App, segID, segName string, p *profile, now time.Time, silent bool) (*events.Event, error) {
	at := now.UTC().Format(dbTime)
	if _, err := tx.DB().NewQuery("INSERT INTO segment_members (id, segment, profile, entered_at) VALUES ({:id},{:s},{:p},{:at}) ON CONFLICT DO NOTHING").
		Bind(dbx.Params{"id": newID(), "s": segID, "p": p.id, "at": at}).Execute(); err != nil {
		return nil, err
	}
	if silent {
		return nil, nil
	}
	return enteredEvent(segID, segName, p, now), nil
}

// enteredEvent's id starts with the time, so that a batch's entries sit
// side by side at the end of the events' unique index instead of one in
// each of its pages (a page each in the WAL at commit). Decimal
// nanoseconds keep 19 digits until 2286.
func enteredEvent(segID, segName string, p *profile, now time.Time) *events.Event {
	return systemEvent(events.SegmentEntered, "seg:"+strconv.FormatInt(now.UnixNano(), 10)+":"+segID+":"+p.id+":entered", p, now,
		map[string]any{"profile_id": p.id, "segment_id": segID, "segment_name": segName})
}

// writeDecided writes the memberships Go decided: for every profile of
// ps, every segment of live changed its answer (goAt[i] is where live[i]'s
// is in profile.answers; byID and names look up ps and live by id). A
// profile the answer holds for enters unless it already was a member; any
// other leaves if it was one. SQLite returns the rows each write changed
// (RETURNING), so no statement reads the memberships first, and each
// event stands for a membership that changed.
func (m *Module) writeDecided(tx core.App, ps []*profile, live []*segment, goAt []int, byID map[string]*profile, names map[string]string,
	now time.Time, silent bool) ([]*events.Event, error) {
	var entering, leaving [][2]string // (segment, profile)
	for _, p := range ps {
		for i, s := range live {
			switch {
			case p.answers[goAt[i]].Holds():
				entering = append(entering, [2]string{s.id, p.id})
			case !p.fresh: // a profile the batch made is in no segment yet
				leaving = append(leaving, [2]string{s.id, p.id})
			}
		}
	}
	entered, err := insertNewMembers(tx, entering, now)
	if err != nil {
		return nil, err
	}
	var out []*events.Event
	if !silent {
		for _, k := range entering {
			if entered[k] {
				out = append(out, enteredEvent(k[0], names[k[0]], byID[k[1]], now))
			}
		}
	}
	for _, k := range leaving {
		ev, err := m.leave(tx, k[0], names[k[0]], byID[k[1]], now, silent)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			out = append(out, ev)
		}
	}
	return out, nil
}

// insertNewMembers is insertMembers that says which of the memberships
// were new (the others were there already and are left as they were).
func insertNewMembers(tx core.App, entering [][2]string, now time.Time) (map[[2]string]bool, error) {
	if len(entering) == 0 {
		return nil, nil
	}
	inserted := make(map[[2]string]bool, len(entering))
	err := store.QueryRows(store.Executor(tx), insertMembersHead, 4, " ON CONFLICT DO NOTHING RETURNING segment, profile",
		memberRows(entering, now), func(rows *sql.Rows) error {
			var k [2]string
			if err := rows.Scan(&k[0], &k[1]); err != nil {
				return err
			}
			inserted[k] = true
			return nil
		})
	return inserted, err
}

// insertMembers adds (segment, profile) memberships entered at now, many
// rows per statement: on the events path a batch's customers enter
// segments by the hundred, and one INSERT each cost more than the rules.
// Rows go a few per statement with positional arguments
// (store.Statements.ExecRows).
func insertMembers(tx core.App, entering [][2]string, now time.Time) error {
	if len(entering) == 0 {
		return nil
	}
	st := store.NewStatements(tx)
	defer st.Close()
	return st.ExecRows(insertMembersHead, 4, " ON CONFLICT DO NOTHING", memberRows(entering, now))
}

const insertMembersHead = "INSERT INTO segment_members (id, segment, profile, entered_at) VALUES "

// memberRows are the arguments of insertMembersHead's rows for
// (segment, profile) pairs entered at now.
func memberRows(entering [][2]string, now time.Time) []any {
	at := now.UTC().Format(dbTime)
	args := make([]any, 0, len(entering)*4)
	for _, k := range entering {
		args = append(args, newID(), k[0], k[1], at)
	}
	return args
}

func (m *Module) exit(tx core.App, segID, segName string, p *profile, enteredAt string, now time.Time, silent bool) (*events.Event, error) {
	if _, err := tx.DB().NewQuery("DELETE FROM segment_members WHERE segment={:s} AND profile={:p}").
		Bind(dbx.Params{"s": segID, "p": p.id}).Execute(); err != nil {
		return nil, err
	}
	if silent {
		return nil, nil
	}
	return exitedEvent(segID, segName, p, enteredAt, now), nil
}

// leave is exit for a profile that may not be a member: nothing, and no
// event, when it was not.
func (m *Module) leave(tx core.App, segID, segName string, p *profile, now time.Time, silent bool) (*events.Event, error) {
	var enteredAt string
	err := tx.DB().NewQuery("DELETE FROM segment_members WHERE segment={:s} AND profile={:p} RETURNING entered_at").
		Bind(dbx.Params{"s": segID, "p": p.id}).Row(&enteredAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil // not a member
	}
	if err != nil || silent {
		return nil, err
	}
	return exitedEvent(segID, segName, p, enteredAt, now), nil
}

// exitedEvent's id names the membership it ends (its entry time), so that
// leaving the same segment again later is another event.
func exitedEvent(segID, segName string, p *profile, enteredAt string, now time.Time) *events.Event {
	t, _ := time.Parse(dbTime, enteredAt)
	return systemEvent(events.SegmentExited, "seg:"+segID+":"+p.id+":exited:"+strconv.FormatInt(t.UnixNano(), 10), p, now,
		map[string]any{"profile_id": p.id, "segment_id": segID, "segment_name": segName})
}

// reevaluateSegment recomputes one segment over all profiles (scheduled
// pass and initial backfill). The full scan is a read outside any write
// transaction; only the profiles whose membership looks different are then
// re-checked and changed, in short transactions of segmentChunk profiles,
// so ingest never waits for a whole scan.
func (m *Module) reevaluateSegment(app core.App, s *segment, now time.Time, silent bool) (int, error) {
	c := newCompiler(now, m.segs.lookup)
	where, err := c.Compile(s.rule, "")
	if err != nil {
		return 0, err
	}
	if err := m.CatchUp(app); err != nil { // the rule reads every row
		return 0, err
	}
	var ids []string
	if err := app.DB().NewQuery("SELECT p.id FROM profiles p WHERE p.merged_into = '' AND COALESCE(" + where + ", 0)").Bind(c.Params).Column(&ids); err != nil {
		return 0, fmt.Errorf("segment %s: %w", s.id, err)
	}
	var cur []string
	if err := app.DB().NewQuery("SELECT profile FROM segment_members WHERE segment={:s}").Bind(dbx.Params{"s": s.id}).Column(&cur); err != nil {
		return 0, err
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var candidates []string
	for _, id := range cur {
		if !want[id] {
			candidates = append(candidates, id)
		}
		delete(want, id)
	}
	for id := range want {
		candidates = append(candidates, id)
	}
	changed := 0
	for start := 0; start < len(candidates); start += segmentChunk {
		part := candidates[start:min(start+segmentChunk, len(candidates))]
		var evs []*events.Event
		err := app.RunInTransaction(func(tx core.App) error {
			var err error
			evs, err = m.checkSegment(tx, s, part, m.now().UTC(), silent)
			if err != nil {
				return err
			}
			return relay.Stage(tx, evs)
		})
		if err != nil {
			return changed, err
		}
		changed += len(evs)
		m.emit(evs)
	}
	return changed, nil
}

const segmentChunk = 500

// checkSegment re-evaluates one segment for some profiles inside tx and
// applies the difference.
func (m *Module) checkSegment(tx core.App, s *segment, ids []string, now time.Time, silent bool) ([]*events.Event, error) {
	if _, err := m.catchUp(tx, ids, false); err != nil { // the rule reads their rows
		return nil, err
	}
	m.segs.invalidateAnswers()
	c := newCompiler(now, m.segs.lookup)
	where, err := c.Compile(s.rule, "")
	if err != nil {
		return nil, err
	}
	in := make([]string, len(ids))
	for i, id := range ids {
		in[i] = c.Param(id)
	}
	list := strings.Join(in, ",")
	var match []string
	if err := tx.DB().NewQuery("SELECT p.id FROM profiles p WHERE p.id IN (" + list + ") AND p.merged_into = '' AND COALESCE(" + where + ", 0)").
		Bind(c.Params).Column(&match); err != nil {
		return nil, err
	}
	var cur []struct {
		Profile   string `db:"profile"`
		EnteredAt string `db:"entered_at"`
	}
	c.Params["seg"] = s.id
	if err := tx.DB().NewQuery("SELECT profile, entered_at FROM segment_members WHERE segment={:seg} AND profile IN (" + list + ")").Bind(c.Params).All(&cur); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, id := range match {
		want[id] = true
	}
	have := map[string]string{}
	for _, r := range cur {
		have[r.Profile] = r.EnteredAt
	}
	var out []*events.Event
	b := m.newBatch(tx, false)
	defer b.close()
	for _, id := range match {
		if _, ok := have[id]; ok {
			continue
		}
		p, err := m.profileForEvent(b, id, silent)
		if err != nil {
			return nil, err
		}
		ev, err := m.enter(tx, s.id, s.name, p, now, silent)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			out = append(out, ev)
		}
	}
	for id, at := range have {
		if want[id] {
			continue
		}
		p, err := m.profileForEvent(b, id, silent)
		if err != nil {
			return nil, err
		}
		ev, err := m.exit(tx, s.id, s.name, p, at, now, silent)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			out = append(out, ev)
		}
	}
	return out, nil
}

// profileForEvent loads identities only when an event will be built.
func (m *Module) profileForEvent(b *batch, id string, silent bool) (*profile, error) {
	if silent {
		return &profile{id: id}, nil
	}
	p, err := b.load(id)
	if err != nil {
		// merged or gone: still remove membership, identified by id
		return &profile{id: id, ids: map[string][]string{}}, nil
	}
	return p, nil
}

// Reevaluate runs the scheduled pass now: profiles whose time-based traits
// are due, segments with time-based rules, and today's member counts. Work
// is done in short transactions so ingest keeps flowing.
func (m *Module) Reevaluate(ctx context.Context) error {
	// The pass finds due profiles, and time-based rules read rows, by SQL.
	if err := m.CatchUp(m.app); err != nil {
		return err
	}
	now := m.now().UTC()
	// 1. Traits that change with time alone, dueChunk profiles at a time.
	for round := 0; round < 1000; round++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var n int
		var emits []*events.Event
		err := m.app.RunInTransaction(func(tx core.App) error {
			var due []string
			if err := tx.DB().NewQuery("SELECT id FROM profiles WHERE traits_due_at != '' AND traits_due_at <= {:now} AND merged_into = '' LIMIT {:n}").
				Bind(dbx.Params{"now": now.Format(dbTime), "n": dueChunk}).Column(&due); err != nil {
				return err
			}
			n = len(due)
			if n == 0 {
				return nil
			}
			m.cacheMu.Lock()
			for _, id := range due {
				delete(m.cache.profiles, id)
				m.cache.rows.drop(id)
			}
			m.cacheMu.Unlock()
			b := m.newBatch(tx, false)
			defer b.close()
			b.now, b.nowDB = now, now.Format(dbTime)
			var ps []*profile
			for _, id := range due {
				p, err := b.load(id)
				if err != nil {
					return err
				}
				p.dirty = true
				ps = append(ps, p)
			}
			if err := b.flush(); err != nil {
				return err
			}
			var err error
			emits, err = m.evaluateProfiles(tx, ps, now, false)
			if err != nil {
				return err
			}
			return relay.Stage(tx, emits)
		})
		if err != nil {
			return err
		}
		m.emit(emits)
		if n < dueChunk {
			break
		}
	}
	// 2. Segments whose rules depend on the clock.
	segs, _ := m.segs.snapshot()
	for _, s := range segs {
		if !m.isTimeBased(s.rule) {
			continue
		}
		if _, err := m.reevaluateSegment(m.app, s, now, false); err != nil {
			m.log.Warn("segment re-evaluation failed", "segment", s.id, "error", err)
		}
	}
	// 3. Daily member counts.
	dayS := now.Format("2006-01-02")
	return m.app.RunInTransaction(func(tx core.App) error {
		for _, s := range segs {
			if _, err := tx.DB().NewQuery(`INSERT INTO segment_counts (id, segment, day, count)
SELECT {:id}, {:s}, {:d}, COUNT(*) FROM segment_members WHERE segment={:s}
ON CONFLICT(segment, day) DO UPDATE SET count=excluded.count`).Bind(dbx.Params{"id": newID(), "s": s.id, "d": dayS}).Execute(); err != nil {
				return err
			}
		}
		return nil
	})
}

const dueChunk = 1000

// backfill computes a new or changed segment's membership without events.
func (m *Module) backfill(app core.App, id string) error {
	_, byID := m.segs.snapshot()
	s, ok := byID[id]
	if !ok {
		return nil
	}
	_, err := m.reevaluateSegment(app, s, m.now().UTC(), true)
	return err
}

// segmentRow is the JSON shape of a segment in the API.
type segmentRow struct {
	ID          string          `db:"id" json:"id"`
	Name        string          `db:"name" json:"name"`
	Description string          `db:"description" json:"description"`
	Rule        json.RawMessage `db:"-" json:"rule"`
	RuleText    string          `db:"rule" json:"-"`
	Members     int             `db:"members" json:"members"`
	TimeBased   bool            `db:"-" json:"time_based"`
	Created     string          `db:"created" json:"created"`
	Updated     string          `db:"updated" json:"updated"`
}
