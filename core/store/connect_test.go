package store

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/pocketbase/dbx"
)

// PocketBase opens the reader pool, then the writer: the writer keeps the
// large page cache, readers and the auxiliary database get small ones.
func TestConnectGivesTheWriterTheLargeCache(t *testing.T) {
	dir := t.TempDir()
	cache := func(path string) int {
		db, err := Connect(path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var kb int
		if err := db.NewQuery("PRAGMA cache_size").Row(&kb); err != nil {
			t.Fatal(err)
		}
		return -kb
	}
	data := filepath.Join(dir, "data.db")
	for round := range 2 { // a re-bootstrap opens both pools again, in the same order
		if got := cache(data); got != ReaderCacheKB {
			t.Errorf("round %d: reader pool cache %d KB, want %d", round, got, ReaderCacheKB)
		}
		if got := cache(data); got != WriterCacheKB {
			t.Errorf("round %d: writer cache %d KB, want %d", round, got, WriterCacheKB)
		}
	}
	if got := cache(filepath.Join(dir, "auxiliary.db")); got != AuxCacheKB {
		t.Errorf("auxiliary cache %d KB, want %d", got, AuxCacheKB)
	}
}

// After a load, ReleaseMemory hands back the page cache SQLite kept at its
// high-water mark, on the writer and on the idle readers.
func TestReleaseMemoryFreesThePageCaches(t *testing.T) {
	_, readers, writer := openPools(t)
	// 24 MB of rows: the writer's cache holds them all, a reader's 4 MB.
	if _, err := writer.NewQuery("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 24000) INSERT INTO t (v) SELECT printf('%.1000c', 'x') FROM n").Execute(); err != nil {
		t.Fatal(err)
	}
	var sum int
	for _, db := range []*dbx.DB{writer, readers} {
		if err := db.NewQuery("SELECT sum(length(v)) FROM t").Row(&sum); err != nil {
			t.Fatal(err)
		}
	}
	// SQLite's memory is outside the Go heap: it shows in the process's
	// anonymous resident memory.
	before := anonRSS(t)
	ReleaseMemory()
	if after := anonRSS(t); before-after < 16<<20 {
		t.Fatalf("anonymous RSS %d → %d MB, want ≥ 16 MB released", before>>20, after>>20)
	}
}

// openPools opens data.db in a temporary dir as PocketBase does (the
// reader pool, then the writer) and creates table t (id, v) with the writer.
func openPools(t *testing.T) (path string, readers, writer *dbx.DB) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "data.db")
	var err error
	if readers, err = Connect(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { readers.Close() })
	if writer, err = Connect(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Close() })
	if _, err := writer.NewQuery("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)").Execute(); err != nil {
		t.Fatal(err)
	}
	return path, readers, writer
}

func anonRSS(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status on this OS")
	}
	m := regexp.MustCompile(`RssAnon:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no RssAnon in /proc/self/status")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// The writer and the readers of data.db keep their prepared statements
// (the readers fewer); the auxiliary database's connections do not.
func TestConnectKeepsStatementsOnDataDB(t *testing.T) {
	dir := t.TempDir()
	kept := func(path string) int {
		t.Helper()
		db, err := Connect(path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		conn, err := db.DB().Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		size := 0
		_ = conn.Raw(func(dc any) error {
			if c, ok := dc.(*cachingConn); ok {
				size = c.size
			}
			return nil
		})
		return size
	}
	data := filepath.Join(dir, "data.db")
	if got := kept(data); got != ReaderStatements {
		t.Errorf("reader keeps %d statements, want %d", got, ReaderStatements)
	}
	if got := kept(data); got != WriterStatements {
		t.Errorf("writer keeps %d statements, want %d", got, WriterStatements)
	}
	if got := kept(filepath.Join(dir, "auxiliary.db")); got != 0 {
		t.Errorf("auxiliary keeps %d statements, want none", got)
	}
}

// An idle connection gives back its kept statements too: the next use
// prepares them again.
func TestReleaseMemoryForgetsKeptStatements(t *testing.T) {
	_, readers, _ := openPools(t)
	for range 3 { // kept from the second use on
		var n int
		if err := readers.NewQuery("SELECT COUNT(*) FROM t").Row(&n); err != nil {
			t.Fatal(err)
		}
	}
	kept := func() int {
		t.Helper()
		n, _ := keptStatements(t, readers.DB(), "")
		return n
	}
	if got := kept(); got < 1 {
		t.Fatalf("the reader keeps %d statements before", got)
	}
	ReleaseMemory()
	if got := kept(); got != 0 {
		t.Fatalf("the reader keeps %d statements after ReleaseMemory", got)
	}
	var n int
	if err := readers.NewQuery("SELECT COUNT(*) FROM t").Row(&n); err != nil {
		t.Fatalf("after ReleaseMemory: %v", err)
	}
}
