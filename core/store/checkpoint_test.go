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
	stop := StartCheckpoints(readers, writer, 10*time.Millisecond)
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

// Under a steady stream of commits the WAL never starts over by itself;
// once it holds the restart size, all copied back, the checkpoints start
// it over on the writer's connection, so it stays near that size, and
// once the writes stop its file is truncated.
func TestCheckpointsStartTheWALOverAndTruncateItWhenIdle(t *testing.T) {
	data, readers, writer := openPools(t)
	writer.DB().SetMaxOpenConns(1) // one writer connection, as PocketBase's
	const restartPages = 500       // 2 MB
	stop := startCheckpoints(readers, writer, 10*time.Millisecond, restartPages)
	defer stop()
	walSize := func() int64 {
		fi, err := os.Stat(data + "-wal")
		if os.IsNotExist(err) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// 10 MB in 100 commits, 10 times the restart size, with a read between
	// each two (readers use the WAL as the writer fills it).
	var largest int64
	for i := range 100 {
		var n int
		if err := readers.NewQuery("SELECT COUNT(*) FROM t").Row(&n); err != nil || n != i*100 {
			t.Fatalf("reader sees %d rows (%v), want %d", n, err, i*100)
		}
		if _, err := writer.NewQuery("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 100) INSERT INTO t (v) SELECT printf('%.1000c', 'x') FROM n").Execute(); err != nil {
			t.Fatal(err)
		}
		largest = max(largest, walSize())
		if i%5 == 0 {
			time.Sleep(15 * time.Millisecond) // let a check or two run
		}
	}
	if limit := int64(restartPages*5) << 12; largest > limit {
		t.Errorf("the WAL grew to %d MB, want it started over near %d MB", largest>>20, int64(restartPages)<<12>>20)
	}
	deadline := time.Now().Add(10 * time.Second)
	for walSize() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s := walSize(); s > 0 {
		t.Errorf("the WAL file is %d KB a while after the last write, want it truncated", s>>10)
	}
	var n int
	if err := readers.NewQuery("SELECT COUNT(*) FROM t").Row(&n); err != nil || n != 10000 {
		t.Fatalf("rows = %d (%v), want 10000", n, err)
	}
	// The writer's connection keeps its own busy timeout.
	var ms int
	if err := writer.NewQuery("PRAGMA busy_timeout").Row(&ms); err != nil || ms != busyTimeoutMS {
		t.Fatalf("writer's busy_timeout = %d (%v), want %d", ms, err, busyTimeoutMS)
	}
}
