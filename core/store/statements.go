package store

import (
	"database/sql"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// RowsPerStatement and ValuesPerStatement bound a many-row INSERT or
// UPDATE … FROM (VALUES …): the SQLite driver binds each parameter by a
// search of them all, so binding grows with the square of a statement's
// parameters (200 rows of 21 columns took longer to bind than to store),
// while one statement per row pays SQLite's per-statement work each time.
const (
	RowsPerStatement   = 16
	ValuesPerStatement = 128
)

// Statements are one transaction's prepared statements, each prepared
// once however often it runs (SQLite parses a statement once instead of
// once a row). Close them before the transaction ends.
type Statements struct {
	ex    dbx.Executor
	stmts map[string]*sql.Stmt
}

// NewStatements prepares on tx's raw executor (see Executor).
func NewStatements(tx core.App) *Statements {
	return &Statements{ex: Executor(tx), stmts: map[string]*sql.Stmt{}}
}

// Executor is the raw executor the statements are prepared on, for the
// one-off queries beside them.
func (s *Statements) Executor() dbx.Executor { return s.ex }

// Get returns query prepared.
func (s *Statements) Get(query string) (*sql.Stmt, error) {
	if st, ok := s.stmts[query]; ok {
		return st, nil
	}
	st, err := s.ex.Prepare(query)
	if err != nil {
		return nil, err
	}
	s.stmts[query] = st
	return st, nil
}

// ExecRows runs head + "(?, …)" per row + tail over args (cols values a
// row), at most RowsPerStatement rows and about ValuesPerStatement values
// a statement.
func (s *Statements) ExecRows(head string, cols int, tail string, args []any) error {
	row := "(" + strings.Repeat("?, ", cols-1) + "?)"
	per := max(1, min(RowsPerStatement, ValuesPerStatement/cols))
	for len(args) > 0 {
		n := min(len(args)/cols, per)
		st, err := s.Get(head + strings.Repeat(row+", ", n-1) + row + tail)
		if err != nil {
			return err
		}
		if _, err := st.Exec(args[:n*cols]...); err != nil {
			return err
		}
		args = args[n*cols:]
	}
	return nil
}

// Close closes every statement.
func (s *Statements) Close() {
	for _, st := range s.stmts {
		st.Close()
	}
	clear(s.stmts)
}
