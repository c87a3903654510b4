package store

import (
	"path/filepath"
	"testing"
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
