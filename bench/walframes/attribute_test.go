package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A WAL's committed frames are attributed to the b-trees SQLite wrote:
// the table and its index for the insert, the schema for the two CREATEs,
// and a transaction left open (its frames not committed yet) is not counted.
func TestAttributeWALCountsCommittedFramesByTree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		"PRAGMA journal_mode=WAL",
		"PRAGMA wal_autocheckpoint=0", // every frame stays in the WAL
		"CREATE TABLE t (a TEXT)",
		"CREATE INDEX idx_t_a ON t (a)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	insert := func(tx *sql.Tx, from, to int) {
		for i := from; i < to; i++ {
			// Values in an order unlike the rows': the index's pages fill apart.
			if _, err := tx.Exec("INSERT INTO t (a) VALUES (?)", fmt.Sprintf("%08d-%s", (i*7919)%10007, strings.Repeat("x", 40))); err != nil {
				t.Fatal(err)
			}
		}
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	insert(tx, 0, 3000)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	st, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	onDisk := int((st.Size() - walHeaderBytes) / walFrameBytes)
	a, err := attributeWAL(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if a.commits != 3 {
		t.Errorf("commits = %d, want 3 (two CREATEs, one insert)", a.commits)
	}
	if a.frames != onDisk {
		t.Errorf("frames = %d, want the %d the WAL's size holds", a.frames, onDisk)
	}
	sum := 0
	for _, n := range a.byTree {
		sum += n
	}
	if sum != a.frames {
		t.Errorf("frames by tree add up to %d, want %d: %v", sum, a.frames, a.byTree)
	}
	// 3,000 rows of about 50 bytes are dozens of pages in the table and as
	// many in its index.
	if a.byTree["t"] < 20 || a.byTree["idx_t_a"] < 20 || a.byTree["sqlite_schema"] < 2 {
		t.Errorf("by tree = %v; want t and idx_t_a with 20 frames or more, sqlite_schema with 2", a.byTree)
	}

	// Frames of a transaction still open are written to the WAL only when
	// the cache spills; force that with a tiny cache, then check they are
	// not counted.
	if _, err := db.Exec("PRAGMA cache_size=10"); err != nil {
		t.Fatal(err)
	}
	open, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer open.Rollback()
	insert(open, 3000, 6000)
	st, err = os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if grown := int((st.Size()-walHeaderBytes)/walFrameBytes) - onDisk; grown == 0 {
		t.Fatal("the open transaction wrote no frames: nothing uncommitted to leave out")
	}
	again, err := attributeWAL(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if again.commits != 3 || again.frames != a.frames {
		t.Errorf("with a transaction open: %d frames in %d commits, want %d in 3", again.frames, again.commits, a.frames)
	}
}

func TestWALPagesNamesWhatIsNotAWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.db-wal")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a wal ", 10)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := walPages(path); err == nil || !strings.Contains(err.Error(), "not a WAL") {
		t.Fatalf("err = %v, want one saying it is not a WAL", err)
	}
}
