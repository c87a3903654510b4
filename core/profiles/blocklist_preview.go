package profiles

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
)

// BlockPreview is what adding one blocklist entry would do
// (POST /api/v1/profiles/blocklist/preview). New events: the identifiers
// it matches stop joining people (Profiles hold one today). Existing
// merges: with "re-check", each merge the entry's identifier caused is
// un-merged (Splits); those with later merges on top stay (Stuck) and are
// listed so the owner can un-merge the later ones first.
type BlockPreview struct {
	Entry            string      `json:"entry"`
	AlreadyBlockedBy string      `json:"already_blocked_by,omitempty"`
	Identities       int         `json:"identities"`
	Profiles         int         `json:"profiles"`
	ProfileExamples  []string    `json:"profile_examples"`
	Splits           int         `json:"splits"`
	SplitExamples    []SplitPair `json:"split_examples"`
	Stuck            int         `json:"stuck"`
	StuckExamples    []SplitPair `json:"stuck_examples"`
}

// SplitPair names the two customers of a merge, as the ledger knew them.
type SplitPair struct {
	MergeID  string `json:"merge_id"`
	Survivor string `json:"survivor"`
	Loser    string `json:"loser"`
	Kind     string `json:"kind"`
	Value    string `json:"value"`
}

// Resplit is what re-checking existing merges did after adding an entry.
type Resplit struct {
	Split       int         `json:"split"`
	SplitPairs  []SplitPair `json:"split_pairs"`
	Stuck       int         `json:"stuck"`
	StuckPairs  []SplitPair `json:"stuck_pairs"`
	FailedMerge string      `json:"failed_merge,omitempty"`
	Error       string      `json:"error,omitempty"`
}

const previewExamples = 5

// oneEntry compiles a single entry the way the list in force would.
func (m *Module) oneEntry(entry string) (*blocklist, error) {
	return buildBlocklist([]BlockEntry{{Entry: entry, Origin: originAdmin}}, events.Normalizer{DefaultRegion: m.defaultRegion})
}

// PreviewBlock says what adding entry would do, without changing anything.
func (m *Module) PreviewBlock(app core.App, entry string) (*BlockPreview, error) {
	bl, err := m.oneEntry(entry)
	if err != nil {
		return nil, err
	}
	out := &BlockPreview{Entry: entry, AlreadyBlockedBy: m.alreadyListed(entry), ProfileExamples: []string{},
		SplitExamples: []SplitPair{}, StuckExamples: []SplitPair{}}
	// Identifiers on live profiles that the entry matches. A scan: an owner
	// previews one entry at a time, and entries may be globs or patterns.
	rows, err := app.DB().NewQuery("SELECT value, profile FROM identities").Rows()
	if err != nil {
		return nil, err
	}
	holders := map[string]bool{}
	for rows.Next() {
		var v, p string
		if err := rows.Scan(&v, &p); err != nil {
			rows.Close()
			return nil, err
		}
		if bl.blocked(v) != "" {
			out.Identities++
			holders[p] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out.Profiles = len(holders)
	ids := make([]string, 0, len(holders))
	for p := range holders {
		ids = append(ids, p)
	}
	sort.Strings(ids)
	if len(ids) > 0 {
		in, ip := inList("p", ids[:min(len(ids), previewExamples)])
		var people []struct {
			Name  string `db:"name"`
			Email string `db:"email"`
			Phone string `db:"phone"`
		}
		if err := app.DB().NewQuery("SELECT name, email, phone FROM profiles WHERE id IN (" + in + ") ORDER BY id").Bind(ip).All(&people); err != nil {
			return nil, err
		}
		for _, p := range people {
			out.ProfileExamples = append(out.ProfileExamples, displayName(&profile{name: p.Name, email: p.Email, phone: p.Phone}))
		}
	}
	undo, stuck, err := resplitPlan(app, bl)
	if err != nil {
		return nil, err
	}
	out.Splits, out.Stuck = len(undo), len(stuck)
	for _, r := range undo[:min(len(undo), previewExamples)] {
		out.SplitExamples = append(out.SplitExamples, pairOf(r))
	}
	for _, r := range stuck[:min(len(stuck), previewExamples)] {
		out.StuckExamples = append(out.StuckExamples, pairOf(r))
	}
	return out, nil
}

func pairOf(r *mergeRow) SplitPair {
	return SplitPair{MergeID: r.ID, Survivor: orSomeone(r.SurvivorName), Loser: orSomeone(r.LoserName), Kind: r.Kind, Value: r.Value}
}

// alreadyListed is the entry in force with the same text, if any.
func (m *Module) alreadyListed(entry string) string {
	for _, be := range m.Blocklist() {
		if strings.EqualFold(be.Entry, entry) {
			return be.Entry + " (" + be.Origin + ")"
		}
	}
	return ""
}

// resplitPlan lists the merges in force that an identifier bl blocks
// caused, newest first, split into those an un-merge can undo in that
// order and those that stay because a merge bl does not undo sits on top
// (the rule Unmerge applies: no later merge in force on the survivor).
func resplitPlan(app core.App, bl *blocklist) (undo, stuck []*mergeRow, err error) {
	var rows []*mergeRow
	if err := app.DB().NewQuery("SELECT " + mergeCols + " FROM profile_merges WHERE COALESCE(undone_at, '') = '' ORDER BY created, id").All(&rows); err != nil {
		return nil, nil, fmt.Errorf("merge ledger: %w", err)
	}
	done := map[string]bool{}
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		if r.Kind == "" || r.LoserIDs == "" || r.LoserIDs == "null" || bl.blocked(r.Value) == "" {
			continue
		}
		free := true
		for _, x := range rows[i+1:] {
			if (x.Survivor == r.Survivor || x.Loser == r.Survivor) && !done[x.ID] {
				free = false
				break
			}
		}
		if free {
			done[r.ID] = true
			undo = append(undo, r)
		} else {
			stuck = append(stuck, r)
		}
	}
	return undo, stuck, nil
}

// resplit un-merges, newest first, the merges that entry's identifiers
// caused: each un-merge is its own transaction, as if the owner clicked
// each one; the first failure stops and is reported.
func (m *Module) resplit(app core.App, entry string, by UnmergeBy) (*Resplit, error) {
	bl, err := m.oneEntry(entry)
	if err != nil {
		return nil, err
	}
	undo, stuck, err := resplitPlan(app, bl)
	if err != nil {
		return nil, err
	}
	out := &Resplit{SplitPairs: []SplitPair{}, StuckPairs: []SplitPair{}}
	for _, r := range stuck {
		out.Stuck++
		out.StuckPairs = append(out.StuckPairs, pairOf(r))
	}
	by.KeepApart = false // the identifier is blocked now: it joins nobody again
	for _, r := range undo {
		if _, err := m.Unmerge(app, r.Survivor, r.ID, by); err != nil {
			out.FailedMerge, out.Error = r.ID, err.Error()
			m.log.Error("re-check after a blocklist entry: un-merge failed; the rest were left", "merge", r.ID, "error", err)
			break
		}
		out.Split++
		out.SplitPairs = append(out.SplitPairs, pairOf(r))
	}
	return out, nil
}
