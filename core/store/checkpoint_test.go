package store

import (
	"os"
	"testing"
	"time"
)

// The writer leaves a few MB of WAL alone (its own checkpoint waits for
// WriterAutoCheckpoint pages); StartCheckpoints, on a reader connection, copies
// them into the database file.
func TestCheckpointCopiesTheWALBesideTheWriter(t *testing.T) {
	data, readers, writer := openPools(t)
	var pages int
	if err := writer.NewQuery("PRAGMA wal_autocheckpoint").Row(&pages); err != nil || pages != WriterAutoCheckpoint {
		t.Fatalf("writer's wal_autocheckpoint = %d (%v), want %d", pages, err, WriterAutoCheckpoint)
	}
	// 8 MB in 8 commits: past SQLite's default of 1,000 pages, under the writer's.
	for range 8 {
		if _, err := writer.NewQuery("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 1000) INSERT INTO t (v) SELECT printf('%.1000c', 'x') FROM n").Execute(); err != nil {
			t.Fatal(err)
		}
	}
	size := func() int64 {
		fi, err := os.Stat(data)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	if s := size(); s > 1<<20 {
		t.Fatalf("the writer checkpointed itself: data.db is %d KB before Checkpoint ran", s>>10)
	}
	stop := StartCheckpoints(readers, 10*time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for size() < 7<<20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if s := size(); s < 7<<20 {
		t.Fatalf("data.db is %d KB after Checkpoint ran, want the 8 MB written", s>>10)
	}
	var n int
	if err := readers.NewQuery("SELECT COUNT(*) FROM t").Row(&n); err != nil || n != 8000 {
		t.Fatalf("rows = %d (%v), want 8000", n, err)
	}
}
