package store

import (
	"sync"
	"time"

	"github.com/pocketbase/dbx"
)

// WriterAutoCheckpoint is the WAL size, in pages, at which the writer
// connection copies the WAL back into the database itself, in the middle
// of its commit. SQLite's default is 1,000 pages; StartCheckpoints keeps
// the WAL well under this, so the writer does it only when they fall
// behind (or is not running, as in CLI commands).
const WriterAutoCheckpoint = 16000

// CheckpointInterval is how often StartCheckpoints copies the WAL back.
const CheckpointInterval = 250 * time.Millisecond

// StartCheckpoints copies committed WAL pages back into the database file
// on a reader connection of db every interval, until the returned stop is
// called; stop returns once no checkpoint is running (call it before the
// database closes). Left to SQLite, the writer does this in the commit
// that takes the WAL past 1,000 pages: the copy and its fsync then held
// up the next batch of events (about a tenth of the writer's time under a
// steady load). A passive checkpoint runs beside the writer and its
// readers and waits for neither; when the WAL holds nothing new it costs
// a read of the WAL index.
func StartCheckpoints(db dbx.Builder, interval time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			// Errors (the database closing, a busy lock) leave the work to
			// the next tick or to the writer's own checkpoint.
			_, _ = db.NewQuery("PRAGMA wal_checkpoint(PASSIVE)").Execute()
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}
