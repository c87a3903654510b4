package store

import (
	"container/list"
	"context"
	"database/sql"
	"database/sql/driver"
	"hash/maphash"
	"sync"

	_ "modernc.org/sqlite" // registers "sqlite", the driver wrapped here
)

// WriterStatements is how many prepared statements the writer's connection
// keeps between transactions. The events path runs the same few dozen
// statements in every batch; database/sql prepares each anew per call (or
// per transaction, for Statements), and SQLite's parse and plan of them was
// about a twentieth of the writer's time with every module live.
const WriterStatements = 256

// ReaderStatements is how many prepared statements each reader connection
// keeps. Readers serve the API, the gate's checks and the modules' own
// reads, each a handful of statements run again and again: parsing them
// anew was about a twelfth of the CPU of a burst of sends.
const ReaderStatements = 64

// sqliteDriver is the driver database/sql registered as "sqlite" (the
// instance its connection hooks and functions belong to).
var sqliteDriver = func() driver.Driver {
	db, err := sql.Open("sqlite", "")
	if err != nil {
		panic("store: the sqlite driver is not registered: " + err.Error())
	}
	defer db.Close()
	return db.Driver()
}()

// cachingConnector opens SQLite connections that keep up to size prepared
// statements each, by their SQL text, from one use to the next.
type cachingConnector struct {
	dsn  string
	size int
}

func (c cachingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := sqliteDriver.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(sqliteConn)
	if !ok {
		_ = conn.Close()
		return nil, errUnexpectedDriver
	}
	return &cachingConn{sqliteConn: inner, size: max(c.size, 1), byQuery: map[string]*list.Element{}, seen: map[uint64]struct{}{}}, nil
}

func (c cachingConnector) Driver() driver.Driver { return sqliteDriver }

var errUnexpectedDriver = driverError("store: the sqlite driver's connection lacks the methods the statement cache wraps")

type driverError string

func (e driverError) Error() string { return string(e) }

// sqliteConn is what database/sql uses of the driver's connection.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// stmtWithContext is what database/sql uses of the driver's statements.
type stmtWithContext interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// cachingConn is a SQLite connection that keeps its prepared statements.
// A statement is lent to one use at a time: an Exec, a Query until its
// rows close, or a Prepare until its Close. Asked for a statement that is
// lent out (the same query run again while its rows are still open), it
// prepares a second one for that use alone. Past size statements, the one
// used longest ago is finalized.
//
// A statement is kept from its second preparation on: a query whose text
// changes with its values (an IN list as long as a batch's ids) is used
// once and finalized as before, instead of pushing out the statements
// every batch runs. database/sql uses a connection from one goroutine at
// a time; the lock covers rows closed by a context's end.
type cachingConn struct {
	sqliteConn
	size int

	mu      sync.Mutex
	byQuery map[string]*list.Element // of *cachedStmt
	lru     list.List                // front: used last
	seen    map[uint64]struct{}      // hashes of the texts prepared once and not kept
}

// seed hashes query texts for cachingConn.seen.
var seed = maphash.MakeSeed()

type cachedStmt struct {
	query string
	stmt  stmtWithContext
	lent  bool
}

// take returns query's statement, lent to the caller until give, preparing
// it when the connection holds none that is free.
func (c *cachingConn) take(ctx context.Context, query string) (*cachedStmt, error) {
	c.mu.Lock()
	if el, ok := c.byQuery[query]; ok {
		cs := el.Value.(*cachedStmt)
		if !cs.lent {
			cs.lent = true
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			return cs, nil
		}
		c.mu.Unlock()
		return c.prepare(ctx, query, false)
	}
	h := maphash.String(seed, query)
	_, again := c.seen[h]
	if again {
		delete(c.seen, h)
	} else {
		if len(c.seen) >= 4*c.size {
			clear(c.seen)
		}
		c.seen[h] = struct{}{}
	}
	c.mu.Unlock()
	return c.prepare(ctx, query, again)
}

func (c *cachingConn) prepare(ctx context.Context, query string, keep bool) (*cachedStmt, error) {
	st, err := c.sqliteConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	sw, ok := st.(stmtWithContext)
	if !ok {
		_ = st.Close()
		return nil, errUnexpectedDriver
	}
	cs := &cachedStmt{query: query, stmt: sw, lent: true}
	if !keep {
		return cs, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byQuery[query]; ok {
		return cs, nil // another use kept the same text meanwhile: this one is finalized at give
	}
	c.byQuery[query] = c.lru.PushFront(cs)
	for el := c.lru.Back(); c.lru.Len() > c.size && el != nil; {
		prev := el.Prev()
		if old := el.Value.(*cachedStmt); !old.lent {
			c.lru.Remove(el)
			delete(c.byQuery, old.query)
			_ = old.stmt.Close()
		}
		el = prev
	}
	return cs, nil
}

// give ends a loan: a kept statement is free again, another is finalized.
func (c *cachingConn) give(cs *cachedStmt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byQuery[cs.query]; ok && el.Value.(*cachedStmt) == cs {
		cs.lent = false
		return
	}
	_ = cs.stmt.Close()
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	defer c.give(cs)
	return cs.stmt.ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	r, err := cs.stmt.QueryContext(ctx, args)
	if err != nil {
		c.give(cs)
		return nil, err
	}
	rows, ok := r.(sqliteRows)
	if !ok {
		_ = r.Close()
		c.give(cs)
		return nil, errUnexpectedDriver
	}
	return &lentRows{sqliteRows: rows, conn: c, cs: cs}, nil
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	cs, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	return &lentStmt{stmtWithContext: cs.stmt, conn: c, cs: cs}, nil
}

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// Close finalizes the kept statements, then closes the connection.
func (c *cachingConn) Close() error {
	c.mu.Lock()
	for el := c.lru.Front(); el != nil; el = el.Next() {
		_ = el.Value.(*cachedStmt).stmt.Close()
	}
	c.lru.Init()
	clear(c.byQuery)
	clear(c.seen)
	c.mu.Unlock()
	return c.sqliteConn.Close()
}

// forget finalizes the kept statements that are not lent out: an idle
// connection gives their memory back (ReleaseMemory), and the next burst
// prepares them again, once each.
func (c *cachingConn) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; {
		next := el.Next()
		if cs := el.Value.(*cachedStmt); !cs.lent {
			_ = cs.stmt.Close()
			delete(c.byQuery, cs.query)
			c.lru.Remove(el)
		}
		el = next
	}
	clear(c.seen)
}

// kept reports how many statements the connection holds (for tests).
func (c *cachingConn) kept() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// lentStmt is a statement handed out by Prepare; its Close ends the loan.
type lentStmt struct {
	stmtWithContext
	conn   *cachingConn
	cs     *cachedStmt
	closed bool
}

func (s *lentStmt) Close() error {
	if !s.closed {
		s.closed = true
		s.conn.give(s.cs)
	}
	return nil
}

// sqliteRows is what database/sql uses of the driver's rows.
type sqliteRows interface {
	driver.Rows
	driver.RowsColumnTypeDatabaseTypeName
	driver.RowsColumnTypeLength
	driver.RowsColumnTypeNullable
	driver.RowsColumnTypePrecisionScale
	driver.RowsColumnTypeScanType
}

// lentRows are a query's rows; their Close (which resets the statement)
// ends the loan of the statement they step.
type lentRows struct {
	sqliteRows
	conn   *cachingConn
	cs     *cachedStmt
	closed bool
}

func (r *lentRows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.sqliteRows.Close()
	r.conn.give(r.cs)
	return err
}

var (
	_ driver.Connector = cachingConnector{}
	_ sqliteConn       = (*cachingConn)(nil)
	_ sqliteRows       = (*lentRows)(nil)
)
