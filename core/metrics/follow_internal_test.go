package metrics

import (
	"context"
	"testing"
	"time"
)

// The follower holds off while ingest is busy: batches queued within
// quiet, or events still waiting for the events consumer (a batch that
// holds the writer longer than quiet leaves a gap that is no pause), and
// not past max_delay either way.
func TestFollowerWaitsWhileEventsWaitToBeStored(t *testing.T) {
	const quiet, maxDelay = 250 * time.Millisecond, time.Minute
	waiting := false
	f := newFollower(nil, quiet, maxDelay)
	f.backlog = func(context.Context) bool { return waiting }
	ctx := context.Background()
	now := time.Now()

	f.lastQueued.Store(now.Add(-time.Second).UnixNano()) // the last batch a second ago
	if w := f.wait(ctx, now.Add(-2*time.Second)); w != 0 {
		t.Fatalf("quiet for a second, nothing waiting: held off %v, want 0", w)
	}
	waiting = true
	if w := f.wait(ctx, now.Add(-2*time.Second)); w != quiet {
		t.Fatalf("events waiting to be stored: held off %v, want %v", w, quiet)
	}
	if w := f.wait(ctx, now.Add(-maxDelay)); w != 0 {
		t.Fatalf("oldest queued batch max_delay old: held off %v, want 0 even with events waiting", w)
	}
	if w := f.wait(ctx, now.Add(-maxDelay+100*time.Millisecond)); w <= 0 || w > 100*time.Millisecond {
		t.Fatalf("100 ms short of max_delay: held off %v, want at most those 100 ms", w)
	}
	waiting = false
	f.lastQueued.Store(time.Now().UnixNano())
	if w := f.wait(ctx, now.Add(-2*time.Second)); w <= 0 || w > quiet {
		t.Fatalf("a batch queued just now: held off %v, want up to %v", w, quiet)
	}
}
