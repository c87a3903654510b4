package profiles

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// minPart is the fewest items per core worth handing to another goroutine:
// below it, starting one costs more than the work it takes over.
const minPart = 32

// partChunk is how many items a goroutine of inParts claims at a time:
// few enough that whoever runs out of work first waits at most one chunk
// for the others, enough that claiming costs nothing beside the work.
const partChunk = 16

// inParts runs work over [0, n) in contiguous chunks, claimed in turn by
// the calling goroutine and by one goroutine of its own for each other
// core, when n is large enough to pay for it. The events transaction holds
// the one SQLite writer connection on one core; the Go-only work inside
// it (decoding cached profile rows, encoding the rows it writes) can use
// the other.
//
// The caller works too, and never waits for a helper that has not begun:
// on a busy machine a helper may start only after the caller has claimed
// every chunk (then it finds none and ends). Fixed halves made the writer
// wait, in a trace of the live load, about 6 % of its time for the other
// half's goroutine to be scheduled. work must touch only the items of its
// own range.
//
// inParts returns only when every claimed chunk has: a panic in one is
// raised again on the calling goroutine, so that whoever recovers the
// transaction's panics sees it, and no work outlives the transaction.
func inParts(n int, work func(lo, hi int)) {
	helpers := min(runtime.GOMAXPROCS(0), n/minPart) - 1
	if helpers <= 0 {
		work(0, n)
		return
	}
	chunks := (n + partChunk - 1) / partChunk
	var next atomic.Int64
	var unfinished sync.WaitGroup
	unfinished.Add(chunks)
	var mu sync.Mutex
	var failure any
	one := func(c int) {
		defer unfinished.Done()
		defer func() {
			if r := recover(); r != nil {
				mu.Lock()
				if failure == nil {
					failure = r
				}
				mu.Unlock()
			}
		}()
		work(c*partChunk, min(c*partChunk+partChunk, n))
	}
	claim := func() {
		for c := int(next.Add(1) - 1); c < chunks; c = int(next.Add(1) - 1) {
			one(c)
		}
	}
	for range helpers {
		go claim()
	}
	claim()
	unfinished.Wait()
	if failure != nil {
		panic(failure)
	}
}
