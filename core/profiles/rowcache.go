package profiles

import (
	"runtime/debug"

	"github.com/omni/omni/core/segmentrule"
)

// storedRow is a live profile's row as committed, held as the text the
// database holds: about 1.4 KB for a customer with a name, orders and ten
// active days, against 3.8 KB decoded (cachedProfileBytes). The decoded
// cache starts over when full, so a shop with more active customers than
// it holds read nearly every profile back with SQL; rows let the cache
// keep nearly three times as many customers in the same memory, and
// decoding a row costs about a quarter of reading it (docs/benchmarks.md).
// Rows cost no encoding of their own: write keeps the JSON it stores, and
// traits and consent it does not store again stay the text read.
type storedRow struct {
	created, traits, computed, consent string
	// saved is the row's plain columns (name, email, phone and the
	// derived ones); its compFirst and compLast are left empty.
	saved savedColumns
	// ids are the profile's identities, kind and value in turn.
	ids []string
	// own: traits and consent are this process's encodings (computed
	// always is: write encodes it every time).
	own bool
	// answers are the segments' answers for the row, then their
	// conditions' (profile.answers and profile.condAnswers), as the
	// events batch that last wrote it left them, valid while answersAt is
	// the segments' epoch: a later batch that decodes the row starts from
	// them instead of answering every segment again (keepAnswers).
	answers   []segmentrule.Truth
	answersAt uint64
}

// rowOverhead is a cached row's heap besides its text: the struct, the
// string headers, the identity and answer slices and its map entry.
const rowOverhead = 392

func (r *storedRow) size() int {
	n := rowOverhead + len(r.created) + len(r.traits) + len(r.computed) + len(r.consent) +
		len(r.saved.name) + len(r.saved.email) + len(r.saved.phone) + len(r.saved.firstSeen) + len(r.saved.lastSeen) +
		len(r.saved.stage) + len(r.saved.engagement) + len(r.saved.due) + len(r.answers)
	for _, s := range r.ids {
		n += len(s) + 16
	}
	return n
}

// rowCache holds committed rows of live profiles, up to a byte budget.
// Like the rest of resolveCache it only ever holds committed state: a
// batch that fails drops it whole.
type rowCache struct {
	rows  map[string]*storedRow
	bytes int
	// budget is rowBudget as of the batch in progress: newBatch reads the
	// soft limit once, not every put (reading it takes the heap's lock).
	budget int
}

// rowBudget is the heap the row cache may take: a fifth of the Go heap's
// soft limit (32 MB, about 22,000 customers, at memtune's default), at
// most maxRowBytes.
func rowBudget() int {
	limit := debug.SetMemoryLimit(-1)
	return int(min(limit/5, maxRowBytes))
}

const maxRowBytes = 256 << 20

func (c *rowCache) get(id string) *storedRow {
	if c == nil {
		return nil
	}
	return c.rows[id]
}

// put records p's row as just written. Past the budget it drops rows at
// random (map order) down to nine tenths of it: starting over, as the
// decoded cache does, would find nothing when the shop's active customers
// come round in turn, as a newsletter's clicks or a sale's orders do,
// while dropping at random keeps most of them.
func (c *rowCache) put(id string, r *storedRow) {
	if c == nil {
		return
	}
	if c.rows == nil {
		c.rows = map[string]*storedRow{}
	}
	if old := c.rows[id]; old != nil {
		c.bytes -= old.size()
	}
	c.rows[id] = r
	c.bytes += r.size()
	if c.bytes > c.budget {
		for k, old := range c.rows {
			if c.bytes <= c.budget/10*9 {
				break
			}
			if k != id {
				delete(c.rows, k)
				c.bytes -= old.size()
			}
		}
	}
}

func (c *rowCache) drop(id string) {
	if c == nil {
		return
	}
	if old := c.rows[id]; old != nil {
		delete(c.rows, id)
		c.bytes -= old.size()
	}
}

func (c *rowCache) reset() {
	if c != nil {
		c.rows, c.bytes = nil, 0
	}
}

// rowOf is p's row as write just stored it (now: its plain columns).
func rowOf(p *profile, computed string, now *savedColumns) *storedRow {
	r := &storedRow{created: p.created, traits: p.rawTraits, computed: computed, consent: p.rawConsent, saved: *now,
		own: p.ownTraits && p.ownConsent}
	r.saved.compFirst, r.saved.compLast = "", ""
	n := 0
	for _, vs := range p.ids {
		n += 2 * len(vs)
	}
	r.ids = make([]string, 0, n)
	for k, vs := range p.ids {
		for _, v := range vs {
			r.ids = append(r.ids, k, v)
		}
	}
	return r
}

// cachedRow is id's row as it stands: its waiting change's (behind.go),
// else the row cache's; nil when neither holds it.
func (b *batch) cachedRow(id string) *storedRow {
	if e := b.waiting(id); e != nil {
		return e.row
	}
	return b.rows.get(id)
}

// rowProfile is id's working copy decoded from its cached row, now in the
// batch's profiles; nil when there is no row, or it does not decode (then
// the SQL read reports what is wrong).
func (b *batch) rowProfile(id string) *profile {
	r := b.cachedRow(id)
	if r == nil {
		return nil
	}
	p, err := b.fromRow(id, r)
	if err != nil {
		return nil
	}
	return p
}

// rowProfiles is rowProfile for many ids, each with a cached row: the rows
// are decoded in parts beside the writer (inParts). It returns the ids
// whose row does not decode.
func (b *batch) rowProfiles(ids []string) (failed []string) {
	rows := make([]*storedRow, len(ids))
	for i, id := range ids {
		rows[i] = b.cachedRow(id)
	}
	ps := make([]*profile, len(ids))
	inParts(len(ids), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ps[i], _ = decodeRow(ids[i], rows[i])
		}
	})
	for i, p := range ps {
		if p == nil {
			failed = append(failed, ids[i])
			continue
		}
		b.adoptRow(p, rows[i])
	}
	return failed
}

// fromRow decodes a cached row into the batch's working copy, as
// readProfile does a row read with SQL.
func (b *batch) fromRow(id string, r *storedRow) (*profile, error) {
	p, err := decodeRow(id, r)
	if err != nil {
		return nil, err
	}
	b.adoptRow(p, r)
	return p, nil
}

// decodeRow is the profile a cached row holds, decoded; it touches
// nothing else, so rows decode in parts (rowProfiles).
func decodeRow(id string, r *storedRow) (*profile, error) {
	row := profileRow{ID: id, Created: r.created, Name: r.saved.name, Email: r.saved.email, Phone: r.saved.phone,
		Traits: r.traits, Computed: r.computed, Consent: r.consent}
	p, err := row.decode()
	if err != nil {
		return nil, err
	}
	p.ownTraits, p.ownConsent, p.ownComputed = r.own, r.own, true
	for i := 0; i+1 < len(r.ids); i += 2 {
		p.ids[r.ids[i]] = append(p.ids[r.ids[i]], r.ids[i+1])
	}
	return p, nil
}

// adoptRow marks p, decoded from r, as stored, and makes it the batch's
// working copy.
func (b *batch) adoptRow(p *profile, r *storedRow) {
	saved := r.saved
	b.stored(p, &saved, r)
	b.profiles[p.id] = p
}

// keepAnswers records on the cached rows of ps (the profiles the events
// batch just evaluated) the segments' answers evaluateChanged left them
// with. A row in the cache is the profile as this batch wrote it, or as
// it was read when the batch did not change it; either way what the
// answers were given for.
func (b *batch) keepAnswers(ps []*profile) {
	for _, p := range ps {
		r := b.rows.get(p.id)
		if r == nil || p.answers == nil {
			continue
		}
		all := make([]segmentrule.Truth, 0, len(p.answers)+len(p.condAnswers))
		all = append(append(all, p.answers...), p.condAnswers...)
		b.rows.bytes += len(all) - len(r.answers)
		r.answers, r.answersAt = all, p.answersAt
	}
}
