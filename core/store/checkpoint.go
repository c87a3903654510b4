package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strconv"
	"sync"
	"time"

	"github.com/pocketbase/dbx"
)

// WriterAutoCheckpoint is the WAL size, in pages, at which the writer
// connection copies the WAL back into the database itself, in the middle
// of its commit. SQLite's default is 1,000 pages; StartCheckpoints keeps
// the WAL well under this, so the writer does it only when they fall
// behind (or are not running, as in CLI commands). Past it, every commit
// checkpoints (and fsyncs) again until the WAL starts over.
const WriterAutoCheckpoint = 64000

// RestartPages is the WAL size, in pages, at which StartCheckpoints starts
// the WAL over once it has copied all of it back: 64 MB, about a second of
// a steady load.
const RestartPages = 16000

// CheckpointInterval is how often StartCheckpoints copies the WAL back.
const CheckpointInterval = 250 * time.Millisecond

// idleChecks is how many checkpoints in a row find the WAL unchanged before
// StartCheckpoints truncates it: the file a burst grew is given back to the
// disk about a second after the writes stop.
const idleChecks = 4

// restartBusy is how long a restart waits for readers that still use the
// WAL (it holds the writer meanwhile); when they outlast it, the next
// check tries again.
const restartBusy = 50 * time.Millisecond

// StartCheckpoints copies committed WAL pages back into the database file
// on a reader connection (readers) every interval, until the returned stop
// is called; stop returns once no checkpoint is running (call it before
// the database closes). Left to SQLite, the writer does this in the commit
// that takes the WAL past 1,000 pages: the copy and its fsync then held up
// the next batch of events (about a tenth of the writer's time under a
// steady load). A passive checkpoint runs beside the writer and its
// readers and waits for neither; when the WAL holds nothing new it costs
// a read of the WAL index.
//
// A passive checkpoint never starts the WAL over: SQLite does that when a
// write begins after everything was copied back, which under a steady
// load never happens (the next batch always began first). So once the WAL
// holds RestartPages, all copied back, a RESTART checkpoint runs on the
// writer connection (writer), between its transactions: no write can then
// be pending on an older snapshot of the WAL, which a restart would void.
// Before, the writer's own checkpoint did this at 16,000 pages, again at
// every commit until a restart found no reader in the WAL, and each one
// copied and fsynced what the passive ones had not reached yet (a tenth
// of the writer's time). Once the WAL stops changing, a TRUNCATE
// checkpoint gives its file back to the disk.
func StartCheckpoints(readers, writer dbx.Builder, interval time.Duration) (stop func()) {
	return startCheckpoints(readers, writer, interval, RestartPages)
}

func startCheckpoints(readers, writer dbx.Builder, interval time.Duration, restartPages int) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		lastLog, same := -1, 0
		truncated := false        // since the WAL last changed
		restartAt := restartPages // the WAL size at which the next restart is tried
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			// Errors (the database closing, a busy lock) leave the work to
			// the next tick or to the writer's own checkpoint.
			var busy, log, copied int
			if err := readers.NewQuery("PRAGMA wal_checkpoint(PASSIVE)").Row(&busy, &log, &copied); err != nil {
				continue
			}
			if log == lastLog {
				same++
			} else {
				same, truncated = 0, false
			}
			lastLog = log
			switch {
			case log < restartPages:
				restartAt = restartPages // started over
			case log >= restartAt && copied == log:
				if walCheckpointOnWriter(writer, "RESTART") {
					lastLog = -1 // as many frames as now may be new ones
				} else {
					// Readers outlasted restartBusy: try again once the WAL
					// grew by half as much again, not at every check (each
					// try holds the writer up to restartBusy).
					restartAt = log + restartPages/2
				}
			}
			// Idle: truncate the file, even when a restart left it with no
			// frames (its size stays on disk until truncated).
			if !truncated && copied == log && same > 0 && same%idleChecks == 0 {
				// Tried again while it fails. Once frames were dropped, the
				// next count is read as a change, even when as many came since.
				if truncated = walCheckpointOnWriter(writer, "TRUNCATE"); truncated && log > 0 {
					lastLog = -1
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// walCheckpointOnWriter runs a checkpoint of mode (RESTART or TRUNCATE) on
// the writer's connection, once no transaction holds it, waiting at most
// restartBusy for readers still in the WAL. It reports whether the WAL
// started over.
func walCheckpointOnWriter(writer dbx.Builder, mode string) bool {
	pool, ok := writer.(interface{ DB() *sql.DB })
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pool.DB().Conn(ctx) // waits for the writer's transaction to end
	if err != nil {
		return false
	}
	defer conn.Close() // back to the pool
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = "+strconv.Itoa(int(restartBusy.Milliseconds()))); err != nil {
		return false
	}
	busy := 1
	var log, copied int
	_ = conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &log, &copied)
	if _, err := conn.ExecContext(context.Background(), "PRAGMA busy_timeout = "+strconv.Itoa(busyTimeoutMS)); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // never hand on a connection with the short timeout
	}
	return busy == 0
}
