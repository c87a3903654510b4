package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/pocketbase/dbx"
	_ "modernc.org/sqlite" // the driver PocketBase's default connection uses

	"github.com/omni/omni/core/memtune"
)

// SQLite page cache per connection. PocketBase gives every connection 32
// MB (cache_size -32000) and keeps up to 15 idle ones per pool, so readers
// alone can hold hundreds of MB that no load needs after it has gone: the
// OS page cache already holds the file. The single writer keeps the large
// cache (index pages of events and profiles it updates on every batch).
const (
	WriterCacheKB = 32000
	ReaderCacheKB = 2000
	AuxCacheKB    = 2000
)

var (
	opensMu sync.Mutex
	opens   = map[string]int{}
	pools   = map[string]*sql.DB{} // the latest pool of each path and kind, for ReleaseMemory
	atIdle  sync.Once
)

// Connect is PocketBase's DBConnect with Omni's page cache sizes and WAL
// limits (see StartCheckpoints); the other pragmas are PocketBase's own.
// PocketBase opens each database twice, the concurrent (reader) pool
// first and then the single-connection writer pool, and again in that
// order when an app re-bootstraps: the count of opens of a path tells
// them apart.
func Connect(dbPath string) (*dbx.DB, error) {
	opensMu.Lock()
	n := opens[dbPath]
	opens[dbPath] = n + 1
	opensMu.Unlock()

	cacheKB, autoCheckpoint := ReaderCacheKB, 0
	switch {
	case filepath.Base(dbPath) != "data.db":
		cacheKB = AuxCacheKB
	case n%2 == 1:
		cacheKB, autoCheckpoint = WriterCacheKB, WriterAutoCheckpoint
	}
	dsn := dbPath + pragmas(cacheKB, autoCheckpoint)
	var db *dbx.DB
	switch {
	case autoCheckpoint != 0:
		// The writer keeps its prepared statements (WriterStatements).
		db = dbx.NewFromDB(sql.OpenDB(cachingConnector{dsn: dsn, size: WriterStatements}), "sqlite")
	case filepath.Base(dbPath) == "data.db":
		// So do the readers, fewer each (ReaderStatements).
		db = dbx.NewFromDB(sql.OpenDB(cachingConnector{dsn: dsn, size: ReaderStatements}), "sqlite")
	default:
		var err error
		if db, err = dbx.Open("sqlite", dsn); err != nil {
			return nil, err
		}
	}
	opensMu.Lock()
	pools[dbPath+"#"+strconv.Itoa(n%2)] = db.DB()
	opensMu.Unlock()
	atIdle.Do(func() { memtune.AtIdle(ReleaseMemory) })
	return db, nil
}

// ReleaseMemory asks every idle connection of the open databases to free
// its page cache (PRAGMA shrink_memory) and its kept statements. SQLite
// keeps a connection's cache at its high-water mark; after a burst that is
// tens of MB per database that only the next burst would use, and the OS
// page cache holds the file anyway. Busy connections are left alone.
func ReleaseMemory() {
	opensMu.Lock()
	dbs := make([]*sql.DB, 0, len(pools))
	for _, db := range pools {
		dbs = append(dbs, db)
	}
	opensMu.Unlock()
	for _, db := range dbs {
		shrinkIdle(db)
	}
}

// shrinkIdle finalizes the kept statements of each connection that is idle
// in db's pool and runs PRAGMA shrink_memory on it: it takes them all at
// once, so each is a different one (a pool hands out idle connections
// before it opens new ones).
func shrinkIdle(db *sql.DB) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	idle := db.Stats().Idle
	conns := make([]*sql.Conn, 0, idle)
	defer func() {
		for _, c := range conns {
			_ = c.Close() // back to the pool
		}
	}()
	for range idle {
		c, err := db.Conn(ctx)
		if err != nil {
			return // closed, or busy again: the next idle spell will do
		}
		conns = append(conns, c)
		_ = c.Raw(func(dc any) error {
			if cc, ok := dc.(*cachingConn); ok {
				cc.forget()
			}
			return nil
		})
		_, _ = c.ExecContext(ctx, "PRAGMA shrink_memory")
	}
}

// walSizeLimit is the size the WAL file is cut back to when it restarts
// (PocketBase's is 200 MB): above what StartCheckpoints lets it reach
// under a steady load (RestartPages), so each restart reuses the file
// instead of cutting it and growing it again (an ftruncate of 24 ms on the
// writer's path, four times in three seconds of bench/profiles); once the
// writes stop, StartCheckpoints truncates it.
const walSizeLimit = 80 << 20

// busyTimeoutMS is how long a connection waits for a lock (PocketBase's).
const busyTimeoutMS = 10000

// pragmas are PocketBase's with a page cache of cacheKB and, when
// autoCheckpoint is not 0, that WAL size in pages for the connection's own
// checkpoints (see StartCheckpoints).
func pragmas(cacheKB, autoCheckpoint int) string {
	// busy_timeout first: the connection must block on busy before WAL
	// mode is set, in case another connection is setting it (PocketBase's note).
	// journal_size_limit: a WAL that grew past walSizeLimit (the writer's
	// own checkpoint waits for WriterAutoCheckpoint pages) is cut back to it
	// when it restarts, instead of keeping its largest size on disk.
	p := "?_pragma=busy_timeout(" + strconv.Itoa(busyTimeoutMS) + ")&_pragma=journal_mode(WAL)&_pragma=journal_size_limit(" + strconv.Itoa(walSizeLimit) + ")" +
		"&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_pragma=temp_store(MEMORY)" +
		"&_pragma=cache_size(-" + strconv.Itoa(cacheKB) + ")"
	if autoCheckpoint != 0 {
		p += "&_pragma=wal_autocheckpoint(" + strconv.Itoa(autoCheckpoint) + ")"
	}
	return p
}
