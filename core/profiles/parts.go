package profiles

import (
	"runtime"
	"sync"
)

// minPart is the fewest items worth handing to another goroutine: below
// it, starting and joining one costs more than the work it takes over.
const minPart = 32

// inParts runs work over [0, n) in contiguous parts, one on the calling
// goroutine and one on a goroutine of its own for each other core, when
// n is large enough to pay for it. The events transaction holds the one
// SQLite writer connection on one core; the Go-only work inside it
// (decoding cached profile rows, encoding the rows it writes) can use the
// other. work must touch only the items of its own range.
//
// inParts returns only when every part has: a panic in a part is raised
// again on the calling goroutine, so that whoever recovers the
// transaction's panics sees it, and no part outlives the transaction.
func inParts(n int, work func(lo, hi int)) {
	parts := min(runtime.GOMAXPROCS(0), n/minPart)
	if parts <= 1 {
		work(0, n)
		return
	}
	size := (n + parts - 1) / parts
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failure any
	for lo := size; lo < n; lo += size {
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					mu.Lock()
					failure = r
					mu.Unlock()
				}
			}()
			work(lo, min(lo+size, n))
		})
	}
	defer func() {
		wg.Wait()
		if failure != nil {
			panic(failure)
		}
	}()
	work(0, size)
}
