package profiles

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/relay"
)

// ProfileUnmerged is published (through the relay) when an owner splits a
// merge back into two profiles.
const ProfileUnmerged = "profile.unmerged"

// reasonKeptApart is the conflict recorded when an event would join two
// profiles an owner un-merged and kept apart (profile_pair_blocks).
const reasonKeptApart = "kept_apart_by_owner"

// Errors of Unmerge; the API turns them into 404 and 409 answers.
var (
	ErrMergeNotFound = errors.New("merge not found")
	// ErrUnmergeRefused wraps the reason an un-merge cannot be done (409).
	ErrUnmergeRefused = errors.New("un-merge refused")
)

// refused is an ErrUnmergeRefused with the sentence shown to the owner.
type refused struct{ msg string }

func (r *refused) Error() string { return r.msg }
func (r *refused) Unwrap() error { return ErrUnmergeRefused }

// UnmergeBy says who un-merges (for the ledger) and whether to keep the
// two apart from now on.
type UnmergeBy struct {
	StaffID, StaffName string
	KeepApart          bool
}

// Unmerged is what an un-merge did.
type Unmerged struct {
	Merge Merge `json:"merge"`
	// Survivor stays; Restored is the profile that returned, with the id
	// it had before the merge.
	Survivor    Side `json:"survivor"`
	Restored    Side `json:"restored"`
	PairBlocked bool `json:"pair_blocked"`
}

// Side is one of the two profiles after an un-merge.
type Side struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Events     int    `json:"events"`
	Identities int    `json:"identities"`
}

// keptApart is true when an owner un-merged profiles a and c and kept them
// apart. Checked only when two profiles are about to merge (rare).
func (b *batch) keptApart(a, c string) (bool, error) {
	lo, hi := pairKey(a, c)
	var n int
	err := b.tx.DB().NewQuery("SELECT COUNT(*) FROM profile_pair_blocks WHERE profile_a={:a} AND profile_b={:b}").
		Bind(dbx.Params{"a": lo, "b": hi}).Row(&n)
	if err != nil {
		return false, fmt.Errorf("kept-apart pairs: %w", err)
	}
	return n > 0, nil
}

func pairKey(a, c string) (string, string) {
	if c < a {
		return c, a
	}
	return a, c
}

// Unmerge splits merge mergeID of profile profileID back into two
// profiles, in one transaction (docs/profiles.md "Un-merge").
func (m *Module) Unmerge(app core.App, profileID, mergeID string, by UnmergeBy) (*Unmerged, error) {
	if obs := m.opts.Observe; obs != nil {
		defer func(t time.Time) { obs("unmerge", time.Since(t)) }(time.Now())
	}
	var out *Unmerged
	var emits []*events.Event
	err := app.RunInTransaction(func(tx core.App) error {
		var err error
		out, emits, err = m.unmerge(tx, profileID, mergeID, by)
		if err != nil {
			return err
		}
		// Cached profiles and identity lookups are stale now; taken inside
		// the transaction like the events processor does.
		m.forgetCache()
		return relay.Stage(tx, emits)
	})
	if err != nil {
		return nil, err
	}
	m.emit(emits)
	m.notify([]string{out.Survivor.ID, out.Restored.ID})
	return out, nil
}

func loadMerge(tx core.App, id string) (*mergeRow, error) {
	var r mergeRow
	err := tx.DB().NewQuery("SELECT " + mergeCols + " FROM profile_merges WHERE id={:id}").Bind(dbx.Params{"id": id}).One(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrMergeNotFound
	}
	return &r, err
}

// laterMerge is the newest merge still in force that involves profile p and
// was recorded after r (nil when none): it was built on top of r.
func laterMerge(tx core.App, r *mergeRow, p string) (*mergeRow, error) {
	var later mergeRow
	err := tx.DB().NewQuery(`SELECT ` + mergeCols + ` FROM profile_merges
WHERE (survivor={:p} OR loser={:p}) AND COALESCE(undone_at, '') = '' AND (created > {:c} OR (created = {:c} AND id > {:id}))
ORDER BY created DESC, id DESC LIMIT 1`).Bind(dbx.Params{"p": p, "c": r.Created, "id": r.ID}).One(&later)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &later, nil
}

func (m *Module) unmerge(tx core.App, profileID, mergeID string, by UnmergeBy) (*Unmerged, []*events.Event, error) {
	row, err := findProfile(tx, profileID)
	if err != nil {
		return nil, nil, err
	}
	r, err := loadMerge(tx, mergeID)
	if err != nil {
		return nil, nil, err
	}
	// The merge must be one of this customer's: its survivor (or, once
	// undone, either side) resolves to the profile asked about.
	mine := false
	for _, id := range []string{r.Survivor, r.Loser} {
		if c, err := findProfile(tx, id); err == nil && c.ID == row.ID {
			mine = true
		}
	}
	if !mine {
		return nil, nil, ErrMergeNotFound
	}
	mg := r.toMerge(tx)
	if r.UndoneAt != "" {
		return nil, nil, &refused{"This merge was already un-merged" + byOn(r.UndoneBy, r.UndoneAt) + "."}
	}
	var loserIDs map[string][]string
	decodeJSON(r.LoserIDs, &loserIDs)
	if r.Kind == "" || len(loserIDs) == 0 {
		return nil, nil, &refused{"This merge was recorded before Omni kept what each customer brought, so it cannot be un-merged."}
	}
	later, err := laterMerge(tx, r, r.Survivor)
	if err != nil {
		return nil, nil, err
	}
	if later != nil {
		return nil, nil, &refused{fmt.Sprintf("%s was merged again after this (%s and %s, %s). Un-merge that one first.",
			orSomeone(r.SurvivorName), orSomeone(later.SurvivorName), orSomeone(later.LoserName), dayOf(later.Created))}
	}
	now := m.now().UTC()
	b := m.newBatch(tx, false)
	defer b.close()
	b.nowDB = now.Format(dbTime)
	db := tx.DB()
	s, l := r.Survivor, r.Loser

	// 1. The loser's profile row returns under its old id (inserted again
	// if someone deleted it meanwhile).
	var lRow profileRow
	lErr := db.NewQuery("SELECT id, merged_into, created, name, email, phone, traits, computed, consent FROM profiles WHERE id={:id}").
		Bind(dbx.Params{"id": l}).One(&lRow)
	lNew := errors.Is(lErr, sql.ErrNoRows)
	if lErr != nil && !lNew {
		return nil, nil, lErr
	}
	if lNew {
		lRow = profileRow{ID: l, Created: r.Created}
	}
	// 2. Identities the loser brought go back (those still on the survivor:
	// an erased or detached one stays gone).
	for kind, vals := range loserIDs {
		for _, v := range vals {
			if _, err := db.NewQuery("UPDATE identities SET profile={:l} WHERE kind={:k} AND value={:v} AND profile={:s}").
				Bind(dbx.Params{"l": l, "s": s, "k": kind, "v": v}).Execute(); err != nil {
				return nil, nil, fmt.Errorf("un-merge identities: %w", err)
			}
		}
	}
	// 3. Profiles the loser had absorbed before (merges beneath this one)
	// point at it again.
	if err := repointBeneath(tx, r, s, l); err != nil {
		return nil, nil, err
	}
	// 4. Events go to the side whose identities they carry.
	moved, err := splitEvents(tx, r, s, l)
	if err != nil {
		return nil, nil, err
	}
	// 5. Other modules' rows the merge moved go back.
	var rows map[string][]string
	decodeJSON(r.Moved, &rows)
	for _, t := range m.movable(tx) {
		ids := rows[t.name]
		for start := 0; start < len(ids); start += 500 {
			in, ip := inList("r", ids[start:min(start+500, len(ids))])
			ip["s"], ip["l"] = s, l
			if _, err := db.NewQuery("UPDATE " + t.name + " SET " + t.field + "={:l} WHERE " + t.field + "={:s} AND id IN (" + in + ")").
				Bind(ip).Execute(); err != nil {
				return nil, nil, fmt.Errorf("un-merge %s: %w", t.name, err)
			}
		}
	}
	// 6. Traits, consent and names recomputed on both sides from their events.
	var sRow profileRow
	if err := db.NewQuery("SELECT id, merged_into, created, name, email, phone, traits, computed, consent FROM profiles WHERE id={:id}").
		Bind(dbx.Params{"id": s}).One(&sRow); err != nil {
		return nil, nil, fmt.Errorf("un-merge: survivor: %w", err)
	}
	sp, err := b.rebuild(sRow.ID, sRow.Created, false)
	if err != nil {
		return nil, nil, err
	}
	lp, err := b.rebuild(lRow.ID, lRow.Created, lNew)
	if err != nil {
		return nil, nil, err
	}
	if err := b.flush(); err != nil {
		return nil, nil, err
	}
	// 7. Segment memberships follow.
	emits, err := m.evaluateProfiles(tx, []*profile{sp, lp}, now, false)
	if err != nil {
		return nil, nil, err
	}
	// 8. The ledger says who undid it; the pair is kept apart if asked.
	if _, err := db.NewQuery("UPDATE profile_merges SET undone_at={:at}, undone_by={:by}, undone_by_name={:name}, pair_blocked={:pb} WHERE id={:id}").
		Bind(dbx.Params{"at": b.nowDB, "by": by.StaffID, "name": by.StaffName, "pb": by.KeepApart, "id": r.ID}).Execute(); err != nil {
		return nil, nil, fmt.Errorf("un-merge ledger: %w", err)
	}
	// Each side is found by its own words again (after the ledger: merges
	// still in force name the customers merged into each side).
	if err := m.reindexSplit(tx, s, l); err != nil {
		return nil, nil, fmt.Errorf("un-merge search index: %w", err)
	}
	if by.KeepApart {
		a, c := pairKey(s, l)
		if _, err := db.NewQuery(`INSERT INTO profile_pair_blocks (id, profile_a, profile_b, kind, value, merge, created_by, created)
VALUES ({:id},{:a},{:b},{:k},{:v},{:m},{:by},{:c}) ON CONFLICT DO NOTHING`).Bind(dbx.Params{"id": newID(), "a": a, "b": c,
			"k": r.Kind, "v": r.Value, "m": r.ID, "by": by.StaffID, "c": b.nowDB}).Execute(); err != nil {
			return nil, nil, fmt.Errorf("keep the pair apart: %w", err)
		}
	}
	emits = append([]*events.Event{systemEvent(ProfileUnmerged, "unmerge:"+r.ID, sp, now, map[string]any{
		"profile_id": s, "unmerged_profile_id": l, "merge_id": r.ID, "kind": r.Kind, "pair_blocked": by.KeepApart})}, emits...)

	mg.UndoneAt, mg.UndoneBy, mg.PairBlocked = strings.Replace(b.nowDB, " ", "T", 1), by.StaffName, by.KeepApart
	mg.Explanation = explain(&mg)
	out := &Unmerged{Merge: mg, PairBlocked: by.KeepApart,
		Survivor: Side{ID: s, Name: displayName(sp), Events: moved.kept, Identities: countIDs(sp)},
		Restored: Side{ID: l, Name: displayName(lp), Events: moved.moved, Identities: countIDs(lp)}}
	return out, emits, nil
}

func countIDs(p *profile) int {
	n := 0
	for _, v := range p.ids {
		n += len(v)
	}
	return n
}

func orSomeone(name string) string {
	if name == "" {
		return "a customer"
	}
	return name
}

// dayOf is a ledger time as a shop owner reads it: "2 Jan 2026 15:04 UTC".
func dayOf(dbT string) string {
	t, err := time.Parse(dbTime, dbT)
	if err != nil {
		return dbT
	}
	return t.Format("2 Jan 2006 15:04 UTC")
}

func byOn(name, at string) string {
	s := ""
	if name != "" {
		s = " by " + name
	}
	return s + " on " + dayOf(at)
}

// repointBeneath makes the profiles the loser had absorbed before this
// merge (directly or through profiles it absorbed) point at it again: the
// merge had re-pointed them at the survivor.
func repointBeneath(tx core.App, r *mergeRow, s, l string) error {
	frontier, seen := []string{l}, map[string]bool{l: true}
	for len(frontier) > 0 {
		in, ip := inList("f", frontier)
		ip["c"], ip["id"] = r.Created, r.ID
		var losers []string
		if err := tx.DB().NewQuery(`SELECT loser FROM profile_merges WHERE survivor IN (` + in + `) AND COALESCE(undone_at, '') = ''
AND (created < {:c} OR (created = {:c} AND id < {:id}))`).Bind(ip).Column(&losers); err != nil {
			return fmt.Errorf("un-merge: earlier merges: %w", err)
		}
		frontier = frontier[:0]
		for _, x := range losers {
			if !seen[x] {
				seen[x] = true
				frontier = append(frontier, x)
			}
		}
		if len(frontier) == 0 {
			break
		}
		in, ip = inList("f", frontier)
		ip["s"], ip["l"] = s, l
		if _, err := tx.DB().NewQuery("UPDATE profiles SET merged_into={:l} WHERE merged_into={:s} AND id IN (" + in + ")").Bind(ip).Execute(); err != nil {
			return fmt.Errorf("un-merge: earlier merges: %w", err)
		}
	}
	return nil
}

type split struct{ kept, moved int }

// splitEvents moves the survivor's events that belong to the loser: an
// event goes to the side of its strongest identity that either side held
// when they merged. An event known only by identities added since the
// merge goes where the other events carrying those identities went; when
// those all went to the loser, so do the identities. Anything undecided
// stays with the survivor.
func splitEvents(tx core.App, r *mergeRow, s, l string) (split, error) {
	db := tx.DB()
	var idRows []struct {
		Kind    string `db:"kind"`
		Value   string `db:"value"`
		Profile string `db:"profile"`
		Created string `db:"created"`
	}
	in, ip := inList("p", []string{s, l})
	if err := db.NewQuery("SELECT kind, value, profile, created FROM identities WHERE profile IN (" + in + ")").Bind(ip).All(&idRows); err != nil {
		return split{}, err
	}
	side := map[string]string{} // kind\x00value → profile, for identities both sides held at the merge
	later := map[string]bool{}  // survivor's identities added after the merge
	for _, it := range idRows {
		key := it.Kind + "\x00" + it.Value
		if it.Profile == s && it.Created > r.Created {
			later[key] = true
			continue
		}
		side[key] = it.Profile
	}
	var evRows []struct {
		ID         string `db:"id"`
		Identities string `db:"identities"`
	}
	if err := db.NewQuery("SELECT id, identities FROM events WHERE profile={:s}").Bind(dbx.Params{"s": s}).All(&evRows); err != nil {
		return split{}, fmt.Errorf("un-merge events: %w", err)
	}
	type pending struct {
		id   string
		keys []string
	}
	var toL []string
	var undecided []pending
	laterSides := map[string]map[string]bool{}
	for _, er := range evRows {
		var ids map[string]string
		_ = json.Unmarshal([]byte(er.Identities), &ids) // unreadable identities: the event stays where it is
		var keys []string
		got := ""
		for _, k := range events.IdentityKinds {
			v := ids[k]
			if v == "" {
				continue
			}
			key := k + "\x00" + v
			keys = append(keys, key)
			if got == "" {
				got = side[key]
			}
		}
		switch got {
		case "":
			undecided = append(undecided, pending{er.ID, keys})
			continue
		case l:
			toL = append(toL, er.ID)
		}
		for _, key := range keys {
			if later[key] {
				if laterSides[key] == nil {
					laterSides[key] = map[string]bool{}
				}
				laterSides[key][got] = true
			}
		}
	}
	var idsToL []string
	for key, sides := range laterSides {
		if sides[l] && !sides[s] {
			side[key] = l
			idsToL = append(idsToL, key)
		}
	}
	for _, p := range undecided {
		for _, key := range p.keys {
			if side[key] == l {
				toL = append(toL, p.id)
				break
			}
			if side[key] != "" || later[key] {
				break // the strongest known identity is the survivor's
			}
		}
	}
	for _, key := range idsToL {
		k, v, _ := strings.Cut(key, "\x00")
		if _, err := db.NewQuery("UPDATE identities SET profile={:l} WHERE kind={:k} AND value={:v} AND profile={:s}").
			Bind(dbx.Params{"l": l, "s": s, "k": k, "v": v}).Execute(); err != nil {
			return split{}, fmt.Errorf("un-merge identities: %w", err)
		}
	}
	for start := 0; start < len(toL); start += 500 {
		in, ip := inList("e", toL[start:min(start+500, len(toL))])
		ip["l"] = l
		if _, err := db.NewQuery("UPDATE events SET profile={:l} WHERE id IN (" + in + ")").Bind(ip).Execute(); err != nil {
			return split{}, fmt.Errorf("un-merge events: %w", err)
		}
	}
	return split{kept: len(evRows) - len(toL), moved: len(toL)}, nil
}

// rebuild recomputes one profile from its identities and its stored
// events, oldest first, as if they had arrived on it alone: traits, name,
// email, phone, consent and the computed values (lifetime value, orders,
// last seen…). Omni's own events (segment.*, profile.*) feed nothing.
func (b *batch) rebuild(id, created string, isNew bool) (*profile, error) {
	p := &profile{id: id, created: created, traits: map[string]any{}, comp: &Computed{}, consent: map[string]ConsentEntry{},
		ids: map[string][]string{}, dirty: true, touched: true, isNew: isNew}
	rows, err := b.qProfileIdents.Bind(dbx.Params{"p": id}).Rows()
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
		if k != events.AnonymousID {
			p.comp.Identified = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	evRows, err := b.tx.DB().NewQuery(`SELECT event_id, type, name, source, channel, occurred_at, identities, properties, context
FROM events WHERE profile={:p} ORDER BY occurred_at, id`).Bind(dbx.Params{"p": id}).Rows()
	if err != nil {
		return nil, err
	}
	defer evRows.Close()
	for evRows.Next() {
		var eid, typ, name, source, channel, at, idents, props, ctx string
		if err := evRows.Scan(&eid, &typ, &name, &source, &channel, &at, &idents, &props, &ctx); err != nil {
			return nil, err
		}
		if systemType(typ) {
			continue
		}
		occurred, err := time.Parse(dbTime, at)
		if err != nil {
			continue // not an event a batch could have stored
		}
		ev := &events.Event{ID: eid, Type: typ, Name: name, Source: source, OccurredAt: occurred}
		// Damaged JSON only loses what it held, as on the timeline.
		_ = json.Unmarshal([]byte(idents), &ev.Identities)
		_ = json.Unmarshal([]byte(props), &ev.Properties)
		_ = json.Unmarshal([]byte(ctx), &ev.Context)
		ev.Context.Channel = channel
		b.applyEvent(p, ev)
	}
	if err := evRows.Err(); err != nil {
		return nil, fmt.Errorf("rebuild profile %s: %w", id, err)
	}
	p.dirty, p.touched = true, true
	b.profiles[id] = p
	b.see(p)
	return p, nil
}
