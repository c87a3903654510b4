package profiles

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/eventstore"
	"github.com/omni/omni/core/relay"
	"github.com/omni/omni/core/segmentrule"
	"github.com/omni/omni/core/store"
	"github.com/omni/omni/internal/fastjson"
)

// singleValued identity kinds: a person has one account per system, so a
// profile holds at most one value of each and two values never merge.
var singleValued = map[string]bool{
	events.UserID: true, events.ShopifyCustomer: true, events.SquareCustomer: true, events.KlaviyoProfile: true,
}

// anonymousCap bounds device/cookie ids per profile.
const anonymousCap = 100

// newID makes time-ordered record ids so hot-path inserts append to the id
// index instead of splitting its pages at random.
func newID() string { return store.NewRecordID() }

// ConsentEntry is one channel's consent state.
type ConsentEntry struct {
	Status  string `json:"status"`
	Source  string `json:"source,omitempty"`
	At      string `json:"at,omitempty"`
	EventID string `json:"event_id,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// By is the staff member who made the change (source "staff" only).
	By *ConsentBy `json:"by,omitempty"`
}

// profile is the in-batch working copy of one profile row.
type profile struct {
	id, mergedInto, created string
	seq                     int // creation order of profiles made in this batch
	name, email, phone      string
	traits                  map[string]any
	comp                    *Computed
	consent                 map[string]ConsentEntry
	ids                     map[string][]string
	dirty                   bool
	isNew                   bool   // not yet inserted
	touched                 bool   // re-evaluate segments
	indexed                 string // signature of its words in profile_search ("" = unknown)
	// fresh: made by this batch (not a merge's survivor), so it has no
	// segment memberships and no events but the batch's (segvalues.go).
	fresh bool
	// What segments read of this profile when they were last evaluated for
	// it (segState; as stored when read from the table, see loadedState;
	// nil = unknown: evaluate every segment), and the event types it got
	// since.
	segState   []string
	segStateOf *stateReads          // the list segState was recorded for
	newTypes   map[string]time.Time // the latest occurred_at of each
	// condAnswers are the answers of the segments' conditions that Go
	// answers from values (segment.conds), kept as answers are.
	condAnswers []segmentrule.Truth
	// answers are the segments' answers for p as segmentrule.Eval gives
	// them (Unknown where it cannot), as of segState, valid while
	// answersAt is the segments' epoch (segmentCache.epoch); they are the
	// memberships stored for p wherever decided.
	answers   []segmentrule.Truth
	answersAt uint64
	// ownTraits, ownConsent and ownComputed report that the stored JSON
	// of each is this process's encoding of what p holds (see
	// profile.Value).
	ownTraits, ownConsent, ownComputed bool
	// What flush may skip (false, the zero value, = write it): the
	// stored traits and consent JSON are p's, and so are its own words in
	// profile_search. Whatever changes them clears the flag.
	traitsSaved, consentSaved, wordsSaved bool
	// rawTraits and rawConsent are the traits and consent JSON as stored
	// (the row cache keeps them when flush does not write them again);
	// rawComputed is the computed JSON as stored, so that flush skips an
	// UPDATE that would write the row as it is.
	rawTraits, rawConsent, rawComputed string
	// saved holds the plain columns as flush last wrote them (nil:
	// unknown), so an UPDATE sets only those that changed and SQLite
	// leaves the indexes of the others alone.
	saved *savedColumns
}

// savedColumns are a live profile's plain columns as stored.
type savedColumns struct {
	name, email, phone, firstSeen, lastSeen, stage, engagement, due string
	orders                                                          int
	known                                                           bool
	// the computed times firstSeen and lastSeen were formatted from
	compFirst, compLast string
}

// dbTimes formats c's first and last seen for their columns, reusing the
// last written ones when they did not change (time parsing is costly).
func (s *savedColumns) dbTimes(prev *savedColumns, c *Computed) {
	s.compFirst, s.compLast = c.FirstSeen, c.LastSeen
	if prev != nil && prev.compFirst == c.FirstSeen {
		s.firstSeen = prev.firstSeen
	} else {
		s.firstSeen = fmtDB(c.FirstSeen)
	}
	if prev != nil && prev.compLast == c.LastSeen {
		s.lastSeen = prev.lastSeen
	} else {
		s.lastSeen = fmtDB(c.LastSeen)
	}
}

func (p *profile) sawEvent(typ string, at time.Time) {
	if p.newTypes == nil {
		p.newTypes = map[string]time.Time{}
	}
	if t, ok := p.newTypes[typ]; !ok || at.After(t) {
		p.newTypes[typ] = at
	}
}

// known is true for a person identified by anything but an anonymous
// (cookie/device) id: a customer rather than a visitor.
func (p *profile) known() bool {
	if p.comp != nil && p.comp.Identified {
		return true
	}
	for k, v := range p.ids {
		if k != events.AnonymousID && len(v) > 0 {
			return true
		}
	}
	return false
}

func (p *profile) older(q *profile) bool {
	if p.created != q.created {
		return p.created < q.created
	}
	if p.seq != q.seq {
		return p.seq < q.seq
	}
	return p.id < q.id
}

// strongest returns the profile's strongest identity (for system events).
func (p *profile) strongest() (string, string) {
	for _, k := range events.IdentityKinds {
		if v := p.ids[k]; len(v) > 0 {
			return k, v[0]
		}
	}
	return "", ""
}

// batch resolves one stored batch inside the events transaction.
type batch struct {
	m        *Module
	cur      Currency // the currency settings this batch works with
	tx       core.App
	now      time.Time
	nowDB    string
	idCache  map[string]string // kind\x00value → profile id ("" = known missing)
	profiles map[string]*profile
	redirect map[string]string // merged loser → survivor
	order    []*profile
	inBatch  map[string]bool
	rows     *rowCache // committed rows (shared batches; nil: none)
	// inEvents: the events transaction's batch, whose caller holds
	// cacheMu; its changes to the waiting rows are logged to be put back
	// if it does not commit (behind.go), unless unlogged.
	inEvents, unlogged bool
	emits              []*events.Event
	block              *blocklist // the list in force when the batch started
	// resolved are this batch's events resolved so far (not rows yet).
	resolved []*eventstore.Stored

	qProfileIdents *dbx.Query // unmerge.go's rebuild; not prepared (cache misses only)
	// The hot path's statements: database/sql with positional arguments
	// (no named-parameter rewriting, no map per row), each prepared on
	// first use in this transaction (see stmt).
	ex                                                       dbx.Executor
	sIdent, sIdentIns, sProfile, sProfileIdents, sProfileIns *sql.Stmt
	sWordsDel, sWordsGet                                     *sql.Stmt            // profile_search (search.go)
	sBehindAdd, sBehindDel                                   *sql.Stmt            // profile_behind (behind.go)
	sUpdate                                                  map[uint16]*sql.Stmt // by the set of columns written (updateSQL)
	args                                                     []any                // reused argument slice
	compBuf                                                  []byte               // computed JSON being written (write)
}

const (
	identSQL    = "SELECT profile FROM identities WHERE kind=? AND value=?"
	identInsSQL = "INSERT INTO identities (id, kind, value, profile, created) VALUES (?, ?, ?, ?, ?)"
	// profileColumnsSQL reads what readProfile scans.
	profileColumnsSQL = `SELECT id, merged_into, created, name, email, phone, traits, computed, consent,
first_seen, last_seen, orders_count, lifecycle_stage, engagement_level, traits_due_at, known FROM profiles`
	profileSQL       = profileColumnsSQL + " WHERE id=?"
	profileIdentsSQL = "SELECT kind, value FROM identities WHERE profile=?"
	profileInsSQL    = `INSERT INTO profiles (id, merged_into, name, email, phone, traits, computed, consent, first_seen, last_seen,
orders_count, lifecycle_stage, engagement_level, traits_due_at, known, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	wordsDelSQL  = "DELETE FROM profile_search WHERE profile=? AND origin=?"
	wordsInsHead = "INSERT OR IGNORE INTO profile_search (token, profile, origin) VALUES " // + rows (store.ExecRows)
	wordsGetSQL  = "SELECT token FROM profile_search WHERE profile=? AND origin=? ORDER BY token"
)

// executor is the batch transaction's raw executor.
func (b *batch) executor() dbx.Executor {
	if b.ex == nil {
		b.ex = store.Executor(b.tx)
	}
	return b.ex
}

// stmt returns *slot, preparing query in the batch's transaction on first use.
func (b *batch) stmt(slot **sql.Stmt, query string) (*sql.Stmt, error) {
	if *slot == nil {
		st, err := b.executor().Prepare(query)
		if err != nil {
			return nil, err
		}
		*slot = st
	}
	return *slot, nil
}

// newBatch prepares resolution in tx. shared batches (the events
// processor) use the module's cross-batch caches; the caller holds cacheMu.
func (m *Module) newBatch(tx core.App, shared bool) *batch {
	now := m.now().UTC()
	b := &batch{
		m: m, tx: tx, now: now, nowDB: now.Format(dbTime), cur: m.currencyNow(),
		idCache:  map[string]string{},
		profiles: map[string]*profile{},
		redirect: map[string]string{},
		inBatch:  map[string]bool{},
		block:    m.block.Load(),

		qProfileIdents: tx.DB().NewQuery("SELECT kind, value FROM identities WHERE profile={:p}"),
	}
	if shared {
		maxProfiles, maxIDs := cacheBounds()
		switch {
		case m.cache.profiles == nil:
			m.cache.reset()
		case len(m.cache.profiles) > maxProfiles:
			// Committed state each, so they start over apart: the rows
			// and the identity look-ups stay.
			m.cache.profiles = map[string]*profile{}
		}
		if len(m.cache.ids) > maxIDs || len(m.cache.redirect) > maxIDs {
			m.cache.ids, m.cache.redirect = map[string]string{}, map[string]string{}
		}
		m.cache.rows.budget = rowBudget()
		b.idCache, b.profiles, b.redirect, b.rows = m.cache.ids, m.cache.profiles, m.cache.redirect, &m.cache.rows
		b.inEvents = true
	}
	return b
}

// cacheBounds says how many decoded profiles and identity look-ups the
// cross-batch cache may hold before each starts over (cheap: a cold cache
// costs a few indexed reads per profile). The decoded profiles are the
// customers of the last few batches: a fortieth of the Go heap's soft
// limit (memtune's default, or GOMEMLIMIT) at about cachedProfileBytes
// each; the customers before them are kept as rows, about three to a decoded
// profile's memory (rowcache.go), and the identity look-ups cover both. A
// cache as big as the limit would leave the collector running all the
// time under load (a 100,000-profile cache was 300 MB, twice the default
// limit).
func cacheBounds() (profiles, identities int) {
	limit := debug.SetMemoryLimit(-1) // reads the limit; math.MaxInt64 when none
	n := int(min(limit/40/cachedProfileBytes, maxCacheProfiles))
	n = max(n, minCacheProfiles)
	return n, 4 * (n + rowBudget()/cachedRowBytes)
}

const (
	// cachedProfileBytes is a cached profile's heap with its traits,
	// computed traits, consent and identity look-ups: 3.8 KB for a
	// customer with three identities, a name, orders and ten active days
	// (BenchmarkCachedProfile), more with live segments.
	cachedProfileBytes = 4 << 10
	// cachedRowBytes is a cached row's heap for that customer
	// (storedRow.size; BenchmarkCachedProfile reports both).
	cachedRowBytes = 1400
	// cachedIdentityBytes is an identity look-up's.
	cachedIdentityBytes = 100
	minCacheProfiles    = 1_000
	maxCacheProfiles    = 100_000
)

// resolveCache keeps profiles, identity lookups and merge redirects between
// batches. It only ever holds committed state: it is dropped when a batch
// fails or is not confirmed committed, and by erasures.
type resolveCache struct {
	profiles map[string]*profile
	ids      map[string]string
	redirect map[string]string
	// rows outlive the decoded profiles: a profile dropped from profiles
	// is decoded from its row instead of read back (rowcache.go).
	rows        rowCache
	unconfirmed bool
}

func (c *resolveCache) reset() {
	c.resetDecoded()
	c.rows.reset()
}

// resetDecoded starts the decoded profiles, identity look-ups and merge
// redirects over, and clears unconfirmed; the committed rows stay.
func (c *resolveCache) resetDecoded() {
	c.profiles, c.ids, c.redirect, c.unconfirmed = map[string]*profile{}, map[string]string{}, map[string]string{}, false
}

// see records that p takes part in this batch (flush and segment checks).
func (b *batch) see(p *profile) {
	if !b.inBatch[p.id] {
		b.inBatch[p.id] = true
		b.order = append(b.order, p)
	}
}

func (b *batch) close() {
	for _, st := range []*sql.Stmt{b.sIdent, b.sIdentIns, b.sProfile, b.sProfileIdents, b.sProfileIns, b.sWordsDel, b.sWordsGet, b.sBehindAdd, b.sBehindDel} {
		if st != nil {
			st.Close()
		}
	}
	for _, st := range b.sUpdate {
		st.Close()
	}
}

// canonical follows merges.
func (b *batch) canonical(id string) string {
	for i := 0; i < 64; i++ {
		next, ok := b.redirect[id]
		if !ok {
			if p := b.profiles[id]; p != nil && p.mergedInto != "" && p.mergedInto != id {
				id = p.mergedInto
				continue
			}
			return id
		}
		id = next
	}
	return id
}

func (b *batch) lookup(kind, value string) (string, error) {
	key := kind + "\x00" + value
	if pid, ok := b.idCache[key]; ok {
		if pid == "" {
			return "", nil
		}
		return b.canonical(pid), nil
	}
	st, err := b.stmt(&b.sIdent, identSQL)
	if err != nil {
		return "", err
	}
	var pid string
	err = st.QueryRow(kind, value).Scan(&pid)
	if errors.Is(err, sql.ErrNoRows) {
		b.idCache[key] = ""
		return "", nil
	}
	if err != nil {
		return "", err
	}
	b.idCache[key] = pid
	return b.canonical(pid), nil
}

// prefetch reads, in one query per identity kind, which profiles hold the
// batch's identities that the cache does not know yet, so resolving the
// events finds them in idCache (lookup) instead of asking one by one.
func (b *batch) prefetch(stored []*eventstore.Stored) error {
	const chunk = 500
	want := map[string][]string{} // kind → values
	seen := map[string]bool{}
	for _, s := range stored {
		for k, v := range s.Event.Identities {
			if v == "" {
				continue
			}
			key := k + "\x00" + v
			if _, ok := b.idCache[key]; ok || seen[key] {
				continue
			}
			seen[key] = true
			want[k] = append(want[k], v)
		}
	}
	for kind, vals := range want {
		for start := 0; start < len(vals); start += chunk {
			part := vals[start:min(start+chunk, len(vals))]
			in, list := store.InList(part)
			rows, err := b.executor().Query("SELECT value, profile FROM identities WHERE kind=? AND value IN "+in, append([]any{kind}, list...)...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var v, pid string
				if err := rows.Scan(&v, &pid); err != nil {
					rows.Close()
					return err
				}
				b.idCache[kind+"\x00"+v] = pid
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, v := range part {
				if _, ok := b.idCache[kind+"\x00"+v]; !ok {
					b.idCache[kind+"\x00"+v] = "" // known missing
				}
			}
		}
	}
	return nil
}

// readProfile scans one row of profileColumns into a profile as stored:
// what flush may skip writing, and what its segments read of it, are
// known from the row.
func (b *batch) readProfile(row interface{ Scan(...any) error }) (*profile, error) {
	var r profileRow
	saved := &savedColumns{}
	if err := row.Scan(&r.ID, &r.MergedInto, &r.Created, &r.Name, &r.Email, &r.Phone, &r.Traits, &r.Computed, &r.Consent,
		&saved.firstSeen, &saved.lastSeen, &saved.orders, &saved.stage, &saved.engagement, &saved.due, &saved.known); err != nil {
		return nil, err
	}
	p, err := r.decode()
	if err != nil || p.mergedInto != "" {
		return p, err
	}
	b.checkOwn(p, &r)
	b.stored(p, saved, nil)
	return p, nil
}

// checkOwn sets p's own flags (see profile.Value) for a row read with
// SQL: its JSON is this process's encoding when encoding what was decoded
// gives the same text back. Only segments read them, so without segments
// it costs nothing.
func (b *batch) checkOwn(p *profile, r *profileRow) {
	if len(b.m.segs.reads()) == 0 {
		return
	}
	b.compBuf = p.comp.appendJSON(b.compBuf[:0])
	p.ownComputed = string(b.compBuf) == r.Computed
	tj, err := json.Marshal(p.traits)
	p.ownTraits = err == nil && string(tj) == r.Traits
	kj, err := json.Marshal(p.consent)
	p.ownConsent = err == nil && string(kj) == r.Consent
}

// stored marks p, just read or decoded from a cached row (row; nil when
// read with SQL), as stored with the plain columns saved.
func (b *batch) stored(p *profile, saved *savedColumns, row *storedRow) {
	// As stored, so flush writes only what the batch changes, as for a
	// cached profile: an UPDATE of every column rewrites every index of
	// profiles, and the traits and consent JSON with them.
	saved.name, saved.email, saved.phone = p.name, p.email, p.phone
	saved.compFirst, saved.compLast = p.comp.FirstSeen, p.comp.LastSeen
	// Its stored search words are those of its stored name, email, phone
	// and identities (every write of them rewrites the words, and a change
	// of how words are made reindexes by migration), so only a change of
	// one of them makes flush look at the words.
	p.saved, p.traitsSaved, p.consentSaved, p.wordsSaved = saved, true, true, true
	b.m.loadedState(p, b.now, row)
}

// prefetchProfiles reads the live profiles the batch's identities point
// at that the cache does not hold, a few hundred per query with their
// identities, instead of two queries each in load (when the shop has more
// active customers than the cache holds, most events need one).
func (b *batch) prefetchProfiles(stored []*eventstore.Stored) error {
	const chunk = 500
	var want, cached []string
	seen := map[string]bool{}
	for _, s := range stored {
		for k, v := range s.Event.Identities {
			pid := b.idCache[k+"\x00"+v]
			if pid == "" {
				continue
			}
			pid = b.canonical(pid)
			if seen[pid] || b.profiles[pid] != nil {
				continue
			}
			seen[pid] = true
			if b.cachedRow(pid) != nil {
				cached = append(cached, pid)
				continue
			}
			want = append(want, pid)
		}
	}
	// A row that does not decode is read with SQL, which reports it.
	want = append(want, b.rowProfiles(cached)...)
	if len(want) == 0 {
		return nil
	}
	for start := 0; start < len(want); start += chunk {
		part := want[start:min(start+chunk, len(want))]
		in, args := store.InList(part)
		rows, err := b.executor().Query(profileColumnsSQL+" WHERE id IN "+in, args...)
		if err != nil {
			return err
		}
		got := map[string]*profile{}
		for rows.Next() {
			p, err := b.readProfile(rows)
			if err != nil {
				continue // left to load, which reports it if an event needs this profile
			}
			if p.mergedInto != "" {
				b.redirect[p.id] = p.mergedInto // load follows it
				continue
			}
			got[p.id] = p
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = b.executor().Query("SELECT profile, kind, value FROM identities WHERE profile IN "+in, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var pid, k, v string
			if err := rows.Scan(&pid, &k, &v); err != nil {
				rows.Close()
				return err
			}
			if p := got[pid]; p != nil {
				p.ids[k] = append(p.ids[k], v)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("load identities: %w", err)
		}
		for id, p := range got {
			b.profiles[id] = p
		}
	}
	return nil
}

type profileRow struct {
	ID         string `db:"id"`
	MergedInto string `db:"merged_into"`
	Created    string `db:"created"`
	Name       string `db:"name"`
	Email      string `db:"email"`
	Phone      string `db:"phone"`
	Traits     string `db:"traits"`
	Computed   string `db:"computed"`
	Consent    string `db:"consent"`
}

// decode parses a stored profile. Stored JSON that does not parse is an
// error, never an empty map: the next flush would write the empty map back
// and erase what was there.
func (r *profileRow) decode() (*profile, error) {
	p := &profile{id: r.ID, mergedInto: r.MergedInto, created: r.Created, name: r.Name, email: r.Email, phone: r.Phone,
		traits: map[string]any{}, comp: &Computed{}, consent: map[string]ConsentEntry{}, ids: map[string][]string{},
		rawTraits: r.Traits, rawConsent: r.Consent, rawComputed: r.Computed}
	for _, f := range []struct {
		name, raw string
		into      any
	}{{"traits", r.Traits, &p.traits}, {"computed", r.Computed, p.comp}, {"consent", r.Consent, &p.consent}} {
		if f.raw == "" {
			continue
		}
		// fastjson: every profile a batch reads back is decoded here.
		if err := fastjson.UnmarshalString(f.raw, f.into); err != nil {
			return nil, fmt.Errorf("profile %s: stored %s are not valid JSON (left untouched): %w", r.ID, f.name, err)
		}
	}
	if p.traits == nil {
		p.traits = map[string]any{}
	}
	if p.consent == nil {
		p.consent = map[string]ConsentEntry{}
	}
	return p, nil
}

// load returns the live profile for id (following merges).
func (b *batch) load(id string) (*profile, error) {
	for i := 0; i < 64; i++ {
		id = b.canonical(id)
		if p := b.profiles[id]; p != nil && p.mergedInto == "" {
			b.see(p)
			return p, nil
		}
		if p := b.rowProfile(id); p != nil {
			b.see(p)
			return p, nil
		}
		st, err := b.stmt(&b.sProfile, profileSQL)
		if err != nil {
			return nil, err
		}
		p, err := b.readProfile(st.QueryRow(id))
		if err != nil {
			return nil, fmt.Errorf("load profile %s: %w", id, err)
		}
		if p.mergedInto != "" {
			b.redirect[id] = p.mergedInto
			continue
		}
		if st, err = b.stmt(&b.sProfileIdents, profileIdentsSQL); err != nil {
			return nil, err
		}
		rows, err := st.Query(id)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return nil, err
			}
			p.ids[k] = append(p.ids[k], v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("load identities of %s: %w", id, err)
		}
		b.profiles[id] = p
		b.see(p)
		return p, nil
	}
	return nil, fmt.Errorf("profile %s: merge chain too long", id)
}

func (b *batch) create() (*profile, error) {
	b.m.seq++
	p := &profile{id: newID(), created: b.nowDB, seq: b.m.seq, traits: map[string]any{}, comp: &Computed{},
		consent: map[string]ConsentEntry{}, ids: map[string][]string{}, dirty: true, touched: true, isNew: true, fresh: true}
	b.profiles[p.id] = p
	b.see(p)
	return p, nil
}

func (b *batch) capFor(kind string) int {
	switch {
	case singleValued[kind]:
		return 1
	case kind == events.AnonymousID:
		return anonymousCap
	}
	return b.m.identityCap
}

// canAttach applies the guard rails to adding one identity to p.
func (b *batch) canAttach(p *profile, kind, value string) (reason, existing string) {
	vals := p.ids[kind]
	if singleValued[kind] && len(vals) > 0 {
		return "distinct_" + kind, vals[0]
	}
	if len(vals) >= b.capFor(kind) {
		return "identity_cap", ""
	}
	return "", ""
}

// canMerge applies the guard rails to merging two profiles.
func (b *batch) canMerge(a, c *profile) (reason, kind, va, vc string) {
	for k, cv := range c.ids {
		av := a.ids[k]
		if len(av) == 0 || len(cv) == 0 {
			continue
		}
		if singleValued[k] && av[0] != cv[0] {
			return "distinct_" + k, k, av[0], cv[0]
		}
		union := len(av)
		for _, v := range cv {
			if !contains(av, v) {
				union++
			}
		}
		if union > b.capFor(k) {
			return "identity_cap", k, av[0], cv[0]
		}
	}
	return "", "", "", ""
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (b *batch) attach(p *profile, kind, value string) error {
	st, err := b.stmt(&b.sIdentIns, identInsSQL)
	if err != nil {
		return err
	}
	if _, err := st.Exec(newID(), kind, value, p.id, b.nowDB); err != nil {
		return fmt.Errorf("attach identity %s: %w", kind, err)
	}
	p.wordsSaved = false
	p.ids[kind] = append(p.ids[kind], value)
	b.idCache[kind+"\x00"+value] = p.id
	if kind != events.AnonymousID {
		p.comp.Identified = true
	}
	p.dirty, p.touched = true, true
	return nil
}

func (b *batch) conflict(a, c, reason, kind, va, vc, eventID string) error {
	_, err := b.tx.DB().NewQuery(`INSERT INTO profile_conflicts (id, profile_a, profile_b, kind, value_a, value_b, reason, status, event_id, note, created, updated)
VALUES ({:id},{:a},{:b},{:k},{:va},{:vb},{:r},'open',{:e},'',{:c},{:c}) ON CONFLICT DO NOTHING`).Bind(dbx.Params{
		"id": newID(), "a": a, "b": c, "k": kind, "va": va, "vb": vc, "r": reason, "e": eventID, "c": b.nowDB}).Execute()
	return err
}

// merge joins a and c because ev carried id, which c held; the older
// survives. Returns the survivor. The merge ledger records why.
func (b *batch) merge(a, c *profile, ev *events.Event, id ident) (*profile, error) {
	if obs := b.m.opts.Observe; obs != nil {
		defer func(t time.Time) { obs("merge", time.Since(t)) }(time.Now())
	}
	s, l := a, c
	if c.older(a) {
		s, l = c, a
	}
	// Before anything moves: which of c's events had put the identifier there.
	earlier, err := b.earlierEvent(c.id, id.kind, id.value, ev.ID)
	if err != nil {
		return nil, err
	}
	led := &mergeLedgerRow{kind: id.kind, value: id.value, cause: refOf(ev), earlier: earlier, loserIDs: maps.Clone(l.ids)}
	db := b.tx.DB()
	p := dbx.Params{"s": s.id, "l": l.id}
	for _, q := range []string{
		"UPDATE identities SET profile={:s} WHERE profile={:l}",
		"UPDATE events SET profile={:s} WHERE profile={:l}",
		"UPDATE profiles SET merged_into={:s} WHERE merged_into={:l} AND merged_into != ''", // the condition lets SQLite use the partial index
		"DELETE FROM segment_members WHERE profile={:l}",
	} {
		if _, err := db.NewQuery(q).Bind(p).Execute(); err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
	}
	for _, t := range b.m.movable(b.tx) {
		// Which rows moved, so an un-merge moves exactly these back.
		var moved []string
		if err := db.NewQuery("SELECT id FROM " + t.name + " WHERE " + t.field + "={:l}").Bind(p).Column(&moved); err != nil {
			return nil, fmt.Errorf("merge %s: %w", t.name, err)
		}
		if len(moved) == 0 {
			continue
		}
		if led.moved == nil {
			led.moved = map[string][]string{}
		}
		led.moved[t.name] = moved
		if _, err := db.NewQuery("UPDATE " + t.name + " SET " + t.field + "={:s} WHERE " + t.field + "={:l}").Bind(p).Execute(); err != nil {
			return nil, fmt.Errorf("merge %s: %w", t.name, err)
		}
	}
	if err := moveWords(b.tx, s.id, l.id); err != nil {
		return nil, fmt.Errorf("merge search index: %w", err)
	}
	s.indexed, s.wordsSaved = "", false // its words are now both profiles': rewrite at flush
	s.traitsSaved, s.consentSaved = false, false
	if err := b.insertMerge(s, l, ev.ID, led); err != nil {
		return nil, err
	}
	for k, vals := range l.ids {
		for _, v := range vals {
			if !contains(s.ids[k], v) {
				s.ids[k] = append(s.ids[k], v)
			}
		}
	}
	for k, v := range l.traits {
		if _, ok := s.traits[k]; !ok {
			s.traits[k] = v
		}
	}
	for ch, e := range l.consent {
		if cur, ok := s.consent[ch]; !ok || e.At > cur.At {
			s.consent[ch] = e
		}
	}
	s.comp.mergeFrom(l.comp)
	if s.name == "" {
		s.name = l.name
	}
	if s.email == "" {
		s.email = l.email
	}
	if s.phone == "" {
		s.phone = l.phone
	}
	l.mergedInto = s.id
	l.ids = map[string][]string{}
	b.redirect[l.id] = s.id
	s.dirty, s.touched, l.dirty = true, true, true
	s.segState, s.fresh = nil, false // the loser's events and rows moved: evaluate every segment
	b.emits = append(b.emits, systemEvent("profile.merged", "merge:"+l.id+":"+s.id, s, b.now,
		map[string]any{"profile_id": s.id, "merged_profile_id": l.id}))
	return s, nil
}

type ident struct{ kind, value string }

// resolve finds or creates the profile of one event's identities.
func (b *batch) resolve(ids []ident, ev *events.Event) (*profile, error) {
	eventID := ev.ID
	var primary *profile
	var pending []ident
	for _, id := range ids {
		pid, err := b.lookup(id.kind, id.value)
		if err != nil {
			return nil, err
		}
		if pid == "" {
			pending = append(pending, id)
			continue
		}
		q, err := b.load(pid)
		if errors.Is(err, sql.ErrNoRows) {
			// The profile was deleted behind our back (e.g. by a superuser at
			// /_/) and left its identities: detach this one, so the event
			// lands on a live profile instead of failing for ever.
			if err := b.detach(id, pid); err != nil {
				return nil, err
			}
			pending = append(pending, id)
			continue
		}
		if err != nil {
			return nil, err
		}
		if primary == nil {
			ok := true
			for _, pd := range pending {
				if r, _ := b.canAttach(q, pd.kind, pd.value); r != "" {
					ok = false
				}
			}
			if ok {
				primary = q
				continue
			}
			// The stronger new identities cannot live on q: they get their
			// own profile, and q is then handled like any other match.
			if primary, err = b.create(); err != nil {
				return nil, err
			}
			for _, pd := range pending {
				if err := b.attach(primary, pd.kind, pd.value); err != nil {
					return nil, err
				}
			}
			pending = nil
		}
		if q == primary {
			continue
		}
		if reason, kind, va, vc := b.canMerge(primary, q); reason != "" {
			a, c := primary, q
			if c.older(a) {
				a, c = c, a
				va, vc = vc, va
			}
			if err := b.conflict(a.id, c.id, reason, kind, va, vc, eventID); err != nil {
				return nil, err
			}
			continue
		}
		if apart, err := b.keptApart(primary.id, q.id); err != nil {
			return nil, err
		} else if apart {
			// An owner un-merged these two and kept them apart: the event
			// stays with the profile its stronger identity found.
			a, c := primary, q
			if c.older(a) {
				a, c = c, a
			}
			if err := b.conflict(a.id, c.id, reasonKeptApart, id.kind, id.value, id.value, eventID); err != nil {
				return nil, err
			}
			continue
		}
		if primary, err = b.merge(primary, q, ev, id); err != nil {
			return nil, err
		}
	}
	if primary == nil {
		var err error
		if primary, err = b.create(); err != nil {
			return nil, err
		}
	}
	for _, pd := range pending {
		if r, existing := b.canAttach(primary, pd.kind, pd.value); r != "" {
			if err := b.conflict(primary.id, "", r, pd.kind, existing, pd.value, eventID); err != nil {
				return nil, err
			}
			continue
		}
		if err := b.attach(primary, pd.kind, pd.value); err != nil {
			return nil, err
		}
	}
	return primary, nil
}

// detach removes an identity that points at a profile that no longer
// exists.
func (b *batch) detach(id ident, missing string) error {
	b.m.log.Warn("identity pointed at a deleted profile; detaching it", "kind", id.kind, "profile", missing)
	if _, err := b.tx.DB().NewQuery("DELETE FROM identities WHERE kind={:k} AND value={:v}").
		Bind(dbx.Params{"k": id.kind, "v": id.value}).Execute(); err != nil {
		return fmt.Errorf("detach identity: %w", err)
	}
	b.idCache[id.kind+"\x00"+id.value] = ""
	b.rows.drop(missing)
	return nil
}

// identsOf lists an event's identities strongest first, without tombstoned
// ones (dropped: scrubbed from the event) and without blocklisted ones,
// which stay on the event but never match or join anyone.
func (b *batch) identsOf(ev *events.Event) (ids []ident, dropped []string) {
	for _, k := range events.IdentityKinds {
		v := ev.Identities[k]
		if v == "" {
			continue
		}
		if b.m.tomb.has(k, v) {
			dropped = append(dropped, k)
			continue
		}
		if b.block.blocked(v) != "" {
			continue
		}
		ids = append(ids, ident{k, v})
	}
	return ids, dropped
}

// previousID is the identity a Segment alias call links to its userId:
// previousId is an anonymousId or an earlier userId (Segment's spec), so it
// is whichever of the two a profile already holds, an anonymous id when
// none does (analytics.js aliases the browser's anonymousId). Blocked and
// erased values link nothing; nor does a previousId equal to an id the
// event already carries.
func (b *batch) previousID(ev *events.Event) (*ident, error) {
	prev, _ := ev.Properties["previous_id"].(string)
	prev = strings.TrimSpace(prev)
	if prev == "" || b.block.blocked(prev) != "" {
		return nil, nil
	}
	for _, v := range ev.Identities {
		if v == prev {
			return nil, nil
		}
	}
	kinds := []string{events.AnonymousID, events.UserID}
	for _, k := range kinds {
		if b.m.tomb.has(k, prev) {
			return nil, nil
		}
	}
	for _, k := range kinds {
		pid, err := b.lookup(k, prev)
		if err != nil {
			return nil, err
		}
		if pid != "" {
			return &ident{k, prev}, nil
		}
	}
	return &ident{events.AnonymousID, prev}, nil
}

// applyEvent folds an event into its profile.
func (b *batch) applyEvent(p *profile, ev *events.Event) {
	p.dirty, p.touched = true, true
	p.comp.apply(ev, b.cur)
	if e := ev.Identities[events.Email]; e != "" && e != p.email && contains(p.ids[events.Email], e) {
		p.email, p.wordsSaved = e, false
	}
	if ph := ev.Identities[events.Phone]; ph != "" && ph != p.phone && contains(p.ids[events.Phone], ph) {
		p.phone, p.wordsSaved = ph, false
	}
	switch ev.Type {
	case events.Identify, events.CustomerUpdated:
		traits, ok := ev.Properties["traits"].(map[string]any)
		if !ok && ev.Type == events.CustomerUpdated && len(ev.Properties) > 0 {
			// A connector's customer record: kept under traits.<source> so
			// vendors' fields (customer_id, orders_count, …) never collide.
			vendor, _ := p.traits[ev.Source].(map[string]any)
			if vendor == nil {
				vendor = map[string]any{}
			}
			for k, v := range ev.Properties {
				if k != "invalid_phone" {
					vendor[k] = v
				}
			}
			p.traits[ev.Source] = vendor
			p.traitsSaved = false
			p.setName(nameOf(ev.Properties))
			return
		}
		if len(traits) > 0 {
			p.traitsSaved = false
		}
		for k, v := range traits {
			if v == nil {
				delete(p.traits, k)
				continue
			}
			p.traits[k] = v
		}
		p.setName(nameOf(traits))
	case events.ConsentChanged:
		ch, _ := ev.Properties["channel"].(string)
		st, _ := ev.Properties["status"].(string)
		ch, st = strings.ToLower(strings.TrimSpace(ch)), strings.ToLower(strings.TrimSpace(st))
		if !validConsentChannel(ch) || (st != ConsentSubscribed && st != ConsentUnsubscribed) {
			b.m.log.Debug("consent.changed ignored: bad channel or status", "event_id", ev.ID, "channel", ch, "status", st)
			return
		}
		at := fmtT(ev.OccurredAt)
		if cur, ok := p.consent[ch]; ok && cur.At > at {
			return // an older change arriving late
		}
		src, _ := ev.Properties["source"].(string)
		if src == "" {
			src = ev.Source
		}
		reason, _ := ev.Properties["reason"].(string)
		p.consent[ch] = ConsentEntry{Status: st, Source: src, At: at, EventID: ev.ID, Reason: reason, By: consentBy(ev)}
		p.consentSaved = false
	}
}

// setName takes a name an event gave, if it gave one.
func (p *profile) setName(n string) {
	if n != "" && n != p.name {
		p.name, p.wordsSaved = n, false
	}
}

func nameOf(traits map[string]any) string {
	if n, ok := traits["name"].(string); ok && strings.TrimSpace(n) != "" {
		return strings.TrimSpace(n)
	}
	f, _ := traits["first_name"].(string)
	if f == "" {
		f, _ = traits["firstName"].(string)
	}
	l, _ := traits["last_name"].(string)
	if l == "" {
		l, _ = traits["lastName"].(string)
	}
	return strings.TrimSpace(strings.TrimSpace(f) + " " + strings.TrimSpace(l))
}

// flush writes every changed profile.
func (b *batch) flush() error {
	var live []*profile
	for _, p := range b.order {
		if p.dirty && p.mergedInto == "" {
			live = append(live, p)
		}
	}
	// What each row will hold is worked out without the database, in
	// parts beside the writer; the statements then run in order.
	rows := make([]rowWrite, len(live))
	inParts(len(live), func(lo, hi int) {
		var buf []byte
		for i := lo; i < hi; i++ {
			buf = b.prepare(live[i], &rows[i], buf)
		}
	})
	next := 0
	for _, p := range b.order {
		if !p.dirty {
			continue
		}
		var w *rowWrite
		if p.mergedInto == "" {
			w = &rows[next]
			next++
		}
		if err := b.write(p, w); err != nil {
			return fmt.Errorf("write profile %s: %w", p.id, err)
		}
		p.dirty, p.isNew = false, false
	}
	return nil
}

// profileColumns are the columns flush writes, in the order of
// profileInsSQL after the id; an UPDATE writes a subset (a bit each).
var profileColumns = [...]string{"merged_into", "name", "email", "phone", "traits", "computed", "consent", "first_seen", "last_seen",
	"orders_count", "lifecycle_stage", "engagement_level", "traits_due_at", "known"}

const allColumns = 1<<len(profileColumns) - 1

// updateSQL is the UPDATE of the columns in mask (and updated), by id.
func updateSQL(mask uint16) string {
	var q strings.Builder
	q.WriteString("UPDATE profiles SET ")
	for i, c := range profileColumns {
		if mask&(1<<i) != 0 {
			q.WriteString(c)
			q.WriteString("=?, ")
		}
	}
	q.WriteString("updated=? WHERE id=?")
	return q.String()
}

// rowWrite is what write stores for a live profile, as prepare works it
// out from the profile alone.
type rowWrite struct {
	vals []any // profileColumns' values
	mask uint16
	now  *savedColumns
	// computed is the computed JSON; unchanged says the row as stored
	// already holds everything (only updated would move).
	computed  string
	unchanged bool
	// words are the profile's own search words when they need looking at
	// (p.wordsSaved false).
	words []string
	row   *storedRow // the row cache's entry once written
}

// prepare works out w, p's row as write will store it, touching nothing
// but p and w (flush runs it for many profiles at once). buf is scratch
// for the computed JSON, returned for the next call. An update writes
// only the columns that changed since flush last wrote them; computed
// changes with every event.
func (b *batch) prepare(p *profile, w *rowWrite, buf []byte) []byte {
	vals := make([]any, len(profileColumns)) // escapes into Exec anyway
	var mask uint16 = allColumns
	c := p.comp
	due := c.derive(b.now, b.cur)
	now := &savedColumns{name: p.name, email: p.email, phone: p.phone,
		orders: c.OrdersCount, stage: c.LifecycleStage, engagement: c.EngagementLevel, known: p.known()}
	now.dbTimes(p.saved, c)
	if !due.IsZero() {
		now.due = due.UTC().Format(dbTime)
	}
	if p.saved != nil && keepDue(p.saved.due, now.due, b.nowDB) {
		now.due = p.saved.due
	}
	buf = c.appendJSON(buf[:0])
	computed := string(buf)
	vals[0], vals[1], vals[2], vals[3], vals[5] = "", now.name, now.email, now.phone, computed
	vals[7], vals[8], vals[9], vals[10], vals[11], vals[12], vals[13] = now.firstSeen, now.lastSeen, now.orders, now.stage, now.engagement, now.due, now.known
	if !p.isNew && p.saved != nil {
		mask = p.saved.changed(now) | 1<<5 // computed
	}
	p.ownComputed = c.finite() // else appendJSON stores what json.Marshal fails on
	if !p.traitsSaved || p.isNew {
		tj, err := json.Marshal(p.traits)
		p.rawTraits = string(tj)
		vals[4], mask = p.rawTraits, mask|1<<4
		p.ownTraits = err == nil
	} else {
		mask &^= 1 << 4
	}
	if !p.consentSaved || p.isNew {
		kj, err := json.Marshal(p.consent)
		p.rawConsent = string(kj)
		vals[6], mask = p.rawConsent, mask|1<<6
		p.ownConsent = err == nil
	} else {
		mask &^= 1 << 6
	}
	var words []string
	if !p.wordsSaved {
		words = profileWords(p.name, p.email, p.phone, p.ids)
	}
	// Events that changed nothing the row holds (say a page view older
	// than the last one, on a day and channel already counted) leave it
	// unwritten: the UPDATE would only move updated, and cost the row's
	// page in the WAL.
	unchanged := !p.isNew && p.saved != nil && mask == 1<<5 && computed == p.rawComputed
	*w = rowWrite{vals: vals, mask: mask, now: now, computed: computed, unchanged: unchanged, words: words,
		row: rowOf(p, computed, now)}
	return buf
}

// write inserts or updates one profile's row (and its search words): a
// merged profile's pointer, or w (prepare) for a live one.
func (b *batch) write(p *profile, w *rowWrite) error {
	if p.mergedInto != "" {
		// A merged profile keeps only its pointer: no saved columns and
		// no cached row, whether the write succeeds or not.
		vals := []any{p.mergedInto, "", "", "", "{}", "{}", "{}", "", "", 0, "", "", "", false}
		err := b.exec(p, vals, allColumns)
		p.saved = nil
		b.rows.drop(p.id)
		if err == nil {
			err = b.wroteBehind(p.id, nil)
		}
		return err
	}
	if err := b.indexProfile(p, w.words); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if !w.unchanged {
		held, err := b.holdBack(p, w)
		if err == nil && !held {
			mask := w.mask
			if e := b.waiting(p.id); e != nil {
				mask |= e.mask // what waited goes with it
			}
			if err = b.exec(p, w.vals, mask); err == nil {
				err = b.wroteBehind(p.id, w)
			}
		}
		if err != nil {
			p.saved = nil
			b.rows.drop(p.id)
			return err
		}
	}
	p.saved = w.now
	p.traitsSaved, p.consentSaved = true, true
	p.rawComputed = w.computed
	b.rows.put(p.id, w.row)
	return nil
}

// exec inserts p's row, or updates the columns of vals in mask.
func (b *batch) exec(p *profile, vals []any, mask uint16) error {
	if !p.isNew {
		return b.updateRow(p.id, vals, mask)
	}
	st, err := b.stmt(&b.sProfileIns, profileInsSQL)
	if err != nil {
		return err
	}
	return b.runRow(st, append(append(append(b.args[:0], p.id), vals...), p.created, b.nowDB))
}

// updateRow writes the columns of vals in mask to id's row (a profile's
// change, or one that waited: behind.go).
func (b *batch) updateRow(id string, vals []any, mask uint16) error {
	st, err := b.update(mask)
	if err != nil {
		return err
	}
	a := b.args[:0]
	for i, v := range vals {
		if mask&(1<<i) != 0 {
			a = append(a, v)
		}
	}
	return b.runRow(st, append(a, b.nowDB, id))
}

// runRow runs a profile row's statement with a (b.args, reused) and
// counts the row written.
func (b *batch) runRow(st *sql.Stmt, a []any) error {
	_, err := st.Exec(a...)
	clear(a) // drop references to this profile's strings
	b.args = a[:0]
	if err == nil {
		b.m.rowsWritten.Add(1)
	}
	return err
}

// keepDue says whether a profile's stored traits_due_at stands although
// its time-based traits now next change at next: the stored time is still
// to come and earlier. Most events move last_seen and so the next change of
// engagement a little later; rewriting traits_due_at (and its index entry)
// for each of them cost more than the scheduled pass visiting the profile
// early once, finding nothing changed and writing the later time then. The
// pass may come early, never late.
func keepDue(stored, next, nowDB string) bool {
	return stored != "" && next != "" && stored > nowDB && next > stored
}

// changed is the mask of profileColumns whose value differs in now.
func (s *savedColumns) changed(now *savedColumns) uint16 {
	var m uint16
	set := func(i int, diff bool) {
		if diff {
			m |= 1 << i
		}
	}
	set(1, s.name != now.name)
	set(2, s.email != now.email)
	set(3, s.phone != now.phone)
	set(7, s.firstSeen != now.firstSeen)
	set(8, s.lastSeen != now.lastSeen)
	set(9, s.orders != now.orders)
	set(10, s.stage != now.stage)
	set(11, s.engagement != now.engagement)
	set(12, s.due != now.due)
	set(13, s.known != now.known)
	return m
}

// update returns the batch's UPDATE statement for mask.
func (b *batch) update(mask uint16) (*sql.Stmt, error) {
	if st := b.sUpdate[mask]; st != nil {
		return st, nil
	}
	var st *sql.Stmt
	if _, err := b.stmt(&st, updateSQL(mask)); err != nil {
		return nil, err
	}
	if b.sUpdate == nil {
		b.sUpdate = map[uint16]*sql.Stmt{}
	}
	b.sUpdate[mask] = st
	return st, nil
}

// systemEvent builds an event Omni itself publishes about a profile.
func systemEvent(typ, id string, p *profile, now time.Time, props map[string]any) *events.Event {
	k, v := p.strongest()
	ids := events.Identities{}
	if k != "" {
		ids[k] = v
	}
	return &events.Event{ID: id, Type: typ, Source: "omni", OccurredAt: now, ReceivedAt: now,
		Identities: ids, Properties: maps.Clone(props)}
}

// inflight is what BeforeInsert hands to ProcessBatch of the same batch
// (both run in the events transaction, with the rows written in between).
type inflight struct {
	b *batch
}

// BeforeInsert implements eventstore.BeforeInsert: it resolves the batch's
// identities, applies the events to their profiles and writes each changed
// profile once, before the events rows are written, so each row is
// inserted with its profile. Segments are evaluated by ProcessBatch, once
// the rows (which event conditions count) are there.
func (m *Module) BeforeInsert(tx core.App, stored []*eventstore.Stored) (err error) {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	m.pending, m.inflight = nil, nil
	if len(stored) == 0 {
		return nil
	}
	m.settle(tx)   // the previous batch may not have committed
	m.writing = tx // catchUp in this transaction writes as its own
	defer func() {
		if err != nil {
			m.failed()
		} else {
			m.cache.unconfirmed = true // until the commit is confirmed
		}
	}()
	obs := m.opts.Observe
	if obs != nil {
		defer func(t time.Time) { obs("resolve-batch", time.Since(t)) }(time.Now())
	}
	b := m.newBatch(tx, true)
	defer b.close()
	fl := &inflight{b: b}
	m.adopted = nil
	if err := m.adoptBaseCurrency(b, stored); err != nil {
		return fmt.Errorf("adopt the base currency: %w", err)
	}
	if err := b.prefetch(stored); err != nil {
		return fmt.Errorf("look up identities: %w", err)
	}
	if err := b.prefetchProfiles(stored); err != nil {
		return fmt.Errorf("read profiles: %w", err)
	}
	var t0 time.Time
	for _, s := range stored {
		ev := s.Event
		if obs != nil {
			t0 = time.Now()
		}
		if ev.Source == "omni" && systemType(ev.Type) {
			if ev.Type == events.ProfileErased {
				// Carries erased identities for connectors; not kept.
				s.Omit = true
				continue
			}
			if pid, _ := ev.Properties["profile_id"].(string); pid != "" {
				p, err := b.load(pid)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return err
				}
				if err != nil {
					// The profile was erased meanwhile: do not keep its identities.
					s.Omit = true
					continue
				}
				s.Profile = p.id
				b.resolved = append(b.resolved, s)
				continue
			}
		}
		// No event lifts a tombstone, not even new consent: anyone with
		// a (public) write key could send one. Owners remove tombstones
		// (RemoveTombstone).
		ids, dropped := b.identsOf(ev)
		if len(dropped) > 0 {
			m.scrubErased(s)
		}
		if ev.Type == events.Alias && len(ids) > 0 {
			prev, err := b.previousID(ev)
			if err != nil {
				return err
			}
			if prev != nil {
				ids = append(ids, *prev) // after the event's own: its userId's profile leads
			}
		}
		if len(ids) == 0 {
			continue
		}
		p, err := b.resolve(ids, ev)
		if err != nil {
			return err
		}
		if !systemType(ev.Type) {
			b.applyEvent(p, ev)
			if ws := orderWords(ev); len(ws) > 0 {
				if err := b.writeWords(p.id, originOrder, ws, false); err != nil {
					return fmt.Errorf("index order: %w", err)
				}
			}
		}
		s.Profile = p.id
		b.resolved = append(b.resolved, s)
		if obs != nil {
			obs("resolve", time.Since(t0))
		}
	}
	for _, s := range b.resolved {
		s.Profile = b.canonical(s.Profile)
		if p := b.profiles[s.Profile]; p != nil {
			p.sawEvent(s.Event.Type, s.Event.OccurredAt) // event conditions of segments may have changed
		}
	}
	if obs != nil {
		t0 = time.Now()
	}
	if err := b.flush(); err != nil {
		return err
	}
	if err := b.writeDue(); err != nil {
		return fmt.Errorf("write waiting profiles: %w", err)
	}
	for _, s := range stored {
		if !s.Omit {
			m.behind.probe = s.RecordID // settle looks it up
			break
		}
	}
	if obs != nil {
		obs("flush", time.Since(t0))
	}
	m.inflight = fl
	return nil
}

// failed drops what the cache learnt from a batch that did not store.
func (m *Module) failed() {
	m.cache.reset()
	m.behind.rollback()
	m.writing = nil
	m.inflight = nil
	if lerr := m.tomb.load(m.app); lerr != nil { // keep the in-memory set in step with the database
		m.log.Error("reload tombstones", "error", lerr)
	}
}

// ProcessBatch implements eventstore.Processor: with the batch's rows
// written (BeforeInsert resolved them), it removes what is not kept,
// scrubs erased identities and updates segment membership.
func (m *Module) ProcessBatch(tx core.App, stored []*eventstore.Stored) (err error) {
	if len(stored) == 0 {
		return nil
	}
	m.cacheMu.Lock()
	fl := m.inflight
	m.cacheMu.Unlock()
	if fl == nil {
		// Called without BeforeInsert (rows stored without a profile):
		// resolve now, then do to the stored rows what the insert would
		// have done (rows not kept, erased identities, profiles).
		if err := m.BeforeInsert(tx, stored); err != nil {
			return err
		}
		if err := rewriteStored(tx, stored); err != nil {
			return err
		}
	}
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	fl, m.inflight = m.inflight, nil
	if fl == nil {
		return nil // nothing resolved: no profile changed
	}
	defer func() {
		if err != nil {
			m.failed()
		}
	}()
	obs := m.opts.Observe
	if obs != nil {
		defer func(t time.Time) { obs("segments-batch", time.Since(t)) }(time.Now())
	}
	b := fl.b
	var touched []*profile
	for _, p := range b.order {
		if p.touched && p.mergedInto == "" {
			touched = append(touched, p)
		}
	}
	emits, err := m.evaluateChanged(tx, touched, b.now)
	if err != nil {
		return err
	}
	b.keepAnswers(touched)
	m.changed = m.changed[:0]
	for _, p := range b.order {
		p.touched = false
		m.changed = append(m.changed, p.id)
	}
	m.pending = append(b.emits, emits...)
	return relay.Stage(tx, m.pending)
}

// scrubErased makes s's row leave out the event's erased identities, or
// not be written when it has no other.
func (m *Module) scrubErased(s *eventstore.Stored) {
	kept := events.Identities{}
	for k, v := range s.Event.Identities {
		if !m.tomb.has(k, v) {
			kept[k] = v
		}
	}
	if len(kept) == 0 {
		s.Omit = true
		return
	}
	s.Identities = kept
}

// rewriteStored applies to rows already stored what BeforeInsert decided
// for them: rows not kept are deleted, erased identities scrubbed, and
// each row points at its profile.
func rewriteStored(tx core.App, stored []*eventstore.Stored) error {
	for _, s := range stored {
		var err error
		switch {
		case s.Omit:
			_, err = tx.DB().NewQuery("DELETE FROM events WHERE id={:id}").Bind(dbx.Params{"id": s.RecordID}).Execute()
		case s.Identities != nil:
			j, _ := json.Marshal(s.Identities)
			_, err = tx.DB().NewQuery("UPDATE events SET identities={:i}, profile={:p} WHERE id={:id}").
				Bind(dbx.Params{"i": string(j), "p": s.Profile, "id": s.RecordID}).Execute()
		case s.Profile != "":
			_, err = tx.DB().NewQuery("UPDATE events SET profile={:p} WHERE id={:id}").Bind(dbx.Params{"p": s.Profile, "id": s.RecordID}).Execute()
		}
		if err != nil {
			return fmt.Errorf("rewrite stored event %s: %w", s.RecordID, err)
		}
	}
	return nil
}
