package profiles

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/store"
)

// The search index: profile_search holds one row per (word, profile,
// origin), lower-cased. A query word matches a profile when it is a prefix
// of one of its words, found by a range scan of the table's primary key
// (token >= w AND token < w+U+10FFFF), so search costs the same at 100k
// profiles as at 100. Origins say which writer owns a row, so each rewrites
// only its own:
//
//	p  the profile itself: name words, email, phone, identity values
//	o  order numbers of its order events (#1086, 1086, vendor ids)
//	t  staff tags
//	n  the words of staff notes
//	m  a merged profile's own words (its name stays findable)
//
// The events processor keeps p and o current in the events transaction;
// the tags and notes handlers keep t and n; merges move rows to the
// survivor; erasure deletes them.
const (
	originProfile = "p"
	originOrder   = "o"
	originTag     = "t"
	originNote    = "n"
	originMerged  = "m"
)

// maxNoteWords bounds the words one note adds to the index.
const maxNoteWords = 300

// words splits s into lower-case index words: each whitespace-separated
// field trimmed of punctuation ("o'brien", "#1086" → "1086") and, when it
// has inner punctuation, its letter/digit runs too ("mary-jane" → also
// "mary", "jane").
func words(s string) []string {
	var out []string
	for _, f := range strings.Fields(strings.ToLower(s)) {
		f = strings.TrimFunc(f, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '+' })
		if f == "" {
			continue
		}
		out = append(out, f)
		parts := strings.FieldsFunc(f, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if len(parts) > 1 || (len(parts) == 1 && parts[0] != f) {
			out = append(out, parts...)
		}
	}
	return out
}

// queryWords are the words of a search box entry; each must match.
func queryWords(q string) []string {
	var out []string
	for _, f := range strings.Fields(strings.ToLower(q)) {
		f = strings.TrimFunc(f, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '+' && r != '@' })
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

func dedupe(ws []string) []string {
	sort.Strings(ws)
	out := ws[:0]
	for i, w := range ws {
		if w != "" && (i == 0 || w != ws[i-1]) && len(w) <= 300 {
			out = append(out, w)
		}
	}
	return out
}

// profileWords are what a profile is found by: its name, email and phone
// and every identity value (emails and phones whole, phones also without
// the +).
func profileWords(name, email, phone string, ids map[string][]string) []string {
	ws := words(name)
	add := func(v string) {
		v = strings.ToLower(strings.TrimSpace(v))
		if v == "" {
			return
		}
		ws = append(ws, v)
		if strings.HasPrefix(v, "+") {
			ws = append(ws, v[1:])
		}
	}
	add(email)
	add(phone)
	for _, vals := range ids {
		for _, v := range vals {
			add(v)
		}
	}
	return dedupe(ws)
}

// orderWords are the numbers an order is known by: Shopify's name
// ("#1086") and number ("1086"), and every connector's order_id (Shopify's
// long id, Square's order id, a Segment Order Completed order_id).
func orderWords(ev *events.Event) []string {
	if !strings.HasPrefix(ev.Type, "order.") {
		return nil
	}
	var ws []string
	for _, k := range []string{"order_id", "order_name", "order_number", "checkout_id", "receipt_number"} {
		switch v := ev.Properties[k].(type) {
		case string:
			ws = append(ws, words(v)...)
		case float64: // a Segment client may send order_id as a number
			ws = append(ws, strconv.FormatFloat(v, 'f', -1, 64))
		}
	}
	return dedupe(ws)
}

// storedOrderWords are the order words of a stored event (its type and
// properties JSON); unreadable properties index nothing.
func storedOrderWords(typ, props string) []string {
	ev := &events.Event{Type: typ}
	if json.Unmarshal([]byte(props), &ev.Properties) != nil {
		return nil
	}
	return orderWords(ev)
}

// signature of a profile's words, to skip rewriting an unchanged index.
func signature(ws []string) string { return strings.Join(ws, "\x00") }

// indexProfile rewrites p's own words ws (profileWords) when they changed
// since the last write (p.indexed holds what is stored when known; "" after
// a load or a merge). p.wordsSaved skips them (prepare does not even work
// them out): nothing they are made of (name, email, phone, identities)
// changed since they were last written or since the profile was read back.
func (b *batch) indexProfile(p *profile, ws []string) error {
	if p.wordsSaved {
		return nil
	}
	sig := signature(ws)
	if p.indexed == "" && !p.isNew {
		// Loaded (not cached) or merged: what is stored is one covering
		// index read away, far cheaper than rewriting the same words.
		stored, err := b.storedWords(p.id, originProfile)
		if err != nil {
			return err
		}
		if len(stored) > 0 {
			p.indexed = signature(stored)
		}
	}
	if sig != p.indexed || p.indexed == "" {
		if err := b.writeWords(p.id, originProfile, ws, !p.isNew); err != nil { // a new profile has nothing to replace
			return err
		}
		p.indexed = sig
	}
	p.wordsSaved = true
	return nil
}

// writeWords stores words for a profile and origin; replace drops the
// origin's earlier words first.
func writeWords(app core.App, profileID, origin string, ws []string, replace bool) error {
	db := app.DB()
	if replace {
		if _, err := db.NewQuery("DELETE FROM profile_search WHERE profile={:p} AND origin={:o}").
			Bind(dbx.Params{"p": profileID, "o": origin}).Execute(); err != nil {
			return err
		}
	}
	if len(ws) == 0 {
		return nil
	}
	q := db.NewQuery("INSERT OR IGNORE INTO profile_search (token, profile, origin) VALUES ({:t}, {:p}, {:o})").Prepare()
	defer q.Close()
	for _, w := range ws {
		if _, err := q.Bind(dbx.Params{"t": w, "p": profileID, "o": origin}).Execute(); err != nil {
			return err
		}
	}
	return nil
}

// storedWords reads a profile's words of one origin as stored, in the
// order profileWords gives them (byte order).
func (b *batch) storedWords(profileID, origin string) ([]string, error) {
	q, err := b.stmt(&b.sWordsGet, wordsGetSQL)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(profileID, origin)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ws []string
	for rows.Next() {
		var w string
		if err := rows.Scan(&w); err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, rows.Err()
}

// writeWords is writeWords with the batch's prepared statements (the
// events processor's hot path).
func (b *batch) writeWords(profileID, origin string, ws []string, replace bool) error {
	if replace {
		del, err := b.stmt(&b.sWordsDel, wordsDelSQL)
		if err != nil {
			return err
		}
		if _, err := del.Exec(profileID, origin); err != nil {
			return err
		}
	}
	if len(ws) == 0 {
		return nil
	}
	// One statement for all of them: a profile's or an order's words are a
	// handful, and each statement run costs more than SQLite's insert.
	args := make([]any, 0, 3*len(ws))
	for _, w := range ws {
		args = append(args, w, profileID, origin)
	}
	return store.ExecRows(b.executor(), wordsInsHead, 3, "", args)
}

// moveWords gives a merged loser's rows to the survivor; its own words
// become the survivor's merged words, which the survivor's rewrite of its
// own words leaves alone.
func moveWords(app core.App, survivor, loser string) error {
	for _, q := range []string{
		"UPDATE OR IGNORE profile_search SET profile={:s}, origin=(CASE origin WHEN '" + originProfile + "' THEN '" + originMerged + "' ELSE origin END) WHERE profile={:l}",
		"DELETE FROM profile_search WHERE profile={:l}",
	} {
		if _, err := app.DB().NewQuery(q).Bind(dbx.Params{"s": survivor, "l": loser}).Execute(); err != nil {
			return err
		}
	}
	return nil
}

// reindexAll builds the index of every live profile from what is stored
// (the migration that creates it).
func reindexAll(app core.App) error {
	var rows []struct {
		ID    string `db:"id"`
		Name  string `db:"name"`
		Email string `db:"email"`
		Phone string `db:"phone"`
	}
	if err := app.DB().NewQuery("SELECT id, name, email, phone FROM profiles WHERE merged_into = ''").All(&rows); err != nil {
		return err
	}
	for _, r := range rows {
		var idents []IdentityRow
		if err := app.DB().NewQuery("SELECT kind, value FROM identities WHERE profile={:p}").Bind(dbx.Params{"p": r.ID}).All(&idents); err != nil {
			return err
		}
		ids := map[string][]string{}
		for _, it := range idents {
			ids[it.Kind] = append(ids[it.Kind], it.Value)
		}
		if err := writeWords(app, r.ID, originProfile, profileWords(r.Name, r.Email, r.Phone, ids), true); err != nil {
			return err
		}
	}
	var orders []struct {
		Profile string `db:"profile"`
		Type    string `db:"type"`
		Props   string `db:"properties"`
	}
	if err := app.DB().NewQuery("SELECT profile, type, properties FROM events WHERE type LIKE 'order.%' AND profile != ''").All(&orders); err != nil {
		return err
	}
	for _, o := range orders {
		if err := writeWords(app, o.Profile, originOrder, storedOrderWords(o.Type, o.Props), false); err != nil {
			return err
		}
	}
	return nil
}

// rarestFirst orders query words by how many index rows they match (a
// bounded probe per word), fewest first; longer words first on a tie or
// when the probe fails.
func (m *Module) rarestFirst(ws []string) {
	sort.SliceStable(ws, func(i, j int) bool { return len(ws[i]) > len(ws[j]) })
	if len(ws) < 2 || m.app == nil {
		return
	}
	const probe = 500
	n := make(map[string]int, len(ws))
	for _, w := range ws {
		var c int
		if err := m.app.DB().NewQuery("SELECT COUNT(*) FROM (SELECT 1 FROM profile_search WHERE token >= {:lo} AND token < {:hi} LIMIT {:n})").
			Bind(dbx.Params{"lo": w, "hi": w + "\U0010FFFF", "n": probe}).Row(&c); err != nil {
			return
		}
		n[w] = c
	}
	sort.SliceStable(ws, func(i, j int) bool { return n[ws[i]] < n[ws[j]] })
}

// searchIDs is SQL selecting the ids of profiles a search box entry finds:
// an exact identity (as typed, or normalised as an email or phone), a
// profile id, or every query word a prefix of one of the profile's words.
// Each branch walks an index; the result feeds "p.id IN (…)".
func (m *Module) searchIDs(c *compiler, s string) string {
	vals := []string{c.Param(s)}
	if em := events.NormalizeEmail(s); em != "" {
		vals = append(vals, c.Param(em))
	}
	if ph, ok := (events.Normalizer{DefaultRegion: m.region()}).Phone(s); ok {
		vals = append(vals, c.Param(ph))
	}
	parts := []string{
		"SELECT profile FROM identities WHERE kind IN ('" + strings.Join(events.IdentityKinds, "','") + "') AND value IN (" + strings.Join(vals, ",") + ")",
		"SELECT " + vals[0],
	}
	if ws := queryWords(s); len(ws) > 0 {
		// The rarest word drives: its matches are read from the index, and
		// each is then checked for the other words among its own few rows
		// (profile index), instead of building every word's full match set
		// ("ada okafor" would otherwise list every Ada).
		m.rarestFirst(ws)
		q := "SELECT DISTINCT w0.profile FROM profile_search w0 WHERE w0.token >= " + c.Param(ws[0]) + " AND w0.token < " + c.Param(ws[0]+"\U0010FFFF")
		for i, w := range ws[1:] {
			a := "w" + strconv.Itoa(i+1)
			q += " AND EXISTS (SELECT 1 FROM profile_search " + a + " WHERE " + a + ".profile = w0.profile AND " + a + ".token >= " + c.Param(w) +
				" AND " + a + ".token < " + c.Param(w+"\U0010FFFF") + ")"
		}
		parts = append(parts, q)
	}
	return strings.Join(parts, " UNION ")
}

// reindexSplit rebuilds, after an un-merge, the words each side owns
// through other rows: its orders, its staff tags and notes (moved back
// with their rows) and the names of the customers still merged into it.
// The merge had moved all of them to the survivor; its own words are
// rewritten by the flush.
func (m *Module) reindexSplit(tx core.App, ids ...string) error {
	db := tx.DB()
	for _, id := range ids {
		var orders []struct {
			Type  string `db:"type"`
			Props string `db:"properties"`
		}
		if err := db.NewQuery("SELECT type, properties FROM events WHERE profile={:p} AND type LIKE 'order.%'").
			Bind(dbx.Params{"p": id}).All(&orders); err != nil {
			return err
		}
		var ws []string
		for _, o := range orders {
			ws = append(ws, storedOrderWords(o.Type, o.Props)...)
		}
		if err := writeWords(tx, id, originOrder, dedupe(ws), true); err != nil {
			return err
		}
		var names []string
		if err := db.NewQuery("SELECT loser_name FROM profile_merges WHERE survivor={:p} AND COALESCE(undone_at, '') = ''").
			Bind(dbx.Params{"p": id}).Column(&names); err != nil {
			return err
		}
		ws = ws[:0]
		for _, n := range names {
			ws = append(ws, words(n)...)
		}
		if err := writeWords(tx, id, originMerged, dedupe(ws), true); err != nil {
			return err
		}
		for _, origin := range []string{originTag, originNote} {
			if err := m.reindexStaffWords(tx, id, origin); err != nil {
				return err
			}
		}
	}
	return nil
}
