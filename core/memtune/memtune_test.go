package memtune

import (
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

func TestDefaultLimitUnlessGOMEMLIMIT(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOMEMLIMIT", "")
	if got := ApplyDefaultLimit(); got != DefaultLimit || debug.SetMemoryLimit(-1) != DefaultLimit {
		t.Fatalf("limit %d, want the default %d", got, DefaultLimit)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30) // what the runtime read from the environment at start
	if got := ApplyDefaultLimit(); got != 1<<30 {
		t.Fatalf("limit %d, want the operator's 1 GiB kept", got)
	}
}

// A burst followed by quiet releases the burst's freed heap to the OS.
func TestReleaseAfterABurst(t *testing.T) {
	released := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	stop := make(chan struct{})
	defer close(stop)
	go newIdleWatch(50 * time.Millisecond).run(stop)

	var keep [][]byte
	for range 64 { // 64 MB allocated within one interval: busy
		keep = append(keep, make([]byte, 1<<20))
	}
	before := released()
	keep = nil
	_ = keep
	deadline := time.Now().Add(10 * time.Second)
	for released() < before+32<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("released %d MB after the burst, want ≥ 32 MB", (released()-before)>>20)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An idle server runs with IdleGCPercent; the next burst restores GOGC.
func TestIdleGCPercentUntilTheNextBurst(t *testing.T) {
	t.Setenv("GOGC", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	gcPercent := func() int { p := debug.SetGCPercent(-1); debug.SetGCPercent(p); return p }
	stop := make(chan struct{})
	defer close(stop)
	go newIdleWatch(50 * time.Millisecond).run(stop)

	var sink [][]byte
	burst := func() {
		sink = nil
		for range 64 {
			sink = append(sink, make([]byte, 1<<20))
		}
	}
	// wait polls until GOGC is want; allocating keeps the server busy.
	wait := func(want int, allocating bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for gcPercent() != want {
			if time.Now().After(deadline) {
				t.Fatalf("GOGC %d, want %d", gcPercent(), want)
			}
			if allocating {
				burst()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	burst()
	wait(IdleGCPercent, false)
	wait(100, true)
	// Wake (the tracking API's first call) restores GOGC at once.
	sink = nil
	wait(IdleGCPercent, false)
	Wake()
	if p := gcPercent(); p != 100 {
		t.Fatalf("GOGC %d right after Wake, want 100", p)
	}
	_ = sink
}

// What is registered runs at ReleaseNow until it is removed (a stopped
// server's caches must not stay reachable from the registry).
func TestAtIdleRunsUntilRemoved(t *testing.T) {
	var kept, removed int
	removeKept := AtIdle(func() { kept++ })
	defer removeKept()
	remove := AtIdle(func() { removed++ })
	ReleaseNow()
	remove()
	ReleaseNow()
	if kept != 2 || removed != 1 {
		t.Fatalf("ran the kept one %d times and the removed one %d times, want 2 and 1", kept, removed)
	}
}

// Memory that outlives a load by a while (ids kept for a dedupe window)
// is handed back too: after a burst, the release runs idleReleases times
// while the server stays idle, then no more.
func TestReleasesRepeatWhileIdleThenStop(t *testing.T) {
	var runs atomic.Int32
	remove := AtIdle(func() { runs.Add(1) })
	defer remove()
	stop := make(chan struct{})
	defer close(stop)
	// The whole burst lands in the watch's first sample: allocated while
	// run was not yet sampling, it cannot be split by a stall (a GC, a
	// busy CI machine) into start-up and a second load, each of which
	// would be handed back idleReleases times.
	w := newIdleWatch(20 * time.Millisecond)
	var sink [][]byte
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
	_ = sink
	go w.run(stop)
	deadline := time.Now().Add(10 * time.Second)
	for runs.Load() < idleReleases {
		if time.Now().After(deadline) {
			t.Fatalf("released %d times while idle, want %d", runs.Load(), idleReleases)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Idle for ten times as long as the releases took: no more of them.
	time.Sleep(10 * idleReleases * releaseEvery * 20 * time.Millisecond)
	if n := runs.Load(); n != idleReleases {
		t.Fatalf("released %d times while idle, want %d", n, idleReleases)
	}
}

// Start-up is a load: a server that never sees one still hands back what
// starting allocated, and runs with IdleGCPercent, from its first quiet
// interval.
func TestAFreshServerReleasesItsStartUp(t *testing.T) {
	t.Setenv("GOGC", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	var runs atomic.Int32
	remove := AtIdle(func() { runs.Add(1) })
	defer remove()
	stop := make(chan struct{})
	defer close(stop)
	go newIdleWatch(20 * time.Millisecond).run(stop) // nothing allocated: idle from the start
	deadline := time.Now().Add(10 * time.Second)
	for runs.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a server idle from its start never released its start-up's memory")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	if p != IdleGCPercent {
		t.Fatalf("GOGC %d after the first quiet interval, want %d", p, IdleGCPercent)
	}
}

// quietSamples feeds w n samples at the idle rate and returns the ones
// (counted from 1) after which it released memory.
func quietSamples(w *idleWatch, n int) []int {
	var released []int
	for i := 1; i <= n; i++ {
		if w.step(0) {
			released = append(released, i)
		}
	}
	return released
}

// Start-up's garbage goes back after startUpQuiet quiet samples, a load's
// only after a whole quiet interval (a shop's traffic pauses and comes
// back); each is handed back idleReleases times in all, releaseEvery
// intervals apart.
func TestStartUpIsHandedBackSoonerThanALoad(t *testing.T) {
	w := newIdleWatch(time.Second)
	w.idleGC = func(bool) {}
	want := []int{startUpQuiet}
	for k := 1; k < idleReleases; k++ {
		want = append(want, startUpQuiet+k*releaseEvery*samplesPerInterval)
	}
	if got := quietSamples(w, 200); !slices.Equal(got, want) {
		t.Fatalf("after start-up, released after quiet samples %v, want %v", got, want)
	}

	w.step(idleAllocBytes) // a load
	want = []int{samplesPerInterval}
	for k := 1; k < idleReleases; k++ {
		want = append(want, samplesPerInterval+k*releaseEvery*samplesPerInterval)
	}
	if got := quietSamples(w, 200); !slices.Equal(got, want) {
		t.Fatalf("after a load, released after quiet samples %v, want %v", got, want)
	}

	w.step(idleAllocBytes / samplesPerInterval) // a blip: back to the load's GC, nothing to hand back
	if got := quietSamples(w, 200); len(got) != 0 {
		t.Fatalf("after a blip, released after quiet samples %v, want none", got)
	}
}
