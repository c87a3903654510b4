package profiles

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// Every item is worked exactly once, in chunks on several goroutines when
// there are enough items, and a panic in any chunk reaches the caller.
func TestInPartsCoversEachItemOnce(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two cores to split") // the one-part path is covered below
	}
	for _, n := range []int{0, 1, minPart, 2*minPart - 1, 2 * minPart, 1000, 1001} {
		counts := make([]int32, n)
		var calls atomic.Int32
		inParts(n, func(lo, hi int) {
			calls.Add(1)
			for i := lo; i < hi; i++ {
				counts[i]++
			}
		})
		for i, c := range counts {
			if c != 1 {
				t.Fatalf("n=%d: item %d worked %d times", n, i, c)
			}
		}
		wantCalls := int32(1)
		if n >= 2*minPart {
			wantCalls = int32((n + partChunk - 1) / partChunk)
		}
		if calls.Load() != wantCalls {
			t.Fatalf("n=%d: %d chunks, want %d", n, calls.Load(), wantCalls)
		}
	}
	for _, last := range []bool{false, true} {
		func() {
			defer func() {
				if r := recover(); r != "part failed" {
					t.Fatalf("recovered %v, want the part's panic", r)
				}
			}()
			inParts(4*minPart, func(lo, hi int) {
				if (lo > 0) == last {
					panic("part failed")
				}
			})
			t.Fatal("inParts returned after a part panicked")
		}()
	}
}
