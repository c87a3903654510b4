package store

import (
	"database/sql"
	"encoding/json"
	"strings"
	"unicode/utf8"

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
	return eachRowsStatement(head, cols, tail, args, func(query string, args []any) error {
		st, err := s.Get(query)
		if err != nil {
			return err
		}
		_, err = st.Exec(args...)
		return err
	})
}

// ExecRows is Statements.ExecRows on ex without preparing: on the
// writer's connection the statements are kept anyway (WriterStatements).
func ExecRows(ex dbx.Executor, head string, cols int, tail string, args []any) error {
	return eachRowsStatement(head, cols, tail, args, func(query string, args []any) error {
		_, err := ex.Exec(query, args...)
		return err
	})
}

// QueryRows is ExecRows for statements that return rows (an INSERT …
// RETURNING): scan is called for each row returned.
func QueryRows(ex dbx.Executor, head string, cols int, tail string, args []any, scan func(*sql.Rows) error) error {
	return eachRowsStatement(head, cols, tail, args, func(query string, args []any) error {
		rows, err := ex.Query(query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// eachRowsStatement cuts args into the statements ExecRows runs.
func eachRowsStatement(head string, cols int, tail string, args []any, exec func(query string, args []any) error) error {
	row := "(" + strings.Repeat("?, ", cols-1) + "?)"
	per := max(1, min(RowsPerStatement, ValuesPerStatement/cols))
	for len(args) > 0 {
		n := min(len(args)/cols, per)
		if err := exec(head+strings.Repeat(row+", ", n-1)+row+tail, args[:n*cols]); err != nil {
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

// InList returns the right side of "x IN " for values, and its arguments:
// one JSON array read by json_each, so the statement's text is the same
// for any number of values (the writer keeps it prepared) and binding
// costs one argument (the driver matches each positional argument by a
// linear search, so a list of n parameters costs n² in binding alone).
// When a value is not valid UTF-8, which JSON cannot carry byte for byte,
// it is a list of parameters instead.
func InList(values []string) (string, []any) {
	valid := true
	for _, v := range values {
		if !utf8.ValidString(v) {
			valid = false
			break
		}
	}
	if valid {
		if b, err := json.Marshal(values); err == nil {
			return "(SELECT value FROM json_each(?))", []any{string(b)}
		}
	}
	args := make([]any, len(values))
	for i, v := range values {
		args[i] = v
	}
	return "(?" + strings.Repeat(",?", len(values)-1) + ")", args
}
