// Command dbexec runs SQL statements against the data.db of an omni data
// directory and prints how many rows each one changed. The web admin's
// browser tests use it to damage and mend stored rows the way a hand edit
// or a disk fault would (Node 20 has no SQLite of its own). It is a test
// tool: it is not part of the omni binary.
//
//	go run ./ui/test/dbexec DATA_DIR 'UPDATE …' ['…']
package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: dbexec DATA_DIR SQL…")
		os.Exit(2)
	}
	path := filepath.Join(os.Args[1], "data.db")
	// sql.Open would create an empty database for a wrong path.
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(os.Stderr, "dbexec: %v\n", err)
		os.Exit(2)
	}
	// The server may be running: wait for its write lock instead of failing.
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		fmt.Fprintf(os.Stderr, "dbexec: %v\n", err)
		os.Exit(1)
	}
	defer db.Close()
	for _, q := range os.Args[2:] {
		res, err := db.Exec(q)
		if err != nil {
			fmt.Fprintf(os.Stderr, "dbexec: %v\n", err)
			os.Exit(1)
		}
		n, _ := res.RowsAffected()
		fmt.Println(n)
	}
}
