package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strconv"
	"sync"
	"sync/atomic"
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
// A second passive checkpoint just before it leaves the restart less to
// copy while it holds the writer.
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
		w := newWALWatch(restartPages)
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
			if mode := w.next(log, copied); mode != "" {
				if mode == "RESTART" {
					// The restart holds the writer while it copies what this
					// check did not reach (the batches committed while it
					// copied): copy most of that beside the writer first.
					// The hold went from about 78 to 61 ms per restart in
					// bench/profiles.
					var b, l, c int
					if readers.NewQuery("PRAGMA wal_checkpoint(PASSIVE)").Row(&b, &l, &c) == nil {
						log = max(log, l)
					}
				}
				ok, ckptLog := walCheckpointOnWriter(writer, mode)
				w.result(mode, max(log, ckptLog), ok)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// walWatch decides, from what each passive checkpoint reports (the WAL's
// frames, and how many of them are copied back), when to start the WAL
// over and when to truncate its file; it counts the frames for WALStats.
type walWatch struct {
	restartPages int
	restartAt    int  // the WAL size at which the next restart is tried
	lastLog      int  // the WAL size the last check reported
	same         int  // checks in a row that found it unchanged
	truncated    bool // since the WAL last changed
	frames       walCount
}

func newWALWatch(restartPages int) *walWatch {
	return &walWatch{restartPages: restartPages, restartAt: restartPages, lastLog: -1}
}

// next returns the checkpoint to run on the writer's connection after a
// passive one reported log frames, copied of them copied back: "RESTART",
// "TRUNCATE" or "" (none).
func (w *walWatch) next(log, copied int) string {
	w.frames.checked(log)
	if log == w.lastLog {
		w.same++
	} else {
		w.same, w.truncated = 0, false
	}
	w.lastLog = log
	if log < w.restartPages {
		w.restartAt = w.restartPages // started over
	} else if log >= w.restartAt && copied == log {
		return "RESTART"
	}
	// Idle: truncate the file, even when a restart left it with no frames
	// (its size stays on disk until truncated). Tried again while it fails.
	if !w.truncated && copied == log && w.same > 0 && w.same%idleChecks == 0 {
		return "TRUNCATE"
	}
	return ""
}

// result records how the checkpoint mode went; log is the WAL's size in
// frames as the checkpoint found it (the writer may have committed more
// since the passive check that chose it).
func (w *walWatch) result(mode string, log int, ok bool) {
	if ok {
		w.frames.startedOver(log)
	}
	switch {
	case mode == "RESTART":
		// Either way, the next try waits for the WAL to grow by half as
		// much again. After a failure (readers outlasted restartBusy), so
		// as not to hold the writer at every check. After a success,
		// because the WAL starts over only when the writer next writes:
		// until then a check still reports the old size, all copied back,
		// and a second restart would hold the writer again to copy back
		// the few frames its next batch had written by then (half of the
		// restarts under a steady load were such).
		w.restartAt = log + w.restartPages/2
		if ok {
			w.lastLog = -1 // as many frames as now may be new ones
		}
	case ok:
		// Truncated: the WAL holds no frame, so a next count of as many
		// frames as before is read as a change, and one of none as none.
		w.truncated, w.lastLog = true, 0
	}
}

// walCheckpointOnWriter runs a checkpoint of mode (RESTART or TRUNCATE) on
// the writer's connection, once no transaction holds it, waiting at most
// restartBusy for readers still in the WAL. It reports whether the WAL
// started over, and its size in frames before (-1: unknown).
func walCheckpointOnWriter(writer dbx.Builder, mode string) (restarted bool, log int) {
	pool, ok := writer.(interface{ DB() *sql.DB })
	if !ok {
		return false, -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pool.DB().Conn(ctx) // waits for the writer's transaction to end
	if err != nil {
		return false, -1
	}
	defer func(held time.Time) {
		walStats.checkpoints.Add(1)
		walStats.held.Add(int64(time.Since(held)))
	}(time.Now())
	defer conn.Close() // back to the pool
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = "+strconv.Itoa(int(restartBusy.Milliseconds()))); err != nil {
		return false, -1
	}
	busy, log := 1, -1
	var copied int
	_ = conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &log, &copied)
	if _, err := conn.ExecContext(context.Background(), "PRAGMA busy_timeout = "+strconv.Itoa(busyTimeoutMS)); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // never hand on a connection with the short timeout
	}
	return busy == 0, log
}

// WALStats is what StartCheckpoints has seen of the WAL since the process
// started: the frames committed to it, and the checkpoints it ran on the
// writer's connection (restarts and truncations) and how long they held
// it. bench/profiles prints them for each load.
type WALStats struct {
	// Frames are counted at each check: when SQLite starts the WAL over by
	// itself (writes with pauses, in which checks copy it all back), the
	// frames since the last check are missed.
	Frames      int64
	Checkpoints int64
	Held        time.Duration
}

var walStats struct{ frames, checkpoints, held atomic.Int64 }

// ReadWALStats returns the counts so far.
func ReadWALStats() WALStats {
	return WALStats{Frames: walStats.frames.Load(), Checkpoints: walStats.checkpoints.Load(), Held: time.Duration(walStats.held.Load())}
}

// walCount adds the frames each check finds beyond those counted.
type walCount struct {
	counted int // frames of the current WAL already counted
	// oldSize: after a restart, the size the checks report until the
	// writer next writes (SQLite starts the WAL over then); 0: none.
	oldSize int
}

func (c *walCount) checked(log int) {
	switch {
	case c.oldSize > 0 && log == c.oldSize:
		// not started over yet
	case c.oldSize > 0 || log < c.counted:
		c.counted, c.oldSize = 0, 0 // a new WAL
		fallthrough
	default:
		walStats.frames.Add(int64(log - c.counted))
		c.counted = log
	}
}

// startedOver records a restart or truncation of a WAL of log frames
// (more than the check before it saw when the writer committed since).
func (c *walCount) startedOver(log int) {
	if log > c.counted {
		walStats.frames.Add(int64(log - c.counted))
		c.counted = log
	}
	c.oldSize = log
}
