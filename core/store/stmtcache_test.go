package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// openCaching opens dir's data.db as Connect opens the writer, keeping at
// most size statements, on one connection; and a second, plain connection
// to the same file.
func openCaching(t *testing.T, size int) (writer, other *sql.DB) {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "data.db") + pragmas(WriterCacheKB, WriterAutoCheckpoint)
	writer = sql.OpenDB(cachingConnector{dsn: dsn, size: size})
	writer.SetMaxOpenConns(1)
	other, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close(); writer.Close() })
	if _, err := writer.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"); err != nil {
		t.Fatal(err)
	}
	return writer, other
}

// keptStatements reads the writer connection's cache: its size and the
// statement kept for query (nil when none is).
func keptStatements(t *testing.T, db *sql.DB, query string) (n int, st any) {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Raw(func(dc any) error {
		c := dc.(*cachingConn)
		n = c.kept()
		c.mu.Lock()
		defer c.mu.Unlock()
		if el, ok := c.byQuery[query]; ok {
			st = el.Value.(*cachedStmt).stmt
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n, st
}

func count(t *testing.T, db interface {
	QueryRow(string, ...any) *sql.Row
}, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestWriterKeepsItsStatementsAcrossTransactions(t *testing.T) {
	writer, _ := openCaching(t, 16)
	const insert = "INSERT INTO t (name) VALUES (?)"
	const byName = "SELECT COUNT(*) FROM t WHERE name = ?"
	var first any
	for round := range 5 {
		tx, err := writer.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := tx.Exec(insert, "a"); err != nil {
				t.Fatal(err)
			}
		}
		// Each transaction sees its own writes through the kept statement.
		if got := count(t, tx, byName, "a"); got != 3*(round+1) {
			t.Fatalf("round %d: %d rows named a in the transaction, want %d", round, got, 3*(round+1))
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		_, st := keptStatements(t, writer, insert)
		if st == nil {
			t.Fatalf("round %d: the insert is not kept", round)
		}
		if round == 0 {
			first = st
		} else if st != first {
			t.Fatalf("round %d: the insert was prepared again", round)
		}
	}
	// A rolled back transaction's writes are gone for the kept statement too.
	tx, _ := writer.Begin()
	if _, err := tx.Exec(insert, "b"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := count(t, writer, byName, "b"); got != 0 {
		t.Fatalf("%d rows named b after the rollback, want 0", got)
	}
	// Statements prepared in a transaction are kept as well, from one
	// transaction to the next.
	var prepared []any
	for range 2 {
		tx, _ := writer.Begin()
		st, err := tx.Prepare(byName)
		if err != nil {
			t.Fatal(err)
		}
		if got := count(t, st2row{st}, "", "a"); got != 15 {
			t.Fatalf("prepared: %d rows named a, want 15", got)
		}
		st.Close()
		tx.Commit()
		_, kept := keptStatements(t, writer, byName)
		prepared = append(prepared, kept)
	}
	if prepared[0] == nil || prepared[0] != prepared[1] {
		t.Fatalf("a statement prepared in two transactions was not kept once: %v", prepared)
	}
}

// st2row lets count run a prepared statement.
type st2row struct{ st *sql.Stmt }

func (s st2row) QueryRow(_ string, args ...any) *sql.Row { return s.st.QueryRow(args...) }

// The same query run again while its rows are open gets a statement of its
// own: both row sets read as if alone.
func TestWriterStatementRunAgainWhileItsRowsAreOpen(t *testing.T) {
	writer, _ := openCaching(t, 16)
	for _, n := range []string{"a", "b", "c"} {
		if _, err := writer.Exec("INSERT INTO t (name) VALUES (?)", n); err != nil {
			t.Fatal(err)
		}
	}
	const all = "SELECT name FROM t WHERE name >= ? ORDER BY name"
	tx, _ := writer.Begin()
	defer tx.Rollback()
	outer, err := tx.Query(all, "a")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for outer.Next() {
		var name string
		if err := outer.Scan(&name); err != nil {
			t.Fatal(err)
		}
		inner, err := tx.Query(all, name)
		if err != nil {
			t.Fatal(err)
		}
		for inner.Next() {
			var n2 string
			inner.Scan(&n2)
			got = append(got, name+n2)
		}
		if err := inner.Err(); err != nil {
			t.Fatal(err)
		}
		inner.Close()
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	want := "aa ab ac bb bc cc"
	if s := join(got); s != want {
		t.Fatalf("nested rows %q, want %q", s, want)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

// A kept statement holds no read transaction once its rows are closed,
// even when they were not read to the end: a checkpoint on another
// connection can still start the WAL over.
func TestKeptStatementsDoNotHoldTheWAL(t *testing.T) {
	writer, other := openCaching(t, 16)
	for i := range 50 {
		if _, err := writer.Exec("INSERT INTO t (name) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // kept from its second use on
		rows, err := writer.Query("SELECT name FROM t")
		if err != nil {
			t.Fatal(err)
		}
		if !rows.Next() {
			t.Fatal("no row")
		}
		rows.Close() // after one row of 50
	}
	if _, st := keptStatements(t, writer, "SELECT name FROM t"); st == nil {
		t.Fatal("the select is not kept")
	}
	var busy, log, copied int
	if err := other.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &log, &copied); err != nil {
		t.Fatal(err)
	}
	if busy != 0 {
		t.Fatalf("checkpoint busy (log %d, copied %d): a kept statement still reads the WAL", log, copied)
	}
}

func TestWriterStatementsStayWithinTheirNumber(t *testing.T) {
	writer, _ := openCaching(t, 3)
	queries := []string{
		"SELECT COUNT(*) FROM t WHERE id > 0",
		"SELECT COUNT(*) FROM t WHERE id > 1",
		"SELECT COUNT(*) FROM t WHERE id > 2",
		"SELECT COUNT(*) FROM t WHERE id > 3",
		"SELECT COUNT(*) FROM t WHERE id > 4",
	}
	for i := range 3 {
		if _, err := writer.Exec("INSERT INTO t (name) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		for i, q := range queries {
			if got, want := count(t, writer, q), max(0, 3-i); got != want {
				t.Fatalf("%s: %d, want %d", q, got, want)
			}
		}
	}
	n, _ := keptStatements(t, writer, "")
	if n != 3 {
		t.Fatalf("%d statements kept, want 3", n)
	}
	for _, q := range queries[:2] {
		if _, st := keptStatements(t, writer, q); st != nil {
			t.Fatalf("%q kept: the statements used longest ago go first", q)
		}
	}
	if _, st := keptStatements(t, writer, queries[4]); st == nil {
		t.Fatal("the statement used last is not kept")
	}
}

// A kept statement follows the schema (SQLite prepares it again itself),
// and a statement that does not prepare is reported and not kept.
func TestKeptStatementsFollowTheSchemaAndErrorsAreNotKept(t *testing.T) {
	writer, _ := openCaching(t, 16)
	if _, err := writer.Exec("INSERT INTO t (name) VALUES ('a')"); err != nil {
		t.Fatal(err)
	}
	columns := func() int {
		rows, err := writer.Query("SELECT * FROM t")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		return len(cols)
	}
	if got := columns(); got != 2 {
		t.Fatalf("%d columns, want 2", got)
	}
	if _, err := writer.Exec("ALTER TABLE t ADD COLUMN extra TEXT DEFAULT 'x'"); err != nil {
		t.Fatal(err)
	}
	if got := columns(); got != 3 {
		t.Fatalf("after ALTER TABLE: %d columns, want 3", got)
	}
	n0, _ := keptStatements(t, writer, "")
	for range 2 {
		if _, err := writer.Exec("SELECT nope FROM t"); err == nil {
			t.Fatal("a query of a missing column ran")
		}
	}
	// The statement that failed as it ran is kept and runs again.
	for i := range 3 {
		if _, err := writer.Exec("INSERT INTO t (id, name) VALUES (1, 'dup')"); err == nil {
			t.Fatalf("a duplicate key was inserted (try %d)", i)
		}
	}
	const insert = "INSERT INTO t (id, name) VALUES (?, 'b')"
	for _, id := range []int{2, 3} {
		if _, err := writer.Exec(insert, id); err != nil {
			t.Fatal(err)
		}
	}
	n1, bad := keptStatements(t, writer, "SELECT nope FROM t")
	if bad != nil {
		t.Fatal("a query that does not prepare was kept")
	}
	if n1 != n0+2 {
		t.Fatalf("%d statements kept after the errors, want %d", n1, n0+2)
	}
	if got := count(t, writer, "SELECT COUNT(*) FROM t"); got != 3 {
		t.Fatalf("%d rows, want 3", got)
	}
}

// A statement used once is not kept: the texts that change with their
// values (an IN list as long as a batch) do not push out the ones every
// batch runs.
func TestStatementsUsedOnceAreNotKept(t *testing.T) {
	writer, _ := openCaching(t, 8)
	const every = "SELECT COUNT(*) FROM t WHERE id = ?"
	for batch := range 40 {
		count(t, writer, every, batch)
		in := "SELECT COUNT(*) FROM t WHERE id IN (?" + strings.Repeat(", ?", batch) + ")"
		args := make([]any, batch+1)
		for i := range args {
			args[i] = i
		}
		if got := count(t, writer, in, args...); got != 0 {
			t.Fatalf("batch %d: %d rows, want 0", batch, got)
		}
	}
	n, st := keptStatements(t, writer, every)
	if st == nil {
		t.Fatal("the statement every batch runs was not kept")
	}
	if n != 1 {
		t.Fatalf("%d statements kept, want 1 (only the one every batch runs)", n)
	}
}
