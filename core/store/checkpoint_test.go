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
	before := ReadWALStats()
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
	// What the checks counted: at least the restart size in frames (SQLite
	// also starts the WAL over by itself between these paced writes, and
	// the frames since the last check are missed then, so not all of the
	// rows' 2,500 pages).
	if got := ReadWALStats(); got.Frames-before.Frames < restartPages {
		t.Errorf("WAL stats went from %+v to %+v, want at least %d frames counted", before, got, restartPages)
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

// One restart per WAL: after a restart the checks report the old size, all
// copied back, until the writer next writes (SQLite starts the WAL over
// then), and that must not restart it again; the next restart waits for
// the new WAL to reach the restart size. Once the WAL stops changing, it is
// truncated, once.
func TestWALWatchRestartsEachWALOnceAndTruncatesWhenIdle(t *testing.T) {
	w := newWALWatch(1000)
	step := func(log, copied int, want string, ok bool) {
		t.Helper()
		got := w.next(log, copied)
		if got != want {
			t.Fatalf("after a check of %d frames (%d copied back): %q, want %q", log, copied, got, want)
		}
		if got != "" {
			w.result(got, log, ok)
		}
	}
	step(400, 400, "", true)
	step(1200, 900, "", true)         // not all copied back yet
	step(1500, 1500, "RESTART", true) // started over
	step(1500, 1500, "", true)        // the old size again: the writer has not written since
	step(1500, 1500, "", true)
	step(300, 300, "", true) // the writer wrote: a new WAL
	step(1100, 1100, "RESTART", false)
	step(1200, 1200, "", true) // readers outlasted the restart: wait for half as much again
	step(1600, 1600, "RESTART", true)
	for range idleChecks { // the writes stop: the first check sees the old size again, then no change
		step(1600, 1600, "", true)
	}
	step(1600, 1600, "TRUNCATE", false) // failed: tried again
	for range idleChecks - 1 {
		step(1600, 1600, "", true)
	}
	step(1600, 1600, "TRUNCATE", true)
	for range 3 * idleChecks { // nothing more to do while idle
		step(0, 0, "", true)
	}
	step(800, 800, "", true) // new frames
	for range idleChecks - 1 {
		step(800, 800, "", true)
	}
	step(800, 800, "TRUNCATE", true)
	// The restart waits for the writer's batch to end, so it finds more
	// frames than the check that chose it; the check after it reports
	// those, still the old WAL.
	if got := w.next(1600, 1600); got != "RESTART" {
		t.Fatalf("a new WAL past the restart size: %q, want RESTART", got)
	}
	w.result("RESTART", 2900, true)
	step(2900, 2900, "", true)
	step(200, 200, "", true)
}

// Each frame is counted once: growth between checks, the frames a restart
// found beyond the last check, none while the checks still report the old
// WAL, and a new WAL from its first frame.
func TestWALCountAddsEachFrameOnce(t *testing.T) {
	before := ReadWALStats().Frames
	var c walCount
	for _, step := range []struct {
		restart bool
		log     int
	}{
		{false, 100},
		{false, 100},
		{false, 250},
		{true, 300},  // the restart found 50 more than the last check
		{false, 300}, // the old WAL, until the writer next writes
		{false, 40},  // the new one
		{false, 0},   // truncated
		{false, 500},
	} {
		if step.restart {
			c.startedOver(step.log)
		} else {
			c.checked(step.log)
		}
	}
	if got := ReadWALStats().Frames - before; got != 840 {
		t.Fatalf("counted %d frames, want 840 (300 + 40 + 500)", got)
	}
}

// A checkpoint on the writer's connection counts, with how long it held it.
func TestCheckpointOnTheWriterCountsItsHold(t *testing.T) {
	_, _, writer := openPools(t)
	if _, err := writer.NewQuery("INSERT INTO t (v) VALUES ('x')").Execute(); err != nil {
		t.Fatal(err)
	}
	before := ReadWALStats()
	if ok, _ := walCheckpointOnWriter(writer, "TRUNCATE"); !ok {
		t.Fatal("the truncation did not run")
	}
	if got := ReadWALStats(); got.Checkpoints != before.Checkpoints+1 || got.Held <= before.Held {
		t.Fatalf("WAL stats went from %+v to %+v, want one more checkpoint on the writer and its hold", before, got)
	}
}
