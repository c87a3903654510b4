package profiles

import (
	"net/url"

	"github.com/pocketbase/dbx"
)

// SearchSQLForTest is the page query of GET /api/v1/profiles?q=s.
func SearchSQLForTest(m *Module, s string) string {
	_, from, where, order, _ := m.listQuery(url.Values{"q": {s}})
	return "SELECT p.id FROM " + from + " WHERE " + where + " ORDER BY " + order + " LIMIT 25"
}

// SearchParamsForTest are its parameters.
func SearchParamsForTest(m *Module, s string) dbx.Params {
	c, _, _, _, _ := m.listQuery(url.Values{"q": {s}})
	return c.Params
}

// ForgetCacheForTest drops the resolution cache, as memtune does at idle.
func ForgetCacheForTest(m *Module) { m.forgetCache() }

// AnswersKeptForTest counts the segment answers the events path kept
// without SQL because Go decided them unchanged.
func AnswersKeptForTest(m *Module) int64 { return m.segs.kept.Load() }

// AnswersDecidedForTest counts the memberships the events path set from
// Go's answer without SQL evaluating the rule.
func AnswersDecidedForTest(m *Module) int64 { return m.segs.decided.Load() }

// ForgetDecodedForTest drops the decoded profiles and identity look-ups
// but keeps the committed rows, as a full decoded cache does: the next
// batches decode their profiles from the rows.
func ForgetDecodedForTest(m *Module) {
	m.cacheMu.Lock()
	m.cache.resetDecoded()
	m.cacheMu.Unlock()
}

// RowAnswersKeptForTest counts the cached rows that carry segment answers.
func RowAnswersKeptForTest(m *Module) int {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	n := 0
	for _, r := range m.cache.rows.rows {
		if r.answers != nil {
			n++
		}
	}
	return n
}

// LoseWaitingForTest forgets the rows waiting to be written without
// writing them, as a crash does.
func LoseWaitingForTest(m *Module) {
	m.cacheMu.Lock()
	m.behind = behindSet{}
	m.cache.reset()
	m.cacheMu.Unlock()
}

// RecoverWaitingForTest runs what a start runs after a crash.
func RecoverWaitingForTest(m *Module) error { return m.recoverBehind(m.app) }

// WaitingForTest counts the rows waiting to be written.
func WaitingForTest(m *Module) int {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	return len(m.behind.rows)
}

// CachedRowsForTest counts the rows in the row cache.
func CachedRowsForTest(m *Module) int {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	return len(m.cache.rows.rows)
}

// UnconfirmedForTest leaves the last events batch as if its commit had
// not been confirmed yet, with probe as the event row it inserted.
func UnconfirmedForTest(m *Module, probe string) {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	m.cache.unconfirmed, m.behind.probe = true, probe
}
