package store

import (
	"path/filepath"
	"strconv"
	"sync"

	"github.com/pocketbase/dbx"
	_ "modernc.org/sqlite" // the driver PocketBase's default connection uses
)

// SQLite page cache per connection. PocketBase gives every connection 32
// MB (cache_size -32000) and keeps up to 15 idle ones per pool, so readers
// alone can hold hundreds of MB that no load needs after it has gone: the
// OS page cache already holds the file. The single writer keeps the large
// cache (index pages of events and profiles it updates on every batch).
const (
	WriterCacheKB = 32000
	ReaderCacheKB = 4000
	AuxCacheKB    = 2000
)

var (
	opensMu sync.Mutex
	opens   = map[string]int{}
)

// Connect is PocketBase's DBConnect with Omni's page cache sizes; the
// other pragmas are PocketBase's own. PocketBase opens each database twice,
// the concurrent (reader) pool first and then the single-connection
// writer pool, and again in that order when an app re-bootstraps: the
// count of opens of a path tells them apart.
func Connect(dbPath string) (*dbx.DB, error) {
	opensMu.Lock()
	n := opens[dbPath]
	opens[dbPath] = n + 1
	opensMu.Unlock()

	cacheKB := ReaderCacheKB
	switch {
	case filepath.Base(dbPath) != "data.db":
		cacheKB = AuxCacheKB
	case n%2 == 1:
		cacheKB = WriterCacheKB
	}
	return dbx.Open("sqlite", dbPath+pragmas(cacheKB))
}

func pragmas(cacheKB int) string {
	// busy_timeout first: the connection must block on busy before WAL
	// mode is set, in case another connection is setting it (PocketBase's note).
	return "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=journal_size_limit(200000000)" +
		"&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_pragma=temp_store(MEMORY)" +
		"&_pragma=cache_size(-" + strconv.Itoa(cacheKB) + ")"
}
