package bus

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// groupSync makes `durability: strict` cheap: JetStream's own SyncAlways
// fsyncs after every single message, so a 100-event batch cost 100
// fsyncs. Instead the embedded server writes each message to its block
// file before acknowledging it (its default), and a publisher that wants
// fsync-before-ack calls wait after its acks: one goroutine fsyncs the
// streams' recently written block files, and every publisher that arrived
// while the previous fsync ran shares the next one (group commit).
type groupSync struct {
	dirs []string // the streams' msgs directories

	mu      sync.Mutex
	wake    chan struct{} // buffered(1): a round is wanted
	round   uint64        // the round a new waiter joins
	done    *sync.Cond    // signalled when a round ends
	synced  uint64        // the last completed round
	err     error         // of the last completed round
	since   time.Time     // start of the last successful round: older files are already on disk
	stopped chan struct{}
	closed  bool

	rounds atomic.Uint64 // fsync rounds run, for tests and metrics
	files  atomic.Uint64 // block files fsynced
}

// newGroupSync starts the syncer; jsDir is the embedded server's JetStream
// directory (Server.StoreDir), under which it keeps the global account's
// streams.
func newGroupSync(jsDir string, streams []string) *groupSync {
	g := &groupSync{wake: make(chan struct{}, 1), round: 1, stopped: make(chan struct{})}
	g.done = sync.NewCond(&g.mu)
	for _, s := range streams {
		g.dirs = append(g.dirs, filepath.Join(jsDir, "$G", "streams", s, "msgs"))
	}
	go g.loop()
	return g
}

// wait returns once every message acknowledged before it was called is on
// disk (fsynced), or with the error that kept it from being.
func (g *groupSync) wait(ctx context.Context) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return fmt.Errorf("%w: closed", ErrUnavailable)
	}
	mine := g.round
	select {
	case g.wake <- struct{}{}:
	default:
	}
	// sync.Cond has no context: a watcher wakes the waiters when ctx ends.
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.done.Broadcast()
		g.mu.Unlock()
	})
	defer stop()
	for g.synced < mine {
		select {
		case <-g.stopped:
			g.mu.Unlock()
			return fmt.Errorf("%w: closed", ErrUnavailable)
		default:
		}
		if ctx.Err() != nil {
			g.mu.Unlock()
			return fmt.Errorf("%w: fsync: %v", ErrUnavailable, ctx.Err())
		}
		g.done.Wait()
	}
	err := g.err
	g.mu.Unlock()
	return err
}

func (g *groupSync) loop() {
	for range g.wake {
		g.mu.Lock()
		r := g.round
		g.round++ // who arrives from now on waits for the next round
		since := g.since
		g.mu.Unlock()

		start := time.Now()
		err := g.syncFiles(since)
		g.rounds.Add(1)

		g.mu.Lock()
		g.synced, g.err = r, err
		if err == nil {
			// A second of slack: file times are coarse on some filesystems.
			g.since = start.Add(-time.Second)
		}
		g.done.Broadcast()
		g.mu.Unlock()
	}
	g.mu.Lock()
	close(g.stopped)
	g.done.Broadcast()
	g.mu.Unlock()
}

// syncFiles fsyncs every block file written since since, and the
// directories (a new block file's name must be on disk too).
func (g *groupSync) syncFiles(since time.Time) error {
	for _, dir := range g.dirs {
		ents, err := os.ReadDir(dir)
		if os.IsNotExist(err) {
			continue // nothing stored in this stream yet
		}
		if err != nil {
			return fmt.Errorf("%w: fsync: %v", ErrUnavailable, err)
		}
		for _, e := range ents {
			info, err := e.Info()
			if err != nil || info.IsDir() || info.ModTime().Before(since) {
				continue // removed meanwhile, or unchanged since the last round
			}
			if err := fsync(filepath.Join(dir, e.Name())); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("%w: fsync: %v", ErrUnavailable, err)
			}
			g.files.Add(1)
		}
		if err := fsync(dir); err != nil {
			return fmt.Errorf("%w: fsync: %v", ErrUnavailable, err)
		}
	}
	return nil
}

func fsync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (g *groupSync) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed = true
		close(g.wake)
	}
}
