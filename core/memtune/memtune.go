// Package memtune keeps a serving Omni's memory near what it is using: a
// default soft limit for the Go heap, and, once a load has stopped, the
// freed heap handed back to the OS instead of kept for the next burst.
// Without it the Go runtime keeps a burst's heap (and its GC goal) for
// minutes, so RSS stays at its peak long after the shop went quiet.
package memtune

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLimit is the Go heap's soft limit when GOMEMLIMIT is not set: the
// GC works harder as the heap nears it, which caps the burst RSS of a
// small shop's server. It is soft — a bigger live heap still runs, with
// more GC — and GOMEMLIMIT (or GOGC) in the environment overrides it.
// 150 MiB keeps a saturated server's RSS under 250 MB with SQLite's page
// caches and the binary's pages beside the heap (docs/benchmarks.md,
// memory).
const DefaultLimit = 150 << 20

// ApplyDefaultLimit sets DefaultLimit unless the operator chose a limit
// with GOMEMLIMIT. It reports the limit in force.
func ApplyDefaultLimit() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	debug.SetMemoryLimit(DefaultLimit)
	return DefaultLimit
}

// idleAllocBytes is the allocation in one interval below which the server
// counts as idle (health checks and timers allocate far less).
const idleAllocBytes = 8 << 20

var (
	idleMu    sync.Mutex
	idleFuncs = map[int]func(){}
	idleNext  int
)

// AtIdle registers f to run when ReleaseWhenIdle sees a load stop, before
// the Go heap is handed back: memory that is not Go's own (SQLite's page
// caches) or that a cache would keep until its next use is released the
// same way. remove unregisters f (a stopped module's caches must not be
// kept reachable by the registry).
func AtIdle(f func()) (remove func()) {
	idleMu.Lock()
	defer idleMu.Unlock()
	id := idleNext
	idleNext++
	idleFuncs[id] = f
	return func() {
		idleMu.Lock()
		defer idleMu.Unlock()
		delete(idleFuncs, id)
	}
}

// ReleaseNow runs the AtIdle functions, then debug.FreeOSMemory (a GC that
// returns the freed pages to the OS).
func ReleaseNow() {
	idleMu.Lock()
	fs := make([]func(), 0, len(idleFuncs))
	for _, f := range idleFuncs {
		fs = append(fs, f)
	}
	idleMu.Unlock()
	for _, f := range fs {
		f()
	}
	debug.FreeOSMemory()
}

// IdleGCPercent is GOGC while the server is idle: the heap may grow only a
// quarter over what is live before the next GC instead of doubling, which
// at an idle server's allocation rate costs next to no CPU. GOGC in the
// environment turns this off.
const IdleGCPercent = 25

// idleReleases is how many times ReleaseWhenIdle hands memory back after a
// load, every releaseEvery idle intervals: memory that outlives the load
// for a while (JetStream keeps a message's id for its stream's dedupe
// window, up to 2 minutes) is freed later than the first quiet interval,
// and at idle the next GC could be minutes away.
const (
	idleReleases = 5
	releaseEvery = 3
)

// idleGCOn is set while ReleaseWhenIdle runs the heap at IdleGCPercent;
// restoreGC (under gcMu) puts GOGC back.
var (
	gcMu      sync.Mutex
	idleGCOn  atomic.Bool
	restoreGC func()
)

// Wake tells memtune that work is arriving (the tracking API calls it for
// each request): GOGC goes back from IdleGCPercent at once, not at the
// next sample, which a burst of a few seconds would otherwise spend
// collecting four times as often. Cheap when the server is busy already.
func Wake() {
	if !idleGCOn.Load() {
		return
	}
	gcMu.Lock()
	defer gcMu.Unlock()
	if idleGCOn.Load() && restoreGC != nil {
		restoreGC()
		idleGCOn.Store(false)
	}
}

// samplesPerInterval is how often per interval ReleaseWhenIdle looks at
// the allocation rate: a load is seen within a tenth of the interval, so a
// burst shorter than the interval does not run under IdleGCPercent.
const samplesPerInterval = 10

// ReleaseWhenIdle watches the heap's allocation rate. The first sample
// (a tenth of interval) busier than the idle rate restores GOGC; a whole
// interval below it after a busy one runs ReleaseNow and lowers GOGC to
// IdleGCPercent; while it stays idle it runs ReleaseNow again every
// releaseEvery intervals, idleReleases times in all. It runs until stop
// is closed.
func ReleaseWhenIdle(stop <-chan struct{}, interval time.Duration) {
	newIdleWatch(interval).run(stop)
}

// idleWatch is ReleaseWhenIdle's state. newIdleWatch reads the heap's
// allocation count and GOGC when it is made, and run measures from that
// reading: whatever is allocated after newIdleWatch returns counts as
// load, however late run's goroutine starts (tests start it, then make a
// load).
type idleWatch struct {
	interval time.Duration
	allocs   []metrics.Sample // the heap's allocations, read at each sample
	last     uint64           // their count at the last sample
	idleGC   func(on bool)    // lowers GOGC to IdleGCPercent, or restores it

	// Start-up counts as a load: what it allocated once (migrations,
	// caches built at start, the plugins' handshakes) is garbage that a
	// fresh server would otherwise keep until its first burst, and its
	// first quiet moves it to IdleGCPercent.
	busy       bool   // the last samples were a load's
	startUp    bool   // the load is start-up's (startUpQuiet ends it)
	quiet      int    // samples in a row at the idle rate
	busyAlloc  uint64 // allocated since the server turned busy
	afterLoad  bool   // the quiet follows a load: releases are due
	released   int    // releases since the load ended
	releasedAt int    // the quiet sample of the last one
}

func newIdleWatch(interval time.Duration) *idleWatch {
	w := &idleWatch{interval: interval, allocs: []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}, idleGC: func(on bool) {},
		busy: true, startUp: true, busyAlloc: idleAllocBytes}
	metrics.Read(w.allocs)
	w.last = w.allocs[0].Value.Uint64()
	if os.Getenv("GOGC") == "" {
		gogc := debug.SetGCPercent(-1)
		debug.SetGCPercent(gogc)
		gcMu.Lock()
		restoreGC = func() { debug.SetGCPercent(gogc) }
		gcMu.Unlock()
		w.idleGC = func(on bool) {
			gcMu.Lock()
			defer gcMu.Unlock()
			if on {
				debug.SetGCPercent(IdleGCPercent)
			} else {
				debug.SetGCPercent(gogc)
			}
			idleGCOn.Store(on)
		}
	}
	return w
}

// startUpQuiet is how many quiet samples in a row end start-up: a tenth
// of the interval each, so 2 s at the server's 10 s. Start-up is one burst
// that will not come back, unlike a shop's traffic, whose short lulls the
// whole interval waits out: a fresh server hands back what starting
// allocated (2–3 MB of RSS) a couple of seconds after it goes quiet, not
// ten.
const startUpQuiet = 2

// run is ReleaseWhenIdle's loop; it returns when stop is closed.
func (w *idleWatch) run(stop <-chan struct{}) {
	defer w.idleGC(false)
	t := time.NewTicker(max(w.interval/samplesPerInterval, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		metrics.Read(w.allocs)
		now := w.allocs[0].Value.Uint64()
		allocated := now - w.last
		w.last = now
		if w.step(allocated) {
			ReleaseNow()
		}
	}
}

// step takes one sample, the bytes allocated since the last one, and
// reports whether memory is to be handed back now. It moves GOGC between
// the load's and IdleGCPercent as it goes.
func (w *idleWatch) step(allocated uint64) (release bool) {
	if allocated >= idleAllocBytes/samplesPerInterval {
		if !w.busy {
			w.idleGC(false)
			w.busyAlloc = 0
		}
		w.busy, w.quiet = true, 0
		w.busyAlloc += allocated
		return false
	}
	w.quiet++
	switch {
	case w.busy && (w.quiet == samplesPerInterval || w.startUp && w.quiet == startUpQuiet):
		// A blip (a timer's work) only goes back to idle GC; a load
		// leaves memory to hand back.
		w.busy, w.startUp, w.afterLoad = false, false, w.busyAlloc >= idleAllocBytes
		w.idleGC(true)
		w.released, w.releasedAt = 1, w.quiet // this one, if afterLoad
		return w.afterLoad
	case !w.busy && w.afterLoad && w.quiet-w.releasedAt == releaseEvery*samplesPerInterval:
		w.released++
		w.releasedAt = w.quiet
		w.afterLoad = w.released < idleReleases
		return true
	}
	return false
}
